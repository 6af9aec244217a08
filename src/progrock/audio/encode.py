"""Write audio files in the formats a collection holds (for the demo corpus and tests)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from progrock.errors import ProgrockError

FORMATS: dict[str, dict] = {
    # extension: how to write it. libsndfile covers all but AAC, which PyAV encodes.
    "wav": {"writer": "soundfile", "format": "WAV", "subtype": "PCM_16"},
    "flac": {"writer": "soundfile", "format": "FLAC", "subtype": "PCM_16"},
    "ogg": {"writer": "soundfile", "format": "OGG", "subtype": "VORBIS"},
    "opus": {"writer": "soundfile", "format": "OGG", "subtype": "OPUS", "sr": 48_000},
    "mp3": {"writer": "soundfile", "format": "MP3", "subtype": "MPEG_LAYER_III"},
    "aiff": {"writer": "soundfile", "format": "AIFF", "subtype": "PCM_16"},
    "m4a": {"writer": "pyav", "codec": "aac", "container": "ipod"},
}
"""Writable formats by file extension."""

_BLOCK = 65_536
"""Frames per libsndfile write call."""

_SF_TAGS = ("title", "artist", "album", "comment", "genre", "date", "tracknumber")


def write_audio(path: str | os.PathLike, y: np.ndarray, sr: int, *,
                tags: dict[str, str] | None = None, subtype: str | None = None) -> Path:
    """Write audio to ``path`` in the format its extension names.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; the extension (one of :data:`FORMATS`) picks the format.
    y : np.ndarray [shape=(n_samples,) or (n_samples, n_channels)]
        Float audio in [-1, 1].
    sr : int
        Sample rate of ``y`` in Hz (Opus files are resampled to 48 kHz).
    tags : dict, optional
        Metadata tags (title, artist, album, genre, comment, ...).
    subtype : str, optional
        libsndfile subtype overriding the default (e.g. ``"PCM_24"``, ``"FLOAT"``).

    Returns
    -------
    Path
    """
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise ProgrockError(f"{path}: cannot write format {ext!r}; known: {sorted(FORMATS)}")
    spec = FORMATS[ext]
    y = np.asarray(y, dtype=np.float32)
    if "sr" in spec and spec["sr"] != sr:
        y = soxr.resample(y, sr, spec["sr"], quality="soxr_hq")
        sr = spec["sr"]
    y = np.clip(y, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    if spec["writer"] == "soundfile":
        channels = 1 if y.ndim == 1 else y.shape[1]
        with sf.SoundFile(str(path), "w", samplerate=sr, channels=channels,
                          format=spec["format"], subtype=subtype or spec["subtype"]) as f:
            for key, value in (tags or {}).items():
                if key in _SF_TAGS:
                    setattr(f, key, value)
            # In blocks: libsndfile's Vorbis encoder crashes on one very long write.
            for start in range(0, len(y), _BLOCK):
                f.write(y[start:start + _BLOCK])
    else:
        _write_pyav(path, y, sr, spec, tags or {})
    return path


def _write_pyav(path: Path, y: np.ndarray, sr: int, spec: dict, tags: dict) -> None:
    import av

    planar = y[None, :] if y.ndim == 1 else y.T
    layout = "mono" if planar.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format=spec["container"]) as container:
        container.metadata.update({k: str(v) for k, v in tags.items()})
        stream = container.add_stream(spec["codec"], rate=sr, layout=layout)
        frame_size = stream.codec_context.frame_size or 1024
        for start in range(0, planar.shape[1], frame_size):
            chunk = np.ascontiguousarray(planar[:, start:start + frame_size])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
