"""Facts the decoders do not report, read from a file's first or last bytes.

* MP3: where the decoder's output frames start (:func:`mp3_frame_grid`), from
  the frame header and the LAME/Xing tag's encoder delay.
* FLAC: the STREAMINFO block (:func:`flac_streaminfo`): sample count, bits per
  sample and the MD5 signature of the samples.
* Ogg: the byte ranges of chained streams (:func:`ogg_chains`), which
  libsndfile stops after the first of.

Each reader looks at a bounded number of bytes (the Ogg walk reads one page
header per page, and only when the file is chained) and answers ``None`` or a
safe default for anything it does not recognise.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

_HEAD_BYTES = 1 << 16
"""Bytes searched for the first MP3 frame after the ID3v2 tags."""

GAPLESS_DELAY = 529
"""mpg123's decoder delay in samples, added to the encoder delay a LAME tag gives."""


def _skip_id3v2(f: BinaryIO) -> int:
    """Offset of the first byte after the ID3v2 tags at the start of ``f``."""
    pos = 0
    while True:
        f.seek(pos)
        head = f.read(10)
        if len(head) < 10 or head[:3] != b"ID3" or any(b & 0x80 for b in head[6:10]):
            return pos
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        pos += 10 + size + (10 if head[5] & 0x10 else 0)  # a footer adds ten bytes


_BITRATES = {  # kbit/s by (MPEG-1?, layer), index 1..14
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_BITRATES[(False, 3)] = _BITRATES[(False, 2)]
_RATES = {3: (44_100, 48_000, 32_000), 2: (22_050, 24_000, 16_000), 0: (11_025, 12_000, 8_000)}


@dataclass(frozen=True)
class _MpegHeader:
    layer: int
    mpeg1: bool
    mono: bool
    length: int  # bytes of the frame, header included

    @property
    def samples(self) -> int:
        """Samples per channel in one frame."""
        return 384 if self.layer == 1 else 1152 if self.layer == 2 or self.mpeg1 else 576


def _mpeg_header(b: bytes) -> _MpegHeader | None:
    if len(b) < 4 or b[0] != 0xFF or b[1] & 0xE0 != 0xE0:
        return None
    version, layer = (b[1] >> 3) & 3, 4 - ((b[1] >> 1) & 3)
    rate_i, bitrate_i = (b[2] >> 2) & 3, b[2] >> 4
    if version == 1 or layer == 4 or rate_i == 3 or bitrate_i in (0, 15):
        return None
    mpeg1 = version == 3
    rate = _RATES[version][rate_i]
    bitrate = _BITRATES[(mpeg1, layer)][bitrate_i - 1] * 1000
    pad = (b[2] >> 1) & 1
    if layer == 1:
        length = (12 * bitrate // rate + pad) * 4
    else:
        length = (144 if layer == 2 or mpeg1 else 72) * bitrate // rate + pad
    return _MpegHeader(layer=layer, mpeg1=mpeg1, mono=(b[3] >> 6) == 3, length=length)


def mp3_frame_grid(f: BinaryIO) -> tuple[int, int]:
    """Where mpg123's output frames start: ``(first, samples per frame)``.

    mpg123 (libsndfile's MP3 decoder) skips ``encoder delay + 529`` samples at
    the start when a LAME/Xing tag gives the delay and the frame count (its
    gapless mode), so its frames end at ``first + k * samples``. Reads that end
    on those boundaries give the samples of one whole-file read exactly;
    others can differ in the last bit for mono and MPEG-2 files.

    Parameters
    ----------
    f : binary file
        Positioned anywhere; read from the start.

    Returns
    -------
    first : int
        Output samples before the first frame boundary (0 when nothing is skipped).
    samples : int
        Samples per channel in a frame (1152, 576 or 384); 1152 if no frame is found.
    """
    start = _skip_id3v2(f)
    f.seek(start)
    data = f.read(_HEAD_BYTES)
    i = data.find(b"\xff")
    while 0 <= i < len(data) - 3:
        head = _mpeg_header(data[i:i + 4])
        if head is None:
            i = data.find(b"\xff", i + 1)
            continue
        nxt = data[i + head.length:i + head.length + 4]
        if len(nxt) == 4 and _mpeg_header(nxt) is None:
            i = data.find(b"\xff", i + 1)
            continue  # a false sync inside junk: the next frame must follow
        skip = _lame_skip(data[i:i + head.length], head)
        return (-skip) % head.samples, head.samples
    return 0, 1152


def _lame_skip(frame: bytes, head: _MpegHeader) -> int:
    """Samples mpg123 skips at the start, from the Xing/Info tag's LAME delay (as mpg123 reads it)."""
    if head.layer != 3:
        return 0
    at = 4 + ((17 if head.mpeg1 else 9) if head.mono else (32 if head.mpeg1 else 17))
    if head.length - 4 < 120 + at - 4 or frame[at:at + 4] not in (b"Xing", b"Info"):
        return 0
    flags = struct.unpack(">I", frame[at + 4:at + 8])[0]
    at += 8
    frames = 0
    if flags & 1:
        frames = struct.unpack(">I", frame[at:at + 4])[0]
        at += 4
    at += 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
    if frames <= 0 or at + 24 > len(frame) or frame[at] == 0:
        return 0  # mpg123 applies the delay only with a frame count and a LAME extension
    delay = (frame[at + 21] << 4) | (frame[at + 22] >> 4)
    return delay + GAPLESS_DELAY


@dataclass(frozen=True)
class FlacInfo:
    """A FLAC file's STREAMINFO block.

    Attributes
    ----------
    sr : int
        Sample rate in Hz.
    channels : int
    bits_per_sample : int
    n_frames : int
        Samples per channel the header declares (0: unknown).
    md5 : bytes
        MD5 of the decoded samples as the encoder saw them (16 zero bytes: not computed).
    """

    sr: int
    channels: int
    bits_per_sample: int
    n_frames: int
    md5: bytes


def flac_streaminfo(f: BinaryIO) -> FlacInfo | None:
    """The STREAMINFO of a native FLAC file (after any ID3v2 tag), or ``None`` if it is not one."""
    f.seek(_skip_id3v2(f))
    head = f.read(42)
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        return None
    bits = int.from_bytes(head[18:26], "big")
    return FlacInfo(sr=bits >> 44, channels=((bits >> 41) & 7) + 1, bits_per_sample=((bits >> 36) & 31) + 1,
                      n_frames=bits & ((1 << 36) - 1), md5=head[26:42])


_OGG_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, sequence, crc, segments
_BOS = 0x02


def _ogg_page(f: BinaryIO, pos: int) -> tuple[int, int, int] | None:
    """(flags, serial, total page length) of the Ogg page at ``pos``, or ``None``."""
    f.seek(pos)
    head = f.read(_OGG_HEADER.size)
    if len(head) < _OGG_HEADER.size:
        return None
    capture, version, flags, _, serial, _, _, n_segments = _OGG_HEADER.unpack(head)
    if capture != b"OggS" or version != 0:
        return None
    lacing = f.read(n_segments)
    if len(lacing) < n_segments:
        return None
    return flags, serial, _OGG_HEADER.size + n_segments + sum(lacing)


def ogg_chains(f: BinaryIO, size: int) -> list[tuple[int, int]]:
    """Byte ranges ``[start, end)`` of the chained streams of an Ogg file, in order.

    A chain starts at a beginning-of-stream page that follows other pages
    (streams grouped at the start, such as audio beside video, are one chain).
    An ordinary file, or one that is not Ogg, is one range ``[(0, size)]``;
    the pages are walked only when the last page's stream is not the first
    page's.
    """
    whole = [(0, size)]
    first = _ogg_page(f, 0)
    if first is None:
        return whole
    f.seek(max(0, size - _HEAD_BYTES))
    tail = f.read(_HEAD_BYTES)
    last_at = tail.rfind(b"OggS")
    last = _ogg_page(f, size - len(tail) + last_at) if last_at >= 0 else None
    if last is not None and last[1] == first[1]:
        return whole
    starts, pos, after_data = [0], 0, False
    while pos < size:
        page = _ogg_page(f, pos)
        if page is None:
            break  # damaged or trailing bytes: they stay with the last chain
        flags, _, length = page
        if flags & _BOS and after_data:
            starts.append(pos)
        after_data = not flags & _BOS
        pos += length
    return [(a, b) for a, b in zip(starts, starts[1:] + [size])]


class ByteRange(io.RawIOBase):
    """A read-only view of ``[start, end)`` of a file, seekable, for a decoder that takes a file object.

    Parameters
    ----------
    path : str or os.PathLike
    start, end : int
        Byte offsets in the file.
    """

    def __init__(self, path: str | os.PathLike, start: int, end: int):
        super().__init__()
        self._f = open(path, "rb")
        self._start, self._end, self._pos = start, end, 0
        self.name = str(path)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._end - self._start}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), self._end - self._start - self._pos))
        self._f.seek(self._start + self._pos)
        got = self._f.readinto(memoryview(buffer)[:n])
        self._pos += got
        return got

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()
