"""The seed's 1D-CNN over per-frame features, with noisy voting.

Layout (the public Keras script the seed follows)::

    x [B, F, T]
    -> FeatureNormalisation                 (x - mean) * exp(log_scale), per feature
    -> Conv1d F->16, k 1, ELU, Dropout1d    ("stem")
    -> 6 x [Conv1d ->8, k 5, same, ELU, Dropout1d, MaxPool1d 2]   ("block1".."block6")
    -> Conv1d 8->1, k 1, linear             ("head"): one score per remaining time step
    -> NoisyVoting                          weighted mean of the scores over time
    -> logit [B]                            sigmoid outside; train with BCEWithLogits

With 43 features the network has 3,001 weights (704 stem + 648 + 5 x 328 blocks
+ 9 head) and the normalisation 86 (a mean and a log-scale per feature).

Unlike the seed's script, noisy voting is off in evaluation mode, so
predictions are deterministic; ``noisy=True`` (or :func:`noisy_spread`) turns
it back on to see how much the seed's random verdicts would have moved.

The training loop is in :mod:`progrock.training.loop`; this module only builds
the network and runs it on arrays. On the CPU, training runs the same
function as one compiled loop per snippet (:mod:`progrock.model.fused`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn

from progrock.constants import SNIPPET_FRAMES
from progrock.errors import ConfigError

_EPS = 1e-6


@dataclass
class ModelConfig:
    """Hyper-parameters of :class:`SeedCNN` (the defaults are the seed's).

    Parameters
    ----------
    n_features : int
        Rows of the feature matrix (43 for ``seed43``).
    n_frames : int
        Frames per snippet (431 = 10 s); the network itself accepts any length
        of at least ``2 ** n_blocks`` frames.
    stem_channels, block_channels : int
        Filters of the kernel-1 stem and of each convolutional block.
    n_blocks : int
        Convolution + max-pool blocks (each halves the time axis).
    kernel_size : int
        Kernel of the block convolutions ("same" padding).
    dropout : float
        Channel (spatial) dropout rate after every convolution but the head.
    trainable_normalisation : bool
        Whether the per-feature mean and log-scale keep training after being
        initialised from the training set (the seed trains them).
    """

    n_features: int = 43
    n_frames: int = SNIPPET_FRAMES
    stem_channels: int = 16
    block_channels: int = 8
    n_blocks: int = 6
    kernel_size: int = 5
    dropout: float = 0.1
    trainable_normalisation: bool = True

    def __post_init__(self) -> None:
        if min(self.n_features, self.stem_channels, self.block_channels, self.kernel_size) < 1:
            raise ConfigError(f"model sizes must be positive: {self}")
        if self.n_blocks < 0:
            raise ConfigError(f"n_blocks must be >= 0, got {self.n_blocks}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.n_frames < 2 ** self.n_blocks:
            raise ConfigError(f"{self.n_frames} frames are too few for {self.n_blocks} "
                              f"max-pool blocks (need {2 ** self.n_blocks})")

    def to_dict(self) -> dict:
        """A JSON-ready dictionary; :meth:`from_dict` reverses it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Rebuild from :meth:`to_dict`'s output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown model configuration keys: {sorted(unknown)}")
        return cls(**data)


class FeatureNormalisation(nn.Module):
    """Per-feature affine normalisation ``y = (x - mean) * exp(log_scale)``.

    Both vectors are parameters (saved with the model). :meth:`initialise` sets
    them from training-set statistics; with ``trainable=False`` they are frozen
    (``requires_grad=False``) but still part of the state dict.

    Input and output: ``[batch, n_features, n_frames]``.
    """

    def __init__(self, n_features: int, *, trainable: bool = True):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(n_features), requires_grad=trainable)
        self.log_scale = nn.Parameter(torch.zeros(n_features), requires_grad=trainable)

    @torch.no_grad()
    def initialise(self, mean: np.ndarray | torch.Tensor, std: np.ndarray | torch.Tensor) -> None:
        """Set ``mean`` and ``log_scale = -log(std + eps)`` (arrays of shape [n_features])."""
        mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float64), dtype=torch.float64)
        std_t = torch.as_tensor(np.asarray(std, dtype=np.float64), dtype=torch.float64)
        n = self.mean.shape[0]
        if mean_t.shape != (n,) or std_t.shape != (n,):
            raise ConfigError(f"normalisation statistics must have shape ({n},), "
                              f"got {tuple(mean_t.shape)} and {tuple(std_t.shape)}")
        if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all()):
            raise ConfigError("normalisation statistics contain NaN or infinity")
        self.mean.copy_(mean_t.float())
        self.log_scale.copy_((-torch.log(std_t.clamp_min(0) + _EPS)).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean[:, None]) * torch.exp(self.log_scale)[:, None]


class NoisyVoting(nn.Module):
    """Average scores over time, with random weights while training.

    In training mode (or with ``noisy=True``) each time position gets a weight
    drawn from U(0.5, 1.5); the weights are normalised to sum to 1 over time
    and the scores summed with them. In evaluation mode it is the plain mean.

    Input ``[batch, n_steps]``, output ``[batch]``.
    """

    def __init__(self, low: float = 0.5, high: float = 1.5):
        super().__init__()
        self.low = low
        self.high = high

    def draw(self, batch: int, n_steps: int) -> torch.Tensor:
        """Weights ``[batch, n_steps]`` from the global RNG, each row summing to 1."""
        w = torch.rand((batch, n_steps))
        w = self.low + (self.high - self.low) * w
        return w / w.sum(dim=-1, keepdim=True)

    def forward(self, scores: torch.Tensor, noisy: bool | None = None, *,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        """``weights``: drawn beforehand by :meth:`draw` (then ``noisy`` is ignored)."""
        if weights is None:
            if noisy is None:
                noisy = self.training
            if not noisy:
                return scores.mean(dim=-1)
            weights = self.draw(*scores.shape).to(device=scores.device, dtype=scores.dtype)
        return (weights * scores).sum(dim=-1)


@dataclass
class Noise:
    """The random draws of one training pass over a batch, made before the pass.

    Drawing them first (:meth:`SeedCNN.draw_noise`) lets parts of a batch run
    in parallel with exactly the draws one pass over the whole batch makes.

    Attributes
    ----------
    masks : list of torch.Tensor
        Channel-dropout multipliers ``[batch, channels]`` of the stem and each
        block, in that order: 0 or ``1 / (1 - p)``. Empty when ``dropout`` is 0.
    votes : torch.Tensor
        Noisy-voting weights ``[batch, n_steps]``, each row summing to 1.
    """

    masks: list[torch.Tensor]
    votes: torch.Tensor

    def rows(self, rows: slice) -> "Noise":
        """The draws of the snippets ``rows`` of the batch."""
        return Noise([m[rows] for m in self.masks], self.votes[rows])


class ConvBlock(nn.Module):
    """Conv1d, ELU, channel dropout and (optionally) max-pool 2."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dropout: float, pool: bool):
        super().__init__()
        padding = "same" if kernel_size > 1 else 0
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, padding=padding)
        self.act = nn.ELU()
        self.drop = nn.Dropout1d(dropout)
        self.pool = nn.MaxPool1d(2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.drop(self.act(self.conv(x))))


class SeedCNN(nn.Module):
    """The seed's network; ``forward(x [B, F, T]) -> logits [B]`` (see the module doc)."""

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        self.normalisation = FeatureNormalisation(config.n_features,
                                                  trainable=config.trainable_normalisation)
        self.stem = ConvBlock(config.n_features, config.stem_channels, 1, config.dropout, pool=False)
        blocks = []
        c_in = config.stem_channels
        for _ in range(config.n_blocks):
            blocks.append(ConvBlock(c_in, config.block_channels, config.kernel_size,
                                    config.dropout, pool=True))
            c_in = config.block_channels
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv1d(c_in, 1, 1)
        self.voting = NoisyVoting()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-uniform (variance scaling 2, fan-in, uniform) weights, zero biases.

        ``kaiming_uniform_`` with ``a=0`` draws from U(-sqrt(6/fan_in), +sqrt(6/fan_in)),
        the same as Keras' ``he_uniform``. The normalisation is left as is.
        """
        for conv in self.conv_layers().values():
            nn.init.kaiming_uniform_(conv.weight, a=0.0, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def conv_layers(self) -> dict[str, nn.Conv1d]:
        """The convolutions by name: ``stem``, ``block1`` ... ``blockN``, ``head``."""
        layers = {"stem": self.stem.conv}
        layers.update({f"block{i + 1}": b.conv for i, b in enumerate(self.blocks)})
        layers["head"] = self.head
        return layers

    def activation_modules(self) -> dict[str, nn.Module]:
        """Modules whose output is each layer's activation (ELU after a conv; the head itself)."""
        mods: dict[str, nn.Module] = {"stem": self.stem.act}
        mods.update({f"block{i + 1}": b.act for i, b in enumerate(self.blocks)})
        mods["head"] = self.head
        return mods

    def _folded_stem(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The stem's weight [C, F, 1] and bias [C] with the normalisation folded in.

        The normalisation is affine per feature and the stem a kernel-1
        convolution, so they fold into one: ``W' = W * exp(log_scale)``,
        ``b' = b - W' @ mean``. Same function and gradients, but no normalised
        copy of the batch (76 MB at 1024 snippets) is made.
        """
        conv, norm = self.stem.conv, self.normalisation
        weight = conv.weight * torch.exp(norm.log_scale)[None, :, None]
        bias = conv.bias - weight.squeeze(-1) @ norm.mean
        return weight, bias

    def draw_masks(self, batch: int) -> list[torch.Tensor]:
        """Channel-dropout multipliers for a batch (see :class:`Noise`), from the global RNG.

        Drawn the way :class:`torch.nn.Dropout1d` draws them (Bernoulli
        ``1 - p``, divided by ``1 - p``), layer by layer: the same seed gives
        the plain modules' masks.
        """
        p = self.config.dropout
        if p == 0:
            return []
        widths = [self.config.stem_channels] + [self.config.block_channels] * self.config.n_blocks
        return [torch.empty((batch, c)).bernoulli_(1 - p).div_(1 - p) for c in widths]

    def draw_noise(self, batch: int) -> Noise:
        """All random draws of a training pass over ``batch`` snippets, in the pass's order."""
        masks = self.draw_masks(batch)
        return Noise(masks, self.voting.draw(batch, output_steps(self.config)))

    def scores(self, x: torch.Tensor, *, time_major: bool = False,
               masks: list[torch.Tensor] | None = None,
               index: torch.Tensor | None = None) -> torch.Tensor:
        """Per-time-step scores before voting: ``[B, F, T] -> [B, T / 2**n_blocks]``.

        With ``time_major=True`` the input is ``[B, T, F]`` (each snippet
        transposed, contiguous): the layout the convolutions run in, so no
        copy of the batch is made (the training loop's layout off the CPU).
        ``index [B]``: score the snippets ``x[index]`` of a larger set ``x``,
        read in small chunks, so the batch is never copied out whole (no
        gradient reaches ``x`` then). ``masks``: the dropout multipliers
        (:meth:`draw_masks`) in training mode; drawn here when not given.
        Ignored in evaluation mode.

        The stem is a matrix product over chunks of 32 snippets
        (:class:`_Stem`), which keeps each chunk in the cache between reading
        it and using it. The blocks' convolutions run as 2-D convolutions with
        a ``1 x k`` kernel on a channels-last ``[B, C, 1, T]`` view (the same
        Conv1d weights, viewed with an extra axis): oneDNN's channels-last
        kernels for these few channels are 2-4x faster than its Conv1d ones,
        forward and backward. In the blocks the max-pool comes before the ELU
        and the dropout: both are monotone per channel, so the function is the
        same with half the element-wise work. It is the function of
        :meth:`reference_scores` (same dropout draws, outputs equal within
        float rounding; ``tests/test_model.py``).
        """
        if x.dim() != 3 or x.shape[2 if time_major else 1] != self.config.n_features:
            shape = "[batch, frames, %d]" if time_major else "[batch, %d, frames]"
            raise ConfigError(f"expected input {shape % self.config.n_features}, got {tuple(x.shape)}")
        batch = x.shape[0] if index is None else len(index)
        if not self.training:
            masks = []
        elif masks is None:
            masks = self.draw_masks(batch)
        masks = [m.to(x.device) for m in masks]
        weight, bias = self._folded_stem()
        z = _Stem.apply(x, index, weight.squeeze(-1), bias, time_major)      # [B, T, C]
        h = _elu_drop(z.permute(0, 2, 1).unsqueeze(2), masks[0] if masks else None)  # [B, C, 1, T]
        for i, block in enumerate(self.blocks, start=1):
            conv = block.conv
            k = conv.kernel_size[0]
            if k % 2 == 0:                                       # "same" pads one more on the right
                h = nn.functional.pad(h, ((k - 1) // 2, k // 2))
            h = nn.functional.conv2d(h, conv.weight.unsqueeze(2), conv.bias,
                                     padding=(0, k // 2 if k % 2 else 0))
            h = _elu_drop(nn.functional.max_pool2d(h, (1, 2)), masks[i] if masks else None)
        return self.head(h.squeeze(2)).squeeze(1)

    def reference_scores(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`scores` computed the plain way: the modules in order, Conv1d on ``[B, F, T]``.

        Slower; kept as the definition the fast path is tested against.
        """
        if x.dim() != 3 or x.shape[1] != self.config.n_features:
            raise ConfigError(f"expected input [batch, {self.config.n_features}, frames], "
                              f"got {tuple(x.shape)}")
        h = self.stem(self.normalisation(x))
        for block in self.blocks:
            h = block(h)
        return self.head(h).squeeze(1)

    def forward(self, x: torch.Tensor, noisy: bool | None = None, *, time_major: bool = False,
                noise: Noise | None = None, index: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B]`` (``time_major``, ``index``: see :meth:`scores`).

        ``noise``: the draws of a training pass made beforehand (:meth:`draw_noise`).
        """
        if noise is None:
            return self.voting(self.scores(x, time_major=time_major, index=index), noisy=noisy)
        s = self.scores(x, time_major=time_major, masks=noise.masks, index=index)
        return self.voting(s, weights=noise.votes.to(device=s.device, dtype=s.dtype))


STEM_CHUNK = 32
"""Snippets per matrix product of :class:`_Stem` (32 x 431 frames: 2.4 MB of input)."""


def _stem_chunks(source: torch.Tensor, index: torch.Tensor | None, time_major: bool):
    """``(start, frames [k * T, F])`` for chunks of the snippets ``source[index]`` (or all)."""
    n = source.shape[0] if index is None else len(index)
    buffer = None
    for start in range(0, n, STEM_CHUNK):
        if index is None:
            chunk = source[start:start + STEM_CHUNK]
        else:
            rows = index[start:start + STEM_CHUNK]
            if buffer is None:
                buffer = torch.empty((min(STEM_CHUNK, n),) + tuple(source.shape[1:]), dtype=source.dtype,
                                     device=source.device)
            chunk = torch.index_select(source, 0, rows, out=buffer[:len(rows)])
        if not time_major:
            chunk = chunk.transpose(1, 2)
        yield start, chunk.reshape(-1, chunk.shape[2])


class _Stem(torch.autograd.Function):
    """The kernel-1 stem: ``z [B, T, C] = frames @ weight.T + bias`` for the snippets ``source[index]``.

    ``source``: ``[N, T, F]`` (``time_major``) or ``[N, F, T]``; ``index [B]``
    or ``None`` (all snippets); ``weight [C, F]``, ``bias [C]``. Forward and
    the weight gradient are matrix products over chunks of
    :data:`STEM_CHUNK` snippets, each gathered (or transposed) into a small
    buffer just before its product: the batch's input is read from memory
    once per pass instead of being copied out whole and read twice more.
    Gathering, the stem and its weight gradient together took half the time
    they took on a gathered batch with oneDNN's convolution (26-34 vs 52-75 ms
    for 512 snippets, one thread).
    """

    @staticmethod
    def forward(ctx, source, index, weight, bias, time_major):
        n = source.shape[0] if index is None else len(index)
        n_frames = source.shape[1] if time_major else source.shape[2]
        z = torch.empty((n, n_frames, weight.shape[0]), dtype=source.dtype, device=source.device)
        flat = z.view(-1, weight.shape[0])
        for start, frames in _stem_chunks(source, index, time_major):
            rows = slice(start * n_frames, start * n_frames + frames.shape[0])
            torch.addmm(bias, frames, weight.t(), out=flat[rows])
        ctx.save_for_backward(source, index, weight)
        ctx.time_major = time_major
        return z

    @staticmethod
    def backward(ctx, grad):
        source, index, weight = ctx.saved_tensors
        time_major = ctx.time_major
        g = grad.contiguous().view(-1, weight.shape[0])                 # [B * T, C]
        grad_source = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            gx = (g @ weight).view(grad.shape[0], grad.shape[1], -1)    # [B, T, F]
            if not time_major:
                gx = gx.transpose(1, 2)
            grad_source = gx if index is None else torch.zeros_like(source).index_add_(0, index, gx)
        if ctx.needs_input_grad[2]:
            grad_w = torch.zeros_like(weight)
            for start, frames in _stem_chunks(source, index, time_major):
                rows = slice(start * grad.shape[1], start * grad.shape[1] + frames.shape[0])
                grad_w.addmm_(g[rows].t(), frames)
        if ctx.needs_input_grad[3]:
            grad_b = g.sum(0)
        return grad_source, None, grad_w, grad_b, None


def _elu_drop(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``ELU(h) * mask`` per snippet and channel on ``h [B, C, 1, T]`` (channels-last).

    The ELU runs on the ``[B, 1, T, C]`` view, contiguous for a channels-last
    ``h``: PyTorch's ELU writing a new channels-last tensor took 34 ms at
    1024 x 16 x 431, on the contiguous view 20 ms. ``mask=None``: the ELU alone.
    """
    if mask is None:
        return nn.functional.elu(h, inplace=True)     # the producers of h keep no copy of it
    r = nn.functional.elu(h.permute(0, 2, 3, 1))
    return (r * mask[:, None, None, :]).permute(0, 3, 1, 2)


def count_parameters(model: SeedCNN) -> dict[str, int]:
    """Weights of the network and of its normalisation: ``{"network": 3001, "normalisation": 86}``."""
    norm = sum(p.numel() for p in model.normalisation.parameters())
    total = sum(p.numel() for p in model.parameters())
    return {"network": total - norm, "normalisation": norm}


def _batches(x: np.ndarray, batch_size: int):
    for i in range(0, len(x), batch_size):
        yield torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size], dtype=np.float32))


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def predict_logits(model: SeedCNN, x: np.ndarray, *, batch_size: int = 1024,
                   noisy: bool = False, time_major: bool = False) -> np.ndarray:
    """Logits of snippets ``x [N, F, T]`` in evaluation mode -> ``np.ndarray [N]`` float32.

    ``time_major=True``: ``x`` is ``[N, T, F]`` (see :meth:`SeedCNN.scores`).
    The model's training/eval mode is restored afterwards.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    was_training = model.training
    model.eval()
    device = _device(model)
    out = np.empty(len(x), dtype=np.float32)
    try:
        with torch.no_grad():
            i = 0
            for xb in _batches(x, batch_size):
                logits = model(xb.to(device), noisy=noisy, time_major=time_major)
                out[i:i + len(logits)] = logits.float().cpu().numpy()
                i += len(logits)
    finally:
        model.train(was_training)
    return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-z.astype(np.float64)))).astype(np.float32)


def predict_proba(model: SeedCNN, x: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
    """Probability of prog per snippet: ``x [N, F, T] -> np.ndarray [N]`` float32.

    Deterministic: evaluation mode (no dropout, plain-mean voting), no gradients.
    """
    return _sigmoid(predict_logits(model, x, batch_size=batch_size))


def noisy_spread(model: SeedCNN, x: np.ndarray, *, passes: int = 10,
                 batch_size: int = 1024) -> np.ndarray:
    """Probabilities with the seed's noisy voting left on at inference.

    Returns ``np.ndarray [passes, N]`` float32: one row per pass, showing how far
    the seed's random verdicts moved (dropout stays off).
    """
    if passes < 1:
        raise ConfigError(f"passes must be positive, got {passes}")
    return np.stack([_sigmoid(predict_logits(model, x, batch_size=batch_size, noisy=True))
                     for _ in range(passes)])


def output_steps(config: ModelConfig) -> int:
    """Time steps left for voting after the max-pools (6 for 431 frames)."""
    n = config.n_frames
    for _ in range(config.n_blocks):
        n = math.floor(n / 2)
    return n
