"""Classify a person's own songs: array → file → many files.

The command line's ``predict``, the web page and the tests call these
functions. A song's verdict is the seed's snippet vote with the model's stored
threshold; the evidence is the probability of every snippet along the song
(the barcode). Every function gives a :class:`~progrock.evaluation.verdict.SongResult`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from progrock.data.snippets import SnippetSet, SongFrames
from progrock.errors import ProgrockError
from progrock.evaluation.verdict import SongResult, song_verdicts, with_evidence
from progrock.features.cache import FeatureCache
from progrock.features.files import features_from_file
from progrock.features.sets import compute_features
from progrock.model.checkpoint import LoadedModel
from progrock.parallel.engines import Engine, LocalEngine, file_outcome


def classify(model: LoadedModel, features: np.ndarray, *, name: str = "<array>",
             duration: float | None = None) -> SongResult:
    """Verdict on one song's feature matrix ``[n_features, n_frames]`` (the array layer)."""
    config = model.snippet_config
    frames = SongFrames.from_songs([(name, features, None)], config)
    snippets = SnippetSet.place(frames, config, by_class=False)
    probs = model.snippet_probabilities(snippets)
    result = song_verdicts(probs, snippets.song, 1, threshold=model.threshold, rule="vote")[0]
    seconds = duration if duration is not None else features.shape[1] / config.frame_rate
    return with_evidence(result, path=name, starts=snippets.start, probs=probs, frame_rate=config.frame_rate,
                         duration=seconds, snippet_seconds=config.length / config.frame_rate)


def classify_array(model: LoadedModel, y: np.ndarray, sr: int, *, name: str = "<array>") -> SongResult:
    """Verdict on a mono signal ``y [n_samples]`` at ``sr`` (must be the model's rate)."""
    if sr != model.feature_config.sr:
        raise ProgrockError(f"{name}: audio at {sr} Hz, the model expects {model.feature_config.sr} Hz")
    return classify(model, compute_features(np.asarray(y, dtype=np.float32), model.feature_config),
                    name=name, duration=len(y) / sr)


def classify_file(model: LoadedModel, path: str | os.PathLike, *, name: str | None = None,
                  cache: FeatureCache | None = None) -> SongResult:
    """Verdict on one audio file; raises a :class:`ProgrockError` naming it if it cannot be read."""
    x, _ = features_from_file(path, model.feature_config, cache=cache)
    return classify(model, x, name=name or str(path))


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


def _song_job(args: tuple[str, str, str | None, tuple[str, str] | LoadedModel]) -> tuple[SongResult | None, str]:
    """Features and verdict of one file (in a worker; the same function for every engine).

    ``args``: the name to report, the path to open, the cache folder or
    ``None``, and the model as ``(model.json path, weights SHA-256)`` that each
    worker loads once. A bad file is a value, never an exception, so no engine
    retries it.
    """
    name, path, cache, ref = args
    return file_outcome(lambda: classify_file(_worker_model(ref), path, name=name,
                                              cache=FeatureCache(cache) if cache else None))


def classify_files(model: LoadedModel, paths: Sequence[str | os.PathLike], *, jobs: int = 1,
                   cache: FeatureCache | None = None, progress: Callable[[int], None] | None = None,
                   engine: Engine | None = None, ordered: bool = True
                   ) -> Iterator[tuple[str, SongResult | None, str]]:
    """Verdicts on many files, each file's features and verdict in a worker.

    Runs in ``jobs`` local processes, or on ``engine`` (see
    :mod:`progrock.parallel.engines`; workers open the files, the model and the
    cache by absolute path, so on a cluster they must be on storage every
    worker sees). ``ordered=False`` yields each song as it finishes.

    Yields
    ------
    (path, result, "") or (path, None, reason)
        ``path`` as given. A file that cannot be decoded or is too short is
        reported with its reason and the others go on.
    """
    ref = _model_ref(model)
    root = os.path.abspath(cache.root) if cache is not None else None
    args = [(str(p), os.path.abspath(p), root, ref) for p in paths]
    engine = engine or LocalEngine(jobs)
    kw = dict(progress=progress, on_error=lambda item, reason: (None, reason))
    results = (enumerate(engine.map_ordered(_song_job, args, **kw)) if ordered
               else engine.map_unordered(_song_job, args, **kw))
    for i, (result, reason) in results:
        yield args[i][0], result, reason


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
