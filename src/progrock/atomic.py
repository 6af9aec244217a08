"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

Shared by the feature cache and the model checkpoints. A failed write (a full
disk, a read-only folder) removes its temporary file, leaves the previous file
untouched and raises :class:`~progrock.errors.ProgrockError` naming the path
and the reason.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from progrock.errors import ProgrockError


def write_temporary(path: Path, data: bytes) -> str:
    """Write ``data`` to a fsynced temporary file beside ``path``; returns its name.

    Raises :class:`ProgrockError` naming ``path`` (and removes the temporary file) if it fails.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ProgrockError(f"{path}: cannot write ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk, a read-only folder: name the file, keep the old one
            raise ProgrockError(f"{path}: cannot write ({exc.strerror or exc}); "
                                f"the previous {path.name}, if any, is unchanged") from exc
        raise
    return tmp


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``.

    Raises
    ------
    ProgrockError
        The write failed (e.g. "No space left on device"); the temporary file
        is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    os.replace(write_temporary(path, data), path)


