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
    {".mp3", ".mp2", ".flac", ".ogg", ".oga", ".opus", ".spx", ".wav", ".wave", ".w64", ".aif", ".aiff",
     ".aifc", ".caf", ".au", ".m4a", ".m4b", ".mp4", ".aac", ".ac3", ".wma", ".wv", ".ape", ".mpc",
     ".tta", ".tak", ".dsf", ".dff", ".mka", ".webm"}
)
"""File endings taken as songs when a folder is walked, lower case.

The decoder reads a file by its content whatever its name (libsndfile, else
FFmpeg); this list says which names a walk hands to it. Every format here is
one FFmpeg decodes (``tests/test_audio.py`` checks the ones we can write).
"""

MIN_SOURCE_SR: int = 4_000
"""Lowest sample rate accepted in a file, in Hz.

Below it a file is refused: no music is stored at less than 4 kHz (8 kHz is
telephone speech), and resampling a rate such as 1 Hz up to :data:`SR`
multiplies the samples by thousands.
"""

MAX_SOURCE_SR: int = 3_072_000
"""Highest sample rate accepted in a file, in Hz.

DSD512 as FFmpeg decodes it (24.576 MHz / 8; 2,822,400 Hz in the 44.1 kHz
family): the highest rate a real recording uses.
"""

MAX_HOURS: float = 4.0
"""Longest recording accepted by default, in hours of audio.

Longer than any album or concert; a longer file (a stream dump, a looped
test file) is refused as soon as decoding passes the limit. Overridden by the
``max_hours`` argument of the decoder or the ``PROGROCK_MAX_HOURS``
environment variable.
"""
