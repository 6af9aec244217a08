"""Faults: a process killed mid-write, a full disk, NaN, and hostile model files.

Nothing half-written is ever read back, a rerun resumes, and loading a model
never runs code from it. The case list is docs/robustness.md.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from progrock.audio import write_audio
from progrock.errors import ModelError, ProgrockError
from progrock.features import FeatureConfig
from progrock.features.cache import FeatureStore
from progrock.features.files import features_from_file, features_from_files

from conftest import SR, music


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "progrock", *args]


def _wait_for(predicate, proc: subprocess.Popen, what: str, limit: float = 300.0) -> None:
    """Poll until ``predicate()``; fail if the process ends first (the kill would prove nothing)."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert proc.poll() is None, f"the process ended before {what}: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"no {what} after {limit} s"
        time.sleep(0.02)


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)   # the whole group: the command and its worker processes
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


# ---------------------------------------------------------------------------------------------
# SIGKILL


def test_features_killed_mid_run_leaves_only_whole_entries_and_resumes(demo_corpus, tmp_path):
    songs = tmp_path / "songs"
    songs.mkdir()
    files = sorted(p for p in demo_corpus.rglob("*") if p.suffix in (".flac", ".ogg", ".wav", ".mp3"))[:20]
    for i, p in enumerate(files):
        shutil.copy(p, songs / f"{i:02d}{p.suffix}")
    cache = tmp_path / "cache"
    store = FeatureStore(cache, FeatureConfig())
    entries = lambda: list(store.folder.rglob("*.npy")) if store.folder.is_dir() else []
    proc = subprocess.Popen(_cli("features", str(songs), "--cache", str(cache), "--jobs", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: len(entries()) >= 4, proc, "four cache entries")
        _kill(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    kept = entries()
    assert 4 <= len(kept) < len(files), "the kill came too late to test anything"
    fresh = {}
    for p in sorted(songs.iterdir()):
        x, h = features_from_file(p, FeatureConfig())
        fresh[h] = x
    for entry in kept:                    # every entry that exists is whole and right
        h = entry.stem
        np.testing.assert_array_equal(np.load(entry, allow_pickle=False), fresh[h])
        np.testing.assert_array_equal(store.get(h), fresh[h])
    # leftover temporary files are never read as entries; the rerun computes only what is missing
    proc = subprocess.run(_cli("features", str(songs), "--cache", str(cache), "--jobs", "2"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(files)} files: {len(files) - len(kept)} computed, {len(kept)} cached, 0 failed" in proc.stdout
    assert {e.stem for e in entries()} == set(fresh)
    for h, x in fresh.items():
        np.testing.assert_array_equal(store.get(h), x)


@pytest.fixture(scope="module")
def train_data(demo_corpus, tmp_path_factory):
    """The demo corpus scanned and its features cached, so the training runs start at once."""
    from progrock.cli import main

    root = tmp_path_factory.mktemp("faults")
    cache = Path(os.environ["PROGROCK_CACHE"])   # the session's cache: the demo songs' features once
    assert main(["scan", str(demo_corpus), "--out", str(root / "manifest.csv"), "--jobs", "2"]) == 0
    assert main(["features", str(root / "manifest.csv"), "--cache", str(cache), "--jobs", "2"]) == 0
    return root / "manifest.csv", cache


def _epochs(run: Path) -> list[int]:
    """The epochs in ``history.json`` of a run's CNN member, or of a folder ``train_model`` wrote."""
    folder = run / "training" / "cnn-1" if (run / "training" / "cnn-1").is_dir() else run
    return [h["epoch"] for h in json.loads((folder / "history.json").read_text())]


def test_train_killed_mid_run_resumes_or_restarts_cleanly(train_data, tmp_path):
    from progrock.model.checkpoint import load_model
    from progrock.model.run import load_run

    manifest, cache = train_data
    run = tmp_path / "run"
    args = ["train", str(manifest), "--out", str(run), "--cache", str(cache), "--batch-size", "64",
            "--recipe", "seed", "--models", "cnn,cnn_mean", "--jobs", "1"]
    member = run / "training" / "cnn-1"
    last = member / "last.json"

    def epoch_saved() -> int:
        try:
            return int(json.loads(last.read_text())["epoch"])
        except (OSError, ValueError, KeyError):
            return 0

    proc = subprocess.Popen(_cli(*args, "--epochs", "500"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        _wait_for(lambda: epoch_saved() >= 3, proc, "three epochs")
        _kill(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    killed_at = epoch_saved()
    assert 3 <= killed_at < 500
    load_model(member)                    # the best model so far is whole and loads

    # --resume: continues after the last saved epoch and finishes
    target = killed_at + 3
    env = dict(os.environ, PROGROCK_VERBOSE="1")
    proc = subprocess.run(_cli(*args, "--epochs", str(target), "--resume"), capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming after epoch {killed_at}" in proc.stderr
    assert _epochs(run) == list(range(1, target + 1))
    assert json.loads((member / "model.json").read_text())["training"]["complete"] is True
    assert load_model(member).threshold > 0 and load_run(run).entries["cnn"].threshold > 0

    # without --resume: a fresh start, not a mix with the old run
    proc = subprocess.run(_cli(*args, "--epochs", "2"), capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming" not in proc.stderr
    assert _epochs(run) == [1, 2]
    assert json.loads(last.read_text())["epoch"] == 2
    assert json.loads((run / "training" / "cnn-1" / "model.json").read_text())["training"]["epochs_run"] == 2


# ---------------------------------------------------------------------------------------------
# a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs, unmounted afterwards."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root or CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path, leave: int) -> None:
    """Fill the file system holding ``folder`` until about ``leave`` bytes are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "ballast", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    assert os.statvfs(folder).f_bavail * st.f_frsize <= leave + 8192


def test_full_disk_while_caching_features_leaves_no_entry(small_disk, tmp_path):
    song = write_audio(tmp_path / "song.flac", music(30.0), SR)    # 43 x 1292 floats: 222 kB
    store = FeatureStore(small_disk / "cache", FeatureConfig())
    store.folder.mkdir(parents=True)
    store._write_config()
    _fill(small_disk, leave=64 * 1024)
    [res] = features_from_files([song], store)
    # The song is reported failed, naming the full disk, and nothing is cached.
    assert res.status == "failed" and res.path == str(song) and "No space left on device" in res.error
    assert not [p for p in small_disk.rglob("*") if p.is_file() and p.name not in ("ballast", "config.json")]
    (small_disk / "ballast").unlink()
    [again] = features_from_files([song], store)                          # space again: it works
    assert again.status == "computed" and store.get(again.audio_sha256) is not None


def test_full_disk_while_caching_features_names_the_entry(small_disk):
    store = FeatureStore(small_disk / "cache", FeatureConfig())
    store.folder.mkdir(parents=True)
    _fill(small_disk, leave=64 * 1024)
    h = "ab" * 16
    with pytest.raises(ProgrockError, match="No space left on device") as info:
        store.put(h, np.ones((43, 2000), np.float32))
    assert str(store.path(h)) in str(info.value)
    assert not store.path(h).exists()


def test_full_disk_while_saving_a_model_keeps_the_old_one(small_disk):
    from progrock.data.snippets import SnippetConfig
    from progrock.model.checkpoint import load_model, save_model
    from progrock.model.network import ModelConfig, SeedCNN

    def save(seed: int):
        torch.manual_seed(seed)
        return save_model(small_disk / "run", SeedCNN(ModelConfig()), model_config=ModelConfig(),
                          feature_config=FeatureConfig(), snippet_config=SnippetConfig(), threshold=0.5,
                          training={"padding": "x" * 100_000})
    save(0)
    before = {p.name: p.read_bytes() for p in (small_disk / "run").iterdir()}
    _fill(small_disk, leave=16 * 1024)
    with pytest.raises(ProgrockError, match="No space left on device") as info:
        save(1)
    assert str(small_disk / "run") in str(info.value)
    after = {p.name: p.read_bytes() for p in (small_disk / "run").iterdir()}
    assert after == before                    # no temporary file left, the old model untouched
    load_model(small_disk / "run")


def test_full_disk_is_a_clear_cli_error(small_disk, demo_corpus, tmp_path, capsys):
    from progrock.cli import main

    for p in sorted((demo_corpus / "prog").iterdir())[:2] + sorted((demo_corpus / "nonprog").iterdir())[:2]:
        dest = tmp_path / "few" / p.parent.name / p.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest)
    _fill(small_disk, leave=0)
    status = main(["scan", str(tmp_path / "few"), "--out", str(small_disk / "manifest.csv")])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert "No space left on device" in err and str(small_disk / "manifest.csv") in err
    assert sorted(p.name for p in small_disk.iterdir()) == ["ballast"]


# ---------------------------------------------------------------------------------------------
# NaN


def test_cached_entry_holding_nan_never_reaches_the_model(tmp_path):
    """A poisoned cache entry is a miss (recomputed); NaN features from anywhere else are skipped."""
    from progrock.data.dataset import load_features, snippet_sets
    from progrock.data.manifest import scan
    from progrock.data.snippets import SnippetConfig

    for i in range(3):
        write_audio(tmp_path / "data" / "prog" / f"p{i}.flac", music(12.0, seed=i), SR)
        write_audio(tmp_path / "data" / "nonprog" / f"n{i}.flac", music(12.0, seed=10 + i, pitch_hz=300), SR)
    manifest = scan(tmp_path / "data", fractions=(1.0, 0.0, 0.0))
    store = FeatureStore(tmp_path / "cache", FeatureConfig())
    clean = load_features(manifest, store)
    poisoned = manifest.songs[0]
    x = store.get(poisoned.audio_sha256).copy()
    x[3, 10] = np.nan
    np.save(store.path(poisoned.audio_sha256), x)
    data = load_features(manifest, store)                  # the entry is refused and computed again
    i = [s.path for s in data.songs].index(poisoned.path)
    np.testing.assert_array_equal(data.features["seed43"][i], clean.features["seed43"][i])
    assert np.all(np.isfinite(store.get(poisoned.audio_sha256)))

    data.features["seed43"][i] = x                         # NaN that did not come through the cache
    skipped: list = []
    sets = snippet_sets(data, SnippetConfig(), skipped=skipped)
    assert skipped == [(poisoned.path, skipped[0][1])] and "NaN or infinite" in skipped[0][1]
    assert poisoned.path not in sets["train"].songs and len(sets["train"].songs) == 5
    assert np.all(np.isfinite(sets["train"].x))


def test_cache_refuses_an_entry_holding_nan(tmp_path):
    store = FeatureStore(tmp_path / "cache", FeatureConfig())
    h = "cd" * 16
    x = np.ones((43, 500), np.float32)
    store.put(h, x)
    x[0, 0] = np.inf
    np.save(store.path(h), x)
    assert store.get(h) is None


def test_predict_refuses_features_holding_nan(tiny_run):
    from progrock.errors import SnippetError
    from progrock.model.run import load_run
    from progrock.predict import classify

    model = load_run(tiny_run.run_dir)
    x = np.zeros((43, 1000), np.float32)
    x[5, 500] = np.inf
    with pytest.raises(SnippetError, match="NaN or infinite") as info:
        classify(model, {"seed43": x}, name="poisoned.flac")
    assert info.value.path == "poisoned.flac"


# ---------------------------------------------------------------------------------------------
# hostile model files: refused, and never executed


@pytest.fixture
def saved(tmp_path):
    from progrock.data.snippets import SnippetConfig
    from progrock.model.checkpoint import save_model
    from progrock.model.network import ModelConfig, SeedCNN

    torch.manual_seed(0)
    save_model(tmp_path, SeedCNN(ModelConfig()), model_config=ModelConfig(), feature_config=FeatureConfig(),
               snippet_config=SnippetConfig(), threshold=0.5, training={})
    return tmp_path


def _rehash(folder: Path, weights: str = "model.safetensors") -> None:
    """Make model.json agree with the (edited) weights file, as a careful attacker would."""
    from progrock.model.checkpoint import sha256_file

    meta = json.loads((folder / "model.json").read_text())
    meta["weights"]["sha256"] = sha256_file(folder / weights)
    (folder / "model.json").write_text(json.dumps(meta))


class _Payload:
    """Unpickling this creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_renamed_model_safetensors_is_refused_and_not_run(saved):
    from progrock.model.checkpoint import load_model

    marker = saved / "PWNED"
    with open(saved / "model.safetensors", "wb") as fh:
        pickle.dump({"head.weight": _Payload(marker)}, fh)
    _rehash(saved)
    with pytest.raises(ModelError, match="model.safetensors: not a readable safetensors file"):
        load_model(saved)
    torch.save({"head.weight": _Payload(marker)}, saved / "model.safetensors")  # torch's zip pickle
    _rehash(saved)
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_model(saved)
    assert not marker.exists()


@pytest.mark.parametrize("header_size", [2**62, 2**40, 10**9])
def test_safetensors_header_claiming_a_huge_size(saved, header_size):
    from progrock.model.checkpoint import load_model

    f = saved / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(struct.pack("<Q", header_size) + data[8:])
    _rehash(saved)
    with pytest.raises(ModelError, match="model.safetensors"):
        load_model(saved)


def test_safetensors_header_with_offsets_beyond_the_file(saved):
    from progrock.model.checkpoint import load_model

    f = saved / "model.safetensors"
    data = f.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["data_offsets"] = [0, 10**12]
    header[name]["shape"] = [10**6, 10**6]
    text = json.dumps(header).encode()
    f.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n:])
    _rehash(saved)
    with pytest.raises(ModelError, match="model.safetensors"):
        load_model(saved)


@pytest.mark.parametrize("field, value", [
    ("threshold", "__import__('pathlib').Path('{marker}').touch() or 0.5"),
    ("class_names", {"__reduce__": ["pathlib.Path.touch", ["{marker}"]]}),
    ("model_config", {"__class__": "os.system", "args": ["touch {marker}"]}),
    ("feature_config", "eval(\"__import__('os').system('touch {marker}')\")"),
    ("snippet_config", {"py/reduce": [{"py/function": "os.system"}, ["touch {marker}"]]}),
])
def test_code_in_model_json_is_refused_and_never_run(saved, field, value):
    from progrock.model.checkpoint import load_model

    marker = saved / "PWNED"
    meta = json.loads((saved / "model.json").read_text())
    meta[field] = json.loads(json.dumps(value).replace("{marker}", str(marker)))
    (saved / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="model.json"):
        load_model(saved)
    assert not marker.exists()


def test_code_in_free_text_fields_is_kept_as_text(saved):
    """``training`` and ``metrics`` are free JSON: a payload there loads as inert data."""
    from progrock.model.checkpoint import load_model

    marker = saved / "PWNED"
    meta = json.loads((saved / "model.json").read_text())
    payload = {"__reduce__": ["os.system", [f"touch {marker}"]], "code": f"open('{marker}', 'w')"}
    meta["training"], meta["metrics"] = payload, payload
    (saved / "model.json").write_text(json.dumps(meta))
    model = load_model(saved)
    assert model.metadata["training"] == payload
    assert not marker.exists()


@pytest.mark.parametrize("weights", ["/etc/passwd", "../model.safetensors", "sub/model.safetensors", ""])
def test_model_json_pointing_elsewhere_is_refused(saved, weights):
    from progrock.model.checkpoint import load_model

    meta = json.loads((saved / "model.json").read_text())
    meta["weights"]["file"] = weights
    (saved / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="model.json"):
        load_model(saved)


def test_model_json_pointing_to_another_model_file_is_refused(saved):
    """Another file beside it with a consistent hash (e.g. the training state) does not fit."""
    from progrock.model.checkpoint import atomic_save_tensors, load_model

    atomic_save_tensors(saved / "other.safetensors", {"w": torch.zeros(3)})
    meta = json.loads((saved / "model.json").read_text())
    meta["weights"]["file"] = "other.safetensors"
    (saved / "model.json").write_text(json.dumps(meta))
    _rehash(saved, "other.safetensors")
    with pytest.raises(ModelError, match="other.safetensors: weights do not fit"):
        load_model(saved)


def test_model_weights_holding_nan_are_refused(saved):
    from safetensors.torch import load_file, save_file

    from progrock.model.checkpoint import load_model

    state = load_file(str(saved / "model.safetensors"))
    state["head.bias"] = torch.full_like(state["head.bias"], float("nan"))
    save_file(state, str(saved / "model.safetensors"))
    _rehash(saved)
    with pytest.raises(ModelError, match="NaN or infinity"):
        load_model(saved)


# ---------------------------------------------------------------------------------------------
# a crash at the worst moment of an epoch's saves, made deterministic


class _Crash(BaseException):
    """Stands in for SIGKILL: nothing after it runs."""


@pytest.mark.parametrize("crash_on", ["history.json", "last.json"])
def test_a_crash_between_the_epoch_saves_loses_no_epoch(tmp_path, monkeypatch, crash_on):
    """Each epoch writes history.json and last.* ; dying between them must not drop a record on resume."""
    import progrock.training.loop as loop
    import progrock.training.state as state
    from test_training import _config, _train, make_set

    train, val = make_set(12, 1), make_set(9, 2)
    real = loop.atomic_write_json
    writes = {"n": 0}

    def dying(path, obj):
        if Path(path).name == crash_on:
            writes["n"] += 1
            if writes["n"] == 3:       # the third epoch's write of this file never happens
                raise _Crash
        return real(path, obj)

    for module in (loop, state):             # history.json is the loop's, last.json the state's
        monkeypatch.setattr(module, "atomic_write_json", dying)
    with pytest.raises(_Crash):
        _train(train, val, tmp_path, _config(epochs=5, histogram_every=0))
    for module in (loop, state):
        monkeypatch.setattr(module, "atomic_write_json", real)
    result = _train(train, val, tmp_path, _config(epochs=5, histogram_every=0), resume=True)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5]
    assert _epochs(tmp_path) == [1, 2, 3, 4, 5]


def test_resume_on_other_songs_is_refused_before_anything_is_written(tmp_path, capsys):
    from progrock.cli import main

    data = tmp_path / "data"
    for i in range(7):
        write_audio(data / "prog" / f"p{i}.flac", music(8.0, seed=i, pitch_hz=220), SR)
        write_audio(data / "nonprog" / f"n{i}.flac", music(8.0, seed=30 + i, pitch_hz=660), SR)
    args = ["train", str(data), "--out", str(tmp_path / "run"), "--recipe", "seed", "--models", "cnn", "--epochs",
            "2", "--batch-size", "16", "--cache", str(tmp_path / "cache"), "--jobs", "1"]
    assert main(args) == 0
    config = (tmp_path / "run" / "config.json").read_bytes()
    write_audio(data / "prog" / "added later.flac", music(8.0, seed=99, pitch_hz=220), SR)
    capsys.readouterr()
    assert main(args + ["--resume"]) == 2
    assert "cannot resume with other settings (the songs or their splits)" in capsys.readouterr().err
    assert (tmp_path / "run" / "config.json").read_bytes() == config
