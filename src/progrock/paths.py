"""File names as text: names that are not UTF-8 written losslessly and readably, and found again.

A name from an old disk or a Samba share may hold bytes that are not UTF-8
(``caf\\xe9.mp3`` in Latin-1). Python keeps such bytes as lone surrogates,
which no UTF-8 file, JSON line or web page can hold. Every output (manifests,
CSV tables, JSON, reports, the page) writes a name with :func:`printable`:
valid UTF-8 as it is, every other byte as ``\\xNN`` — ``caf\\xe9.mp3``. Reading a
manifest back, :func:`file_of` finds the file again: the name as written if
that file exists, else the name with its ``\\xNN`` turned back into bytes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def printable(path: str | os.PathLike) -> str:
    """``path`` as UTF-8 text: bytes that are not UTF-8 become ``\\xNN``; everything else is unchanged."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def from_printable(text: str) -> str:
    """The file name :func:`printable` wrote as ``text`` (``\\xNN`` back to the byte)."""
    parts, last = [], 0
    for m in _ESCAPE.finditer(text):
        parts.append(text[last:m.start()].encode("utf-8"))
        parts.append(bytes([int(m.group(1), 16)]))
        last = m.end()
    parts.append(text[last:].encode("utf-8"))
    return os.fsdecode(b"".join(parts))


def file_of(text: str | os.PathLike) -> Path:
    """The file a printable name stands for: itself if it exists, else with its escapes undone."""
    path = Path(text)
    if os.path.lexists(path) or "\\x" not in str(text):
        return path
    return Path(from_printable(str(text)))
