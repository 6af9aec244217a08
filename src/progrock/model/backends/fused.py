"""The CPU backend: the seed network's pass as one compiled loop per snippet.

:func:`loss_and_gradients` computes what :meth:`SeedCNN.forward` over a
batch of snippets with given dropout and voting draws, the weighted BCE loss
and ``torch.autograd.grad`` compute (the loss, the logits and every
parameter's gradient), with one numba loop over the snippets (:func:`_pass`):
each snippet is copied out of the songs' frames, then goes through the stem,
the blocks, the head, the vote, the loss and the whole backward pass while its
activations (about 200 KB) are in the core's cache. PyTorch runs each layer
over the whole batch instead, so every activation goes to memory and back,
and each of its many small operations pays its own overhead; for a network
this small that is most of a step. :func:`logits` is the forward half.

Same function as :meth:`SeedCNN.forward` (here the pool comes before the ELU
and the dropout: both are monotone per channel, so the function is the same
with half the element-wise work; the same dropout masks and voting weights
from :meth:`SeedCNN.draw_noise`); ``tests/test_model.py`` compares the
gradients with the plain modules'. The sums run in another order than
PyTorch's, so results agree to float rounding, not bit for bit; the same
inputs give the same result on every run.

Layout inside the loop: channels first, time contiguous (``[C, T]``), so
every inner loop is a multiply-add over a contiguous run of frames that LLVM
vectorises; each layer's activations are kept with ``(K - 1) // 2`` zero
frames before and ``K // 2`` after, the "same" padding of the convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch

from progrock.errors import ConfigError
from progrock.model.backends import cpu_float32
from progrock.model.network import Noise, SeedCNN, output_steps

name = "fused"

# reassociation lets LLVM vectorise the sums over frames; the ELU keeps its steps in order
_FAST = {"reassoc", "contract", "nsz", "arcp"}

# float32 constants: numba would compute with float64 literals in float64
_F0 = np.float32(0.0)
_LOG2E = np.float32(1.4426950408889634)
_LN2 = np.float32(0.6931471805599453)
_ELU_FLOOR = np.float32(-17.5)      # below it exp(z) - 1 rounds to -1 in float32
# Cephes' expf polynomial: exp(r) = 1 + r + r^2 P(r) for |r| <= ln(2) / 2
_P0, _P1, _P2 = np.float32(5.0000001201e-1), np.float32(1.6666665459e-1), np.float32(4.1665795894e-2)
_P3, _P4, _P5 = np.float32(8.3334519073e-3), np.float32(1.3981999507e-3), np.float32(1.9875691500e-4)


@numba.njit(fastmath={"contract"}, cache=True)
def elu(z):
    """ELU of a float32 ``z``: ``z`` above 0, ``exp(z) - 1`` below, without a call to ``expf``.

    ``exp(z) = 2**k * exp(r)`` with ``k = round(z / ln 2)`` and
    ``|r| <= ln(2) / 2``; ``exp(r) - 1`` is Cephes' polynomial, and ``2**k``
    the float whose exponent bits are ``k + 127`` (``z`` is first clamped to
    -17.5, where the result is -1 in float32 anyway, so ``-26 <= k <= 0``).
    Only arithmetic, so LLVM vectorises the loops that call it (8 floats per
    AVX2 instruction); numba's ``np.exp`` is a scalar call per element.
    Within 2 float32 ulps of PyTorch's ELU (``tests/test_model.py``).
    """
    x = max(z, _ELU_FLOOR)
    x = min(x, _F0)
    k = np.floor(x * _LOG2E + np.float32(0.5))
    r = x - k * _LN2
    q = r + r * r * (((((_P5 * r + _P4) * r + _P3) * r + _P2) * r + _P1) * r + _P0)
    s = np.int32((np.int32(k) + np.int32(127)) << np.int32(23)).view(np.float32)   # 2 ** k
    e = s * q + (s - np.float32(1.0))
    return z if z > _F0 else e


@numba.njit(inline="always")
def _add_taps(out, src, w, n):
    """``out[t] += sum_j w[j] * src[t + j]`` for ``t < n``: a correlation with the taps ``w``.

    Five taps per pass over ``out`` (one load and store of ``out`` per five
    multiply-adds instead of one per tap), then the rest one by one.
    """
    k = w.shape[0]
    j = 0
    while j + 5 <= k:
        w0, w1, w2, w3, w4 = w[j], w[j + 1], w[j + 2], w[j + 3], w[j + 4]
        s = src[j:]
        for t in range(n):
            out[t] += w0 * s[t] + w1 * s[t + 1] + w2 * s[t + 2] + w3 * s[t + 3] + w4 * s[t + 4]
        j += 5
    while j < k:
        wj = w[j]
        s = src[j:]
        for t in range(n):
            out[t] += wj * s[t]
        j += 1


@numba.njit(inline="always")
def _add_rows2(out_a, out_b, w_a, w_b, rows, s0, n):
    """``out_a[t] += sum_f w_a[f] * rows[f, s0 + t]``, and the same for ``out_b``, for ``t < n``.

    Two stem channels per pass over the snippet's features, four rows at a
    time: each row is read once for both outputs, and each output loaded and
    stored once per four rows.
    """
    n_f = w_a.shape[0]
    f = 0
    while f + 4 <= n_f:
        r0, r1, r2, r3 = rows[f, s0:s0 + n], rows[f + 1, s0:s0 + n], rows[f + 2, s0:s0 + n], rows[f + 3, s0:s0 + n]
        a0, a1, a2, a3 = w_a[f], w_a[f + 1], w_a[f + 2], w_a[f + 3]
        b0, b1, b2, b3 = w_b[f], w_b[f + 1], w_b[f + 2], w_b[f + 3]
        for t in range(n):
            x0, x1, x2, x3 = r0[t], r1[t], r2[t], r3[t]
            out_a[t] += a0 * x0 + a1 * x1 + a2 * x2 + a3 * x3
            out_b[t] += b0 * x0 + b1 * x1 + b2 * x2 + b3 * x3
        f += 4
    while f < n_f:
        wa, wb = w_a[f], w_b[f]
        r = rows[f, s0:s0 + n]
        for t in range(n):
            out_a[t] += wa * r[t]
            out_b[t] += wb * r[t]
        f += 1


@numba.njit(inline="always")
def _add_products(g, d, src, n):
    """``g[j] += sum_t d[t] * src[t + j]`` for ``t < n``: the taps' gradient, five taps per pass."""
    k = g.shape[0]
    j = 0
    while j + 5 <= k:
        s = src[j:]
        a0 = a1 = a2 = a3 = a4 = _F0
        for t in range(n):
            dt = d[t]
            a0 += dt * s[t]
            a1 += dt * s[t + 1]
            a2 += dt * s[t + 2]
            a3 += dt * s[t + 3]
            a4 += dt * s[t + 4]
        g[j] += a0
        g[j + 1] += a1
        g[j + 2] += a2
        g[j + 3] += a3
        g[j + 4] += a4
        j += 5
    while j < k:
        s = src[j:]
        acc = _F0
        for t in range(n):
            acc += d[t] * s[t]
        g[j] += acc
        j += 1


@numba.njit(inline="always")
def _add_dots2(g_a, g_b, d_a, d_b, rows, s0, n):
    """``g_a[f] += sum_t d_a[t] * rows[f, s0 + t]``, and the same for ``g_b``, for ``t < n``.

    The stem's weight gradient two channels and four rows at a time.
    """
    n_f = g_a.shape[0]
    f = 0
    while f + 4 <= n_f:
        r0, r1, r2, r3 = rows[f, s0:s0 + n], rows[f + 1, s0:s0 + n], rows[f + 2, s0:s0 + n], rows[f + 3, s0:s0 + n]
        a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = _F0
        for t in range(n):
            p, q = d_a[t], d_b[t]
            x0, x1, x2, x3 = r0[t], r1[t], r2[t], r3[t]
            a0 += p * x0
            a1 += p * x1
            a2 += p * x2
            a3 += p * x3
            b0 += q * x0
            b1 += q * x1
            b2 += q * x2
            b3 += q * x3
        g_a[f] += a0
        g_a[f + 1] += a1
        g_a[f + 2] += a2
        g_a[f + 3] += a3
        g_b[f] += b0
        g_b[f + 1] += b1
        g_b[f + 2] += b2
        g_b[f + 3] += b3
        f += 4
    while f < n_f:
        r = rows[f, s0:s0 + n]
        a0 = b0 = _F0
        for t in range(n):
            a0 += d_a[t] * r[t]
            b0 += d_b[t] * r[t]
        g_a[f] += a0
        g_b[f] += b0
        f += 1


@numba.njit(inline="always")
def _mask_in(m0, M, layer, b, ci):
    """The dropout multiplier of block ``layer``'s input channel ``ci`` for snippet ``b``."""
    return m0[b, ci] if layer == 0 else M[layer - 1, b, ci]


@numba.njit(nogil=True, cache=True, fastmath=_FAST)
def _pass(frames, starts, t0, w0, b0, W, B, wh, bh, m0, M, votes, labels, pos_weight, scale, train,
          logits, gw0, gb0, gW, gB, gwh):
    """Forward (and with ``train`` backward) over the snippets ``frames[:, s:s + t0]`` for ``s`` in ``starts``.

    See :func:`loss_and_gradients`.

    Parameters
    ----------
    frames : float32 [F, N_total]
        Songs' feature matrices end to end (:class:`~progrock.data.snippets.SongFrames`).
    starts : int64 [n]
        First frame of each snippet in ``frames``.
    t0 : int
        Frames per snippet.
    w0, b0 : float32 [C0, F], [C0]
        The stem with the normalisation folded in.
    W, B : float32 [n_blocks, C, max(C0, C), K], [n_blocks, C]
        The blocks' convolutions (block 1 reads C0 channels, the others C).
    wh, bh : float32 [C_last], float32
        The head.
    m0, M : float32 [n, C0], [n_blocks, n, C]
        Dropout multipliers (0 or ``1 / (1 - p)``; ones in evaluation).
    votes : float32 [n, S]
        Voting weights, rows summing to 1.
    labels : float64 [n]
    pos_weight, scale : float
        BCE weight of positives; factor of every snippet's loss.
    train : bool
        Whether to compute the loss and the gradients.
    logits : float32 [n]
        Filled.
    gw0, gb0, gW, gB, gwh
        Gradients, shaped like ``w0, b0, W, B, wh``: added into.

    Returns ``(sum of the scaled losses, gradient of the head's bias)``.

    The backward pass needs no pre-activations: for ``r = ELU(z) * m`` (``m``
    0 or ``1 / (1 - p)``) the derivative is ``m`` where ``z > 0`` and
    ``m * exp(z) = r + m`` elsewhere, in all cases ``min(r + m, m)``. A
    dropped channel (``m = 0``) is zeros, so the loops skip it: its outputs,
    its contributions to the next layer and all its gradients are zero.
    """
    n = starts.shape[0]
    n_f = frames.shape[0]
    c0 = w0.shape[0]
    n_blocks, c, _, k = W.shape
    c_last = wh.shape[0]                                      # c, or c0 without blocks
    lp = (k - 1) // 2
    lens = np.empty(n_blocks + 1, np.int64)
    lens[0] = t0
    for layer in range(n_blocks):
        lens[layer + 1] = lens[layer] // 2
    n_s = lens[n_blocks]
    c_ins = np.full(n_blocks, c, np.int64)                    # each block's input channels
    if n_blocks:
        c_ins[0] = c0
    tp = t0 + k - 1
    cmax = max(c0, c)
    act = np.zeros((n_blocks + 1, cmax, tp), np.float32)      # each layer's output, padded
    arg = np.zeros((max(n_blocks, 1), c, max(t0 // 2, 1)), np.uint8)   # which frame each max came from
    conv = np.zeros((c, t0), np.float32)                      # a block's convolution, before the pool
    d_cur = np.zeros((cmax, tp), np.float32)                  # gradient of the current layer's output
    d_prev = np.zeros((cmax, tp), np.float32)
    dz = np.zeros((max(c, c0), t0), np.float32)
    d_pad = np.zeros((c, tp + k - 1), np.float32)             # conv's gradient, zero-padded
    W_rev = np.ascontiguousarray(W[:, :, :, ::-1])
    live = np.empty(c0, np.int64)                              # the stem channels not dropped
    scratch = np.zeros(t0, np.float32)                        # a discarded output of _add_rows2
    g_scratch = np.zeros(n_f, np.float32)                     # and of _add_dots2
    total = 0.0
    g_bias = np.float32(0.0)
    for b in range(n):
        s0 = starts[b]                                  # the snippet is frames[:, s0:s0 + t0], read in place
        # -- stem: kernel-1 convolution, ELU, dropout
        a = act[0]
        n_live = 0
        for ch in range(c0):
            row = a[ch, lp:lp + t0]
            if m0[b, ch] == _F0:                        # dropped: zeros, and no work downstream
                row[:] = _F0
                continue
            live[n_live] = ch
            n_live += 1
            bc = b0[ch]
            for t in range(t0):
                row[t] = bc
        for p in range(0, n_live, 2):
            ca = live[p]
            if p + 1 < n_live:
                cb = live[p + 1]
                _add_rows2(a[ca, lp:lp + t0], a[cb, lp:lp + t0], w0[ca], w0[cb], frames, s0, t0)
            else:                                       # the odd one out: its twin goes to scratch
                _add_rows2(a[ca, lp:lp + t0], scratch, w0[ca], w0[ca], frames, s0, t0)
        for p in range(n_live):
            ch = live[p]
            row = a[ch, lp:lp + t0]
            m = m0[b, ch]
            for t in range(t0):
                row[t] = elu(row[t]) * m
        # -- blocks: "same" convolution, max-pool 2, ELU, dropout
        for layer in range(n_blocks):
            t_out, c_in = lens[layer + 1], c_ins[layer]
            t2 = 2 * t_out
            src, dst = act[layer], act[layer + 1]
            for o in range(c):
                m = M[layer, b, o]
                out = dst[o, lp:lp + t_out]
                if m == _F0:
                    out[:] = _F0
                    continue
                yr = conv[o]
                bo = B[layer, o]
                for t in range(t2):
                    yr[t] = bo
                for ci in range(c_in):
                    if _mask_in(m0, M, layer, b, ci) != _F0:      # a dropped channel adds nothing
                        _add_taps(yr, src[ci], W[layer, o, ci], t2)
                ar = arg[layer, o]
                for t in range(t_out):
                    u = yr[2 * t]
                    v = yr[2 * t + 1]
                    ar[t] = v > u                      # ties: the first, as PyTorch's max-pool
                    out[t] = max(u, v)
                for t in range(t_out):                 # a loop of its own, which LLVM vectorises
                    out[t] = elu(out[t]) * m
        # -- head (kernel-1 convolution to one score per step) and vote
        last = act[n_blocks]
        logit = np.float32(0.0)
        for t in range(n_s):
            s = bh
            for ch in range(c_last):
                s += wh[ch] * last[ch, lp + t]
            logit += votes[b, t] * s
        logits[b] = logit
        if not train:
            continue
        # -- loss: BCE with logits and pos_weight, as PyTorch computes it, and its derivative
        y = labels[b]
        lw = 1.0 + (pos_weight - 1.0) * y
        lg = np.float64(logit)
        total += scale * ((1.0 - y) * lg + lw * (np.log1p(np.exp(-abs(lg))) + max(-lg, 0.0)))
        g = np.float32(scale * ((1.0 - y) - lw / (1.0 + np.exp(lg))))
        # -- backward: head
        for t in range(n_s):
            ds = g * votes[b, t]
            g_bias += ds
            for ch in range(c_last):
                gwh[ch] += ds * last[ch, lp + t]
                d_cur[ch, lp + t] = ds * wh[ch]
        # -- backward: blocks, last first
        for layer in range(n_blocks - 1, -1, -1):
            t_out, c_in = lens[layer + 1], c_ins[layer]
            t2 = 2 * t_out
            src, dst = act[layer], act[layer + 1]
            for o in range(c):
                m = M[layer, b, o]
                if m == _F0:                                 # no gradient through a dropped channel
                    continue
                dy = conv[o]
                ar = arg[layer, o]
                gs = np.float32(0.0)
                for t in range(t_out):
                    r = dst[o, lp + t]
                    dp = d_cur[o, lp + t] * min(r + m, m)      # see below: ELU and dropout
                    gs += dp
                    second = ar[t]
                    dy[2 * t] = _F0 if second else dp
                    dy[2 * t + 1] = dp if second else _F0
                # the same row with k - 1 zeros on both sides, for the input's gradient
                dp_row = d_pad[o]
                for t in range(t2 + 2 * k - 2):
                    dp_row[t] = _F0
                dp_row[k - 1:k - 1 + t2] = dy[:t2]
                gB[layer, o] += gs
                for ci in range(c_in):
                    if _mask_in(m0, M, layer, b, ci) != _F0:      # else its input is all zeros
                        _add_products(gW[layer, o, ci], dy, src[ci], t2)
            # the input's gradient: d[u] = sum_j W[j] dy[u - j], a correlation of the padded dy
            # with the taps reversed
            t_in = lens[layer]
            for ci in range(c_in):
                if _mask_in(m0, M, layer, b, ci) == _F0:          # its gradient is not used
                    continue
                dr = d_prev[ci]
                for t in range(t_in + k - 1):
                    dr[t] = _F0
                for o in range(c):
                    if M[layer, b, o] != _F0:
                        _add_taps(dr, d_pad[o], W_rev[layer, o, ci], t2 + k - 1)
            d_cur, d_prev = d_prev, d_cur
        # -- backward: stem (the input gets no gradient)
        a = act[0]
        for p in range(n_live):
            ch = live[p]
            m = m0[b, ch]
            dzr = dz[ch]
            gs = np.float32(0.0)
            for t in range(t0):
                r = a[ch, lp + t]
                v = d_cur[ch, lp + t] * min(r + m, m)
                dzr[t] = v
                gs += v
            gb0[ch] += gs
        for p in range(0, n_live, 2):
            ca = live[p]
            if p + 1 < n_live:
                cb = live[p + 1]
                _add_dots2(gw0[ca], gw0[cb], dz[ca], dz[cb], frames, s0, t0)
            else:
                _add_dots2(gw0[ca], g_scratch, dz[ca], dz[ca], frames, s0, t0)
    return total, g_bias


@dataclass
class _Weights:
    """The network's parameters as the arrays :func:`_pass` takes (see :func:`_weights`)."""

    w0: np.ndarray          # [C0, F] stem, normalisation folded in
    b0: np.ndarray          # [C0]
    W: np.ndarray           # [n_blocks, C, max(C0, C), K] block convolutions, zero beyond each c_in
    B: np.ndarray           # [n_blocks, C]
    wh: np.ndarray          # [C_last] head
    bh: np.float32
    folded: tuple[torch.Tensor, torch.Tensor]   # the folded stem, attached to the parameters


def _weights(model: SeedCNN) -> _Weights:
    cfg = model.config
    weight, bias = model.folded_stem()
    c_max = max(cfg.stem_channels, cfg.block_channels)
    W = np.zeros((cfg.n_blocks, cfg.block_channels, c_max, cfg.kernel_size), np.float32)
    B = np.zeros((cfg.n_blocks, cfg.block_channels), np.float32)
    for i, block in enumerate(model.blocks):
        w = block.conv.weight.detach().numpy()
        W[i, :, :w.shape[1]] = w
        B[i] = block.conv.bias.detach().numpy()
    return _Weights(w0=weight.detach().squeeze(-1).numpy().copy(), b0=bias.detach().numpy().copy(),
                    W=W, B=B, wh=model.head.weight.detach()[0, :, 0].numpy().copy(),
                    bh=np.float32(model.head.bias.detach()[0]), folded=(weight, bias))


def _check(model: SeedCNN, frames: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Refuse what the unchecked compiled loop cannot take; returns ``starts`` as int64."""
    if not cpu_float32(model):
        raise ConfigError("the fused pass runs float32 models on the CPU only")
    cfg = model.config
    if (frames.dtype != np.float32 or not frames.flags.c_contiguous or frames.ndim != 2
            or frames.shape[0] != cfg.n_features):
        raise ConfigError(f"expected a C-contiguous float32 array [{cfg.n_features}, frames], "
                          f"got {frames.dtype} {frames.shape}")
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    if starts.size and (starts.min() < 0 or starts.max() > frames.shape[1] - cfg.n_frames):
        raise ConfigError(f"snippet start out of range for {frames.shape[1]} frames "
                          f"and snippets of {cfg.n_frames}")
    return starts


def _masks(model: SeedCNN, masks: list[torch.Tensor], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Dropout multipliers as ``[n, C0]`` and ``[n_blocks, n, C]`` arrays (ones without dropout)."""
    cfg = model.config
    if not masks:
        return (np.ones((n, cfg.stem_channels), np.float32),
                np.ones((cfg.n_blocks, n, cfg.block_channels), np.float32))
    m = [np.ascontiguousarray(t.detach().numpy(), dtype=np.float32) for t in masks]
    shapes = [(n, cfg.stem_channels)] + [(n, cfg.block_channels)] * cfg.n_blocks
    if [a.shape for a in m] != shapes:
        raise ConfigError(f"dropout masks {[a.shape for a in m]} do not fit the network ({shapes})")
    blocks = np.stack(m[1:]) if cfg.n_blocks else np.ones((0, n, cfg.block_channels), np.float32)
    return m[0], blocks


def _zero_grads(weights: _Weights) -> tuple[np.ndarray, ...]:
    return (np.zeros_like(weights.w0), np.zeros_like(weights.b0), np.zeros_like(weights.W),
            np.zeros_like(weights.B), np.zeros_like(weights.wh))


def _parameter_grads(model: SeedCNN, weights: _Weights, total: list[np.ndarray]) -> list[torch.Tensor]:
    """The kernel's gradients as one tensor per trainable parameter, in ``model.parameters()`` order."""
    gw0, gb0, gW, gB, gwh, gbh = total
    found: dict[torch.nn.Parameter, torch.Tensor] = {}
    stem = [p for p in (model.normalisation.mean, model.normalisation.log_scale,
                        model.stem.conv.weight, model.stem.conv.bias) if p.requires_grad]
    if stem:                                   # back through the folding of the normalisation
        weight, bias = weights.folded
        found.update(zip(stem, torch.autograd.grad(
            [weight, bias], stem, [torch.from_numpy(gw0)[..., None], torch.from_numpy(gb0)])))
    for i, block in enumerate(model.blocks):
        c_in = block.conv.weight.shape[1]
        found[block.conv.weight] = torch.from_numpy(np.ascontiguousarray(gW[i, :, :c_in]))
        found[block.conv.bias] = torch.from_numpy(gB[i].copy())
    found[model.head.weight] = torch.from_numpy(gwh)[None, :, None].clone()
    found[model.head.bias] = torch.tensor([gbh], dtype=torch.float32)
    return [found[p] for p in model.parameters() if p.requires_grad]


def loss_and_gradients(model: SeedCNN, frames: np.ndarray, starts: np.ndarray, labels: np.ndarray,
                       noise: Noise, *, pos_weight: float | None, scale: float, map_parts=None
                       ) -> tuple[float, list[torch.Tensor], np.ndarray]:
    """Loss, parameter gradients and logits of one training pass over a batch of snippets.

    What ``loss = BCEWithLogits(model(x, noise=noise), labels, pos_weight,
    reduction="sum") * scale`` and ``torch.autograd.grad(loss, params)`` give
    for the snippets ``x[b] = frames[:, starts[b]:starts[b] + n_frames]``.

    Parameters
    ----------
    model : SeedCNN
        On the CPU, float32; its parameters are read, not changed.
    frames : np.ndarray [shape=(n_features, n_total), dtype=float32]
        C-contiguous: the songs' frames end to end (no copy of the batch is made).
    starts : np.ndarray [shape=(B,), dtype=int]
        First frame of each snippet of the batch in ``frames``.
    labels : np.ndarray [shape=(B,)]
        0/1 targets.
    noise : Noise
        The batch's dropout masks and voting weights (:meth:`SeedCNN.draw_noise`).
    pos_weight : float or None
        BCE weight of positive snippets.
    scale : float
        Factor of the summed loss (``1 / batch size`` for the batch's mean).
    map_parts : callable, optional
        ``map_parts(fn, n) -> [fn(k, rows) for each part]`` running the parts
        in parallel (:meth:`progrock.training.threads.BatchThreads.map`); the
        parts' gradients are added in part order. Default: one part.

    Returns
    -------
    loss : float
    grads : list of torch.Tensor
        One per parameter of ``model`` that requires a gradient, in ``model.parameters()`` order.
    logits : np.ndarray [shape=(B,), dtype=float32]
    """
    starts = _check(model, frames, starts)
    n = len(starts)
    weights = _weights(model)
    m0, M = _masks(model, noise.masks, n)
    votes = noise.votes.detach().numpy()
    y = np.ascontiguousarray(labels, dtype=np.float64)
    if y.shape != (n,) or votes.shape != (n, output_steps(model.config)):
        raise ConfigError(f"labels {y.shape} and voting weights {votes.shape} do not fit a batch "
                          f"of {n} snippets")
    pw = 1.0 if pos_weight is None else float(pos_weight)
    logits = np.empty(n, np.float32)
    t0 = model.config.n_frames

    def part(_k: int, rows: slice):
        grads = _zero_grads(weights)
        loss, g_bh = _pass(frames, starts[rows], t0, weights.w0, weights.b0, weights.W, weights.B, weights.wh,
                           weights.bh, m0[rows], np.ascontiguousarray(M[:, rows]),
                           np.ascontiguousarray(votes[rows]), y[rows], pw, scale, True, logits[rows], *grads)
        return loss, grads + (np.float32(g_bh),)

    results = map_parts(part, n) if map_parts is not None else [part(0, slice(0, n))]
    g = [r[1] for r in results]
    total = [sum((gi[j] for gi in g[1:]), g[0][j]) for j in range(len(g[0]))]
    return float(sum(r[0] for r in results)), _parameter_grads(model, weights, total), logits


def logits(model: SeedCNN, frames: np.ndarray, starts: np.ndarray, *, map_parts=None) -> np.ndarray:
    """Evaluation-mode logits of the snippets ``frames[:, s:s + n_frames]``, ``s`` in ``starts``.

    What :meth:`SeedCNN.forward` gives in evaluation mode (no dropout,
    plain-mean vote), from the forward half of :func:`_pass`.
    ``map_parts``: as in :func:`loss_and_gradients`.

    Returns
    -------
    np.ndarray [shape=(len(starts),), dtype=float32]
    """
    starts = _check(model, frames, starts)
    n = len(starts)
    with torch.no_grad():                      # no gradient: no graph of the folded stem
        weights = _weights(model)
    steps = output_steps(model.config)
    out = np.empty(n, np.float32)
    no_grads = _zero_grads(weights)

    def part(_k: int, rows: slice):
        k = rows.stop - rows.start
        m0, M = _masks(model, [], k)
        votes = np.full((k, steps), 1.0 / steps, np.float32)
        _pass(frames, starts[rows], model.config.n_frames, weights.w0, weights.b0, weights.W, weights.B,
              weights.wh, weights.bh, m0, M, votes, np.zeros(k), 1.0, 1.0, False, out[rows], *no_grads)

    if map_parts is not None:
        map_parts(part, n)
    else:
        part(0, slice(0, n))
    return out
