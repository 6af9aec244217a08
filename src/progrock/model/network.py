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

:meth:`SeedCNN.forward` is the network's one definition: the modules in
order, readable. The work of training and prediction runs on a *backend*
(:mod:`progrock.model.backends`), chosen once from the model's device: on the
CPU a compiled loop per snippet that computes this same function, elsewhere
this forward and autograd. Tests hold the backends equal to the forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from progrock.config import Config
from progrock.constants import SNIPPET_FRAMES
from progrock.errors import ConfigError

_EPS = 1e-6


@dataclass
class ModelConfig(Config):
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

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``mask [B, C]``: dropout multipliers drawn beforehand (training); else the module's own draws."""
        h = self.act(self.conv(x))
        h = self.drop(h) if mask is None or not self.training else h * mask[:, :, None].to(h)
        return self.pool(h)


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

    def folded_stem(self) -> tuple[torch.Tensor, torch.Tensor]:
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

    def scores(self, x: torch.Tensor, *, masks: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Per-time-step scores before voting: ``[B, F, T] -> [B, T / 2**n_blocks]``.

        ``masks``: the dropout multipliers of a training pass drawn beforehand
        (:meth:`draw_masks`); without them each dropout draws its own. Both
        ignored in evaluation mode.
        """
        if x.dim() != 3 or x.shape[1] != self.config.n_features:
            raise ConfigError(f"expected input [batch, {self.config.n_features}, frames], "
                              f"got {tuple(x.shape)}")
        masks = masks or [None] * (1 + len(self.blocks))
        h = self.stem(self.normalisation(x), masks[0])
        for block, mask in zip(self.blocks, masks[1:]):
            h = block(h, mask)
        return self.head(h).squeeze(1)

    def forward(self, x: torch.Tensor, noisy: bool | None = None, *, noise: Noise | None = None) -> torch.Tensor:
        """Logits ``[B]`` of snippets ``x [B, F, T]``.

        ``noise``: the draws of a training pass made beforehand (:meth:`draw_noise`);
        ``noisy``: noisy voting on or off (default: on in training mode).
        """
        if noise is None:
            return self.voting(self.scores(x), noisy=noisy)
        s = self.scores(x, masks=noise.masks)
        return self.voting(s, weights=noise.votes.to(device=s.device, dtype=s.dtype))


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
                   noisy: bool = False) -> np.ndarray:
    """Logits of snippets ``x [N, F, T]`` in evaluation mode -> ``np.ndarray [N]`` float32.

    :meth:`SeedCNN.forward` itself, batch by batch (the backends of
    :mod:`progrock.model.backends` are the fast way over many songs). The
    model's training/eval mode is restored afterwards.
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
                logits = model(xb.to(device), noisy=noisy)
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
