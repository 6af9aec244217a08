"""Which paths are songs: checking one file before it is opened, and walking folders.

A batch goes on past anything it cannot read, but never silently: a file
that cannot be decoded gets a :class:`~progrock.errors.DecodeError` with the
reason, and a folder that cannot be read is listed with its reason
(:func:`find_audio_files`).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from progrock.constants import AUDIO_EXTENSIONS
from progrock.errors import DecodeError, FileError

_NOT_REGULAR = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
                stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def _too_long(path: str | os.PathLike) -> str:
    """The reason for ENAMETOOLONG: which limit the path passes."""
    raw = os.fsencode(path)
    longest = max((len(part) for part in raw.split(b"/")), default=0)
    try:
        path_max, name_max = os.pathconf("/", "PC_PATH_MAX"), os.pathconf("/", "PC_NAME_MAX")
    except (OSError, ValueError):
        path_max, name_max = 4096, 255
    if longest > name_max:
        return f"a name in the path is too long ({longest} bytes; the system allows {name_max})"
    return f"the path is too long ({len(raw)} bytes; the system allows {path_max - 1})"


def os_reason(exc: OSError, path: str | os.PathLike) -> str:
    """A short reason for an OS error about ``path``, for people."""
    if exc.errno == errno.ENAMETOOLONG:
        return _too_long(path)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links (a link loop)"
    return (exc.strerror or str(exc)).lower()


def check_file(path: Path) -> os.stat_result:
    """Refuse a path that is not a readable, non-empty regular file, before anything opens it.

    Nothing here opens the file, so a FIFO never blocks.

    Returns
    -------
    os.stat_result
        Of the file (symbolic links followed).

    Raises
    ------
    DecodeError
        No such file, a broken symbolic link, a folder, not a regular file (a
        FIFO, a device, a socket), a path longer than the system allows,
        permission denied, or an empty file.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise DecodeError(path, "broken symbolic link") from None
        raise DecodeError(path, "no such file") from None
    except OSError as exc:
        reason = os_reason(exc, path)
        if exc.errno in (errno.EACCES, errno.EPERM):
            reason += " (a folder on the path cannot be entered)"
        raise DecodeError(path, reason) from None
    if stat.S_ISDIR(st.st_mode):
        raise DecodeError(path, "is a folder, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        kind = _NOT_REGULAR.get(stat.S_IFMT(st.st_mode), "not a file")
        raise DecodeError(path, f"not a regular file ({kind})")
    if not os.access(path, os.R_OK):
        raise DecodeError(path, "permission denied (file is not readable)")
    if st.st_size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    return st


def find_audio_files(root: str | os.PathLike, *,
                     skipped: list[tuple[str, str]] | None = None) -> list[Path]:
    """All files under ``root`` whose ending is in :data:`~progrock.constants.AUDIO_EXTENSIONS`, sorted.

    Folders named like audio files are walked, not returned; symbolic links to
    files are returned; hidden files (``.name``) are left out.

    Parameters
    ----------
    root : str or os.PathLike
        A folder (or one file, returned as it is).
    skipped : list, optional
        Where folders that cannot be read go, as ``(path, reason)``; the walk
        goes on with the others. Without it the first such folder raises.

    Returns
    -------
    list of Path

    Raises
    ------
    FileError
        A folder cannot be read (permission denied, a path longer than the
        system allows, ...) and ``skipped`` is not given.
    """
    root = Path(root)
    if root.is_file():
        return [root]

    def unreadable(exc: OSError) -> None:
        where = exc.filename if exc.filename is not None else root
        reason = f"cannot read the folder: {os_reason(exc, where)}"
        if skipped is None:
            raise FileError(where, reason)
        skipped.append((str(where), reason))

    found = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
        dirnames.sort()
        for name in filenames:
            if Path(name).suffix.lower() in AUDIO_EXTENSIONS and not name.startswith("."):
                found.append(Path(dirpath) / name)
    return sorted(found)
