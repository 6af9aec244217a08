"""Decode an audio file block by block: the samples of :func:`progrock.audio.decode`, in bounded memory.

The decoders are the same (libsndfile through soundfile first, PyAV/FFmpeg as
the fallback), the channels are averaged with the same float32 mean, and the
resampling is soxr's streaming form of the same ``soxr_hq`` filter, which
gives the same samples as the one-shot ``soxr.resample`` whatever the block
sizes. So the blocks put end to end equal ``decode(path).y`` sample for
sample, and the hash computed block by block equals ``DecodedAudio.sha256``
(``tests/test_stream.py`` checks both, on every format).

One exception, found by measurement (``tests/test_stream.py``):
libsndfile's MP3 decoder gives samples that depend on how the file is read.
Reads of fewer than about 40,000 frames put glitches of up to 0.3 into the
signal; with 65,536-frame reads, stereo MPEG-1 files (32, 44.1, 48 kHz) come
out exactly as in one whole-file read, but mono files and MPEG-2 rates
(below 32 kHz) differ from it by one or two float32 steps. Those MP3 files are
therefore read in one piece, as :func:`~progrock.audio.decode` reads them, and
only the later steps run in blocks; their memory grows with their length.

Blocks go to a *sink*: any object with ``update(y_block)``. If libsndfile fails
part-way through a file, decoding starts again with FFmpeg into a fresh sink,
as :func:`~progrock.audio.decode` would have decoded the whole file with
FFmpeg.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np
import soundfile as sf
import soxr

from progrock.audio.decode import (_SNDFILE_EXTENSIONS, DecodedAudio, _check_path, _ffmpeg_reason,
                                   _quiet_stderr, check_samples)
from progrock.constants import SR
from progrock.errors import DecodeError

SOURCE_BLOCK = 2**16
"""Frames read from libsndfile at a time (1.5 s at 44.1 kHz). Not smaller: see the MP3 note above."""

Sink = TypeVar("Sink")


@dataclass(frozen=True)
class StreamInfo:
    """What streaming a file found: :class:`~progrock.audio.DecodedAudio` without the samples.

    Attributes
    ----------
    sr : int
        Sample rate of the blocks in Hz.
    source_sr : int
        The file's own sample rate in Hz.
    channels : int
        The file's number of channels before the mono mix.
    decoder : str
        ``"soundfile"`` or ``"pyav"``.
    n_samples : int
        Samples given to the sink, at ``sr``.
    sha256 : str
        Hash of all the samples, equal to ``decode(path, sr=sr).sha256``.
    """

    sr: int
    source_sr: int
    channels: int
    decoder: str
    n_samples: int
    sha256: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.sr


class _Fallback(Exception):
    """libsndfile refused the file (at the start or part-way): FFmpeg gets its turn."""


def _mono(data: np.ndarray) -> np.ndarray:
    """The float32 mean over channels of ``data [channels, n]``, bit for bit as ``decode._to_mono``.

    ``np.mean(data, axis=0, dtype=np.float32)`` adds the channels in order in
    float32 and divides by the count (an integer, so in float64, rounded to
    float32); this does the same operations without the strided reduction.
    """
    if data.shape[0] == 1:
        return np.ascontiguousarray(data[0])
    acc = np.add(data[0], data[1])
    for c in range(2, data.shape[0]):
        acc += data[c]
    return np.true_divide(acc, np.intp(data.shape[0]), out=acc, casting="unsafe")


class _QuietStderr:
    """Silence file descriptor 2 around each read; /dev/null is opened once, not per block."""

    def __init__(self):
        self._null = os.open(os.devnull, os.O_WRONLY)
        self._saved = -1

    def __enter__(self):
        try:
            self._saved = os.dup(2)
            os.dup2(self._null, 2)
        except OSError:
            self._saved = -1
        return self

    def __exit__(self, *exc):
        if self._saved >= 0:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = -1

    def close(self) -> None:
        os.close(self._null)


def _soundfile_source(path: Path, block: int) -> tuple[int, int, Iterator[np.ndarray]]:
    try:
        with _quiet_stderr():
            f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError):
        raise _Fallback from None

    mp3 = f.format == "MP3"
    if _read_whole(f):
        block = -1  # everything in one read, as decode() does
    elif mp3:
        block = max(block, SOURCE_BLOCK)  # smaller MP3 reads put glitches in the signal

    def blocks() -> Iterator[np.ndarray]:
        got = 0
        quiet = _QuietStderr() if mp3 else contextlib.nullcontext()  # MP3 prints resync notes
        try:
            with f:
                while not (got and block < 0):
                    try:
                        with quiet:
                            data = f.read(block, dtype="float32", always_2d=True)
                    except (sf.LibsndfileError, RuntimeError, ValueError):
                        raise _Fallback from None
                    if data.shape[0] == 0:
                        break
                    got += data.shape[0]
                    yield data.T
        finally:
            if mp3:
                quiet.close()
        if got == 0:
            raise _Fallback

    return int(f.samplerate), int(f.channels), blocks()


def _read_whole(f: sf.SoundFile) -> bool:
    """MP3 files libsndfile decodes differently in blocks than in one read (see above)."""
    return f.format == "MP3" and (f.channels == 1 or f.samplerate < 32_000)


def _pyav_source(path: Path) -> tuple[int, int, Iterator[np.ndarray]]:
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise DecodeError(path, f"not a recognised audio file ({_ffmpeg_reason(exc)})") from None
    streams = container.streams.audio
    if not streams:
        container.close()
        raise DecodeError(path, "the file holds no audio stream")
    stream = streams[0]
    source_sr = int(stream.codec_context.sample_rate or stream.rate or 0)
    if source_sr <= 0:
        container.close()
        raise DecodeError(path, "not a recognised audio file (FFmpeg finds no sample rate)")
    resampler = av.AudioResampler(format="fltp", layout=None, rate=None)

    def frames() -> Iterator[np.ndarray]:
        got = False
        with container:
            try:
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        got = True
                        yield out.to_ndarray()
            except av.FFmpegError as exc:
                if not got:
                    raise DecodeError(path, f"cannot decode audio ({_ffmpeg_reason(exc)})") from None
                # A truncated file: keep what decoded, as decode() does.
        if not got:
            raise DecodeError(path, "no audio samples could be decoded")

    # decode() reports the channels of the decoded planes; they are known at the first frame.
    return source_sr, 0, frames()


def _run(path: Path, source: tuple[int, int, Iterator[np.ndarray]], sink, sr: int,
         decoder: str) -> StreamInfo:
    source_sr, channels, blocks = source
    resampler = (soxr.ResampleStream(source_sr, sr, 1, dtype="float32", quality="soxr_hq")
                 if source_sr != sr else None)
    digest = hashlib.sha256()
    n_source = n_out = 0

    def emit(y: np.ndarray) -> None:
        nonlocal n_out
        if y.size:
            y = np.ascontiguousarray(y, dtype="<f4")
            digest.update(memoryview(y).cast("B"))
            n_out += y.size
            sink.update(y)

    for data in blocks:
        if channels == 0:
            channels = int(data.shape[0])
        y = _mono(data)
        check_samples(path, y)  # the same refusal as decode(): NaN, infinity, absurd magnitudes
        n_source += y.size
        emit(resampler.resample_chunk(y) if resampler is not None else y)
    if n_source == 0:
        raise DecodeError(path, "no audio samples (zero length)")
    if resampler is not None:
        emit(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    return StreamInfo(sr=sr, source_sr=int(source_sr), channels=int(channels), decoder=decoder,
                      n_samples=n_out, sha256=digest.hexdigest()[:32])


def stream_decode(path: str | os.PathLike, make_sink: Callable[[], Sink], *, sr: int = SR,
                  block: int = SOURCE_BLOCK) -> tuple[Sink, StreamInfo]:
    """Decode a file block by block into a sink: mono float32 at ``sr``.

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

    Returns
    -------
    sink
        The sink that received every block.
    StreamInfo

    Raises
    ------
    DecodeError
        As :func:`progrock.audio.decode`: missing, unreadable, empty, not
        audio, no samples, or non-finite samples.
    """
    path = Path(path)
    _check_path(path)
    if path.suffix.lower() in _SNDFILE_EXTENSIONS:
        sink = make_sink()
        try:
            return sink, _run(path, _soundfile_source(path, block), sink, sr, "soundfile")
        except _Fallback:
            close = getattr(sink, "close", None)
            if close is not None:
                close()
    sink = make_sink()
    return sink, _run(path, _pyav_source(path), sink, sr, "pyav")


class _Collect:
    def __init__(self):
        self.blocks: list[np.ndarray] = []

    def update(self, y: np.ndarray) -> None:
        self.blocks.append(y)


def decode_streamed(path: str | os.PathLike, *, sr: int = SR, block: int = SOURCE_BLOCK) -> DecodedAudio:
    """:func:`progrock.audio.decode` through :func:`stream_decode` (for tests and comparisons)."""
    sink, info = stream_decode(path, _Collect, sr=sr, block=block)
    y = np.concatenate(sink.blocks) if sink.blocks else np.zeros(0, np.float32)
    return DecodedAudio(y=y, sr=info.sr, source_sr=info.source_sr, channels=info.channels,
                        decoder=info.decoder)
