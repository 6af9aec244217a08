"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

Every file progrock writes goes through here: the feature cache, the model
files, manifests, configurations, evaluations and reports. A write goes to a
temporary file beside the target, is flushed to disk and renamed over it
(``os.replace``). A failed write (a full disk, a read-only folder) removes its
temporary file, leaves the previous file untouched and raises
:class:`~progrock.errors.ProgrockError` naming the path and the reason.

New files get the permissions the process's umask gives (``0o666 & ~umask``),
as ``open()`` would: a temporary file is created ``0o600``, which would make a
run folder on shared storage unreadable to other users.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from progrock.errors import ProgrockError


def _umask() -> int:
    """The process's umask, read without changing it where Linux lets us (``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)          # no /proc: read it by setting it, and put it back at once
    os.umask(mask)
    return mask


def _cannot_write(path: Path, exc: OSError) -> ProgrockError:
    return ProgrockError(f"{path}: cannot write ({exc.strerror or exc}); "
                         f"the previous {path.name}, if any, is unchanged")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``.

    ``mode`` is ``"wb"`` or ``"w"`` (``kwargs`` go to :func:`open`, e.g.
    ``encoding``, ``newline``). If the block raises, the temporary file is
    removed and ``path`` keeps its previous content; an ``OSError`` is turned
    into a :class:`ProgrockError` naming ``path``.
    """
    path = Path(path)
    with _temporary(path, mode, **kwargs) as (fh, tmp):
        yield fh
    try:
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot_write(path, exc) from exc


@contextlib.contextmanager
def _temporary(path: Path, mode: str, **kwargs) -> Iterator[tuple[IO, str]]:
    """A temporary file beside ``path``, flushed to disk when the block ends; removed if it raises."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())
    except OSError as exc:
        raise ProgrockError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh, tmp
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from exc
        raise


def write_temporary(path: str | os.PathLike, data: bytes) -> str:
    """Write ``data`` to a flushed temporary file beside ``path``; returns its name.

    For writers that replace several files together (a model's weights and
    description): each is written in full first, then each renamed.
    """
    path = Path(path)
    with _temporary(path, "wb") as (fh, tmp):
        fh.write(data)
    return tmp


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    path = Path(path)
    os.replace(write_temporary(path, data), path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def jsonable(obj):
    """``obj`` with numpy scalars and arrays, tuples and paths as plain JSON types; non-finite floats as ``None``."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def json_text(obj, *, indent: int | None = 2) -> str:
    """``obj`` as JSON text (through :func:`jsonable`; never ``NaN``), ending in a newline."""
    return json.dumps(jsonable(obj), indent=indent, allow_nan=False, ensure_ascii=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj, *, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON (see :func:`json_text`) atomically."""
    atomic_write_text(path, json_text(obj, indent=indent))
