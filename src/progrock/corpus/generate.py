"""Write the synthetic demo corpus: ``prog/`` and ``nonprog/`` folders plus ``corpus.json``.

Song ``i`` is planned from its own generator,
``SeedSequence(seed, spawn_key=(1, i))``, so a song does not depend on how many
songs come before it or on which process renders it. Corpus-level choices
(which songs are prog, which labels are flipped) use ``spawn_key=(0,)`` and the
file tags ``spawn_key=(2, i)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from progrock.atomic import atomic_write_json
from progrock.audio import FORMATS, write_audio
from progrock.constants import SR
from progrock.corpus.song import SongPlan, plan_song, synthesize_song
from progrock.errors import ProgrockError
from progrock.parallel.engines import LocalEngine

DEFAULT_FORMATS: tuple[str, ...] = ("mp3", "flac", "ogg", "opus", "wav", "aiff", "m4a")
"""Formats cycled over the songs, by song index (hence independent of the label)."""

FLIP_RATE: float = 0.08
"""Share of folder labels flipped at ``difficulty=1`` (scaled linearly below)."""

CORPUS_VERSION: int = 1
"""Version of the ``corpus.json`` layout."""

_GENRES = ("Rock", "Pop", "Progressive Rock", "Alternative", "Prog", "Indie", "Classic Rock",
           "Art Rock", "Pop Rock", "Symphonic Rock", "Other")
_SYLLABLES = ("ar", "ven", "tal", "mo", "ri", "kon", "sel", "dra", "mi", "lo", "thu", "ne",
              "gar", "o", "pha", "rin")


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _tags(rng: np.random.Generator, index: int) -> dict[str, str]:
    """Plausible but label-blind tags: the genre is drawn the same way for every song."""
    def word(k):
        return "".join(rng.choice(_SYLLABLES, size=k)).capitalize()

    return {"title": f"{word(2)} {word(int(rng.integers(1, 3)))}",
            "artist": f"The {word(2)}s" if rng.random() < 0.5 else f"{word(2)} {word(3)}",
            "album": word(3), "genre": str(rng.choice(_GENRES)),
            "date": str(int(rng.integers(1967, 2024))), "tracknumber": str(index % 12 + 1),
            "comment": "synthetic demo corpus"}


def plan_corpus(*, n_songs: int = 60, seed: int = 0, difficulty: float = 0.3,
                prog_fraction: float = 0.3, duration_scale: float = 1.0,
                formats: Sequence[str] = DEFAULT_FORMATS) -> list[dict]:
    """Plan every song of a corpus without rendering audio.

    Parameters are those of :func:`generate_corpus`.

    Returns
    -------
    list of dict
        Per song, in index order: ``index``, ``name``, ``format``, ``file`` (path
        relative to the corpus folder), ``label`` (the folder, possibly flipped),
        ``true_label``, ``flipped``, ``tags`` and ``plan`` (a :class:`SongPlan`).
    """
    if n_songs < 1:
        raise ProgrockError(f"n_songs must be at least 1, not {n_songs}")
    if not 0.0 <= prog_fraction <= 1.0:
        raise ProgrockError(f"prog_fraction must lie in [0, 1], not {prog_fraction}")
    if not 0.0 <= difficulty <= 1.0:
        raise ProgrockError(f"difficulty must lie in [0, 1], not {difficulty}")
    formats = [str(f).lower().lstrip(".") for f in formats]
    unknown = sorted(set(formats) - set(FORMATS))
    if not formats or unknown:
        raise ProgrockError(f"unknown formats {unknown or formats}; known: {sorted(FORMATS)}")
    corpus_rng = _rng(seed, 0)
    n_prog = int(round(prog_fraction * n_songs))
    labels = np.array(["prog"] * n_prog + ["nonprog"] * (n_songs - n_prog))[
        corpus_rng.permutation(n_songs)]
    n_flip = int(round(difficulty * FLIP_RATE * n_songs))
    flipped = np.zeros(n_songs, dtype=bool)
    flipped[corpus_rng.choice(n_songs, size=n_flip, replace=False)] = True
    entries = []
    for i in range(n_songs):
        true_label = str(labels[i])
        plan = plan_song(true_label, _rng(seed, 1, i), difficulty=difficulty,
                         duration_scale=duration_scale)
        label = ({"prog": "nonprog", "nonprog": "prog"}[true_label] if flipped[i] else true_label)
        fmt = formats[i % len(formats)]
        name = f"song_{i:04d}"
        entries.append({"index": i, "name": name, "format": fmt,
                        "file": f"{label}/{name}.{fmt}", "label": label,
                        "true_label": true_label, "flipped": bool(flipped[i]),
                        "tags": _tags(_rng(seed, 2, i), i), "plan": plan})
    return entries


def _render_one(task: tuple[dict, str, dict, int]) -> dict:
    """Render and write one song, ``task = (plan, path, tags, sr)`` (in a worker process when ``jobs > 1``)."""
    plan, path, tags, sr = task
    y = synthesize_song(SongPlan.from_dict(plan), sr=sr)
    write_audio(path, y, sr, tags=tags)
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    return {"n_samples": int(y.size), "rms_dbfs": round(20 * np.log10(max(rms, 1e-12)), 3)}


def remove_corpus(out_dir: str | os.PathLike) -> None:
    """Delete a corpus written by :func:`generate_corpus`: ``prog/``, ``nonprog/`` and ``corpus.json``.

    Nothing else in ``out_dir`` is touched (a manifest written by ``scan`` stays).
    """
    import shutil

    out = Path(out_dir)
    for name in ("prog", "nonprog"):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
    (out / "corpus.json").unlink(missing_ok=True)


def generate_corpus(out_dir: str | os.PathLike, *, n_songs: int = 60, seed: int = 0,
                    difficulty: float = 0.3, prog_fraction: float = 0.3,
                    duration_scale: float = 1.0, formats: Sequence[str] = DEFAULT_FORMATS,
                    jobs: int = 1, progress: Callable[[int], None] | None = None) -> list[dict]:
    """Synthesise a labelled demo corpus.

    Writes ``out_dir/prog/song_NNNN.<ext>`` and ``out_dir/nonprog/song_NNNN.<ext>``
    (the folder is the label, the file name says nothing) and ``out_dir/corpus.json``
    with the seed, the settings and every song's plan: ground truth for
    documentation and measurement, never read by the classifier.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Corpus folder (created; files of the same names are overwritten).
    n_songs : int
        Number of songs.
    seed : int
        Master seed: the same seed and settings give identical plans and audio.
    difficulty : float
        In [0, 1]: class overlap and the share of flipped folder labels
        (``difficulty * 8 %``).
    prog_fraction : float
        Share of songs that are musically prog (rounded to whole songs).
    duration_scale : float
        Multiplies every song's drawn length (songs never go below 24 s).
    formats : sequence of str
        File formats, cycled by song index: any of :data:`progrock.audio.FORMATS`.
    jobs : int
        Worker processes; the output does not depend on it.
    progress : callable, optional
        Called with ``1`` after each written song.

    Returns
    -------
    list of dict
        One per song, as recorded in ``corpus.json`` (with ``plan`` as a dict and
        ``summary`` facts: duration, meters, tempi, keyboards...), plus ``path``,
        the absolute file path.
    """
    out = Path(out_dir)
    entries = plan_corpus(n_songs=n_songs, seed=seed, difficulty=difficulty,
                          prog_fraction=prog_fraction, duration_scale=duration_scale,
                          formats=formats)
    out.mkdir(parents=True, exist_ok=True)
    for e in entries:
        e["plan"] = e["plan"].to_dict()
        e["path"] = str((out / e["file"]).resolve())
    tasks = [(e["plan"], e["path"], e["tags"], SR) for e in entries]
    with LocalEngine(jobs) as engine:
        results = dict(engine.map_unordered(_render_one, tasks, progress=progress))
    songs = []
    for e in entries:
        r = results[e["index"]]
        summary = e["plan"]["summary"]
        songs.append({**{k: e[k] for k in ("index", "name", "file", "format", "label",
                                           "true_label", "flipped", "tags")},
                      "duration": round(r["n_samples"] / SR, 3), "rms_dbfs": r["rms_dbfs"],
                      **{k: summary[k] for k in ("n_sections", "mean_tempo", "tempo_changes",
                                                 "key_changes", "meters", "keyboards")},
                      "plan": e["plan"], "path": e["path"]})
    record = {"generator": "progrock.corpus", "version": CORPUS_VERSION, "seed": seed,
              "settings": {"n_songs": n_songs, "difficulty": difficulty,
                           "prog_fraction": prog_fraction, "duration_scale": duration_scale,
                           "formats": list(formats), "sr": SR},
              "songs": [{k: v for k, v in s.items() if k != "path"} for s in songs]}
    atomic_write_json(out / "corpus.json", record, indent=1)
    return songs
