"""Reference outputs of the original musicnn (TensorFlow) for progrock's port.

Never a progrock dependency: run it in a throwaway virtual environment::

    python3.11 -m venv /work/tfenv
    /work/tfenv/bin/pip install 'tensorflow-cpu==2.21.*' tf_keras 'numpy<2' librosa
    /work/tfenv/bin/pip install --no-deps musicnn==0.1.0
    TF_USE_LEGACY_KERAS=1 /work/tfenv/bin/python tools/musicnn_reference.py fixture \\
        tests/data/musicnn_reference.npz

``fixture`` writes what ``tests/test_musicnn.py`` compares with (well under
1 MB): for synthetic signals made here with a fixed seed and a slice of a real
recording, the original's float16 mel power (``batch_data``'s input to the
log), a hash of its float32 log-mel, and the network's tag probabilities and
penultimate embeddings of every patch; for whole real recordings (Debian's
Ogg Vorbis and MP3 songs and lossless copies written by
:func:`write_copies`), the original ``extractor``'s taggrams, decoded by its
own code (``librosa.load``).

``time FILE...`` runs the original ``extractor`` on each file and prints one
JSON line per file with its timings (``benchmarks/bench_musicnn.py`` calls it
under ``taskset -c 0``).

The original ``extractor`` silently keeps random weights when its
checkpoint does not restore; here every restore is checked against the
checkpoint's values.

Only numpy and soundfile are imported at module level, so the test can
import :func:`synthetic_signals` and :func:`write_copies` from here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
SEED = 20190718
DEB = Path(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))) / "progrock-bench" / "deb"
SONGS = "usr/share/games/fretsonfire/data/songs/muldjord"
ASC = "usr/share/games/asc/music"

REAL_SLICE = (f"{SONGS}/armygeddon/song.ogg", 60.0, 6.25)
"""(file under DEB, start and length in seconds at 16 kHz) of the real slice."""

SONG_FILES = tuple(f"{SONGS}/{name}/song.ogg" for name in
                   ("armygeddon", "chaos_god", "internal_degeneration", "mutilated_mime")) + tuple(
    f"{ASC}/{name}.mp3" for name in ("frontiers", "machine_wars", "time_to_strike"))
"""Real recordings whose taggrams are stored: Ogg Vorbis (fretsonfire-songs-muldjord), MP3 (asc-music)."""

COPIES = (
    ("chaos_god.flac", f"{SONGS}/chaos_god/song.ogg", 30.0, 60.0, "PCM_16"),
    ("machine_wars.wav", f"{ASC}/machine_wars.mp3", 60.0, 45.0, "FLOAT"),
)
"""Lossless copies (name, source under DEB, start s, length s, subtype) written by :func:`write_copies`."""


# ---------------------------------------------------------------------------
# Inputs (numpy and soundfile only: the test imports these)


def _quantise(y: np.ndarray) -> np.ndarray:
    # int16 steps: any float64 rounding difference between numpy versions vanishes here
    return (np.round(np.clip(y, -1.0, 32767 / 32768) * 32768) / 32768).astype(np.float32)


def synthetic_signals() -> dict[str, np.ndarray]:
    """Test signals at 16 kHz, float32 on int16 steps, the same on every machine.

    Returns
    -------
    dict of str to np.ndarray [shape=(n_samples,), dtype=float32]
        ``tones`` (a chord with vibrato and noise hits, 6.5 s), ``noise``
        (pink-ish noise, 3.2 s), ``chirp`` (a sweep 40 Hz - 7.5 kHz and a click
        train, 6.2 s), ``loud`` (a full-scale square wave: mel power far above
        float16's 6.55 where numpy 2 overflows ``10000 * S``, 3.1 s) and
        ``silence`` (3.0 s).
    """
    rng = np.random.default_rng(SEED)
    t = np.arange(int(6.5 * SR)) / SR
    f0 = 110.0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    tones = sum(0.25 / k * np.sin(k * r * phase) for k in (1, 2, 3, 5) for r in (1.0, 1.26, 1.5))
    hits = np.zeros_like(t)
    for start in np.arange(0.25, 6.5, 0.5):
        i = int(start * SR)
        n = min(1600, t.size - i)
        hits[i:i + n] += rng.standard_normal(n) * np.exp(-np.arange(n) / 300.0) * 0.5
    white = rng.standard_normal(int(3.2 * SR))
    pink = np.fft.irfft(np.fft.rfft(white) / np.sqrt(np.maximum(1, np.arange(white.size // 2 + 1))),
                        n=white.size)
    tc = np.arange(int(6.2 * SR)) / SR
    sweep = 0.5 * np.sin(2 * np.pi * 40 * 6.2 / np.log(7500 / 40) * (np.exp(tc / 6.2 * np.log(7500 / 40)) - 1))
    clicks = np.zeros_like(tc)
    clicks[::SR // 3] = 0.9
    ts = np.arange(int(3.1 * SR)) / SR
    return {
        "tones": _quantise(tones / 3),
        "noise": _quantise(pink / np.abs(pink).max() * 0.3),
        "chirp": _quantise(sweep + clicks),
        "loud": _quantise(np.sign(np.sin(2 * np.pi * 220 * ts))),
        "silence": np.zeros(int(3.0 * SR), dtype=np.float32),
    }


def write_copies(deb: Path, out_dir: Path) -> dict[str, Path]:
    """Write the lossless copies of :data:`COPIES` (soundfile decodes and writes them).

    Returns
    -------
    dict of str to Path
        Copy name to file.
    """
    out = {}
    for name, source, start, length, subtype in COPIES:
        y, sr = sf.read(str(deb / source), dtype="float32", always_2d=True)
        cut = y[int(start * sr):int((start + length) * sr)]
        path = Path(out_dir) / name
        sf.write(str(path), cut, sr, subtype=subtype)
        out[name] = path
    return out


def sha256_array(a: np.ndarray) -> str:
    """Hex SHA-256 of an array's little-endian bytes (C order)."""
    return hashlib.sha256(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()).hexdigest()


# ---------------------------------------------------------------------------
# The original (TensorFlow; imported only when run)


class Original:
    """musicnn's MSD graph as ``extractor`` builds it, restored and checked, batch size free."""

    def __init__(self):
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        import tensorflow as tf
        from musicnn import models

        self.tf = tf
        tf.compat.v1.disable_eager_execution()
        tf.compat.v1.reset_default_graph()
        with tf.name_scope("model"):
            self.x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])
            self.is_training = tf.compat.v1.placeholder(tf.bool)
            out = models.define_model(self.x, self.is_training, "MSD_musicnn", 50)
            self.tags = tf.nn.sigmoid(out[0])
            self.penultimate = out[-1]
        self.sess = tf.compat.v1.Session()
        self.sess.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().restore(self.sess, checkpoint_prefix())
        check_restored(self.sess, tf)

    def run(self, patches: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        tags, pen = [], []
        for s in range(0, len(patches), batch_size):
            a, b = self.sess.run([self.tags, self.penultimate],
                                 feed_dict={self.x: patches[s:s + batch_size], self.is_training: False})
            tags.append(a)
            pen.append(b)
        return np.concatenate(tags), np.concatenate(pen)


def checkpoint_prefix() -> str:
    import musicnn

    return os.path.dirname(musicnn.__file__) + "/MSD_musicnn/"


def check_restored(sess, tf) -> None:
    """Every global variable of the session equals the checkpoint's value (else exit)."""
    reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_prefix())
    variables = tf.compat.v1.global_variables()
    for v in variables:
        name = v.op.name
        if not np.array_equal(sess.run(v), reader.get_tensor(name)):
            sys.exit(f"restore failed: {name} differs from the checkpoint")
    if len(variables) != 64:
        sys.exit(f"expected 64 model variables, the graph has {len(variables)}")


def original_mel(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``batch_data``'s float16 mel power and float32 log-mel of mono 16-kHz audio (its own code)."""
    import librosa
    from musicnn import configuration as config
    from musicnn.extractor import batch_data

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "y.wav")
        sf.write(path, y, SR, subtype="FLOAT")
        batch, audio_rep = batch_data(path, 187, 187)
        y_back, _ = librosa.load(path, sr=config.SR)
    assert np.array_equal(y_back, y), "the WAV round trip changed the samples"
    mel16 = librosa.feature.melspectrogram(y=y_back, sr=config.SR, hop_length=config.FFT_HOP,
                                           n_fft=config.FFT_SIZE, n_mels=config.N_MELS).T.astype(np.float16)
    assert np.array_equal(np.log10(10000 * mel16 + 1), audio_rep)
    assert np.array_equal(batch, audio_rep[:len(batch) * 187].reshape(-1, 187, 96))
    return mel16, audio_rep


def song_taggram(path: Path, *, check: bool = True) -> np.ndarray:
    """``musicnn.extractor.extractor(path, model="MSD_musicnn")``'s taggram.

    Exits if the checkpoint did not restore; with ``check``, also if any
    restored variable differs from the checkpoint.
    """
    import tensorflow as tf
    from musicnn.extractor import extractor

    saver = tf.compat.v1.train.Saver
    restored = []
    original_restore = saver.restore

    def restore(self, sess, save_path):
        original_restore(self, sess, save_path)
        if check:
            check_restored(sess, tf)
        restored.append(save_path)

    saver.restore = restore
    try:
        taggram, _ = extractor(str(path), model="MSD_musicnn", input_length=3, input_overlap=False,
                               extract_features=False)
    finally:
        saver.restore = original_restore
    if not restored:
        sys.exit(f"{path}: extractor did not restore its checkpoint (random weights)")
    return np.asarray(taggram, dtype=np.float32)


def make_fixture(out: Path) -> None:
    import librosa
    import tensorflow as tf

    model = Original()
    arrays: dict[str, np.ndarray] = {}
    inputs = synthetic_signals()
    y, _ = librosa.load(str(DEB / REAL_SLICE[0]), sr=SR)
    start, length = int(REAL_SLICE[1] * SR), int(REAL_SLICE[2] * SR)
    inputs["real"] = y[start:start + length]
    for name, signal in inputs.items():
        mel16, logmel = original_mel(signal)
        tags, pen = model.run(logmel[:len(logmel) // 187 * 187].reshape(-1, 187, 96))
        arrays[f"mel16_{name}"] = mel16
        arrays[f"logmel_sha256_{name}"] = np.array(sha256_array(logmel))
        arrays[f"signal_sha256_{name}"] = np.array(sha256_array(signal))
        arrays[f"tags_{name}"] = tags
        arrays[f"penultimate_{name}"] = pen
        print(f"{name}: {len(tags)} patches, top tag {tags.mean(0).argmax()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        copies = write_copies(DEB, Path(tmp))
        files = [(rel, DEB / rel) for rel in SONG_FILES] + [(f"copy:{n}", p) for n, p in copies.items()]
        for i, (rel, path) in enumerate(files):
            taggram = song_taggram(path)
            arrays[f"song_name_{i}"] = np.array(rel)
            arrays[f"song_taggram_{i}"] = taggram
            print(f"{rel}: {len(taggram)} patches", flush=True)
    import musicnn

    arrays["versions"] = np.array(json.dumps({
        "tensorflow": tf.__version__, "numpy": np.__version__, "librosa": librosa.__version__,
        "soundfile": sf.__version__, "libsndfile": sf.__libsndfile_version__,
        "musicnn": getattr(musicnn, "__version__", "0.1.0"), "stft_pad_mode": "constant",
        "python": sys.version.split()[0]}))
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


def _timed(fn):
    """(result, {"wall": s, "cpu": s}) of ``fn()``; CPU time of the whole process (all its threads)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, {"wall": time.perf_counter() - w, "cpu": time.process_time() - c}


def time_files(paths: list[str]) -> None:
    """One JSON line per file: the original extractor's time, and its parts on a restored graph.

    ``extractor`` is timed as users run it (graph, restore, ``batch_data``,
    then the network one patch per call, its ``BATCH_SIZE``); the parts are
    ``batch_data`` (decode + log-mel) and the network on an already restored
    graph with 1 and with 16 patches per call.
    """
    from musicnn.extractor import batch_data

    model = None
    for p in paths:
        taggram, t_extractor = _timed(lambda: song_taggram(Path(p), check=model is None))
        if model is None:
            model = Original()
        (batch, _), t_mel = _timed(lambda: batch_data(p, 187, 187))
        _, t_net1 = _timed(lambda: model.run(batch, batch_size=1))
        _, t_net16 = _timed(lambda: model.run(batch, batch_size=16))
        print(json.dumps({"file": p, "patches": len(taggram), "extractor": t_extractor,
                          "decode_mel": t_mel, "network_batch1": t_net1, "network_batch16": t_net16,
                          "mean_tags": taggram.mean(0).tolist()}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fixture = sub.add_parser("fixture", help="write the test fixture (.npz)")
    fixture.add_argument("out", type=Path)
    timing = sub.add_parser("time", help="time the original extractor on files")
    timing.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "fixture":
        make_fixture(args.out)
    else:
        time_files(args.files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
