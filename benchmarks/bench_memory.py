"""Peak memory of scanning long recordings: the streamed probe against the whole-signal one.

One command::

    .venv/bin/python benchmarks/bench_memory.py                 # 1 h and 10 h, about 15 minutes
    .venv/bin/python benchmarks/bench_memory.py --hours 1 --reference-up-to 1

It writes Opus recordings once into the cache folder (a slow tone sweep over
noise, mono; ``FORMATS["opus"]``: 48 kHz through libsndfile in 65,536-frame
writes, as ``progrock.audio.write_audio`` writes, which needs the whole signal
in memory), then measures each case in a fresh process:

* ``scan (streamed)``: ``progrock.data.manifest._probe``, what ``progrock scan``
  runs per file: ``stream_decode`` into a ``FingerprintSink``;
* ``scan (whole signal)``: ``decode()`` then ``fingerprint()`` on the whole
  signal, what scan ran before it streamed (only up to ``--reference-up-to``
  hours: it holds the decoded song, 318 MB an hour at 22,050 Hz);
* ``scan (--before-src)``: ``_probe`` of another checkout (e.g. the main branch
  before scan streamed), when ``--before-src`` names its ``src`` folder;
* ``scan (default limit)``: the streamed probe of a recording longer than
  ``MAX_HOURS`` without raising ``PROGROCK_MAX_HOURS``: it stops at the limit.

and prints the peak RSS (``ru_maxrss``; ``VmHWM`` agrees), its growth over a
process that probed a 10-second file, the wall time and what the probe said.

With ``--hostile`` (on by default) it also measures files whose header lies
about their size, through ``progrock predict musicnn FILE`` (the built-in run:
no training needed; decoding, resampling to 16 kHz and the tagger) and
through a running ``progrock serve musicnn`` that gets the same files
uploaded one after the other (its peak ``VmHWM`` after each):

* a 16-KB WAV declaring 1 Hz (8,192 samples: 2.3 hours at 22,050 Hz);
* a 200-KB WAV declaring 1 Hz (55 hours once resampled);
* an hour at 4,000 Hz, the lowest rate accepted (28.8 MB; resampled 5.5x,
  in pieces);
* a 10-second song, the baseline.

Nothing here asserts anything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "progrock-bench"

_CHILD = """
import json, os, resource, sys, time
import numpy as np
from progrock.audio import decode
from progrock.audio.fingerprint import fingerprint
from progrock.data.manifest import _probe
mode, path = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if mode == "whole":
    audio = decode(path)
    fp = fingerprint(audio.y)
    said = {"duration": round(audio.duration, 3), "audio_sha256": audio.sha256, "fp_frames": fp.shape[1]}
else:
    info = _probe(path)
    said = {k: v for k, v in info.items() if k in ("duration", "audio_sha256", "fp_frames", "error")}
seconds = time.perf_counter() - t
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "vmhwm_mb": int(hwm) / 1024, "seconds": seconds, **said}))
"""

# A child started straight from this process would report this process's RSS as its own
# ru_maxrss (Linux carries the peak across fork + exec); /bin/sh forks once more from a small one.
_VIA_SH = ["/bin/sh", "-c", '"$0" "$@"; exit $?']


def recording(cache: Path, hours: float) -> Path:
    """A mono Opus recording of ``hours``: a tone sweeping 110-880 Hz every minute over noise."""
    import soundfile as sf

    from progrock.audio import FORMATS

    path = cache / "long" / f"sweep{hours:g}h.opus"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = FORMATS["opus"]
    sr = spec["sr"]
    print(f"writing {path} (once; Opus encodes about 100x faster than real time) ...", flush=True)
    tmp = path.with_suffix(".part.opus")
    rng = np.random.default_rng(0)
    n, block, phase = int(hours * 3600 * sr), 2**16, 0.0
    with sf.SoundFile(str(tmp), "w", samplerate=sr, channels=1, format=spec["format"],
                      subtype=spec["subtype"]) as f:
        for start in range(0, n, block):
            t = (start + np.arange(min(block, n - start))) / sr
            freq = 110.0 * 2 ** (3 * ((t / 60.0) % 1.0))
            ph = phase + 2 * np.pi * np.cumsum(freq) / sr
            phase = float(ph[-1])
            f.write((0.3 * np.sin(ph) + 0.03 * rng.standard_normal(t.size)).astype(np.float32))
    tmp.rename(path)
    return path


def short_recording(cache: Path) -> Path:
    from progrock.audio import write_audio

    path = cache / "long" / "ten_seconds.opus"
    if not path.exists():
        t = np.arange(10 * 22_050) / 22_050
        write_audio(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22_050)
    return path


def measure(mode: str, path: Path, env: dict) -> dict:
    r = subprocess.run(_VIA_SH + [sys.executable, "-c", _CHILD, mode, str(path)], capture_output=True,
                       text=True, env=env)
    if r.returncode != 0:
        return {"failed": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"}
    return json.loads(r.stdout)


def run(args: argparse.Namespace) -> dict:
    from progrock.constants import MAX_HOURS

    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    raised = dict(env, PROGROCK_MAX_HOURS=str(max(args.hours) + 1))
    base = measure("stream", short_recording(args.cache), raised)
    print(f"baseline: a 10-s probe peaks at {base['rss_mb']:.0f} MB")
    print(f"{'case':24s} {'hours':>5s} {'file MB':>8s} {'peak MB':>8s} {'growth MB':>9s} {'VmHWM MB':>9s} "
          f"{'seconds':>8s}  said")
    out = {"baseline": base, "cases": []}
    for hours in args.hours:
        path = recording(args.cache, hours)
        cases = [("scan (streamed)", "stream", raised)]
        if hours <= args.reference_up_to:
            cases.append(("scan (whole signal)", "whole", raised))
            if args.before_src:
                cases.append(("scan (--before-src)", "stream", dict(raised, PYTHONPATH=str(args.before_src))))
        if args.default_limit and hours > MAX_HOURS:
            cases.append(("scan (default limit)", "stream", {k: v for k, v in env.items()
                                                             if k != "PROGROCK_MAX_HOURS"}))
        for name, mode, case_env in cases:
            m = measure(mode, path, case_env)
            said = m.get("failed") or m.get("error") or f"{m['duration'] / 3600:.2f} h, {m['fp_frames']} fp frames"
            if "rss_mb" in m:
                print(f"{name:24s} {hours:5g} {path.stat().st_size / 2**20:8.1f} {m['rss_mb']:8.0f} "
                      f"{m['rss_mb'] - base['rss_mb']:9.0f} {m['vmhwm_mb']:9.0f} {m['seconds']:8.1f}  {said}")
            else:
                print(f"{name:24s} {hours:5g}  {said}")
            out["cases"].append({"case": name, "hours": hours, **m})
    if args.hostile:
        out.update(hostile(args, env))
    return out


_PREDICT = """
import contextlib, io, json, resource, sys, time
from progrock.cli import main
t = time.perf_counter()
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    status = main(["predict", "musicnn", sys.argv[1], "--json", "--no-cache", "--jobs", "1"])
said = err.getvalue().strip().splitlines()[-1] if status else json.loads(out.getvalue())["verdict"]
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - t, "status": status, "said": said}))
"""


def hostile_files(cache: Path) -> dict[str, Path]:
    """Files whose headers claim far more audio than their bytes hold, and a plain 10-s song."""
    import soundfile as sf

    folder = cache / "hostile"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = {"1 Hz WAV, 16 KB": (folder / "one_hz_16k.wav", 1, 8_192),
             "1 Hz WAV, 200 KB": (folder / "one_hz_200k.wav", 1, 100_000),
             "4 kHz WAV, 1 h": (folder / "four_khz_1h.wav", 4_000, 4_000 * 3600)}
    for path, sr, n in files.values():
        if not path.exists():
            sf.write(path, (0.1 * rng.standard_normal(n)).astype(np.float32), sr, subtype="PCM_16")
    return {"10-s song": short_recording(cache), **{k: v[0] for k, v in files.items()}}


def _vmhwm(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return int(next(line for line in fh if line.startswith("VmHWM")).split()[1]) / 1024


def hostile(args: argparse.Namespace, env: dict) -> dict:
    """Peak memory of predict (a fresh process per file) and of one server taking every file in turn."""
    import socket
    import time

    import httpx

    files = hostile_files(args.cache)
    print(f"\n{'hostile file':20s} {'file MB':>8s} {'predict MB':>10s} {'server MB':>9s}  what predict said")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(["/bin/sh", "-c", 'exec "$0" "$@"', sys.executable, "-m", "progrock", "serve",
                               "musicnn", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    out = []
    try:
        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/model", timeout=1.0)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        for name, path in files.items():
            r = subprocess.run(_VIA_SH + [sys.executable, "-c", _PREDICT, str(path)], capture_output=True,
                               text=True, env=env)
            p = json.loads(r.stdout) if r.returncode == 0 else {"said": r.stderr.strip()[-200:]}
            with open(path, "rb") as fh:
                answer = httpx.post(f"http://127.0.0.1:{port}/api/classify", files={"file": (path.name, fh)},
                                    timeout=600.0)
            served = _vmhwm(server.pid)
            print(f"{name:20s} {path.stat().st_size / 2**20:8.2f} {p.get('rss_mb', float('nan')):10.0f} "
                  f"{served:9.0f}  {p['said']} (server: {answer.status_code})")
            out.append({"file": name, "bytes": path.stat().st_size, "predict": p, "server_vmhwm_mb": served,
                        "server_status": answer.status_code})
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"hostile": out}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"where recordings are kept ({DEFAULT_CACHE})")
    p.add_argument("--hours", type=float, nargs="+", default=[1.0, 10.0], help="lengths of the recordings")
    p.add_argument("--reference-up-to", type=float, default=1.0,
                   help="run the whole-signal scan on recordings up to this many hours")
    p.add_argument("--before-src", type=Path, default=None,
                   help="also run _probe from this src folder (another checkout), on the reference's recordings")
    p.add_argument("--no-default-limit", dest="default_limit", action="store_false",
                   help="skip the case without a raised PROGROCK_MAX_HOURS")
    p.add_argument("--no-hostile", dest="hostile", action="store_false",
                   help="skip the files whose header lies (predict and serve)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
