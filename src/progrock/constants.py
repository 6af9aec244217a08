"""One place for the project's constants, with their units.

Names follow librosa's vocabulary: ``sr`` (Hz), ``n_fft`` and ``hop_length``
(samples), frames are STFT frames with ``center=True``.
"""

SR: int = 22_050
"""Sample rate every song is decoded to, in Hz."""

N_FFT: int = 2048
"""STFT window length, in samples (93 ms at 22,050 Hz)."""

HOP_LENGTH: int = 512
"""STFT hop, in samples (23.2 ms at 22,050 Hz: about 43 frames per second)."""

FRAME_RATE: float = SR / HOP_LENGTH
"""Frames per second of every feature matrix (43.07 Hz)."""

SNIPPET_SECONDS: float = 10.0
"""Length of one snippet, in seconds."""

SNIPPET_FRAMES: int = 1 + int(SNIPPET_SECONDS * SR) // HOP_LENGTH
"""Frames in one snippet: 431, as librosa counts frames of 10 s of audio."""

CLASSES: tuple[str, str] = ("nonprog", "prog")
"""Class names; the index is the model's target (prog = 1, the positive class)."""

SPLITS: tuple[str, str, str] = ("train", "validation", "test")
"""The song-level splits written by ``progrock scan``."""

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp3", ".flac", ".ogg", ".oga", ".opus", ".wav", ".wave", ".aif", ".aiff",
     ".aifc", ".m4a", ".mp4", ".aac", ".wma", ".wv", ".ape", ".mka", ".webm"}
)
"""File endings walked as audio when a folder is given (the decoder decides)."""
