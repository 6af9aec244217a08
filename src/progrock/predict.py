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
from progrock.features import compute_features
from progrock.engines import Engine, LocalEngine
from progrock.features.store import FeatureStore, cached_features, extract_file
from progrock.model.checkpoint import LoadedModel


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


def _song_job(args: tuple[str, str | None, tuple[str, str] | LoadedModel]) -> tuple[SongPrediction | None, str]:
    """Features and verdict of one file (in a worker; the same function for every engine).

    ``args`` is ``(path, cache folder or None, model)``, the model as ``(model.json
    path, weights SHA-256)`` that each worker process loads once. Returns
    ``(prediction, "")`` or ``(None, reason)``: a bad file is a value, never an
    exception, so no engine retries it.
    """
    path, cache, ref = args
    try:
        model = _worker_model(ref)
        if cache:
            x, _, _ = cached_features(path, FeatureStore(cache, model.feature_config))
        else:
            x, _ = extract_file(path, model.feature_config)
        return classify_features(model, x, name=path), ""
    except ProgrockError as exc:
        return None, getattr(exc, "reason", str(exc))
    except Exception as exc:  # noqa: BLE001 - one file must not stop a batch
        return None, f"unexpected {type(exc).__name__}: {exc}"


_MODELS: dict[tuple[str, str], LoadedModel] = {}
_ONE_THREAD_PID = 0


def _weights_sha256(model: LoadedModel) -> str:
    return str(model.metadata.get("weights", {}).get("sha256", ""))


def _model_ref(model: LoadedModel) -> tuple[str, str] | LoadedModel:
    """How a job names the model: its files (loaded once per worker), else the model itself."""
    if model.path is None:
        return model
    ref = (str(Path(model.path).resolve()), _weights_sha256(model))
    _MODELS[ref] = model  # this process (and forked workers) need not load it again
    return ref


def _worker_model(ref: tuple[str, str] | LoadedModel) -> LoadedModel:
    """The model of a job; in a worker process torch runs on one thread (one song per process)."""
    global _ONE_THREAD_PID
    import multiprocessing

    if multiprocessing.parent_process() is not None and _ONE_THREAD_PID != os.getpid():
        import torch

        torch.set_num_threads(1)
        _ONE_THREAD_PID = os.getpid()
    if isinstance(ref, LoadedModel):
        return ref
    model = _MODELS.get(ref)
    if model is None:
        from progrock.errors import ModelError
        from progrock.model.checkpoint import load_model

        model = load_model(ref[0])
        if _weights_sha256(model) != ref[1]:
            raise ModelError(f"{ref[0]}: the model on this worker differs from the client's")
        _MODELS.clear()
        _MODELS[ref] = model
    return model


def classify_file(model: LoadedModel, path: str | os.PathLike, *, name: str | None = None) -> SongPrediction:
    """Verdict on one audio file; raises a :class:`ProgrockError` naming it if it cannot be read."""
    x, _ = extract_file(path, model.feature_config)
    return classify_features(model, x, name=name or str(path))


def classify_files(model: LoadedModel, paths: Sequence[str | os.PathLike], *, jobs: int = 1,
                   cache: str | os.PathLike | None = None,
                   progress: Callable[[int], None] | None = None,
                   engine: Engine | None = None, ordered: bool = True
                   ) -> Iterator[tuple[str, SongPrediction | None, str]]:
    """Verdicts on many files, each file's features and verdict in a worker.

    Runs in ``jobs`` local processes, or on ``engine`` (see :mod:`progrock.engines`;
    on a cluster the files, the model's folder and the cache must be on storage
    every worker sees). ``ordered=False`` yields each song as it finishes.

    Yields
    ------
    (path, prediction, "") or (path, None, reason)
        A file that cannot be decoded or is too short is reported with its
        reason and the others go on.
    """
    ref = _model_ref(model)
    args = [(str(p), str(cache) if cache else None, ref) for p in paths]
    engine = engine or LocalEngine(jobs)
    kw = dict(progress=progress, on_error=lambda item, reason: (None, reason))
    results = (enumerate(engine.map_ordered(_song_job, args, **kw)) if ordered
               else engine.map_unordered(_song_job, args, **kw))
    for i, (pred, reason) in results:
        yield args[i][0], pred, reason


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files named directly plus the audio files found in folders.

    Returns
    -------
    files : list of Path
    missing : list of (path, reason)
        Inputs that do not exist, folders without audio files, and folders
        (or sub-folders) that cannot be read.
    """
    from progrock.audio import find_audio_files

    files, missing = [], []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            skipped: list[tuple[str, str]] = []
            found = find_audio_files(p, skipped=skipped)
            missing.extend(skipped)
            if not found and not skipped:  # e.g. a folder named like a song: say so rather than print nothing
                missing.append((str(p), "a folder without audio files"))
            files.extend(found)
        elif os.path.lexists(p):
            files.append(p)
        else:
            missing.append((str(p), "no such file or folder"))
    return files, missing
