"""musicnn's MSD tagger (Pons & Serra 2019) in PyTorch, with its converted weights.

Layout of the original ``build_musicnn`` (TensorFlow 1), for one patch of
187 frames x 96 log-mel bands; every convolution is conv -> ReLU -> batch
norm (the ReLU first), every batch norm has epsilon 1e-3::

    patches [B, 187, 96]
    -> batch norm (one channel)
    front end, "musically motivated" (561 channels):
      timbral  2 x conv (7 frames x 38 | 67 bands) -> 204 ch, max over bands
               (time padded with 3 zeros on each side)
      temporal 3 x conv (128 | 64 | 32 frames x 1 band) -> 51 ch, max over bands
               (TensorFlow "same" padding: 63/64, 31/32, 15/16 zeros before/after)
    mid end (3 x 64 channels):
      conv 7 frames 561 -> 64;  conv 7 64 -> 64 + residual;  conv 7 64 -> 64 + residual
    back end:
      the 753 channels (front end + the three mid-end outputs) -> max and mean
      over time, interleaved per channel (max0, mean0, max1, ...: 1506 values)
      -> batch norm -> dense 200, ReLU -> batch norm = penultimate [B, 200]
      -> dense 50 -> sigmoid = tags [B, 50]

Dropout is off (inference only). 787,159 trainable values plus 4,920
batch-norm statistics; about 1.40 GMAC per patch, 1.13 of them in the two
timbral convolutions. Most front-end filters of the MSD weights are dead
units, provably zero after their ReLU for any log-mel input; they are not
computed (:func:`silent_channels`), which leaves about 0.35 GMAC per patch
and changes no output bit.

The weights are converted from the original checkpoint by
:mod:`progrock.features.musicnn.convert` and shipped in ``weights/`` (ISC
licence, ``weights/LICENSE.musicnn``); :func:`load_musicnn` checks their
SHA-256 and refuses anything else.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from progrock.errors import ModelError
from progrock.features.musicnn.preprocess import MAX_LOG_MEL, N_MELS

TAGS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
    "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
    "sad", "House", "happy",
)
"""The 50 Million Song Dataset tags, in musicnn's own spelling and order (``MSD_LABELS``)."""

PROG_TAG = "Progressive rock"
"""The tag that names progressive rock (index 43 of :data:`TAGS`)."""

N_PENULTIMATE = 200
"""Values of the penultimate embedding (the batch-normalised dense layer)."""

BN_EPSILON = 1e-3
"""Epsilon of every batch norm (``tf.compat.v1.layers.batch_normalization``'s default)."""

FORMAT_NAME = "progrock-musicnn"
"""``format`` of the JSON that describes converted musicnn weights."""

FORMAT_VERSION = 1
"""Bumped when the layout of the converted files changes; other versions are refused."""

WEIGHTS_NAME = "msd_musicnn"
"""Stem of the shipped files ``weights/msd_musicnn.safetensors`` and ``.json``."""

TIMBRAL_BANDS = (int(0.4 * N_MELS), int(0.7 * N_MELS))
TEMPORAL_FRAMES = (128, 64, 32)
TIMBRAL_CHANNELS, TEMPORAL_CHANNELS, MIDEND_CHANNELS = 204, 51, 64
FRONT_CHANNELS = len(TIMBRAL_BANDS) * TIMBRAL_CHANNELS + len(TEMPORAL_FRAMES) * TEMPORAL_CHANNELS
FEATURE_CHANNELS = FRONT_CHANNELS + 3 * MIDEND_CHANNELS


class MusicnnOutput(NamedTuple):
    """What :class:`MusicnnMSD` gives for a batch of patches.

    Attributes
    ----------
    tags : torch.Tensor [shape=(B, 50), dtype=float32]
        Tag probabilities (sigmoid of the logits), in the order of :data:`TAGS`.
    penultimate : torch.Tensor [shape=(B, 200), dtype=float32]
        The penultimate embedding (after its batch norm).
    """

    tags: torch.Tensor
    penultimate: torch.Tensor


class FrozenBatchNorm(nn.Module):
    """Batch norm with fixed statistics: ``(x - mean) / sqrt(var + eps) * weight + bias``.

    Parameters
    ----------
    n_channels : int
    dim : int
        Axis of the channels in the input.
    """

    def __init__(self, n_channels: int, *, dim: int = 1):
        super().__init__()
        self.dim = dim
        for name in ("weight", "bias", "running_mean", "running_var"):
            self.register_buffer(name, torch.zeros(n_channels))

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The affine map per channel: ``x * scale + shift``."""
        scale = self.weight * torch.rsqrt(self.running_var + BN_EPSILON)
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` along :attr:`dim`."""
        scale, shift = self.scale_shift()
        shape = [1] * x.dim()
        shape[self.dim] = -1
        return x * scale.view(shape) + shift.view(shape)


SILENT_SLACK = 1e-3
"""Safety margin of :func:`silent_channels`, relative to the largest sum a channel can reach.

The float32 rounding of a convolution of ``n`` taps is below ``n * 2**-24``
of that sum (1.6e-5 for the 267 taps of the largest kernel).
"""


def silent_channels(conv: nn.Conv2d, lo: float, hi: float) -> torch.Tensor:
    """The output channels of ``conv`` that are <= 0 for every input with values in [lo, hi].

    Interval arithmetic on the kernel: a channel's largest possible output is
    ``bias + sum(w+) * hi + sum(w-) * lo``. Where that stays below zero by a
    margin far larger than float32 rounding (:data:`SILENT_SLACK`), the ReLU
    after the convolution gives 0 for any such input, so the channel need
    not be computed. ``lo <= 0 <= hi`` must hold (zero padding is an input too).

    Returns
    -------
    torch.Tensor [shape=(out_channels,), dtype=bool]
        False wherever the range is not finite (NaN or infinite inputs).
    """
    w = conv.weight.detach().flatten(1).double()
    b = conv.bias.detach().double()
    highest = b + w.clamp(min=0).sum(1) * hi + w.clamp(max=0).sum(1) * lo
    slack = SILENT_SLACK * (w.abs().sum(1) * max(abs(lo), abs(hi)) + b.abs())
    return highest + slack <= 0


def _pooled_conv(conv: nn.Conv2d, bn: FrozenBatchNorm, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """``bn(relu(conv(x))).amax(-1)``: conv -> ReLU -> batch norm -> max over bands.

    Equal to that plain order to the bit, with less work:

    * the ReLU and the batch norm (an affine map per channel) are monotone,
      so the maximum over bands is taken straight after the conv, the only
      pass over its output. Where a channel's batch-norm scale is negative the
      map falls and the maximum of the normalised values is the normalised
      *minimum*: that channel's kernel and bias are negated
      (``min z = -max(-z)``, exact in floating point);
    * channels that :func:`silent_channels` proves <= 0 for inputs in
      [lo, hi] are not computed: after the ReLU they are 0, after the batch
      norm the constant ``shift``. In the MSD weights most front-end filters
      are such dead units (164 and 183 of the two timbral convolutions' 204
      over musicnn's input range), so this saves about three quarters of the
      network's arithmetic.

    Parameters
    ----------
    x : torch.Tensor [shape=(B, 1, T', F)]
        Padded input, its values in [lo, hi].

    Returns
    -------
    torch.Tensor [shape=(B, C, T' - kernel_height + 1)]
    """
    scale, shift = bn.scale_shift()
    live = ~silent_channels(conv, lo, hi)
    pooled = x.new_zeros(x.shape[0], scale.numel(), x.shape[2] - conv.kernel_size[0] + 1)
    if bool(live.any()):
        sign = torch.where(scale[live] < 0, -1.0, 1.0)
        z = F.conv2d(x, conv.weight[live] * sign[:, None, None, None], conv.bias[live] * sign)
        pooled[:, live] = F.relu(z.amax(-1) * sign[:, None])
    return pooled * scale[:, None] + shift[:, None]


class TimbralBlock(nn.Module):
    """Conv over (7 frames x ``n_bands`` bands) -> ReLU -> batch norm -> max over bands."""

    def __init__(self, n_bands: int):
        super().__init__()
        self.conv = nn.Conv2d(1, TIMBRAL_CHANNELS, (7, n_bands))
        self.bn = FrozenBatchNorm(TIMBRAL_CHANNELS)

    def forward(self, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        """[B, 1, T, F] with values in [lo, hi] (lo <= 0 <= hi) -> [B, 204, T]."""
        return _pooled_conv(self.conv, self.bn, F.pad(x, (0, 0, 3, 3)), lo, hi)


class TemporalBlock(nn.Module):
    """Conv over (``n_frames`` frames x 1 band) -> ReLU -> batch norm -> max over bands.

    The time axis is padded as TensorFlow's "same" pads it: ``n_frames - 1``
    zeros in all, the odd one after (63/64, 31/32, 15/16).
    """

    def __init__(self, n_frames: int):
        super().__init__()
        self.conv = nn.Conv2d(1, TEMPORAL_CHANNELS, (n_frames, 1))
        self.bn = FrozenBatchNorm(TEMPORAL_CHANNELS)
        self.pad = (0, 0, (n_frames - 1) // 2, n_frames // 2)

    def forward(self, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        """[B, 1, T, F] with values in [lo, hi] (lo <= 0 <= hi) -> [B, 51, T]."""
        return _pooled_conv(self.conv, self.bn, F.pad(x, self.pad), lo, hi)


class MidEndBlock(nn.Module):
    """Conv over 7 frames (3 zeros padded on each side) -> ReLU -> batch norm, on [B, C, T]."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, MIDEND_CHANNELS, 7, padding=3)
        self.bn = FrozenBatchNorm(MIDEND_CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, in_channels, T] -> [B, 64, T]."""
        return self.bn(F.relu(self.conv(x)))


class BackEnd(nn.Module):
    """Max and mean over time -> batch norm -> dense 200, ReLU, batch norm -> dense 50, sigmoid."""

    def __init__(self, n_tags: int = len(TAGS)):
        super().__init__()
        self.pool_bn = FrozenBatchNorm(2 * FEATURE_CHANNELS)
        self.dense = nn.Linear(2 * FEATURE_CHANNELS, N_PENULTIMATE)
        self.dense_bn = FrozenBatchNorm(N_PENULTIMATE)
        self.output = nn.Linear(N_PENULTIMATE, n_tags)

    def forward(self, features: torch.Tensor) -> MusicnnOutput:
        """[B, 753, T] -> tags [B, 50], penultimate [B, 200]."""
        # (max0, mean0, max1, mean1, ...), as TensorFlow flattens the concatenated pools
        pooled = torch.stack([features.amax(-1), features.mean(-1)], dim=-1).flatten(1)
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
        return MusicnnOutput(torch.sigmoid(self.output(penultimate)), penultimate)


class MusicnnMSD(nn.Module):
    """musicnn trained on the Million Song Dataset: 50 tag probabilities per 3-s patch.

    Build it with :func:`load_musicnn` (a bare instance holds zeros, not a model).
    Inference only: there is no dropout and no training-mode batch norm.

    Examples
    --------
    >>> model = load_musicnn()
    >>> with torch.inference_mode():
    ...     tags, penultimate = model(torch.from_numpy(patches))
    """

    def __init__(self):
        super().__init__()
        self.input_bn = FrozenBatchNorm(1)
        self.timbral = nn.ModuleList(TimbralBlock(b) for b in TIMBRAL_BANDS)
        self.temporal = nn.ModuleList(TemporalBlock(n) for n in TEMPORAL_FRAMES)
        self.midend = nn.ModuleList([MidEndBlock(FRONT_CHANNELS), MidEndBlock(MIDEND_CHANNELS),
                                     MidEndBlock(MIDEND_CHANNELS)])
        self.backend = BackEnd()

    def features(self, patches: torch.Tensor) -> torch.Tensor:
        """The 753 channels the back end pools: front end and the three mid-end outputs.

        Parameters
        ----------
        patches : torch.Tensor [shape=(B, T, 96), dtype=float32]
            Log-mel patches (:func:`progrock.features.musicnn.preprocess.patches`);
            any ``T`` >= 1 runs, the model was trained on ``T = 187``.

        Returns
        -------
        torch.Tensor [shape=(B, 753, T), dtype=float32]
        """
        x = self.input_bn(patches.unsqueeze(1))  # [B, 1, T, F]
        lo, hi = self._normalised_range(patches)
        front = torch.cat([block(x, lo, hi) for block in self.timbral]
                          + [block(x, lo, hi) for block in self.temporal], dim=1)
        outputs = [front]
        h = self.midend[0](front)
        outputs.append(h)
        for block in self.midend[1:]:
            h = block(h) + h  # residual
            outputs.append(h)
        return torch.cat(outputs, dim=1)

    def _normalised_range(self, patches: torch.Tensor) -> tuple[float, float]:
        """Bounds of the normalised input and its zero padding, for :func:`silent_channels`.

        The input's range is widened to musicnn's whole input range [0, 8.82]
        (:func:`~progrock.features.musicnn.preprocess.log_mel`'s), so every batch
        of real patches computes the same channels; NaN gives NaN bounds,
        and then every channel is computed.
        """
        if patches.numel() == 0:
            return 0.0, 0.0
        x_lo, x_hi = float(patches.amin()), float(patches.amax())  # NaN if any value is NaN
        if x_lo == x_lo and x_hi == x_hi:
            x_lo, x_hi = min(x_lo, 0.0), max(x_hi, MAX_LOG_MEL)
        scale, shift = (float(v) for v in self.input_bn.scale_shift())
        ends = (x_lo * scale + shift, x_hi * scale + shift)
        return min(min(ends), 0.0), max(max(ends), 0.0)

    def forward(self, patches: torch.Tensor) -> MusicnnOutput:
        """Tag probabilities and penultimate embeddings of log-mel patches.

        Parameters
        ----------
        patches : torch.Tensor [shape=(B, 187, 96), dtype=float32]

        Returns
        -------
        MusicnnOutput
            ``tags [B, 50]`` (probabilities) and ``penultimate [B, 200]``.
        """
        return self.backend(self.features(patches))


# ---------------------------------------------------------------------------
# The shipped weights


def weights_path() -> Path:
    """Where the converted weights ship: ``progrock/features/musicnn/weights/msd_musicnn.safetensors``."""
    return Path(str(resources.files("progrock.features.musicnn"))) / "weights" / f"{WEIGHTS_NAME}.safetensors"


def _read_description(json_path: Path, weights: Path) -> dict:
    try:
        info = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{json_path}: missing (it describes {weights.name} and holds its SHA-256)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{json_path}: unreadable description of the musicnn weights ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT_NAME:
        raise ModelError(f"{json_path}: not a progrock musicnn description (format is not {FORMAT_NAME!r})")
    if info.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{json_path}: format version {info.get('format_version')!r} is not "
                         f"{FORMAT_VERSION}")
    recorded = info.get("weights")
    if not isinstance(recorded, dict) or not isinstance(recorded.get("sha256"), str):
        raise ModelError(f"{json_path}: no SHA-256 recorded for the weights")
    return info


def load_musicnn(path: str | Path | None = None) -> MusicnnMSD:
    """The MSD musicnn tagger with its converted weights, in evaluation mode.

    Parameters
    ----------
    path : str or Path, optional
        A ``.safetensors`` file written by
        :func:`progrock.features.musicnn.convert.convert_wheel`, with its ``.json``
        beside it; by default the weights shipped with progrock.

    Returns
    -------
    MusicnnMSD
        Gradients off, on the CPU.

    Raises
    ------
    ModelError
        The weights or their JSON are missing, unreadable, truncated or altered
        (size or SHA-256 differs from the JSON's), or do not fit the network.
        Random weights are never used.
    """
    weights = Path(path) if path is not None else weights_path()
    json_path = weights.with_suffix(".json")
    info = _read_description(json_path, weights)
    try:
        data = weights.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{weights}: missing (the musicnn weights)") from None
    except OSError as exc:
        raise ModelError(f"{weights}: cannot read the musicnn weights ({exc.strerror or exc})") from None
    expected = info["weights"]
    if len(data) != expected.get("bytes"):
        raise ModelError(f"{weights}: {len(data)} bytes, {json_path.name} records "
                         f"{expected.get('bytes')} (truncated or replaced)")
    if hashlib.sha256(data).hexdigest() != expected["sha256"]:
        raise ModelError(f"{weights}: SHA-256 differs from the one in {json_path.name} (altered file)")
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    try:
        tensors = load_tensors(data)
    except (SafetensorError, ValueError) as exc:
        raise ModelError(f"{weights}: not a safetensors file ({exc})") from None
    model = MusicnnMSD()
    state = model.state_dict()
    if set(tensors) != set(state) or any(tensors[k].shape != state[k].shape for k in state):
        raise ModelError(f"{weights}: its tensors do not fit MusicnnMSD")
    model.load_state_dict(tensors)
    model.requires_grad_(False)
    return model.eval()


def count_values(model: MusicnnMSD) -> dict[str, int]:
    """The network's values as TensorFlow counts them.

    Returns
    -------
    dict
        ``trainable`` (kernels, biases, batch-norm scales and offsets),
        ``batch_norm_statistics`` (moving means and variances) and ``total``.
    """
    stats = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    total = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    return {"trainable": int(total - stats), "batch_norm_statistics": int(stats), "total": int(total)}
