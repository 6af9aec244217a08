"""The seed's "barcode": a song's snippet probabilities as a strip along its timeline.

Each snippet owns the stretch from its start to the next snippet's start (the
last one its full length), coloured from nonprog (pale) to prog (dark), so
overlapping snippets do not hide each other. Three renderings: SVG for pages
(with a time axis: :func:`time_marks`), text for terminals, PNG for files.

The colour scale runs from a mid blue (p = 0) to a deep purple (p = 1),
darker meaning more prog. Its low end is a clear colour, so a snippet the
model calls surely not prog never looks like the page behind it or like the
stretches where no snippet starts. The web page (``serve/static/barcode.js``)
uses the same two ends and the same rounding.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from progrock.constants import SNIPPET_SECONDS

_LOW = np.array([122, 165, 214])    # p = 0, nonprog: mid blue (#7aa5d6; contrast 2.6 on white)
_HIGH = np.array([88, 28, 135])     # p = 1, prog: deep purple (#581c87)
_BLOCKS = "▁▂▃▄▅▆▇█"          # a sparkline: p = 0 is a low bar, never a blank that reads as missing


def colour(p: float) -> str:
    """Hex colour of a prog probability ``p`` in [0, 1]: linear in RGB from ``_LOW`` to ``_HIGH``.

    Values outside [0, 1] are clipped; channels are rounded half to even (numpy's rule).
    """
    c = (_LOW + (_HIGH - _LOW) * float(np.clip(p, 0, 1))).round().astype(int)
    return "#{:02x}{:02x}{:02x}".format(*c)


def segments(starts: list[float], duration: float, snippet_seconds: float = SNIPPET_SECONDS
             ) -> list[tuple[float, float]]:
    """(start, end) in seconds of the stretch each snippet owns on the timeline."""
    s = [float(x) for x in starts]
    ends = s[1:] + [s[-1] + snippet_seconds] if s else []
    end_of_song = max(duration, ends[-1] if ends else 0.0)
    return [(a, min(b, end_of_song)) for a, b in zip(s, ends)]


def _clock(t: float) -> str:
    return f"{int(t // 60)}:{int(t % 60):02d}"


MARK_STEPS = (10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)
"""Candidate spacings of the time axis' marks, in seconds."""

MAX_MARKS = 8
"""Most marks after 0:00 on a time axis: the smallest step of :data:`MARK_STEPS` that keeps to it."""

AXIS_HEIGHT = 12
"""Pixels under the strip for the time axis' ticks and labels."""


def time_marks(total: float) -> list[float]:
    """Times in seconds of the axis marks of a timeline ``total`` seconds long, from 0.

    Whole minutes for songs of 2 to 8 minutes; 10, 15 or 30 s for shorter
    ones, 2, 5, 10 or 20 minutes for longer ones (at most :data:`MAX_MARKS` after 0).
    """
    total = max(float(total), 0.0)
    step = next((s for s in MARK_STEPS if total / s <= MAX_MARKS), MARK_STEPS[-1])
    return [i * step for i in range(int(total // step + 1e-9) + 1)]


def axis_svg(total: float, *, width: int, y: float) -> str:
    """SVG elements of a time axis under a strip: a tick and an ``m:ss`` label per :func:`time_marks`."""
    parts = ['<g class="axis" font-size="8" fill="#52606d">']
    for t in time_marks(total):
        x = t / max(total, 1e-6) * width
        anchor = "start" if x < 8 else "end" if x > width - 8 else "middle"
        parts.append(f'<line class="tick" x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y + 3:.1f}" '
                     f'stroke="#7b8794" stroke-width="1"/>'
                     f'<text class="tick-label" x="{x:.1f}" y="{y + AXIS_HEIGHT - 1:.1f}" '
                     f'text-anchor="{anchor}">{_clock(t)}</text>')
    parts.append("</g>")
    return "".join(parts)


def barcode_svg(starts: list[float], probs: list[float], duration: float, *, width: int = 260,
                height: int = 18, snippet_seconds: float = SNIPPET_SECONDS, axis: bool = True) -> str:
    """An inline SVG strip; hovering a stretch shows its time and probability.

    Parameters
    ----------
    starts : list of float
        Start of each snippet, in seconds.
    probs : list of float
        Probability of prog of each snippet.
    duration : float
        The song's length, in seconds.
    width, height : int
        Size of the strip in pixels (the axis adds :data:`AXIS_HEIGHT` below it).
    snippet_seconds : float
        Length of one snippet, in seconds.
    axis : bool
        Draw a time axis under the strip (:func:`time_marks`).
    """
    total = max(duration, (starts[-1] + snippet_seconds) if len(starts) else 1.0, 1e-6)
    full = height + (AXIS_HEIGHT if axis else 0)
    parts = [f'<svg class="barcode" width="{width}" height="{full}" viewBox="0 0 {width} {full}" '
             f'role="img" aria-label="snippet probabilities along the song">',
             f'<rect width="{width}" height="{height}" fill="#f8f9fa"/>']
    for (a, b), p in zip(segments(starts, total, snippet_seconds), probs):
        x, w = a / total * width, max((b - a) / total * width, 0.8)
        tip = html.escape(f"{_clock(a)}–{_clock(a + snippet_seconds)}  p(prog) = {p:.2f}")
        parts.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" fill="{colour(p)}">'
                     f'<title>{tip}</title></rect>')
    if axis:
        parts.append(axis_svg(total, width=width, y=height))
    parts.append("</svg>")
    return "".join(parts)


def barcode_text(probs: list[float], *, width: int = 40) -> str:
    """A compact strip for terminals: one bar per cell, its height the cell's mean probability of prog
    (``▁`` for 0 up to ``█`` for 1)."""
    if not len(probs):
        return ""
    p = np.asarray(probs, dtype=float)
    cells = np.array_split(p, min(width, len(p)))
    return "".join(_BLOCKS[int(round(np.clip(c.mean(), 0, 1) * (len(_BLOCKS) - 1)))] for c in cells)


def barcode_png(starts: list[float], probs: list[float], duration: float, path: str | os.PathLike, *,
                title: str = "", snippet_seconds: float = SNIPPET_SECONDS) -> Path:
    """Write the barcode as a PNG with a time axis."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    total = max(duration, (starts[-1] + snippet_seconds) if len(starts) else 1.0)
    fig = Figure(figsize=(8, 1.3), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for (a, b), p in zip(segments(starts, total, snippet_seconds), probs):
        ax.add_patch(Rectangle((a, 0), b - a, 1, color=colour(p)))
    ax.set_xlim(0, total)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_xlabel("time (s)")
    ax.set_title(title or "p(prog) per snippet", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
