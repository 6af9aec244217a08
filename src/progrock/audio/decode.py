"""Decode an audio file to mono float32 at a fixed sample rate.

libsndfile (through soundfile) is the fast path for WAV, FLAC, Ogg Vorbis/Opus,
AIFF and MP3; PyAV (FFmpeg) decodes everything else (M4A/AAC, WMA, ...) and is
the fallback when libsndfile refuses a file. Channels are averaged and the
signal is resampled with soxr's high-quality mode, exactly as ``librosa.load``
does, so our features on a decoded file equal librosa's.

Tags, cover art and the file name are never read: only the audio samples.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from progrock.constants import AUDIO_EXTENSIONS, SR
from progrock.errors import DecodeError

_SNDFILE_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".aif",
                                 ".aiff", ".aifc", ".mp3"})

MAX_ABS_SAMPLE = 1e6
"""Largest sample magnitude accepted (full scale is 1.0).

Float files may exceed full scale a little (an unnormalised mix); a million
times full scale (+120 dB) is not audio but garbage, and powers of such
samples overflow float32 in the features. Checked by :func:`check_samples`.
"""


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
    """

    y: np.ndarray
    sr: int
    source_sr: int
    channels: int
    decoder: str

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


def _check_path(path: Path) -> None:
    if not os.path.lexists(path):
        raise DecodeError(path, "no such file")
    if path.is_dir():
        raise DecodeError(path, "is a folder, not an audio file")
    if not path.exists():
        raise DecodeError(path, "broken symbolic link")
    if not os.access(path, os.R_OK):
        raise DecodeError(path, "permission denied (file is not readable)")
    if path.stat().st_size == 0:
        raise DecodeError(path, "empty file (0 bytes)")


def _read_soundfile(path: Path) -> tuple[np.ndarray, int, int]:
    with _quiet_stderr():  # libsndfile's MP3 decoder prints resync notes on stderr
        with sf.SoundFile(str(path)) as f:
            sr, channels = f.samplerate, f.channels
            data = f.read(dtype="float32", always_2d=True)
    return data.T, sr, channels


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C libraries writing to file descriptor 2 (not Python's warnings)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _read_pyav(path: Path) -> tuple[np.ndarray, int, int]:
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise DecodeError(path, f"not a recognised audio file ({_ffmpeg_reason(exc)})") from None
    with container:
        streams = container.streams.audio
        if not streams:
            raise DecodeError(path, "the file holds no audio stream")
        stream = streams[0]
        sr = stream.codec_context.sample_rate or stream.rate
        if not sr or sr <= 0:  # e.g. a text file FFmpeg probes as some raw format
            raise DecodeError(path, "not a recognised audio file (FFmpeg finds no sample rate)")
        channels = stream.codec_context.channels or 1
        resampler = av.AudioResampler(format="fltp", layout=None, rate=None)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
        except av.FFmpegError as exc:
            if not chunks:
                raise DecodeError(path, f"cannot decode audio ({_ffmpeg_reason(exc)})") from None
            # A truncated file: keep what decoded, as players do.
    if not chunks:
        raise DecodeError(path, "no audio samples could be decoded")
    data = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    return data, int(sr), int(data.shape[0])


def _ffmpeg_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0]


def _to_mono(data: np.ndarray) -> np.ndarray:
    # Same as librosa.to_mono: the mean over channels.
    if data.shape[0] == 1:
        return data[0]
    return np.mean(data, axis=0, dtype=np.float32)


def decode(path: str | os.PathLike, *, sr: int = SR) -> DecodedAudio:
    """Decode a file to mono float32 at ``sr``.

    Parameters
    ----------
    path : str or os.PathLike
        Any audio file libsndfile or FFmpeg can read.
    sr : int
        Target sample rate in Hz.

    Returns
    -------
    DecodedAudio

    Raises
    ------
    DecodeError
        The file is missing, unreadable, empty, not audio, holds no samples or
        holds non-finite or absurdly large samples (:func:`check_samples`).
        The message names the file and the reason.
    """
    path = Path(path)
    _check_path(path)
    data = None
    decoder = "soundfile"
    if path.suffix.lower() in _SNDFILE_EXTENSIONS:
        try:
            data, source_sr, channels = _read_soundfile(path)
        except (sf.LibsndfileError, RuntimeError, ValueError):
            data = None  # FFmpeg gets its turn and gives the reason if it fails too
    if data is None or data.shape[1] == 0:
        decoder = "pyav"
        try:
            data, source_sr, channels = _read_pyav(path)
        except DecodeError:
            raise
    if data.shape[1] == 0:
        raise DecodeError(path, "no audio samples (zero length)")
    y = _to_mono(data)
    del data  # a long song: do not hold the multichannel copy while resampling
    check_samples(path, y)
    if source_sr != sr:
        y = soxr.resample(y, source_sr, sr, quality="soxr_hq").astype(np.float32, copy=False)
    return DecodedAudio(y=np.ascontiguousarray(y, dtype=np.float32), sr=sr,
                        source_sr=int(source_sr), channels=int(channels), decoder=decoder)


def load(path: str | os.PathLike, *, sr: int = SR) -> tuple[np.ndarray, int]:
    """Decode a file like ``librosa.load(path, sr=sr, mono=True)``.

    Returns
    -------
    y : np.ndarray [shape=(n_samples,), dtype=float32]
    sr : int
    """
    audio = decode(path, sr=sr)
    return audio.y, audio.sr


def find_audio_files(root: str | os.PathLike) -> list[Path]:
    """All files under ``root`` whose ending is an audio format, sorted.

    Folders named like audio files are not returned; symbolic links to files are.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.suffix.lower() in AUDIO_EXTENSIONS and not name.startswith("."):
                found.append(p)
    return sorted(found)
