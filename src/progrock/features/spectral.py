"""The STFT feature sets (seed43, logmel) on one shared STFT, in blocks, equal to librosa's.

The 43 seed features and the log-mel set are computed from one centred
power STFT, frame by frame, in two passes:

1. **Per block** (as the audio arrives): the power frames, their mel bands in
   dB (one sparse product for the 128 MFCC/onset bands and the ``n_mels``
   seed bands together), the running maxima that ``power_to_db``'s
   ``top_db=80`` needs, and the spectral peaks ``librosa.estimate_tuning``
   counts. The frames are kept in a :class:`Spool` (memory up to a bound,
   then an anonymous temporary file).
2. **At the end**, when the song's maxima and tuning are known: clipping,
   MFCC (DCT-II, ortho), onset strength and chroma for each spooled block.

Every step repeats librosa's arithmetic (same window, float64 FFT rounded to
complex64, ``np.abs(D) ** 2``, same filterbanks, same parabolic peak
interpolation), so the result equals the per-feature librosa calls of
:func:`progrock.features.reference.reference_seed43` up to float32 rounding in
the matrix products, and the tuning estimate is the same number.
``tests/test_fast_features.py`` checks both.

Frames are stored frames-major here (``S_T [shape=(n_frames, 1 + n_fft // 2)]``),
the transpose of librosa's layout, because frames arrive one block at a time.
:class:`FromAudio` puts :class:`BlockSTFT` in front of an accumulator, so the
feature registry (:mod:`progrock.features.sets`) feeds it audio.
"""

from __future__ import annotations

import tempfile
from collections import deque
from functools import lru_cache, wraps
from typing import Iterator

import librosa
import numpy as np
import scipy.fft
import scipy.sparse

from progrock.constants import HOP_LENGTH, N_FFT, SR

TOP_DB = 80.0
"""``power_to_db``'s dynamic range below the song's maximum, in dB."""

AMIN = 1e-10
"""``power_to_db``'s floor on power before the logarithm."""

MFCC_MELS = 128
"""Mel bands under the MFCCs and the onset strength (librosa's default)."""

SPOOL_BYTES = 64 * 2**20
"""Bytes of spooled frames kept in memory (about 6 min of audio); the rest goes to disk."""

BLOCK_FRAMES = 256
"""Frames per block of the accumulators (about 6 s at 22,050 Hz, hop 512)."""

FFT_FRAMES = 64
"""Frames per FFT call: its float64 temporaries (1 MB each) stay in cache."""


def one_blas_thread(fn):
    """Run ``fn`` with BLAS on one thread, so its products round the same in every process.

    OpenBLAS splits a product differently with 1 or N threads and the last bit
    of the chroma (``S_T @ C_T``) changes with it: without this, features would
    depend on the core count of the machine (or worker) computing them.
    """
    @wraps(fn)
    def one_thread(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return one_thread


# ---------------------------------------------------------------------------
# Filterbanks and window, cached by their parameters


@lru_cache(maxsize=8)
def _window(n_fft: int) -> np.ndarray:
    # librosa.stft's window: periodic Hann in float64, so its FFT runs in float64.
    return librosa.filters.get_window("hann", n_fft, fftbins=True).astype(np.float64)


@lru_cache(maxsize=16)
def mel_filters(sr: int, n_fft: int, n_mels: tuple[int, ...]) -> scipy.sparse.csr_matrix:
    """librosa's mel filterbanks stacked, sparse.

    Parameters
    ----------
    sr, n_fft : int
    n_mels : tuple of int
        Band counts of the stacked filterbanks, e.g. ``(128, 10)``.

    Returns
    -------
    scipy.sparse.csr_matrix [shape=(sum(n_mels), 1 + n_fft // 2), dtype=float32]
        Row blocks are ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=m)``.
    """
    M = np.vstack([librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=m) for m in n_mels])
    return scipy.sparse.csr_matrix(M.astype(np.float32))


@lru_cache(maxsize=64)
def chroma_filters_T(sr: int, n_fft: int, n_chroma: int, tuning: float) -> np.ndarray:
    """``librosa.filters.chroma(...).T`` as a C-contiguous float32 array [1 + n_fft // 2, n_chroma]."""
    C = librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=tuning, n_chroma=n_chroma)
    return np.ascontiguousarray(C.T, dtype=np.float32)


# ---------------------------------------------------------------------------
# STFT


def stft_power_frames(frames: np.ndarray, *, n_fft: int = N_FFT) -> np.ndarray:
    """Power spectra of signal frames, exactly as ``np.abs(librosa.stft(y)) ** 2``.

    Parameters
    ----------
    frames : np.ndarray [shape=(n_frames, n_fft), dtype=float32]
        Frames of the (centre-padded) signal, e.g. a strided view.

    Returns
    -------
    np.ndarray [shape=(n_frames, 1 + n_fft // 2), dtype=float32]
    """
    # librosa multiplies float32 frames by a float64 window, so the FFT runs in
    # float64 and is rounded to complex64; doing the same gives the same bits.
    D = scipy.fft.rfft(frames * _window(n_fft), axis=-1, workers=1).astype(np.complex64)
    P = np.abs(D)
    P *= P  # the same bits as ** 2, without another array
    return P


class BlockSTFT:
    """Centred power STFT of a signal that arrives in blocks.

    The frames equal those of ``librosa.stft(y, center=True, pad_mode="constant")``
    on the whole signal: ``n_fft // 2`` zeros are put before the first sample
    and after the last one, and ``1 + n_samples // hop_length`` frames come out
    in all. Frames come out in whole multiples of ``block_frames`` (the rest at
    :meth:`finish`), so the blocks line up with :func:`power_frames` + the
    accumulators' own blocks and the features equal the whole-signal ones bit
    for bit.

    Parameters
    ----------
    n_fft, hop_length : int
        Window and hop in samples.
    block_frames : int
        Frames are returned in multiples of this.
    """

    def __init__(self, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
                 block_frames: int = BLOCK_FRAMES):
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.block_frames = max(1, int(block_frames))
        self.n_samples = 0
        self.n_frames = 0  # frames returned so far
        self._parts: list[np.ndarray] = [np.zeros(n_fft // 2, dtype=np.float32)]
        self._held = n_fft // 2  # samples held: padded positions [start, start + held)
        self._start = 0

    def push(self, y: np.ndarray) -> np.ndarray | None:
        """Add samples; the power frames now complete, or ``None`` if fewer than ``block_frames``.

        Returns
        -------
        np.ndarray [shape=(n, 1 + n_fft // 2), dtype=float32] or None
            ``n`` is a multiple of ``block_frames``.
        """
        y = np.asarray(y, dtype=np.float32)
        if y.size:
            self._parts.append(y)
            self._held += y.size
            self.n_samples += y.size
        end = self._start + self._held  # padded samples known
        ready = (end - self.n_fft) // self.hop_length + 1 if end >= self.n_fft else 0
        count = (ready - self.n_frames) // self.block_frames * self.block_frames
        if count <= 0:
            return None
        return self._emit(self.n_frames + count)

    def finish(self) -> np.ndarray:
        """The remaining frames, after the final ``n_fft // 2`` zeros.

        Returns
        -------
        np.ndarray [shape=(n, 1 + n_fft // 2), dtype=float32]
        """
        self._parts.append(np.zeros(self.n_fft // 2, dtype=np.float32))
        self._held += self.n_fft // 2
        return self._emit(1 + self.n_samples // self.hop_length)

    def _emit(self, upto: int) -> np.ndarray:
        buf = np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
        first = self.n_frames * self.hop_length - self._start
        count = upto - self.n_frames
        if count <= 0:
            return np.zeros((0, 1 + self.n_fft // 2), dtype=np.float32)
        span = buf[first:first + (count - 1) * self.hop_length + self.n_fft]
        frames = np.lib.stride_tricks.sliding_window_view(span, self.n_fft)[::self.hop_length]
        S_T = np.empty((count, 1 + self.n_fft // 2), dtype=np.float32)
        for s in range(0, count, FFT_FRAMES):
            S_T[s:s + FFT_FRAMES] = stft_power_frames(frames[s:s + FFT_FRAMES], n_fft=self.n_fft)
        self.n_frames = upto
        keep_from = upto * self.hop_length - self._start
        rest = buf[keep_from:].copy()
        self._parts = [rest]
        self._start += keep_from
        self._held = rest.size
        return S_T


def power_frames(y: np.ndarray, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """Centred power STFT of a whole signal, frames-major.

    Returns
    -------
    np.ndarray [shape=(1 + len(y) // hop_length, 1 + n_fft // 2), dtype=float32]
        The transpose of ``np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length)) ** 2``.
    """
    y = np.asarray(y, dtype=np.float32)
    n_frames = 1 + len(y) // hop_length
    pad = n_fft // 2
    yp = np.concatenate([np.zeros(pad, np.float32), y, np.zeros(pad, np.float32)])
    frames = np.lib.stride_tricks.sliding_window_view(yp, n_fft)[::hop_length][:n_frames]
    out = np.empty((n_frames, 1 + n_fft // 2), dtype=np.float32)
    for s in range(0, n_frames, FFT_FRAMES):
        out[s:s + FFT_FRAMES] = stft_power_frames(frames[s:s + FFT_FRAMES], n_fft=n_fft)
    return out


# ---------------------------------------------------------------------------
# Tuning: librosa.estimate_tuning on peaks found frame by frame


def pitch_peaks(S_T: np.ndarray, *, sr: int = SR, n_fft: int = N_FFT, fmin: float = 150.0,
                fmax: float = 4000.0, threshold: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The non-zero entries of ``librosa.piptrack(S=S_T.T, ...)``, found per frame.

    librosa interpolates a parabola at every bin of the spectrogram and then
    keeps the local maxima above ``threshold`` times the frame's maximum; this
    finds those maxima first and interpolates only there, with librosa's
    arithmetic (float64 parabola rounded to float32, float32 skew).

    Parameters
    ----------
    S_T : np.ndarray [shape=(n_frames, 1 + n_fft // 2)]
        Power (or magnitude) frames, frames-major.

    Returns
    -------
    pitches, mags : np.ndarray [shape=(n_peaks,), dtype=float32]
        Peak frequencies in Hz and interpolated magnitudes, in no particular order.
    """
    S_T = np.asarray(S_T, dtype=np.float32)
    n_bins = S_T.shape[1]
    freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)
    fmin, fmax = max(fmin, 0.0), min(fmax, float(sr) / 2)
    band = np.flatnonzero((fmin <= freqs) & (freqs < fmax))
    if band.size == 0:
        return np.empty(0, np.float32), np.empty(0, np.float32)
    lo, hi = int(band[0]), int(band[-1]) + 1
    if lo < 1 or hi > n_bins - 1:
        # The band touches an edge bin, where librosa's stencils behave differently.
        pitches, mags = librosa.piptrack(S=S_T.T, sr=sr, n_fft=n_fft, fmin=fmin, fmax=fmax,
                                         threshold=threshold)
        keep = pitches > 0
        return pitches[keep].astype(np.float32), mags[keep].astype(np.float32)
    ref = np.float32(threshold) * S_T.max(axis=1, keepdims=True)
    W = S_T[:, lo - 1:hi + 1]
    T = W * (W > ref)
    peak = (T[:, 1:-1] > T[:, :-2]) & (T[:, 1:-1] >= T[:, 2:])
    t, j = np.nonzero(peak)
    k = j + lo
    x0, xm, xp = S_T[t, k], S_T[t, k - 1], S_T[t, k + 1]
    # librosa's numba stencil: a and b in float64 from float32 sums, shift rounded to float32.
    a = (xp + xm).astype(np.float64) - 2.0 * x0.astype(np.float64)
    b = (xp - xm).astype(np.float64) / 2.0
    inside = np.abs(b) < np.abs(a)
    shift = np.zeros(k.size, dtype=np.float64)
    shift[inside] = -b[inside] / a[inside]
    shift = shift.astype(np.float32)
    avg = (xp - xm) / np.float32(2.0)  # np.gradient's centred difference
    mags = x0 + np.float32(0.5) * avg * shift
    pitches = ((k + shift) * float(sr) / n_fft).astype(np.float32)
    return pitches, mags


def tuning_from_peaks(pitches: np.ndarray, mags: np.ndarray, *, bins_per_octave: int = 12,
                      resolution: float = 0.01) -> float:
    """``librosa.estimate_tuning`` given all of a song's :func:`pitch_peaks`.

    Returns
    -------
    float
        Tuning deviation in fractions of a bin, a multiple of ``resolution``.
    """
    pitches = np.asarray(pitches)
    mags = np.asarray(mags)
    positive = pitches > 0
    threshold = np.median(mags[positive]) if positive.any() else 0.0
    return float(librosa.pitch_tuning(pitches[(mags >= threshold) & positive],
                                      resolution=resolution, bins_per_octave=bins_per_octave))


# ---------------------------------------------------------------------------
# Spool: per-frame data kept until the song's maxima are known


class Spool:
    """Blocks of arrays kept in order: in memory up to ``max_bytes``, then in a temporary file.

    Parameters
    ----------
    max_bytes : int or float
        Bytes held in memory; ``float("inf")`` never touches the disk.
    """

    def __init__(self, max_bytes: float = SPOOL_BYTES):
        self.max_bytes = max_bytes
        self.bytes_in_memory = 0
        self.bytes_on_disk = 0
        self._memory: deque[tuple[np.ndarray, ...]] = deque()
        self._layout: deque[tuple[tuple[tuple[int, ...], np.dtype], ...]] = deque()
        self._file = None

    def append(self, *arrays: np.ndarray) -> None:
        """Keep one block (a tuple of arrays)."""
        size = sum(a.nbytes for a in arrays)
        if self._file is None and self.bytes_in_memory + size <= self.max_bytes:
            self._memory.append(arrays)
            self.bytes_in_memory += size
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="progrock-spool-")
        for a in arrays:
            self._file.write(memoryview(np.ascontiguousarray(a)).cast("B"))
        self._layout.append(tuple((a.shape, a.dtype) for a in arrays))
        self.bytes_on_disk += size

    def drain(self) -> Iterator[tuple[np.ndarray, ...]]:
        """Give back every block in order, releasing each; the spool is empty afterwards."""
        while self._memory:
            block = self._memory.popleft()
            self.bytes_in_memory -= sum(a.nbytes for a in block)
            yield block
        if self._file is None:
            return
        try:
            self._file.seek(0)
            while self._layout:
                block = []
                for shape, dtype in self._layout.popleft():
                    a = np.empty(shape, dtype=dtype)
                    if a.nbytes and self._file.readinto(memoryview(a).cast("B")) != a.nbytes:
                        raise OSError("feature spool file ended early")
                    block.append(a)
                yield tuple(block)
        finally:
            self.close()

    def close(self) -> None:
        """Drop everything (also removes the temporary file)."""
        self._memory.clear()
        self._layout.clear()
        self.bytes_in_memory = 0
        if self._file is not None:
            self._file.close()
            self._file = None


# ---------------------------------------------------------------------------
# Accumulators: update(S_T) per block, finish() -> features


def _power_to_db(S: np.ndarray) -> np.ndarray:
    # librosa.power_to_db with ref=1.0 before its top_db clipping; float32 in, float32 out.
    return 10.0 * np.log10(np.maximum(AMIN, S))


class Seed43Stream:
    """The seed's 43 features from power frames that arrive in blocks.

    Equal to :func:`progrock.features.reference.reference_seed43` (librosa's
    ``mfcc``, ``melspectrogram`` + ``power_to_db``, ``chroma_stft`` with
    estimated tuning, ``onset_strength``) up to float32 rounding.

    Parameters
    ----------
    sr, n_fft, hop_length : int
    n_mfcc, n_mels, n_chroma : int
        Rows of each block of the output.
    spool_bytes : int or float, optional
        Memory for spooled frames before the rest goes to a temporary file
        (default :data:`SPOOL_BYTES`; ``float("inf")`` keeps all in memory).
    """

    def __init__(self, *, sr: int = SR, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
                 n_mfcc: int = 20, n_mels: int = 10, n_chroma: int = 12,
                 spool_bytes: float | None = None):
        self.sr, self.n_fft, self.hop_length = sr, n_fft, hop_length
        self.n_mfcc, self.n_mels, self.n_chroma = n_mfcc, n_mels, n_chroma
        self.n_frames = 0
        self._mel = mel_filters(sr, n_fft, (MFCC_MELS, n_mels))
        self._max = np.full(2, -np.inf, dtype=np.float32)  # dB maxima: 128 bands, n_mels bands
        self._pitches: list[np.ndarray] = []
        self._mags: list[np.ndarray] = []
        self._spool = Spool(SPOOL_BYTES if spool_bytes is None else spool_bytes)

    def update(self, S_T: np.ndarray) -> None:
        """Take power frames [shape=(n, 1 + n_fft // 2), float32] (frames-major).

        Blocks whose length is a multiple of :data:`BLOCK_FRAMES` (the last
        one excepted) give features bit for bit equal to one whole update.
        """
        for s in range(0, S_T.shape[0], BLOCK_FRAMES):
            self._update(S_T[s:s + BLOCK_FRAMES])

    def _update(self, S_T: np.ndarray) -> None:
        # Mel bands in dB, bands-major [128 + n_mels, n] as librosa holds them.
        db = _power_to_db(np.asarray(self._mel @ S_T.T, dtype=np.float32))
        self._max = np.maximum(self._max, [db[:MFCC_MELS].max(), db[MFCC_MELS:].max()])
        p, m = pitch_peaks(S_T, sr=self.sr, n_fft=self.n_fft)
        self._pitches.append(p)
        self._mags.append(m)
        self._spool.append(S_T, db)
        self.n_frames += S_T.shape[0]

    def tuning(self) -> float:
        """The song's tuning as ``librosa.estimate_tuning(S=S, bins_per_octave=n_chroma)``."""
        return tuning_from_peaks(np.concatenate(self._pitches), np.concatenate(self._mags),
                                 bins_per_octave=self.n_chroma)

    @one_blas_thread
    def finish(self) -> np.ndarray:
        """The features of everything given to :meth:`update`.

        Returns
        -------
        np.ndarray [shape=(n_mfcc + n_mels + n_chroma + 1, n_frames), dtype=float32]
            MFCC, mel bands in dB, chroma, onset strength.
        """
        n_mfcc, n_mels, n_chroma = self.n_mfcc, self.n_mels, self.n_chroma
        T = self.n_frames
        out = np.zeros((n_mfcc + n_mels + n_chroma + 1, T), dtype=np.float32)
        if T == 0:
            return out
        C_T = chroma_filters_T(self.sr, self.n_fft, n_chroma, self.tuning())
        self._pitches.clear()
        self._mags.clear()
        floor = self._max - np.float32(TOP_DB)
        lag_pad = 1 + self.n_fft // (2 * self.hop_length)  # onset_strength's centring
        r_chroma = n_mfcc + n_mels
        r_onset = r_chroma + n_chroma
        tiny = np.finfo(np.float32).tiny
        prev = None  # last clipped 128-band frame of the previous block
        g = 0
        for S_T, db in self._spool.drain():
            n = S_T.shape[0]
            d128 = np.maximum(db[:MFCC_MELS], floor[0])
            out[:n_mfcc, g:g + n] = scipy.fft.dct(d128, type=2, norm="ortho", axis=0,
                                                  workers=1)[:n_mfcc]
            out[n_mfcc:r_chroma, g:g + n] = np.maximum(db[MFCC_MELS:], floor[1])
            raw = S_T @ C_T
            length = np.abs(raw).max(axis=1, keepdims=True).astype(np.float64)
            length[length < tiny] = 1.0
            out[r_chroma:r_onset, g:g + n] = (raw / length).T
            # onset[t] = mean over bands of max(0, x[t - lag_pad + 1] - x[t - lag_pad])
            x = d128 if prev is None else np.hstack([prev, d128])
            rise = np.maximum(0.0, x[:, 1:] - x[:, :-1]).mean(axis=0)
            first = g + (1 if prev is None else 0)  # frame of rise[0]'s later column
            dst0 = first + lag_pad - 1
            m = max(0, min(rise.size, T - dst0))
            out[r_onset, dst0:dst0 + m] = rise[:m]
            prev = d128[:, -1:]
            g += n
        return out

    def close(self) -> None:
        """Drop spooled frames without finishing."""
        self._spool.close()


class LogmelStream:
    """Log-mel spectrogram in dB (``power_to_db`` with ``top_db=80``) from power frames in blocks.

    Parameters
    ----------
    sr, n_fft : int
    n_mels : int
    spool_bytes : int or float, optional
        As in :class:`Seed43Stream`.
    """

    def __init__(self, *, sr: int = SR, n_fft: int = N_FFT, n_mels: int = 96,
                 spool_bytes: float | None = None):
        self.n_mels = n_mels
        self.n_frames = 0
        self._mel = mel_filters(sr, n_fft, (n_mels,))
        self._max = np.float32(-np.inf)
        self._spool = Spool(SPOOL_BYTES if spool_bytes is None else spool_bytes)

    def update(self, S_T: np.ndarray) -> None:
        """Take power frames [shape=(n, 1 + n_fft // 2), float32] (frames-major)."""
        for s in range(0, S_T.shape[0], BLOCK_FRAMES):
            self._update(S_T[s:s + BLOCK_FRAMES])

    def _update(self, S_T: np.ndarray) -> None:
        db = _power_to_db(np.asarray(self._mel @ S_T.T, dtype=np.float32))  # [n_mels, n]
        self._max = max(self._max, db.max())
        self._spool.append(db)
        self.n_frames += S_T.shape[0]

    def finish(self) -> np.ndarray:
        """Returns np.ndarray [shape=(n_mels, n_frames), dtype=float32]."""
        out = np.empty((self.n_mels, self.n_frames), dtype=np.float32)
        floor = self._max - np.float32(TOP_DB)
        g = 0
        for (db,) in self._spool.drain():
            out[:, g:g + db.shape[1]] = np.maximum(db, floor)
            g += db.shape[1]
        return out

    def close(self) -> None:
        """Drop spooled frames without finishing."""
        self._spool.close()


class FromAudio:
    """An accumulator of power frames fed with audio: :class:`BlockSTFT` in front of it.

    The blocks :class:`BlockSTFT` gives are whole multiples of
    :data:`BLOCK_FRAMES`, so the features equal those of one update with the
    whole signal's power frames, bit for bit, however the audio is cut.

    Parameters
    ----------
    frames : Seed43Stream or LogmelStream
        Takes power frames ``[n, 1 + n_fft // 2]`` (``update``), gives the features (``finish``).
    n_fft, hop_length : int
    """

    def __init__(self, frames, *, n_fft: int, hop_length: int):
        self.frames = frames
        self._stft = BlockSTFT(n_fft=n_fft, hop_length=hop_length)

    def update(self, y: np.ndarray) -> None:
        """Take the next mono block ``y [shape=(n,)]``."""
        S_T = self._stft.push(y)
        if S_T is not None:
            self.frames.update(S_T)

    def finish(self) -> np.ndarray:
        """The feature matrix ``[n_features, n_frames]`` (float32)."""
        self.frames.update(self._stft.finish())
        return self.frames.finish()

    def close(self) -> None:
        """Drop spooled frames (and the spool's temporary file)."""
        self.frames.close()
