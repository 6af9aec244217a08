"""Bad audio: every file gets a verdict or a clear error naming it, and batches go on.

The case list with what the user sees is docs/robustness.md. Audio is made in
code; damaged files are made by cutting and overwriting bytes of good ones.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from progrock.audio import decode, write_audio
from progrock.cli import main
from progrock.errors import DecodeError
from progrock.features import FeatureConfig, compute_features
from progrock.features.files import features_from_file

from conftest import SOURCE, SR, music

# ---------------------------------------------------------------------------------------------
# damaged files, made from good ones


def id3_with_garbage(audio: bytes, seed: int = 0) -> bytes:
    """An ID3v2.3 tag of random bytes and bogus frames (one claims 2 GB) before intact MP3 audio."""
    rng = np.random.default_rng(seed)
    frames = (b"TIT2" + struct.pack(">I", 0x7FFFFFF0) + b"\0\0\x03" + rng.bytes(40)
              + b"APIC" + struct.pack(">I", 3000) + b"\0\0" + rng.bytes(3000) + rng.bytes(2000))
    n = len(frames)
    size = bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])  # syncsafe
    return b"ID3\x03\x00\x00" + size + frames + audio


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def replace_in_ogg(data: bytes, old: bytes, new: bytes) -> bytes:
    """Overwrite bytes inside an Ogg file and fix the page checksum, so only the content is bad."""
    assert len(old) == len(new)
    data = bytearray(data)
    at = data.find(old)
    assert at > 0
    data[at:at + len(old)] = new
    pos = 0
    while True:
        assert data[pos:pos + 4] == b"OggS"
        n_seg = data[pos + 26]
        length = 27 + n_seg + sum(data[pos + 27:pos + 27 + n_seg])
        if pos <= at < pos + length:
            data[pos + 22:pos + 26] = b"\0\0\0\0"
            data[pos + 22:pos + 26] = struct.pack("<I", _ogg_crc(bytes(data[pos:pos + length])))
            return bytes(data)
        pos += length


INVALID_UTF8 = bytes([0xFF, 0xFE, 0xC3, 0x28, 0xA0, 0xA1, 0xE2, 0x28]) * 8
MARKER = "M" * len(INVALID_UTF8)


def garbage_tagged(folder: Path, ext: str, y: np.ndarray, name: str | None = None) -> tuple[Path, Path]:
    """(clean file, the same audio with garbage tags)."""
    clean = write_audio(folder / f"clean-{ext}.{ext}", y, SR, tags={"title": MARKER})
    bad = folder / (name or f"garbage tags.{ext}")
    data = clean.read_bytes()
    if ext == "mp3":
        bad.write_bytes(id3_with_garbage(data))
    elif ext == "ogg":
        bad.write_bytes(replace_in_ogg(data, MARKER.encode(), INVALID_UTF8))
    else:  # FLAC: a Vorbis comment of invalid UTF-8 (the metadata block has no checksum)
        assert data.count(MARKER.encode()) == 1
        bad.write_bytes(data.replace(MARKER.encode(), INVALID_UTF8))
    assert bad.read_bytes() != data
    return clean, bad


def truncated(folder: Path, ext: str, y: np.ndarray, name: str | None = None, keep: float = 0.5) -> Path:
    """A file cut off mid-frame: the first ``keep`` of its bytes plus 7 more, mid-way into a frame."""
    full = write_audio(folder / f"full-{ext}.{ext}", y, SR).read_bytes()
    path = folder / (name or f"truncated.{ext}")
    path.write_bytes(full[:int(len(full) * keep) + 7])
    return path


# ---------------------------------------------------------------------------------------------
# one file at a time: the decoder and the features


@pytest.mark.parametrize("ext", ["mp3", "flac", "ogg"])
def test_truncated_file_keeps_what_decodes(tmp_path, ext):
    """Decision (docs/robustness.md): a file cut off mid-frame keeps the audio before the cut."""
    y = music(30.0, seed=5)
    path = truncated(tmp_path, ext, y)
    audio = decode(path)
    assert 10.0 < audio.duration < 20.0          # about half of the 30 s, not all and not nothing
    n = len(audio.y) - SR                        # the audio kept is the song's beginning
    assert np.corrcoef(audio.y[SR // 2:n], y[SR // 2:n])[0, 1] > 0.9
    x, h = features_from_file(path, FeatureConfig())
    assert h == audio.sha256 and np.all(np.isfinite(x))


@pytest.mark.parametrize("ext", ["mp3", "flac", "ogg"])
def test_garbage_tags_do_not_change_the_audio(tmp_path, ext):
    clean, bad = garbage_tagged(tmp_path, ext, music(12.0, seed=6))
    a, b = decode(clean), decode(bad)
    assert a.sha256 == b.sha256
    xa, ha = features_from_file(clean, FeatureConfig())
    xb, hb = features_from_file(bad, FeatureConfig())
    assert ha == hb == a.sha256
    np.testing.assert_array_equal(xa, xb)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "FLOAT"])
@pytest.mark.parametrize("sr", [8_000, 16_000, 44_100, 48_000, 96_000])
def test_wav_sample_formats_and_rates(tmp_path, subtype, sr):
    y = music(3.0, sr=sr, pitch_hz=440.0)
    path = tmp_path / f"{sr}-{subtype}.wav"
    sf.write(path, y, sr, subtype=subtype)
    audio = decode(path)
    assert (audio.source_sr, audio.sr, audio.channels) == (sr, SR, 1)
    assert audio.duration == pytest.approx(3.0, abs=1e-3)
    # The content survives the sample format and the resampling (the loudest chroma bin is A).
    x, h = features_from_file(path, FeatureConfig())
    assert h == audio.sha256 and np.all(np.isfinite(x))
    assert int(np.argmax(x[30:42].mean(axis=1))) == 9
    # Against the float original: less error than one quantisation step (8 bits: 1/128).
    ref = decode(write_audio(tmp_path / "ref.wav", y, sr, subtype="FLOAT")).y
    rms_error = np.sqrt(np.mean((audio.y - ref) ** 2))
    assert rms_error < (1 / 128 if subtype == "PCM_U8" else 1e-4)


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_mono_stereo_and_5_1_are_averaged(tmp_path, channels):
    y = music(3.0, sr=48_000)
    gains = np.linspace(0.2, 1.0, channels)
    path = tmp_path / f"{channels}ch.wav"
    sf.write(path, y[:, None] * gains[None, :], 48_000, subtype="FLOAT")
    audio = decode(path)
    assert audio.channels == channels
    mono = decode(write_audio(tmp_path / "mono.wav", y * gains.mean(), 48_000, subtype="FLOAT"))
    np.testing.assert_allclose(audio.y, mono.y, atol=1e-6)
    x, h = features_from_file(path, FeatureConfig())
    assert h == audio.sha256 and x.shape[1] > 100


def test_digital_silence_warns_at_most_and_gives_finite_features(tmp_path):
    path = write_audio(tmp_path / "silence.flac", np.zeros(12 * SR, np.float32), SR)
    audio = decode(path)
    assert audio.duration == pytest.approx(12.0) and not audio.y.any()
    x, _ = features_from_file(path, FeatureConfig())
    assert x.shape[1] > 400 and np.all(np.isfinite(x))
    logmel = FeatureConfig.named("logmel")
    assert np.all(np.isfinite(compute_features(audio.y, logmel)))


@pytest.mark.parametrize("scale", [1e-30, 1e-6, 30.0, 1e5])
def test_extreme_but_finite_audio_gives_finite_features(tmp_path, scale):
    path = tmp_path / "loud.wav"
    sf.write(path, music(12.0) * scale, SR, subtype="FLOAT")
    x, _ = features_from_file(path, FeatureConfig())
    assert np.all(np.isfinite(x))
    assert np.all(np.isfinite(compute_features(decode(path).y, FeatureConfig.named("logmel"))))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_float_wav_with_nan_or_inf_is_refused(tmp_path, value):
    y = music(12.0)
    y[5000:5003] = value
    path = tmp_path / "poisoned.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    for read in (decode, lambda p: features_from_file(p, FeatureConfig())):
        with pytest.raises(DecodeError, match="NaN or infinite") as info:
            read(path)
        assert str(path) in str(info.value)


def test_absurdly_large_samples_are_refused_by_the_decoder(tmp_path):
    """Float samples of 1e30 are finite but not audio: their powers overflow the features."""
    path = tmp_path / "absurd.wav"
    sf.write(path, music(12.0) * 1e30, SR, subtype="FLOAT")
    with pytest.raises(DecodeError, match="sample values reach [0-9.]+e\\+29: not audio") as info:
        decode(path)
    assert str(path) in str(info.value)


def test_absurdly_large_samples_are_refused_by_the_streamed_decoder(tmp_path):
    path = tmp_path / "absurd.wav"
    sf.write(path, music(12.0) * 1e30, SR, subtype="FLOAT")
    with pytest.raises(DecodeError, match="sample values reach"):
        features_from_file(path, FeatureConfig())


def test_text_named_flac_is_not_recognised_by_the_decoder(tmp_path):
    path = tmp_path / "notes.flac"
    path.write_text("These are words, not music.\n" * 40)
    with pytest.raises(DecodeError, match="not a recognised audio file") as info:
        decode(path)
    assert str(path) in str(info.value)


def test_text_named_flac_is_not_recognised_by_the_streamed_decoder(tmp_path):
    path = tmp_path / "notes.flac"
    path.write_text("These are words, not music.\n" * 40)
    with pytest.raises(DecodeError, match="not a recognised audio file"):
        features_from_file(path, FeatureConfig())


def test_symlinks_are_followed_and_dangling_ones_named(tmp_path):
    target = write_audio(tmp_path / "real.flac", music(3.0), SR)
    link = tmp_path / "link.flac"
    link.symlink_to(target)
    assert decode(link).sha256 == decode(target).sha256
    dangling = tmp_path / "gone.mp3"
    dangling.symlink_to(tmp_path / "deleted.mp3")
    for read in (decode, lambda p: features_from_file(p, FeatureConfig())):
        with pytest.raises(DecodeError, match="broken symbolic link"):
            read(dangling)


@pytest.mark.parametrize("name", ["Ünïcødé sông – 1.flac", "日本語の歌 (ライブ).ogg", "a'b\"c $x; `y`.mp3"])
def test_names_with_spaces_and_non_ascii(tmp_path, name):
    path = write_audio(tmp_path / "Földer with space" / name, music(3.0), SR)
    assert decode(path).duration == pytest.approx(3.0, abs=0.06)
    bad = path.with_name("ß " + name)
    bad.write_bytes(b"")
    with pytest.raises(DecodeError) as info:
        decode(bad)
    assert str(bad) in str(info.value)


def _unprivileged_prefix() -> list[str] | None:
    """The command prefix that runs a child as user ``nobody`` (65534), or None if there is none."""
    if os.geteuid() != 0:
        return []  # not root: chmod 000 already stops our own reads
    setpriv = shutil.which("setpriv")
    if setpriv and subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "true"],
                                  capture_output=True).returncode == 0:
        return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    return None


def test_unreadable_file_is_reported_and_the_others_processed():
    """chmod 000 does not stop root, so the command runs as user nobody in a child process."""
    prefix = _unprivileged_prefix()
    if prefix is None:
        pytest.skip("running as root and setpriv cannot drop to uid 65534, so no file is unreadable")
    root = Path(tempfile.mkdtemp(prefix="progrock-perm-", dir="/tmp"))  # nobody can reach /tmp/x
    try:
        os.chmod(root, 0o777)
        songs = root / "songs"
        good = write_audio(songs / "good.flac", music(11.0), SR)
        secret = write_audio(songs / "secret.flac", music(11.0, seed=3), SR)
        os.chmod(secret, 0o000)
        os.chmod(songs, 0o755)
        os.chmod(good, 0o644)
        cache = root / "cache"
        cache.mkdir(mode=0o777)
        os.chmod(cache, 0o777)
        env = dict(os.environ, HOME=str(root), PROGROCK_CACHE=str(cache), PYTHONPATH=SOURCE)
        proc = subprocess.run(prefix + [sys.executable, "-m", "progrock", "features", str(songs),
                                        "--cache", str(cache), "--jobs", "1"],
                              capture_output=True, text=True, env=env, cwd=root, timeout=300)
        assert proc.returncode == 1, proc.stderr
        assert "1 computed, 0 cached, 1 failed" in proc.stdout
        assert "secret.flac" in proc.stderr and "permission denied" in proc.stderr
        assert "good.flac" not in proc.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_an_hour_long_file_in_bounded_memory(tmp_path):
    """60 minutes: a scan's probe and features work; memory stays far below the whole decoded song.

    The child measures its own peak RSS: a scan's probe first, then features, both
    streamed (the decoded song alone would be 317 MB at 22,050 Hz).
    """
    path = tmp_path / "hour.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=8_000, channels=1, subtype="PCM_16") as f:
        for minute in range(60):
            t = np.arange(8_000 * 60) / 8_000
            f.write(0.2 * np.sin(2 * np.pi * (200 + 5 * minute) * t) + 0.05 * rng.standard_normal(t.size))
    code = (
        "import resource, sys, numpy as np\n"
        "from progrock.features import FeatureConfig\n"
        "from progrock.features.files import features_from_file\n"
        "from progrock.data.manifest import _probe\n"
        "rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "features_from_file(sys.argv[2], FeatureConfig())\n"
        "_probe(sys.argv[2])\n"
        "base = rss()\n"
        "info = _probe(sys.argv[1])\n"
        "scan = rss() - base\n"
        "x, h = features_from_file(sys.argv[1], FeatureConfig())\n"
        "feat = rss() - base\n"
        "print(x.shape[1], bool(np.isfinite(x).all()), info.get('duration'), info.get('error'), feat, scan)\n")
    small = write_audio(tmp_path / "small.wav", music(12.0), SR)
    proc = subprocess.run([sys.executable, "-c", code, str(path), str(small)], capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONPATH=SOURCE))
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames, finite, duration, error, feat_mb, scan_mb = proc.stdout.split()
    assert int(frames) == 1 + 3600 * SR // 512 and finite == "True"
    assert float(duration) == pytest.approx(3600.0) and error == "None"
    # The decoded song alone is 317 MB at 22,050 Hz: neither step may hold it.
    assert float(scan_mb) < 250, f"a scan's probe took {scan_mb} MB more than a 12-s song"
    assert float(feat_mb) < 250, f"features took {feat_mb} MB more than a 12-s song"


# ---------------------------------------------------------------------------------------------
# one mixed folder through every command


BAD = {
    # name: (reason from the decoder [scan, train, evaluate], reason from the streamed features
    #        [features, predict]); None: the file is fine and is processed.
    "empty.wav": ("empty file (0 bytes)", "empty file (0 bytes)"),
    "random bytes.mp3": ("not a recognised audio file", "not a recognised audio file"),
    "text.flac": ("not a recognised audio file", "not a recognised audio file"),
    "nan samples.wav": ("NaN or infinite samples", "NaN or infinite samples"),
    "dangling link.ogg": ("broken symbolic link", "broken symbolic link"),
}
TOO_SHORT = "blip 0.5 s.wav"
FINE = ["Ünïcødé sông – 1.flac", "日本語の歌.ogg", "truncated.mp3", "truncated.flac", "truncated.ogg",
        "garbage tags.mp3", "garbage tags.ogg", "garbage tags.flac", "silence.wav", "link to a song.flac",
        "Album.flac/track.wav"]


@pytest.fixture(scope="module")
def mixed(demo_corpus, tmp_path_factory):
    """The demo songs plus every bad and odd file, in prog/ and nonprog/ (the bad ones under both)."""
    root = tmp_path_factory.mktemp("mixed") / "music"
    shutil.copytree(demo_corpus, root, ignore=shutil.ignore_patterns("*.json", "*.csv"))
    tmp = tmp_path_factory.mktemp("mixed-src")
    for i, label in enumerate(("prog", "nonprog")):
        d = root / label / "odd"
        d.mkdir()
        y = music(24.0, seed=40 + i, pitch_hz=300.0 + 50 * i)
        write_audio(d / FINE[0], y, SR)
        write_audio(d / FINE[1], music(24.0, seed=50 + i), SR)
        for k, ext in enumerate(("mp3", "flac", "ogg")):
            truncated(tmp, ext, music(48.0, seed=60 + 3 * i + k), name=f"{label}-t.{ext}")
            shutil.move(tmp / f"{label}-t.{ext}", d / f"truncated.{ext}")
            garbage_tagged(tmp, ext, music(24.0, seed=70 + 3 * i + k), name=f"{label}-g.{ext}")
            shutil.move(tmp / f"{label}-g.{ext}", d / f"garbage tags.{ext}")
        # Digital silence is one "recording" whatever its length: 24 s and 30 s are not grouped.
        write_audio(d / "silence.wav", np.zeros((24 + 6 * i) * SR, np.float32), SR)
        target = next(p for p in sorted((root / label).glob("*")) if p.is_file())
        (d / "link to a song.flac").symlink_to(target)
        write_audio(d / "Album.flac" / "track.wav", music(24.0, seed=80 + i), SR)
        (d / "empty.wav").write_bytes(b"")
        (d / "random bytes.mp3").write_bytes(np.random.default_rng(i).bytes(50_000))
        (d / "text.flac").write_text("These are words, not music.\n" * 40)
        poisoned = music(12.0, seed=90 + i)
        poisoned[100:110] = np.nan
        sf.write(d / "nan samples.wav", poisoned, SR, subtype="FLOAT")
        (d / "dangling link.ogg").symlink_to(d / "deleted.ogg")
        write_audio(d / TOO_SHORT, music(0.5, seed=95 + i), SR)
    return root


def _listed(err: str, label: str, name: str) -> str:
    """The reason printed for ``label/odd/name`` on stderr ('' if the file is not listed)."""
    for line in err.splitlines():
        if f"{label}/odd/{name}:" in line:
            return line.split(f"{name}:", 1)[1].strip()
    return ""


def _check_failures(err: str, which: int, *, too_short: bool):
    for label in ("prog", "nonprog"):
        for name, reasons in BAD.items():
            reason = _listed(err, label, name)
            assert reason, f"{label}/{name} is not listed with a reason:\n{err}"
            assert reasons[which] in reason, (name, reason)
        assert ("too short" in _listed(err, label, TOO_SHORT)) == too_short, err
        for name in FINE:
            assert not _listed(err, label, name), f"{name} should have been processed:\n{err}"
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def mixed_run(mixed, tmp_path_factory):
    """scan, features and train on the mixed folder through the CLI: {command: (status, out, err)}."""
    import contextlib
    import io

    cache = Path(os.environ["PROGROCK_CACHE"])   # the session's cache: the demo songs' features once
    results = {}

    def run(name, args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(args)
        results[name] = (status, out.getvalue(), err.getvalue())

    run("scan", ["scan", str(mixed), "--seed", "0", "--jobs", "2"])
    run("features", ["features", str(mixed), "--cache", str(cache), "--jobs", "2"])
    run_dir = tmp_path_factory.mktemp("mixed-run")
    run("train", ["train", str(mixed / "manifest.csv"), "--out", str(run_dir), "--epochs", "3",
                  "--batch-size", "64", "--recipe", "seed", "--models", "cnn,cnn_mean", "--cache", str(cache),
                  "--jobs", "2"])
    run("evaluate", ["evaluate", str(run_dir), "--jobs", "2"])
    run("predict", ["predict", str(run_dir), str(mixed), "--json", "--jobs", "2"])
    results["run_dir"] = run_dir
    return results


def test_scan_keeps_every_file_with_its_reason(mixed, mixed_run):
    from progrock.data.manifest import read_manifest

    status, _, err = mixed_run["scan"]
    assert status == 1
    _check_failures(err, 0, too_short=False)
    songs = {s.path: s for s in read_manifest(mixed / "manifest.csv").songs}
    for label in ("prog", "nonprog"):
        for name in FINE:
            s = songs[f"{label}/odd/{name}"]
            assert s.ok and s.split, (name, s.error)
        assert songs[f"{label}/odd/empty.wav"].error == "empty file (0 bytes)"
        assert songs[f"{label}/odd/{TOO_SHORT}"].duration == pytest.approx(0.5, abs=0.01)


def test_features_computes_the_good_and_lists_the_bad(mixed, mixed_run):
    status, out, err = mixed_run["features"]
    assert status == 1
    _check_failures(err, 1, too_short=False)      # a 0.5-s clip has features; it is too short to classify
    n_files = sum(1 for p in mixed.rglob("*") if p.suffix in (".wav", ".mp3", ".flac", ".ogg", ".opus",
                                                                 ".aiff", ".m4a") and not p.is_dir())
    assert f"{2 * len(BAD)} failed" in out and f"{n_files} files" in out
    for label in ("prog", "nonprog"):            # the streamed reason is still a reason, not a crash
        assert _listed(err, label, "text.flac")


def test_train_uses_the_good_files_and_lists_the_bad(mixed_run):
    from progrock.data.manifest import read_manifest

    status, out, err = mixed_run["train"]
    assert status == 1, err
    _check_failures(err, 0, too_short=True)
    assert (mixed_run["run_dir"] / "model.json").is_file() and "CNN member 1: best epoch" in out
    used = {s.path for s in read_manifest(mixed_run["run_dir"] / "manifest.csv").usable()}
    assert any("garbage tags" in p for p in used) and any("Ünïcødé" in p for p in used)


def test_evaluate_lists_the_bad_and_judges_the_rest(mixed_run):
    status, out, err = mixed_run["evaluate"]
    assert status == 1, err
    _check_failures(err, 0, too_short=True)
    assert "song-level metrics" in out


def test_predict_classifies_the_good_and_lists_the_bad(mixed, mixed_run):
    import json

    status, out, err = mixed_run["predict"]
    assert status == 1, err
    _check_failures(err, 1, too_short=True)
    got = {d["path"]: d for d in map(json.loads, out.splitlines())}
    for label in ("prog", "nonprog"):
        for name in FINE:
            d = got[str(mixed / label / "odd" / name)]
            assert d["verdict"] in ("prog", "nonprog") and d["n_snippets"] >= 1
            assert all(0.0 <= p <= 1.0 for p in d["snippet_probs"])


def test_predict_names_a_folder_without_songs(tmp_path, mixed_run, capsys):
    (tmp_path / "not a song.mp3").mkdir()
    assert main(["predict", str(mixed_run["run_dir"]), str(tmp_path / "not a song.mp3")]) == 1
    assert "not a song.mp3: a folder without audio files" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the server: twenty uploads at once


def test_twenty_uploads_at_once_against_a_live_server(tiny_run, demo_corpus):
    """20 simultaneous uploads (16 songs in every format, 4 bad files): every answer right, then more."""
    import httpx

    from progrock.model.run import load_run
    from progrock.predict import classify_file
    from progrock.serve import create_app
    from test_serve import serving

    model = load_run(tiny_run.run_dir)
    songs = sorted(p for p in demo_corpus.rglob("*") if p.is_file() and p.suffix not in (".json", ".csv"))
    songs = [songs[i * len(songs) // 16] for i in range(16)]
    uploads = [(s.name, s.read_bytes()) for s in songs]
    bad = [("lyrics.mp3", b"words, not music " * 100), ("empty.flac", b""),
           ("../../escape.wav", b"RIFF" + bytes(200)), ("noise.ogg", np.random.default_rng(3).bytes(9000))]
    uploads[2:2] = bad[:2]
    uploads[10:10] = bad[2:]
    expected = {s.name: classify_file(model, s, name=s.name).to_dict() for s in songs}
    with serving(create_app(tiny_run.run_dir, max_concurrent=2)) as base:
        def post(item):
            name, data = item
            r = httpx.post(f"{base}/api/classify", files={"file": (name, data)}, timeout=300)
            return name, r.status_code, r.json()
        with ThreadPoolExecutor(len(uploads)) as pool:
            answers = list(pool.map(post, uploads))
        assert len(answers) == 20
        for name, status, body in answers:
            if name in expected:
                assert status == 200 and body == expected[name], name
            else:
                assert status == 422 and body["error"].split(":")[0] == name.rsplit("/", 1)[-1], (name, body)
        assert httpx.get(f"{base}/api/model", timeout=60).status_code == 200
