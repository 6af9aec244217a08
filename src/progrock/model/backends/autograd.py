"""The plain backend: :meth:`SeedCNN.forward` and autograd, on any device.

The snippets of a batch are gathered from the songs' frames into a tensor
``[B, F, T]`` and run through the modules in order. It is the definition the
compiled CPU backend (:mod:`.fused`) is tested against, and the path wherever
that one does not run (another device, another dtype).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from progrock.model.network import Noise, SeedCNN

name = "autograd"

BATCH = 1024
"""Snippets gathered and run at a time by :func:`logits`."""


def gather(model: SeedCNN, frames: np.ndarray, starts: np.ndarray) -> torch.Tensor:
    """The snippets ``frames[:, s:s + n_frames]`` for ``s`` in ``starts`` as one tensor ``[B, F, T]``
    on the model's device."""
    t = model.config.n_frames
    windows = np.lib.stride_tricks.sliding_window_view(frames, t, axis=1)      # [F, N - T + 1, T]
    x = np.ascontiguousarray(windows[:, np.asarray(starts, dtype=np.int64)].transpose(1, 0, 2),
                             dtype=np.float32)
    return torch.from_numpy(x).to(next(model.parameters()).device)


def loss_and_gradients(model: SeedCNN, frames: np.ndarray, starts: np.ndarray, labels: np.ndarray,
                       noise: Noise, *, pos_weight: float | None, scale: float, map_parts=None
                       ) -> tuple[float, list[torch.Tensor], np.ndarray]:
    """As :func:`progrock.model.backends.fused.loss_and_gradients`, by the model's forward and autograd."""
    params = [p for p in model.parameters() if p.requires_grad]
    starts = np.asarray(starts, dtype=np.int64)
    y = torch.as_tensor(np.asarray(labels, dtype=np.float32))
    pw = None if pos_weight is None else torch.tensor([float(pos_weight)])

    def part(_k: int, rows: slice):
        x = gather(model, frames, starts[rows])
        logits = model(x, noise=noise.rows(rows))
        target = y[rows].to(logits.device)
        loss = nn.functional.binary_cross_entropy_with_logits(
            logits, target, pos_weight=None if pw is None else pw.to(logits.device), reduction="sum") * scale
        return float(loss.detach()), torch.autograd.grad(loss, params), logits.detach().cpu()

    n = len(starts)
    results = map_parts(part, n) if map_parts is not None else [part(0, slice(0, n))]
    grads = [sum((r[1][j] for r in results[1:]), results[0][1][j]).cpu() for j in range(len(params))]
    return sum(r[0] for r in results), grads, torch.cat([r[2] for r in results]).numpy()


def logits(model: SeedCNN, frames: np.ndarray, starts: np.ndarray, *, map_parts=None) -> np.ndarray:
    """Evaluation-mode logits of the snippets, as :func:`progrock.model.backends.fused.logits`."""
    starts = np.asarray(starts, dtype=np.int64)
    out = np.empty(len(starts), np.float32)
    was_training = model.training
    model.eval()                               # here, not in the threads: the flag is shared

    def part(_k: int, rows: slice):
        with torch.no_grad():
            for a in range(rows.start, rows.stop, BATCH):
                b = min(a + BATCH, rows.stop)
                out[a:b] = model(gather(model, frames, starts[a:b])).float().cpu().numpy()

    try:
        if map_parts is not None:
            map_parts(part, len(starts))
        else:
            part(0, slice(0, len(starts)))
    finally:
        model.train(was_training)
    return out
