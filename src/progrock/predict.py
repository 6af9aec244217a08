"""Classify a person's own songs: array → file → many files.

The CLI's ``predict`` and the web page call these functions. A song's verdict
is the seed's snippet vote with the model's stored threshold; the evidence is
the probability of every snippet along the song (the barcode).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from progrock.constants import CLASSES
from progrock.errors import ProgrockError
from progrock.evaluation.verdict import song_verdict
from progrock.features import FeatureConfig, compute_features
from progrock.features.store import FeatureStore, extract_file
from progrock.model.checkpoint import LoadedModel
from progrock.parallel import map_files


@dataclass
class SongPrediction:
    """The verdict on one song, with its evidence.

    Attributes
    ----------
    path : str
    label : str
        ``"prog"`` or ``"nonprog"``.
    probability : float
        Mean probability of prog over the snippets.
    vote_fraction : float
        Share of snippets with ``p >= threshold``; ``>= 0.5`` makes the song prog.
    n_snippets : int
    duration : float
        Seconds.
    snippet_starts : list of float
        Start of each snippet in seconds.
    snippet_probs : list of float
        Probability of prog of each snippet.
    threshold : float
        The model's snippet threshold.
    """

    path: str
    label: str
    probability: float
    vote_fraction: float
    n_snippets: int
    duration: float
    snippet_starts: list[float] = field(default_factory=list)
    snippet_probs: list[float] = field(default_factory=list)
    threshold: float = 0.5

    @property
    def is_prog(self) -> bool:
        return self.label == "prog"

    def to_dict(self) -> dict:
        """Stable keys for JSON output."""
        return asdict(self)


def classify_features(model: LoadedModel, features: np.ndarray, *, name: str = "<array>",
                      duration: float | None = None) -> SongPrediction:
    """Verdict on one song's feature matrix [n_features, n_frames]."""
    from progrock.data.snippets import song_snippets

    snips, starts = song_snippets(features, model.snippet_config, None, name=name)
    probs = model.predict_proba(snips)
    v = song_verdict(probs, threshold=model.threshold, rule="vote")
    fr = model.snippet_config.frame_rate
    return SongPrediction(
        path=name, label=CLASSES[int(v.is_prog)], probability=round(v.probability, 4),
        vote_fraction=round(v.vote_fraction, 4), n_snippets=v.n_snippets,
        duration=round(duration if duration is not None else features.shape[1] / fr, 2),
        snippet_starts=[round(float(s) / fr, 2) for s in starts],
        snippet_probs=[round(float(p), 4) for p in probs], threshold=model.threshold)


def classify_array(model: LoadedModel, y: np.ndarray, sr: int, *, name: str = "<array>") -> SongPrediction:
    """Verdict on a mono signal ``y`` [n_samples] at ``sr`` (must be the model's rate)."""
    if sr != model.feature_config.sr:
        raise ProgrockError(f"{name}: audio at {sr} Hz, the model expects {model.feature_config.sr} Hz")
    return classify_features(model, compute_features(np.asarray(y, dtype=np.float32), model.feature_config),
                             name=name, duration=len(y) / sr)


def _features_job(args: tuple[str, dict, str | None]) -> tuple[np.ndarray | None, str]:
    """Features of one file (in a worker): ``(features, "")`` or ``(None, reason)``."""
    path, cfg, cache = args
    config = FeatureConfig.from_dict(cfg)
    try:
        x, h = extract_file(path, config)
        if cache:
            store = FeatureStore(cache, config)
            if h not in store:
                store.put(h, x)
        return x, ""
    except ProgrockError as exc:
        return None, getattr(exc, "reason", str(exc))
    except Exception as exc:  # noqa: BLE001 - one file must not stop a batch
        return None, f"unexpected {type(exc).__name__}: {exc}"


def classify_file(model: LoadedModel, path: str | os.PathLike, *, name: str | None = None) -> SongPrediction:
    """Verdict on one audio file; raises a :class:`ProgrockError` naming it if it cannot be read."""
    x, _ = extract_file(path, model.feature_config)
    return classify_features(model, x, name=name or str(path))


def classify_files(model: LoadedModel, paths: Sequence[str | os.PathLike], *, jobs: int = 1,
                   cache: str | os.PathLike | None = None,
                   progress: Callable[[int], None] | None = None
                   ) -> Iterator[tuple[str, SongPrediction | None, str]]:
    """Verdicts on many files, features in ``jobs`` processes, in the order given.

    Yields
    ------
    (path, prediction, "") or (path, None, reason)
        A file that cannot be decoded or is too short is reported with its
        reason and the others go on.
    """
    args = [(str(p), model.feature_config.to_dict(), str(cache) if cache else None) for p in paths]
    for (path, _, _), (x, reason) in zip(args, map_files(_features_job, args, jobs=jobs, progress=progress)):
        if x is None:
            yield path, None, reason
            continue
        try:
            yield path, classify_features(model, x, name=path), ""
        except ProgrockError as exc:
            yield path, None, getattr(exc, "reason", str(exc))


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files named directly plus the audio files found in folders.

    Returns
    -------
    files : list of Path
    missing : list of (path, reason)
        Inputs that do not exist, and folders without audio files.
    """
    from progrock.audio import find_audio_files

    files, missing = [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = find_audio_files(p)
            if not found:  # e.g. a folder named like a song: say so rather than print nothing
                missing.append((str(p), "a folder without audio files"))
            files.extend(found)
        elif os.path.lexists(p):
            files.append(p)
        else:
            missing.append((str(p), "no such file or folder"))
    return files, missing
