"""Classify a person's own songs: array → file → many files.

The command line's ``predict``, the web page and the tests call these
functions. A song's verdict comes from one of the run's models (by default the
run's best on validation); the evidence is the probability of every snippet
along the song (the barcode), whether the song is like the music the run
was trained on, and, when asked, what the pretrained tagger hears. Every
function gives a :class:`~progrock.evaluation.verdict.SongResult`.

A *run* is a run folder (:func:`progrock.model.run.load_run`) or ``musicnn``,
the built-in pretrained tagger, usable without any training (:func:`open_run`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from progrock.constants import SR
from progrock.errors import ProgrockError
from progrock.evaluation.verdict import SongResult
from progrock.features.cache import FeatureCache
from progrock.features.files import features_of_sets
from progrock.features.sets import compute_features
from progrock.model.run import Run, Songs, load_run
from progrock.parallel.engines import Engine, LocalEngine, file_outcome
from progrock.paths import printable

BUILT_IN = ("musicnn",)
"""Names accepted where a run folder is, for runs that ship with progrock."""


def open_run(run: str | os.PathLike | Run) -> Run:
    """A run folder's models, or a built-in run by name (``musicnn``: the pretrained tagger, zero-shot).

    A folder of that name in the current directory wins over the built-in.
    """
    if isinstance(run, Run):
        return run
    if str(run) in BUILT_IN and not Path(run).exists():
        from progrock.model.pretrained import builtin_run

        return builtin_run()
    return load_run(run)


def classify(run: Run, features: dict[str, np.ndarray], *, name: str = "<array>", duration: float | None = None,
             model: str | None = None, tags: bool = False, threshold: float | None = None) -> SongResult:
    """Verdict on one song from its feature matrices by set name (the array layer).

    Parameters
    ----------
    run : Run
    features : dict
        ``{"seed43": [43, n_frames], ...}``: every set :meth:`Run.needs` names.
    model : str, optional
        Which of the run's models gives the verdict (default: ``run.default_model``).
    tags : bool
        Add what the pretrained tagger hears (needs the ``musicnn`` set).
    threshold : float, optional
        Instead of the model's own threshold.
    """
    model = model or run.default_model
    if threshold is not None:
        from dataclasses import replace

        run = replace(run, entries={**run.entries, model: replace(run.entries[model], threshold=threshold)})
    seconds = duration if duration is not None else (
        features["seed43"].shape[1] / run.feature_config("seed43").frame_rate)
    judged = run.judge(Songs([name], {k: [v] for k, v in features.items()}, [seconds]), [model], tags=tags)
    if judged.skipped:
        from progrock.errors import SnippetError

        raise SnippetError(name, judged.skipped[0][1])
    return judged.results[model][0]


def classify_array(run: Run, y: np.ndarray, sr: int, *, name: str = "<array>", model: str | None = None,
                   tags: bool = False) -> SongResult:
    """Verdict on a mono signal ``y [n_samples]`` at ``sr`` (the decoders' rate, 22,050 Hz)."""
    if sr != SR:
        raise ProgrockError(f"{name}: audio at {sr} Hz, the models read it at {SR} Hz")
    y = np.asarray(y, dtype=np.float32)
    feats = {c.name: _resampled_features(y, c) for c in run.needs([model or run.default_model], tags=tags)}
    return classify(run, feats, name=name, duration=len(y) / sr, model=model, tags=tags)


def _resampled_features(y: np.ndarray, config) -> np.ndarray:
    if config.sr != SR:
        import soxr

        y = soxr.resample(y, SR, config.sr, quality="soxr_hq").astype(np.float32)
    return compute_features(y, config)


def classify_file(run: Run, path: str | os.PathLike, *, name: str | None = None, model: str | None = None,
                  tags: bool = False, cache: FeatureCache | None = None, max_seconds: float | None = None,
                  threshold: float | None = None) -> SongResult:
    """Verdict on one audio file; raises a :class:`ProgrockError` naming it if it cannot be read
    (or, with ``max_seconds``, if it is longer)."""
    configs = run.needs([model or run.default_model], tags=tags)
    mats, _, _ = features_of_sets(path, configs, cache=cache, max_seconds=max_seconds)
    feats = dict(zip([c.name for c in configs], mats))
    seed43 = run.feature_config("seed43")
    return classify(run, feats, name=name or str(path), duration=feats["seed43"].shape[1] / seed43.frame_rate,
                    model=model, tags=tags, threshold=threshold)


# ---------------------------------------------------------------------------------------------
# many files: a worker per file, the run loaded once per worker

_RUNS: dict[tuple[str, str], Run] = {}
_ONE_THREAD_PID = 0


def _weights_sha256(run: Run) -> str:
    return str(run.description.get("weights", {}).get("sha256", ""))


def _run_ref(run: Run) -> tuple[str, str] | Run:
    """How a job names the run: its files (loaded once per worker), else the run itself."""
    if run.path is None:
        return run
    ref = (str(Path(run.path).resolve()), _weights_sha256(run))
    _RUNS[ref] = run  # this process need not load it again (a worker loads it once)
    return ref


def _worker_run(ref: tuple[str, str] | Run) -> Run:
    """The run of a job; in a worker process torch runs on one thread (one song per process)."""
    global _ONE_THREAD_PID
    import multiprocessing

    if multiprocessing.parent_process() is not None and _ONE_THREAD_PID != os.getpid():
        import torch

        torch.set_num_threads(1)
        _ONE_THREAD_PID = os.getpid()
    if isinstance(ref, Run):
        return ref
    run = _RUNS.get(ref)
    if run is None:
        from progrock.errors import ModelError

        run = load_run(ref[0])
        if _weights_sha256(run) != ref[1]:
            raise ModelError(f"{ref[0]}: the run on this worker differs from the client's")
        _RUNS.clear()
        _RUNS[ref] = run
    return run


def _song_job(args: tuple) -> tuple[SongResult | None, str]:
    """Features and verdict of one file (in a worker; the same function for every engine).

    ``args``: the name to report, the path to open, the cache folder or ``None``,
    the run (see :func:`_run_ref`), the model, whether to add tags and a threshold. A bad
    file is a value, never an exception, so no engine retries it.
    """
    name, path, cache, ref, model, tags, threshold = args
    return file_outcome(lambda: classify_file(_worker_run(ref), path, name=name, model=model, tags=tags,
                                              threshold=threshold, cache=FeatureCache(cache) if cache else None))


def classify_files(run: Run, paths: Sequence[str | os.PathLike], *, jobs: int = 1,
                   cache: FeatureCache | None = None, model: str | None = None, tags: bool = False,
                   threshold: float | None = None, progress: Callable[[int], None] | None = None,
                   engine: Engine | None = None, ordered: bool = True
                   ) -> Iterator[tuple[str, SongResult | None, str]]:
    """Verdicts on many files, each file's features and verdict in a worker.

    Runs in ``jobs`` local processes, or on ``engine`` (see
    :mod:`progrock.parallel.engines`; workers open the files, the run and the
    cache by absolute path, so on a cluster they must be on storage every
    worker sees). ``ordered=False`` yields each song as it finishes.

    Yields
    ------
    (path, result, "") or (path, None, reason)
        ``path`` as given, printable (:func:`progrock.paths.printable`: a name
        that is not UTF-8 has ``\\xNN`` escapes). A file that cannot be decoded
        or is too short is reported with its reason and the others go on.
    """
    run.model_names([model or run.default_model])            # an unknown model fails before any work
    ref = _run_ref(run)
    root = os.path.abspath(cache.root) if cache is not None else None
    args = [(printable(p), os.path.abspath(p), root, ref, model, tags, threshold) for p in paths]
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
