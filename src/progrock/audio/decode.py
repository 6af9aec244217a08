"""Decode an audio file to mono float32 at a fixed sample rate, block by block.

One decoder serves every caller. :func:`stream_decode` hands the samples to a
*sink* (any object with ``update(y_block)``) in bounded memory and returns
their hash; :func:`decode` is the same decoder collecting the blocks into one
array. libsndfile (through soundfile) reads WAV, FLAC, Ogg Vorbis/Opus, AIFF
and MP3; PyAV (FFmpeg) reads everything else (M4A/AAC, WMA, DSD, ...) and
takes over when libsndfile refuses a file, at the start or part-way (then the
blocks start again, into a fresh sink). Channels are averaged in float32 and
the signal is resampled with soxr's ``soxr_hq`` filter in its streaming form,
which gives the samples of ``librosa.load(path, sr=sr)`` whatever the block
sizes (``tests/test_decode.py`` checks every format against a whole-file
reference).

libsndfile's MP3 decoder (mpg123) gives samples that depend on where reads
end: mono and MPEG-2 files read in arbitrary blocks differ from one whole
read in the last bit. Reads that end on the decoder's frame boundaries
(:func:`~progrock.audio.containers.mp3_frame_grid`) give the whole read's
samples exactly, so MP3 files are read on that grid.

Tags, cover art and the file name are never read: only the audio samples.

Refused with a :class:`~progrock.errors.DecodeError` naming the file: what
:func:`~progrock.audio.files.check_file` refuses, files neither decoder reads,
no samples, non-finite or absurd samples (:func:`check_samples`), a sample
rate outside ``MIN_SOURCE_SR..MAX_SOURCE_SR``, and more audio than the
longest recording accepted (:func:`max_seconds`), counted as it is decoded.
Decoded with a warning (:class:`DecodeWarning`, also in ``warnings`` of the
result): a FLAC file whose audio does not match its MD5 signature.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
import soundfile as sf
import soxr

from progrock.audio.containers import ByteRange, FlacInfo, flac_streaminfo, mp3_frame_grid, ogg_chains
from progrock.audio.files import check_file
from progrock.constants import MAX_HOURS, MAX_SOURCE_SR, MIN_SOURCE_SR, SR
from progrock.errors import ConfigError, DecodeError

_SNDFILE_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".aif",
                                 ".aiff", ".aifc", ".mp3"})
"""Endings libsndfile reads first; FFmpeg reads the rest and whatever libsndfile refuses."""

SOURCE_BLOCK = 2**16
"""Frames read from libsndfile at a time (1.5 s at 44.1 kHz)."""

SOURCE_SAMPLES = 2**17
"""Most samples (frames x channels) in one libsndfile read: a file with many channels reads fewer frames."""

RESAMPLE_BLOCK = 2**18
"""Most output samples of one resampling step; a block that would give more is resampled in pieces.

Each piece is worth half of it, as soxr gives its output in bursts (of up to
about 9,000 samples), so the bound holds from about 2**14 up.
"""

MAX_ABS_SAMPLE = 1e6
"""Largest sample magnitude accepted (full scale is 1.0).

Float files may exceed full scale a little (an unnormalised mix); a million
times full scale (+120 dB) is not audio but garbage, and powers of such
samples overflow float32 in the features. Checked by :func:`check_samples`.
"""

MAX_HOURS_ENV = "PROGROCK_MAX_HOURS"
"""Environment variable giving the longest recording accepted, in hours."""

Sink = TypeVar("Sink")
Block = tuple[int, np.ndarray]
"""A decoded block: (sample rate in Hz, samples ``[shape=(channels, n), dtype=float32]``)."""


class DecodeWarning(UserWarning):
    """A file was decoded, but something about it is wrong (e.g. a FLAC MD5 mismatch)."""


@dataclass(frozen=True)
class StreamInfo:
    """What decoding a file found: :class:`DecodedAudio` without the samples.

    Attributes
    ----------
    sr : int
        Sample rate of the blocks in Hz.
    source_sr : int
        The file's own sample rate in Hz (of its first stream, if it chains several).
    channels : int
        The file's number of channels before the mono mix.
    decoder : str
        ``"soundfile"`` or ``"pyav"``.
    n_samples : int
        Samples given to the sink, at ``sr``.
    sha256 : str
        Hash of all the samples (:func:`audio_hash` of them).
    warnings : tuple of str
        What is wrong with a file that still decoded (also issued as :class:`DecodeWarning`).
    """

    sr: int
    source_sr: int
    channels: int
    decoder: str
    n_samples: int
    sha256: str
    warnings: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.sr


@dataclass(frozen=True)
class DecodedAudio:
    """A decoded song.

    Attributes
    ----------
    y : np.ndarray [shape=(n_samples,), dtype=float32]
        Mono signal at ``sr``.
    sr : int
        Sample rate of ``y`` in Hz.
    source_sr : int
        The file's own sample rate in Hz.
    channels : int
        The file's number of channels before the mono mix.
    decoder : str
        ``"soundfile"`` or ``"pyav"``.
    warnings : tuple of str
        As :attr:`StreamInfo.warnings`.
    """

    y: np.ndarray
    sr: int
    source_sr: int
    channels: int
    decoder: str
    warnings: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.y) / self.sr

    @property
    def sha256(self) -> str:
        """Hash of the decoded samples (see :func:`audio_hash`)."""
        return audio_hash(self.y)


def audio_hash(y: np.ndarray) -> str:
    """Hash of decoded audio: identical samples give an identical hash.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
        Decoded mono audio.

    Returns
    -------
    str
        32 hexadecimal digits (SHA-256 of the little-endian float32 samples,
        truncated to 128 bits).
    """
    data = np.ascontiguousarray(y, dtype="<f4")  # no copy of float32 input: a long song is large
    return hashlib.sha256(memoryview(data).cast("B")).hexdigest()[:32]


def check_samples(path: str | os.PathLike, y: np.ndarray) -> None:
    """Refuse decoded samples that would poison the features.

    Parameters
    ----------
    path : str or os.PathLike
        The file, for the message.
    y : np.ndarray [shape=(n_samples,)]
        Decoded (mono) samples, before resampling.

    Raises
    ------
    DecodeError
        Some sample is NaN or infinite, or larger in magnitude than
        :data:`MAX_ABS_SAMPLE`.
    """
    if y.size == 0:
        return
    if not np.all(np.isfinite(y)):
        raise DecodeError(path, "audio holds NaN or infinite samples")
    peak = float(np.max(np.abs(y)))
    if peak > MAX_ABS_SAMPLE:
        raise DecodeError(path, f"sample values reach {peak:.3g}: not audio (full scale is 1.0; "
                                f"at most {MAX_ABS_SAMPLE:.0e} is accepted)")


def max_seconds(max_hours: float | None = None) -> float:
    """The longest recording accepted, in seconds of audio.

    Parameters
    ----------
    max_hours : float, optional
        In hours; ``math.inf`` accepts any length. Without it, the
        :data:`MAX_HOURS_ENV` environment variable, else
        :data:`~progrock.constants.MAX_HOURS`.

    Raises
    ------
    ConfigError
        The limit is not a positive number.
    """
    source = "max_hours"
    if max_hours is None:
        raw = os.environ.get(MAX_HOURS_ENV, "").strip()
        source = MAX_HOURS_ENV
        try:
            max_hours = float(raw) if raw else MAX_HOURS
        except ValueError:
            raise ConfigError(f"{MAX_HOURS_ENV} must be a number of hours, got {raw!r}") from None
    if not max_hours > 0:
        raise ConfigError(f"{source} must be a positive number of hours, got {max_hours!r}")
    return float(max_hours) * 3600.0


_QUIET = threading.Lock()
_quiet_users = 0
_saved_stderr = -1


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C libraries writing to file descriptor 2 (libsndfile's MP3 decoder prints resync notes).

    Threads share the descriptor (the web app decodes in several): the first
    user redirects it and the last one restores it.
    """
    global _quiet_users, _saved_stderr
    with _QUIET:
        if _quiet_users == 0:
            try:
                _saved_stderr = os.dup(2)
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 2)
                os.close(null)
            except OSError:
                pass  # stderr stays as it is
        _quiet_users += 1
    try:
        yield
    finally:
        with _QUIET:
            _quiet_users -= 1
            if _quiet_users == 0 and _saved_stderr >= 0:
                os.dup2(_saved_stderr, 2)
                os.close(_saved_stderr)
                _saved_stderr = -1


def _mono(data: np.ndarray) -> np.ndarray:
    """The float32 mean over channels of ``data [channels, n]``, bit for bit ``np.mean(data, axis=0)``.

    ``np.mean(data, axis=0, dtype=np.float32)`` (as ``librosa.to_mono``) adds
    the channels in order in float32 and divides by the count; this does the
    same operations without the strided reduction.
    """
    if data.shape[0] == 1:
        return np.ascontiguousarray(data[0])
    acc = np.add(data[0], data[1])
    for c in range(2, data.shape[0]):
        acc += data[c]
    return np.true_divide(acc, np.intp(data.shape[0]), out=acc, casting="unsafe")


def _ffmpeg_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0]


class _Fallback(Exception):
    """libsndfile refused the file (at the start or part-way): FFmpeg gets its turn."""


# ---------------------------------------------------------------------------
# Readers: a file (or a byte range of it) -> blocks


def _soundfile_blocks(path: Path, source, block: int) -> Iterator[Block]:
    """Blocks from libsndfile; :class:`_Fallback` whenever it cannot go on."""
    try:
        with _quiet_stderr():
            f = sf.SoundFile(source if isinstance(source, ByteRange) else str(source))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError):
        raise _Fallback from None
    with f:
        rate, channels = int(f.samplerate), max(1, int(f.channels))
        frames = max(1, min(block, SOURCE_SAMPLES // channels))
        first = frames
        if f.format == "MP3":
            with open(path, "rb") as raw:
                first, grid = mp3_frame_grid(raw)
            frames = max(grid, frames // grid * grid)
            first = first or frames
        quiet = _quiet_stderr if f.format == "MP3" else contextlib.nullcontext
        got = 0
        while True:
            try:
                with quiet():
                    data = f.read(first if got == 0 else frames, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError):
                raise _Fallback from None
            if data.shape[0] == 0:
                break
            got += data.shape[0]
            yield rate, data.T
    if got == 0:
        raise _Fallback


def _pyav_blocks(path: Path, source) -> Iterator[Block]:
    """Blocks from FFmpeg (planar float, the file's own rate and channels, frame by frame)."""
    import av

    try:
        container = av.open(source if isinstance(source, ByteRange) else str(source), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise DecodeError(path, f"not a recognised audio file ({_ffmpeg_reason(exc)})") from None
    with container:
        streams = container.streams.audio
        if not streams:
            raise DecodeError(path, "the file holds no audio stream")
        stream = streams[0]
        if not (stream.codec_context.sample_rate or stream.rate):  # e.g. text FFmpeg probes as raw data
            raise DecodeError(path, "not a recognised audio file (FFmpeg finds no sample rate)")
        got, setup, resampler = False, None, None
        try:
            for frame in container.decode(stream):
                if setup != (frame.sample_rate, frame.layout.name):  # a stream may change rate or layout
                    if resampler is not None:
                        yield from ((setup[0], out.to_ndarray()) for out in resampler.resample(None))
                    setup = (frame.sample_rate, frame.layout.name)
                    resampler = av.AudioResampler(format="fltp", layout=None, rate=None)
                for out in resampler.resample(frame):
                    got = True
                    yield int(frame.sample_rate), out.to_ndarray()
        except av.FFmpegError as exc:
            if not got:
                raise DecodeError(path, f"cannot decode audio ({_ffmpeg_reason(exc)})") from None
            # A truncated file: keep what decoded, as players do.
    if not got:
        raise DecodeError(path, "no audio samples could be decoded")


def _chains(path: Path) -> list[tuple[int, int]] | None:
    """Byte ranges of the chained Ogg streams of ``path``; ``None`` for any other file."""
    with open(path, "rb") as f:
        if f.read(4) != b"OggS":
            return None
        ranges = ogg_chains(f, os.fstat(f.fileno()).st_size)
    return ranges if len(ranges) > 1 else None


def _read(path: Path, reader: str, block: int) -> Iterator[Block]:
    """Every block of ``path`` through one reader, chained Ogg streams one after another."""
    read = ((lambda source: _soundfile_blocks(path, source, block)) if reader == "soundfile"
            else (lambda source: _pyav_blocks(path, source)))
    ranges = _chains(path)
    if ranges is None:
        yield from read(path)
        return
    for start, end in ranges:
        with ByteRange(path, start, end) as source:  # one open file at a time, however many streams
            yield from read(source)


# ---------------------------------------------------------------------------
# Blocks -> mono, resampled, hashed, checked -> sink


_SAMPLE_TYPES = {1: "<i1", 2: "<i2", 3: "<i4"}
"""Integer type holding a FLAC sample of 1, 2 or 3 bytes, as the MD5 signature reads it."""


class _FlacCheck:
    """The MD5 signature of a FLAC file against its decoded samples.

    The float32 samples of a FLAC file of up to 24 bits are its integers
    divided by a power of two (in libsndfile and in FFmpeg), so the integers,
    and their MD5 as the encoder computed it, are recovered exactly.
    """

    def __init__(self, info: FlacInfo):
        self.info = info
        self._md5 = hashlib.md5()
        self._scale = np.float32(2.0 ** (info.bits_per_sample - 1))
        self._width = (info.bits_per_sample + 7) // 8
        self.n_frames = 0

    @classmethod
    def of(cls, path: Path) -> "_FlacCheck | None":
        with open(path, "rb") as f:
            info = flac_streaminfo(f)
        if info is None or not any(info.md5) or not 1 <= info.bits_per_sample <= 24 or info.n_frames == 0:
            return None
        return cls(info)

    def update(self, data: np.ndarray) -> None:
        """Take a block ``[channels, n]`` of decoded float32 samples."""
        # Frames-major, as the file interleaves them; the products are whole numbers, exactly.
        ints = (data.T * self._scale).astype(_SAMPLE_TYPES[self._width], order="C")
        if self._width == 3:  # 24-bit samples: the low three bytes of each little-endian int32
            ints = ints.view(np.uint8).reshape(-1, 4)[:, :3].copy()
        self._md5.update(memoryview(ints).cast("B"))
        self.n_frames += data.shape[1]

    def problem(self, channels: int) -> str | None:
        """The warning, if the whole declared audio decoded and its MD5 differs."""
        if self.n_frames != self.info.n_frames or channels != self.info.channels:
            return None  # cut short (kept, as players do) or not what the header describes: nothing to compare
        if self._md5.digest() == self.info.md5:
            return None
        return "the audio does not match the FLAC file's MD5 signature: the file is damaged (decoded anyway)"


def _bounded(y: np.ndarray, source_sr: int, sr: int) -> Iterator[np.ndarray]:
    """``y`` in pieces that resample to at most about half of :data:`RESAMPLE_BLOCK` samples each."""
    piece = max(1, (RESAMPLE_BLOCK // 2) * source_sr // sr)
    for start in range(0, len(y), piece):
        yield y[start:start + piece]


def _decode_into(path: Path, blocks: Iterable[Block], sink, *, sr: int, decoder: str,
                 limit_s: float, flac: _FlacCheck | None) -> StreamInfo:
    """Mix, check, resample and hash the blocks into ``sink``; the stream's description."""
    digest = hashlib.sha256()
    n_out = 0
    channels = first_sr = rate = 0
    seconds = 0.0
    resampler = None

    def emit(y: np.ndarray) -> None:
        nonlocal n_out
        if y.size:
            y = np.ascontiguousarray(y, dtype="<f4")
            digest.update(memoryview(y).cast("B"))
            n_out += y.size
            sink.update(y)

    def flush() -> None:
        if resampler is not None:
            emit(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))

    for block_sr, data in blocks:
        if block_sr != rate:  # the first block, or a chained stream at another rate
            if not MIN_SOURCE_SR <= block_sr <= MAX_SOURCE_SR:
                raise DecodeError(path, f"sample rate of {block_sr:,} Hz is outside the accepted range "
                                        f"({MIN_SOURCE_SR:,} to {MAX_SOURCE_SR:,} Hz)")
            flush()
            rate = block_sr
            resampler = (soxr.ResampleStream(rate, sr, 1, dtype="float32", quality="soxr_hq")
                         if rate != sr else None)
            first_sr = first_sr or rate
        channels = channels or int(data.shape[0])
        if flac is not None:
            flac.update(data)
        y = _mono(data)
        check_samples(path, y)  # NaN, infinity, absurd magnitudes
        seconds += y.size / rate
        if seconds > limit_s:
            raise DecodeError(path, f"longer than {limit_s / 3600:g} hours, the longest recording accepted "
                                    f"(raise it with max_hours or {MAX_HOURS_ENV})")
        if resampler is None:
            emit(y)
        else:
            for piece in _bounded(y, rate, sr):
                emit(resampler.resample_chunk(piece))
    if seconds == 0:
        raise DecodeError(path, "no audio samples (zero length)")
    flush()
    problem = flac.problem(channels) if flac is not None else None
    if problem:
        warnings.warn(DecodeWarning(f"{path}: {problem}"), stacklevel=3)
    return StreamInfo(sr=sr, source_sr=first_sr, channels=channels, decoder=decoder, n_samples=n_out,
                      sha256=digest.hexdigest()[:32], warnings=(problem,) if problem else ())


def stream_decode(path: str | os.PathLike, make_sink: Callable[[], Sink], *, sr: int = SR,
                  block: int = SOURCE_BLOCK, max_hours: float | None = None) -> tuple[Sink, StreamInfo]:
    """Decode a file block by block into a sink: mono float32 at ``sr``, in bounded memory.

    Parameters
    ----------
    path : str or os.PathLike
        Any audio file libsndfile or FFmpeg can read.
    make_sink : callable
        Makes the object whose ``update(y)`` receives the blocks, in order
        (``y : np.ndarray [shape=(n,), dtype=float32]``). A second sink is made if
        libsndfile fails part-way and FFmpeg decodes the file again; the first
        one is dropped (its ``close()`` is called if it has one).
    sr : int
        Target sample rate in Hz.
    block : int
        Frames read from libsndfile at a time (FFmpeg gives its own frames).
    max_hours : float, optional
        Longest recording accepted, in hours (see :func:`max_seconds`).

    Returns
    -------
    sink
        The sink that received every block.
    StreamInfo

    Raises
    ------
    DecodeError
        The file is missing, unreadable, not a regular file, empty, not
        audio, holds no samples, holds non-finite or absurdly large samples,
        declares a sample rate outside the accepted range, or is longer than
        the limit. The message names the file and the reason.
    """
    path = Path(path)
    limit_s = max_seconds(max_hours)
    check_file(path)
    sink = None
    if path.suffix.lower() in _SNDFILE_EXTENSIONS:
        sink = make_sink()
        try:
            return sink, _decode_into(path, _read(path, "soundfile", block), sink, sr=sr,
                                      decoder="soundfile", limit_s=limit_s, flac=_FlacCheck.of(path))
        except _Fallback:
            close = getattr(sink, "close", None)
            if close is not None:
                close()
    sink = make_sink()
    return sink, _decode_into(path, _read(path, "pyav", block), sink, sr=sr, decoder="pyav",
                              limit_s=limit_s, flac=_FlacCheck.of(path))


class _Collect:
    def __init__(self):
        self.blocks: deque[np.ndarray] = deque()

    def update(self, y: np.ndarray) -> None:
        self.blocks.append(y)

    def array(self) -> np.ndarray:
        """The blocks end to end; each block is dropped as it is copied."""
        y = np.empty(sum(len(b) for b in self.blocks), dtype=np.float32)
        at = 0
        while self.blocks:
            b = self.blocks.popleft()
            y[at:at + len(b)] = b
            at += len(b)
        return y


def decode(path: str | os.PathLike, *, sr: int = SR, max_hours: float | None = None) -> DecodedAudio:
    """Decode a file to mono float32 at ``sr``: :func:`stream_decode` collected into one array.

    Parameters
    ----------
    path : str or os.PathLike
        Any audio file libsndfile or FFmpeg can read.
    sr : int
        Target sample rate in Hz.
    max_hours : float, optional
        Longest recording accepted, in hours (see :func:`max_seconds`).

    Returns
    -------
    DecodedAudio

    Raises
    ------
    DecodeError
        As :func:`stream_decode`.
    """
    sink, info = stream_decode(path, _Collect, sr=sr, max_hours=max_hours)
    return DecodedAudio(y=sink.array(), sr=info.sr, source_sr=info.source_sr, channels=info.channels,
                        decoder=info.decoder, warnings=info.warnings)


def load(path: str | os.PathLike, *, sr: int = SR) -> tuple[np.ndarray, int]:
    """Decode a file like ``librosa.load(path, sr=sr, mono=True)``.

    Returns
    -------
    y : np.ndarray [shape=(n_samples,), dtype=float32]
    sr : int
    """
    audio = decode(path, sr=sr)
    return audio.y, audio.sr
