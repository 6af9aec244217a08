"""Where the network's passes run: one small interface, chosen once from the model's device.

A backend is a module with

* ``logits(model, frames, starts, *, map_parts=None) -> np.ndarray [n]`` —
  evaluation-mode logits of the snippets ``frames[:, s:s + n_frames]``;
* ``loss_and_gradients(model, frames, starts, labels, noise, *, pos_weight,
  scale, map_parts=None) -> (loss, grads, logits)`` — one training pass with
  the given dropout and voting draws.

``frames [n_features, n_total]`` are the songs' feature matrices end to end
(:class:`~progrock.data.snippets.SongFrames`), so no batch is ever copied out
whole. Both backends compute :meth:`SeedCNN.forward`'s function
(``tests/test_model.py`` holds them equal to it):

* :mod:`.fused` — one compiled loop per snippet, on the CPU;
* :mod:`.autograd` — the forward itself and autograd, anywhere else.
"""

from __future__ import annotations

from types import ModuleType

from progrock.model.network import SeedCNN


def cpu_float32(model: SeedCNN) -> bool:
    """Whether every parameter of ``model`` is float32 on the CPU (what :mod:`.fused` runs)."""
    import torch

    return all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters())


def backend_for(model: SeedCNN) -> ModuleType:
    """The backend that runs ``model``: :mod:`.fused` for a float32 model on the CPU, else :mod:`.autograd`."""
    if cpu_float32(model):
        from progrock.model.backends import fused   # loads numba: only when a pass is run

        return fused
    from progrock.model.backends import autograd

    return autograd
