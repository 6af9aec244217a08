"""The ``musicnn`` feature set: per 3-s patch, musicnn's penultimate embedding and its 50 tags.

A matrix ``[250, n_patches]``: rows 0-199 the embedding (the transfer-learning
input), rows 200-249 the tag probabilities in :data:`~progrock.features.musicnn.network.TAGS`'s
order (the zero-shot prog score and the tags a person can read). Computed once
per song through the feature cache, like every set (:mod:`progrock.features.sets`).
"""

from __future__ import annotations

import numpy as np

from progrock.features.musicnn.preprocess import PATCH_SECONDS

N_EMBEDDING = 200
"""Rows of the penultimate embedding."""


def row_names() -> list[str]:
    """``embedding_0`` ... ``embedding_199``, then ``tag_<name>`` for the 50 tags."""
    from progrock.features.musicnn.network import TAGS

    return [f"embedding_{i}" for i in range(N_EMBEDDING)] + [f"tag_{t}" for t in TAGS]


def patch_embeddings(x: np.ndarray) -> np.ndarray:
    """The embedding of every patch, ``[n_patches, 200]``, from a ``musicnn`` matrix."""
    return np.ascontiguousarray(x[:N_EMBEDDING].T, dtype=np.float64)


def tag_rows(x: np.ndarray) -> np.ndarray:
    """Tag probabilities per patch, ``[50, n_patches]``."""
    return x[N_EMBEDDING:]


def prog_tag(x: np.ndarray) -> np.ndarray:
    """The "Progressive rock" tag's probability per patch, ``[n_patches]`` (float64)."""
    from progrock.features.musicnn.network import PROG_TAG, TAGS

    return tag_rows(x)[TAGS.index(PROG_TAG)].astype(np.float64)


def song_tags(x: np.ndarray) -> dict[str, float]:
    """Every tag's song-mean probability, in musicnn's own spelling, most likely first."""
    from progrock.features.musicnn.network import TAGS

    means = tag_rows(x).mean(axis=1) if x.shape[1] else np.zeros(len(TAGS))
    order = np.argsort(-means, kind="stable")
    return {TAGS[i]: round(float(means[i]), 4) for i in order}


class MusicnnFeatures:
    """The set's accumulator: 16-kHz blocks in, ``[250, n_patches]`` out (float32).

    The network runs on one PyTorch thread (restored afterwards): songs run in
    parallel on the engines, and two threads per convolution only fight for
    the cores.
    """

    def __init__(self):
        from progrock.features.musicnn.tagger import MusicnnStream

        self.stream = MusicnnStream()

    def update(self, y: np.ndarray) -> None:
        with _one_thread():
            self.stream.update(y)

    def finish(self) -> np.ndarray:
        with _one_thread():
            out = self.stream.finish()
        return np.ascontiguousarray(np.vstack([out.embeddings.T, out.tags.T]), dtype=np.float32)

    def close(self) -> None:
        self.stream.close()


class _one_thread:
    def __enter__(self):
        import torch

        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.before)


__all__ = ["N_EMBEDDING", "PATCH_SECONDS", "MusicnnFeatures", "patch_embeddings", "prog_tag", "row_names",
           "song_tags", "tag_rows"]
