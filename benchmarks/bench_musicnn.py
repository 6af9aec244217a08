"""musicnn's speed: our PyTorch port against the original TensorFlow code and the compute bound.

One command::

    .venv/bin/python benchmarks/bench_musicnn.py [--tfenv /work/tfenv] [--clock cpu|wall]

On the same real recordings (Debian's ``fretsonfire-songs-muldjord``, Ogg
Vorbis, and ``asc-music``, MP3; fetched with ``apt-get download`` + ``dpkg
-x`` when missing), song by song, interleaved:

* ours end to end: ``progrock.audio.decode(path, sr=16000)`` -> log-mel ->
  patches -> network, on one thread, and its parts;
* the original: ``musicnn.extractor.extractor(path, "MSD_musicnn")`` as users
  run it (``librosa.load`` + log-mel + TensorFlow, one patch per call), and
  its network alone with 16 patches per call, run by
  ``tools/musicnn_reference.py time`` in the TensorFlow venv (``--tfenv``,
  see that script for how to make it) under ``taskset -c 0`` (one core); the
  output says so when the venv is missing;
* the compute bound: the network's floating-point operations per patch over
  the rate of a large single-thread float32 matrix product measured here.

Real-time factors are seconds of audio per second of one core. Times are
CPU seconds of the process by default (``--clock cpu``: on a quiet machine
the same as wall time for one thread; on a shared machine not inflated by
other people's processes) or wall seconds (``--clock wall``). The load
average is printed. Nothing here asserts a time.
"""

from __future__ import annotations

import os

# One core for our side, before numpy and torch start their thread pools.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "progrock-bench"
PACKAGES = {
    "fretsonfire-songs-muldjord": "usr/share/games/fretsonfire/data/songs/muldjord/*/song.ogg",
    "asc-music": "usr/share/games/asc/music/*.mp3",
}


def fetch_songs(cache: Path) -> list[Path]:
    """The packages' songs, downloaded and unpacked into ``cache/deb`` when missing."""
    root = cache / "deb"
    songs = []
    for package, pattern in PACKAGES.items():
        found = sorted(root.glob(pattern))
        if not found:
            root.mkdir(parents=True, exist_ok=True)
            print(f"fetching {package} into {root} ...", flush=True)
            subprocess.run(["apt-get", "download", package], cwd=root, check=True)
            subprocess.run(["dpkg", "-x", str(sorted(root.glob(f"{package}_*.deb"))[-1]), str(root)], check=True)
            found = sorted(root.glob(pattern))
        songs += found
    return songs


def clock(kind: str):
    return {"cpu": time.process_time, "wall": time.perf_counter}[kind]


def network_gflop(model, n_frames: int = 187, n_mels: int = 96) -> tuple[float, float]:
    """Floating-point operations (2 per multiply-add) of one patch, in GFLOP.

    Returns
    -------
    full, computed : float
        The whole network's, and what is left after the front-end channels
        proven silent over musicnn's input range are skipped.
    """
    from progrock.features.musicnn.network import silent_channels

    lo, hi = model._normalised_range(torch.zeros(1))
    full = computed = 0
    for blocks, width in ((model.timbral, None), (model.temporal, n_mels)):
        for b in blocks:
            out_f = width or n_mels - b.conv.kernel_size[1] + 1
            per_channel = b.conv.weight[0].numel() * n_frames * out_f
            full += per_channel * b.conv.out_channels
            computed += per_channel * int((~silent_channels(b.conv, lo, hi)).sum())
    rest = sum(b.conv.weight.numel() * n_frames for b in model.midend)
    rest += model.backend.dense.weight.numel() + model.backend.output.weight.numel()
    return 2 * (full + rest) / 1e9, 2 * (computed + rest) / 1e9


def gemm_gflops(seconds: float = 2.0) -> float:
    """Best single-thread float32 matrix-product rate (2048 x 2048 x 2048), in GFLOP/s."""
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * 2048**3 / (time.perf_counter() - t) / 1e9)
    return best


def ours(path: Path, model, tick) -> dict:
    from progrock.audio import decode
    from progrock.features.musicnn import preprocess as pp
    from progrock.features.musicnn.tagger import run_patches

    t0 = tick()
    d = decode(path, sr=pp.SR)
    t1 = tick()
    x = pp.patches(pp.log_mel(d.y, sr=d.sr))
    t2 = tick()
    tags, _ = run_patches(model, x)
    t3 = tick()
    return {"duration": d.duration, "patches": len(x), "decode": t1 - t0, "mel": t2 - t1,
            "network": t3 - t2, "total": t3 - t0, "mean_tags": tags.mean(0)}


def original(path: Path, tfenv: Path) -> dict | None:
    python = tfenv / "bin" / "python"
    if not python.exists():
        return None
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env.pop(var, None)  # the original as users run it; taskset holds it to one core
    r = subprocess.run(["taskset", "-c", "0", str(python), "-W", "ignore",
                        str(ROOT / "tools" / "musicnn_reference.py"), "time", str(path)],
                       capture_output=True, text=True, env=env)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    if r.returncode != 0 or not lines:
        raise SystemExit(f"the TensorFlow reference failed on {path}:\n{r.stderr[-2000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="musicnn: ours against the original TensorFlow code.")
    parser.add_argument("--tfenv", type=Path, default=Path("/work/tfenv"),
                        help="venv with TensorFlow and musicnn (tools/musicnn_reference.py)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--songs", type=int, default=0, help="only the first N songs (0: all)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / "src"))
    from progrock.features.musicnn.network import load_musicnn

    torch.set_num_threads(1)
    tick = clock(args.clock)
    songs = fetch_songs(args.cache)
    if args.songs:
        songs = songs[:args.songs]
    model = load_musicnn()
    gflop, computed = network_gflop(model)
    rate = gemm_gflops()
    bound, bound_computed = 2.992 / (gflop / rate), 2.992 / (computed / rate)
    print(f"torch {torch.__version__}, 1 thread; clock: {args.clock}; load average {os.getloadavg()[0]:.2f}")
    print(f"network: {gflop:.2f} GFLOP per 3-s patch, {computed:.2f} computed (silent channels skipped); "
          f"single-thread GEMM {rate:.0f} GFLOP/s -> compute bound {bound:.0f}x real time per core for the "
          f"whole network, {bound_computed:.0f}x for what is computed")
    has_tf = (args.tfenv / "bin" / "python").exists()
    if not has_tf:
        print(f"the TensorFlow venv {args.tfenv} is missing: the original is not run "
              "(see tools/musicnn_reference.py for how to make it)")
    head = f"{'song':34s} {'dur s':>6s} {'ours e2e':>9s} {'net':>6s} {'decode':>7s} {'mel':>5s}"
    if has_tf:
        head += f" {'TF e2e':>7s} {'TF net16':>8s} {'ours/TF':>8s} {'|dmean|':>8s}"
    print(head + "   (x real time per core)")
    totals = {"duration": 0.0, "total": 0.0, "network": 0.0, "decode": 0.0, "mel": 0.0, "tf": 0.0, "tfnet": 0.0}
    ours(songs[0], model, tick)  # warm-up: first oneDNN calls and the decoders' start-up
    for path in songs:
        o = ours(path, model, tick)
        t = original(path, args.tfenv) if has_tf else None
        dur = o["duration"]
        line = (f"{path.parent.name + '/' + path.name:34.34s} {dur:6.0f} {dur / o['total']:8.1f}x "
                f"{dur / o['network']:5.0f}x {dur / o['decode']:6.0f}x {dur / o['mel']:4.0f}x")
        for k in ("duration", "total", "network", "decode", "mel"):
            totals[k] += o[k]
        if t is not None:
            tf_total, tf_net = t["extractor"][args.clock], t["network_batch16"][args.clock]
            totals["tf"] += tf_total
            totals["tfnet"] += tf_net
            diff = float(np.abs(o["mean_tags"] - np.array(t["mean_tags"])).max())
            line += (f" {dur / tf_total:6.1f}x {dur / tf_net:7.1f}x {tf_total / o['total']:7.1f}x "
                     f"{diff:8.1e}")
        print(line, flush=True)
    d = totals["duration"]
    line = (f"{'all':34s} {d:6.0f} {d / totals['total']:8.1f}x {d / totals['network']:5.0f}x "
            f"{d / totals['decode']:6.0f}x {d / totals['mel']:4.0f}x")
    if has_tf:
        line += (f" {d / totals['tf']:6.1f}x {d / totals['tfnet']:7.1f}x {totals['tf'] / totals['total']:7.1f}x")
    print(line)
    print(f"ours: network at {d / totals['network'] / bound_computed:.0%} of the compute bound of what it "
          f"computes ({d / totals['network'] / bound:.1f}x the whole network's bound); "
          f"load average now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
