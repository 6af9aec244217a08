"""Receive one uploaded song: a streamed ``multipart/form-data`` body to a file on disk.

The body is parsed as it arrives (python-multipart's push parser), the part
named ``file`` is written to a path the *server* chose, and the size cap is
enforced on every chunk, so an oversized upload is refused as soon as it
crosses the cap instead of after it has been stored. The client's file name is
only ever used for display (:func:`display_name`) and, if it ends in a known
audio ending, to pick which decoder tries first (:func:`upload_suffix`); it
never becomes part of a path that is opened.
"""

from __future__ import annotations

import codecs
import os
import unicodedata
from pathlib import Path

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from progrock.constants import AUDIO_EXTENSIONS

FIELD = "file"
"""The form field that carries the audio."""

MULTIPART_OVERHEAD = 64 * 1024
"""Bytes a request body may hold beyond the file: boundaries, part headers, small extra fields."""

MAX_NAME_CHARS = 200
"""Longest file name echoed back (characters)."""


class UploadError(Exception):
    """A request that cannot be accepted; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message
        super().__init__(message)


def display_name(raw: str | None) -> str:
    """A client-supplied file name made safe to show: its last path component, printable only.

    ``"../../etc/passwd"`` gives ``"passwd"``, ``"C:\\\\music\\\\a.mp3"`` gives
    ``"a.mp3"``; NUL and other control characters are dropped; an empty,
    ``"."`` or ``".."`` name gives ``"upload"``. A browser sends ``"`` as
    ``%22`` and line breaks as ``%0D``/``%0A`` (the HTML form-data encoding);
    they are turned back, so ``Yes, "Roundabout".flac`` keeps its name.
    """
    name = (raw or "").replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if name in ("", ".", ".."):
        return "upload"
    return name[:MAX_NAME_CHARS]


def upload_suffix(name: str) -> str:
    """The name's ending if it is a known audio ending (lower case), else ``""``.

    Only a hint for the decoder's order: libsndfile first for its formats,
    FFmpeg otherwise and as the fallback. Whether the bytes are audio is decided
    by decoding them.
    """
    suffix = os.path.splitext(name)[1].lower()
    return suffix if suffix in AUDIO_EXTENSIONS else ""


def multipart_boundary(content_type: str | None) -> tuple[bytes, str]:
    """The boundary and charset of a ``multipart/form-data`` Content-Type.

    Raises
    ------
    UploadError
        415 if the request is not ``multipart/form-data`` or has no boundary.
    """
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadError(415, f"send the song as multipart/form-data with the audio in the field "
                               f"{FIELD!r} (got Content-Type {content_type or 'none'!r})")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = "utf-8"
    return params[b"boundary"], charset


class UploadReceiver:
    """Push parser writing the ``file`` part of a multipart body to ``dest``.

    Feed it the body chunk by chunk with :meth:`feed`, then call
    :meth:`finish`. Raises :class:`UploadError` (413) as soon as the file
    passes ``max_bytes`` or the whole body passes ``max_bytes`` plus
    :data:`MULTIPART_OVERHEAD`.

    Parameters
    ----------
    boundary : bytes
    dest_dir : Path
        Folder the file is written to (the server's temporary folder).
    max_bytes : int
        Largest accepted file, in bytes.
    charset : str
        Encoding of the part headers' values.
    """

    def __init__(self, boundary: bytes, dest_dir: Path, *, max_bytes: int, charset: str = "utf-8"):
        self.dest_dir = Path(dest_dir)
        self.max_bytes = int(max_bytes)
        self.charset = charset
        self.path: Path | None = None
        self.filename: str | None = None
        self.size = 0
        self.body_bytes = 0
        self._files_seen = 0
        self._in_file = False
        self._out = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
        })

    # -- python-multipart callbacks ------------------------------------------------------------

    def _on_part_begin(self) -> None:
        self._disposition = b""
        self._in_file = False

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode(self.charset, errors="replace")
        if name != FIELD:
            return  # other fields are read past (their bytes count towards the body cap)
        self._files_seen += 1
        if self._files_seen > 1:
            raise UploadError(422, f"send one file per request (the field {FIELD!r} appears twice)")
        raw = options.get(b"filename")
        self.filename = raw.decode(self.charset, errors="replace") if raw is not None else None
        # The server chooses the name; the client's ending is a decoder hint at most.
        self.path = self.dest_dir / ("upload" + upload_suffix(display_name(self.filename)))
        self._out = open(self.path, "xb")
        self._in_file = True

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            return
        n = end - start
        if self.size + n > self.max_bytes:
            raise UploadError(413, f"the file is larger than this server accepts "
                                   f"({format_bytes(self.max_bytes)})")
        self._out.write(data[start:end])
        self.size += n

    def _on_part_end(self) -> None:
        if self._in_file:
            self._out.close()
            self._in_file = False

    # -- driving ---------------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        """Parse the next piece of the body (writes file data to disk)."""
        self.body_bytes += len(chunk)
        if self.body_bytes > self.max_bytes + MULTIPART_OVERHEAD:
            raise UploadError(413, f"the request is larger than this server accepts "
                                   f"({format_bytes(self.max_bytes)} per file)")
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise UploadError(400, f"malformed multipart/form-data body ({exc})") from None

    def finish(self) -> Path:
        """End of body: the path of the received file.

        Raises
        ------
        UploadError
            400 for a truncated body, 422 if there was no ``file`` field or it was empty.
        """
        try:
            self._parser.finalize()
        except FormParserError as exc:
            raise UploadError(400, f"malformed multipart/form-data body ({exc})") from None
        self.close()
        if self.path is None:
            raise UploadError(422, f"no file: send the audio in the multipart field {FIELD!r}")
        if self._in_file:
            raise UploadError(400, "the multipart body ended in the middle of the file")
        if self.size == 0:
            raise UploadError(422, "empty file (0 bytes)")
        return self.path

    def close(self) -> None:
        """Close the output file if it is open (safe to call twice)."""
        if self._out is not None and not self._out.closed:
            self._out.close()


def format_bytes(n: int) -> str:
    """``209715200`` -> ``"200 MiB"``; for messages."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"
