"""musicnn's tags and embeddings of a song: audio -> log-mel -> patches -> network.

Two entry points that give the same numbers:

* :func:`song_tags_and_embeddings` on a whole signal (any sample rate);
* :class:`MusicnnStream` on mono 16-kHz blocks as a decoder delivers them
  (``update`` per block, ``finish`` at the end), in memory bounded by one
  batch of patches whatever the song's length.

Both run the network on ``batch_size`` patches at a time, in the same
batches, so their outputs are equal to the bit; ``tests/test_musicnn.py``
checks it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch

from progrock.features.spectral import BlockSTFT
from progrock.features.musicnn import preprocess as pp
from progrock.features.musicnn.network import N_PENULTIMATE, TAGS, MusicnnMSD, load_musicnn

BATCH_SIZE = 4
"""Patches per network call: small, so each convolution's output is still in cache when it is pooled."""


class SongTags(NamedTuple):
    """musicnn's output for every patch of a song.

    Attributes
    ----------
    tags : np.ndarray [shape=(n_patches, 50), dtype=float32]
        Tag probabilities, in the order of :data:`~progrock.features.musicnn.network.TAGS`.
    embeddings : np.ndarray [shape=(n_patches, 200), dtype=float32]
        Penultimate embeddings.
    starts : np.ndarray [shape=(n_patches,), dtype=float64]
        Time of each patch's first frame, in seconds (2.992 s apart).
    """

    tags: np.ndarray
    embeddings: np.ndarray
    starts: np.ndarray


@lru_cache(maxsize=1)
def default_model() -> MusicnnMSD:
    """The shipped model, loaded once per process (:func:`load_musicnn`)."""
    return load_musicnn()


def run_patches(model: MusicnnMSD, patches: np.ndarray, *,
                batch_size: int = BATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The network on log-mel patches, ``batch_size`` at a time.

    Parameters
    ----------
    model : MusicnnMSD
    patches : np.ndarray [shape=(n_patches, 187, 96), dtype=float32]
    batch_size : int

    Returns
    -------
    tags : np.ndarray [shape=(n_patches, 50), dtype=float32]
    embeddings : np.ndarray [shape=(n_patches, 200), dtype=float32]
    """
    n = len(patches)
    tags = np.empty((n, len(TAGS)), dtype=np.float32)
    embeddings = np.empty((n, N_PENULTIMATE), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, n, batch_size):
            out = model(torch.from_numpy(np.ascontiguousarray(patches[s:s + batch_size], dtype=np.float32)))
            tags[s:s + batch_size] = out.tags.numpy()
            embeddings[s:s + batch_size] = out.penultimate.numpy()
    return tags, embeddings


def song_tags_and_embeddings(y: np.ndarray, *, sr: int, model: MusicnnMSD | None = None,
                             batch_size: int = BATCH_SIZE) -> SongTags:
    """musicnn's tags and embeddings of every 3-s patch of a song.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
        Mono audio, e.g. ``progrock.audio.decode(path, sr=16000).y``.
    sr : int
        Sample rate of ``y`` in Hz (resampled to 16 kHz with soxr if different).
    model : MusicnnMSD, optional
        Default: the shipped weights (:func:`default_model`).
    batch_size : int
        Patches per network call; bounds the memory of the activations.

    Returns
    -------
    SongTags
        One row per non-overlapping patch of 187 frames; the tail shorter than
        a patch is dropped, a song shorter than one patch is looped to one
        (:func:`~progrock.features.musicnn.preprocess.patches`).
    """
    model = default_model() if model is None else model
    x = pp.patches(pp.log_mel(y, sr=sr))
    tags, embeddings = run_patches(model, x, batch_size=batch_size)
    return SongTags(tags, embeddings, pp.patch_starts(len(x)))


class MusicnnStream:
    """musicnn on a song that arrives in blocks: equal to :func:`song_tags_and_embeddings`.

    Frames come from :class:`~progrock.features.spectral.BlockSTFT` (the centred
    STFT, block by block), their log-mel in the same 256-frame blocks as
    :func:`~progrock.features.musicnn.preprocess.log_mel` computes it, and the
    network runs as soon as ``batch_size`` whole patches are there. Memory
    holds one batch of frames and the outputs (250 values per 3 s).

    Parameters
    ----------
    model : MusicnnMSD, optional
        Default: the shipped weights.
    batch_size : int
        As in :func:`song_tags_and_embeddings` (the same value gives the same bits).
    """

    def __init__(self, model: MusicnnMSD | None = None, *, batch_size: int = BATCH_SIZE):
        self.model = default_model() if model is None else model
        self.batch_size = int(batch_size)
        self._stft = BlockSTFT(n_fft=pp.N_FFT, hop_length=pp.HOP_LENGTH, block_frames=pp.MEL_BLOCK)
        self._frames: list[np.ndarray] = []  # log-mel frames not yet in a run batch
        self._held = 0
        self._tags: list[np.ndarray] = []
        self._embeddings: list[np.ndarray] = []
        self.n_frames = 0  # log-mel frames seen

    def update(self, y: np.ndarray) -> None:
        """Take the next block of mono samples at 16 kHz [shape=(n,)]."""
        S_T = self._stft.push(np.asarray(y, dtype=np.float32))
        if S_T is not None:
            self._add(pp.log_mel_frames(S_T))

    def _add(self, mel: np.ndarray) -> None:
        self._frames.append(mel)
        self._held += len(mel)
        self.n_frames += len(mel)
        batch_frames = self.batch_size * pp.PATCH_FRAMES
        if self._held >= batch_frames:
            frames = np.concatenate(self._frames)
            n_batches = len(frames) // batch_frames
            self._run(frames[:n_batches * batch_frames])
            rest = frames[n_batches * batch_frames:]
            self._frames, self._held = [rest], len(rest)

    def _run(self, frames: np.ndarray) -> None:
        tags, embeddings = run_patches(self.model, pp.patches(frames), batch_size=self.batch_size)
        self._tags.append(tags)
        self._embeddings.append(embeddings)

    def finish(self) -> SongTags:
        """Everything given to :meth:`update`, as :func:`song_tags_and_embeddings` would give it."""
        self._add(pp.log_mel_frames(self._stft.finish()))
        # The last, partial batch; a song shorter than one patch is all here and gets looped.
        if self._held >= pp.PATCH_FRAMES or (self._held and self.n_frames < pp.PATCH_FRAMES):
            self._run(np.concatenate(self._frames))
        self._frames, self._held = [], 0
        tags = np.concatenate(self._tags) if self._tags else np.zeros((0, len(TAGS)), np.float32)
        emb = (np.concatenate(self._embeddings) if self._embeddings
               else np.zeros((0, N_PENULTIMATE), np.float32))
        return SongTags(tags, emb, pp.patch_starts(len(tags)))

    def close(self) -> None:
        """Drop everything held without finishing."""
        self._stft = BlockSTFT(n_fft=pp.N_FFT, hop_length=pp.HOP_LENGTH, block_frames=pp.MEL_BLOCK)
        self._frames, self._held, self._tags, self._embeddings = [], 0, [], []
