"""A song's structure as a small inline SVG, to sit beside its snippet barcode.

Three lanes on one time axis, from :func:`progrock.features.structure.song_timeline`:

* sections, shaded by loudness (darker = louder), boundaries as white gaps;
* key per analysis window, coloured round the circle of fifths (minor keys
  darker), a tick where the key settles on a new one;
* tempo per window as a line (log scale, 60-240 BPM), over a background
  that turns amber where the metre reads odd (evidence, not the prog colour).

Every stretch has a tooltip (``<title>``); no external assets.
:func:`song_timelines` analyses many songs for a report.
"""

from __future__ import annotations

import colorsys
import html

import numpy as np


_BPM_RANGE = (60.0, 240.0)


def _clock(t: float) -> str:
    return f"{int(t // 60)}:{int(t % 60):02d}"


def window_spans(times: np.ndarray, duration: float) -> list[tuple[float, float]]:
    """(start, end) in seconds of the stretch each window centre owns: half-way to its neighbours."""
    t = np.asarray(times, dtype=float)
    if len(t) == 0:
        return []
    edges = np.concatenate([[0.0], (t[1:] + t[:-1]) / 2.0, [max(duration, float(t[-1]))]])
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]


def key_colour(key: int) -> str:
    """Hex colour of a key index (0-11 major C..B, 12-23 minor): hue round the circle of fifths."""
    tonic, minor = int(key) % 12, int(key) >= 12
    hue = ((tonic * 7) % 12) / 12.0
    r, g, b = colorsys.hls_to_rgb(hue, 0.42 if minor else 0.62, 0.55)
    return "#{:02x}{:02x}{:02x}".format(round(r * 255), round(g * 255), round(b * 255))


def loudness_grey(db: float, loudest: float, *, floor_db: float = 30.0) -> str:
    """Grey of a section: black at the song's loudest level, pale ``floor_db`` below it."""
    v = float(np.clip((loudest - db) / floor_db, 0.0, 1.0))
    level = round(70 + v * (225 - 70))
    return f"#{level:02x}{level:02x}{level:02x}"


def _rect(x0: float, x1: float, y: float, h: float, fill: str, tip: str) -> str:
    return (f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0, 0.8):.1f}" height="{h:.1f}" fill="{fill}">'
            f'<title>{html.escape(tip)}</title></rect>')


def _sections_lane(tl: dict, x, y: float, h: float) -> list[str]:
    db = np.asarray(tl["section_db"], dtype=float)
    loudest = float(db.max()) if len(db) else 0.0
    out = []
    for i, (a, b, d) in enumerate(zip(tl["section_starts"], tl["section_ends"], db)):
        gap = 1.0 if i else 0.0
        out.append(_rect(x(a) + gap, x(b), y, h, loudness_grey(d, loudest),
                         f"section {i + 1}: {_clock(a)}–{_clock(b)}, {d:.1f} dB"))
    return out


def _key_lane(tl: dict, x, y: float, h: float, duration: float) -> list[str]:
    out = []
    spans = window_spans(tl["key_times"], duration)
    for (a, b), k, name, c in zip(spans, tl["keys"], tl["key_names"], tl["key_clarity"]):
        tip = f"{_clock(a)}–{_clock(b)}  {name} (clarity {c:.2f})"
        out.append(_rect(x(a), x(b), y, h, key_colour(k), tip))
    for t in tl["key_change_times"]:
        out.append(f'<line x1="{x(t):.1f}" y1="{y - 1:.1f}" x2="{x(t):.1f}" y2="{y + h + 1:.1f}" '
                   f'stroke="#212529" stroke-width="1.2"><title>key change at {_clock(t)}</title></line>')
    return out


def _odd_colour(odd: float) -> str:
    """Odd-metre strength 0..1 as a fill from the page's grey to amber (not the prog scale: it is
    evidence, not a verdict)."""
    lo, hi = np.array([0xf1, 0xf3, 0xf5]), np.array([0xf0, 0x8c, 0x00])
    r, g, b = (lo + float(np.clip(odd, 0.0, 1.0)) * (hi - lo)).round().astype(int)
    return f"#{r:02x}{g:02x}{b:02x}"


def _tempo_lane(tl: dict, x, y: float, h: float, duration: float) -> list[str]:
    out, points = [], []
    lo, hi = np.log2(_BPM_RANGE[0]), np.log2(_BPM_RANGE[1])
    spans = window_spans(tl["tempo_times"], duration)
    for (a, b), t, bpm, odd in zip(spans, tl["tempo_times"], tl["tempo_bpm"], tl["odd_metre"]):
        out.append(_rect(x(a), x(b), y, h, _odd_colour(odd),
                         f"{_clock(a)}–{_clock(b)}  {bpm:.0f} BPM, odd metre {odd:.2f}"))
        v = float(np.clip((np.log2(max(bpm, 1e-6)) - lo) / (hi - lo), 0.0, 1.0))
        points.append(f"{x(t):.1f},{y + h - v * h:.1f}")
    if len(points) == 1:
        points = [f"{x(0.0):.1f},{points[0].split(',')[1]}", f"{x(duration):.1f},{points[0].split(',')[1]}"]
    if points:
        out.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#212529" stroke-width="1"/>')
    return out


def structure_svg(timeline: dict, *, width: int = 260, lane_height: int = 7) -> str:
    """An inline SVG of a song's sections, keys and tempo; hovering a stretch shows its values.

    Parameters
    ----------
    timeline : dict
        From :func:`progrock.features.structure.song_timeline`.
    width : int
        Width in pixels (the barcode's default, so the two line up).
    lane_height : int
        Height of each of the three lanes, in pixels.

    Returns
    -------
    str
        An ``<svg class="structure">`` element.
    """
    duration = max(float(timeline["duration"]), 1e-6)
    gap = 2
    height = 3 * lane_height + 2 * gap

    def x(t: float) -> float:
        return float(np.clip(t, 0.0, duration)) / duration * width

    parts = [f'<svg class="structure" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="sections, keys and tempo along the song">',
             f'<rect width="{width}" height="{height}" fill="#f8f9fa"/>']
    parts += _sections_lane(timeline, x, 0, lane_height)
    parts += _key_lane(timeline, x, lane_height + gap, lane_height, duration)
    parts += _tempo_lane(timeline, x, 2 * (lane_height + gap), lane_height, duration)
    parts.append("</svg>")
    return "".join(parts)


def song_timelines(features: dict[str, np.ndarray], *, frame_rate: float) -> dict[str, dict]:
    """The timeline of each song, for :func:`structure_svg`; a song the analysis refuses is left out.

    Parameters
    ----------
    features : dict
        Song name -> its ``seed43`` matrix ``np.ndarray [shape=(43, n_frames)]``.
    frame_rate : float
        Frames per second of the matrices.

    Returns
    -------
    dict
        Song name -> :func:`progrock.features.structure.song_timeline`.
    """
    from progrock.errors import ProgrockError
    from progrock.features.structure import song_timeline

    out = {}
    for name, x in features.items():
        try:
            out[name] = song_timeline(x, frame_rate=frame_rate)
        except (ProgrockError, ValueError):
            continue
    return out
