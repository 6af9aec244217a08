"""Audio input that cannot exhaust memory or fail silently (docs/robustness.md).

Each class of bad input has a reason the user sees: absurd sample rates,
headers claiming more audio than the file holds, recordings over the length
limit, FIFOs and devices named like songs, paths beyond the system's limits,
folders that cannot be read. What used to be cut or passed without a word is
decoded whole or warned about: chained Ogg streams, FLAC MD5 mismatches,
``.dsf`` files in a folder. Scanning streams: its hash and fingerprint equal
the whole-signal ones.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import tracemalloc
import warnings
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from progrock.audio import DecodeWarning, audio_hash, decode, find_audio_files, stream_decode, write_audio
from progrock.audio.encode import FORMATS
from progrock.audio.fingerprint import FP_BANDS, FP_BLOCK_FRAMES, FP_HOP, FP_N_FFT, fingerprint
from progrock.constants import AUDIO_EXTENSIONS, MAX_SOURCE_SR, MIN_SOURCE_SR
from progrock.data.manifest import _probe, read_manifest, scan
from progrock.errors import ConfigError, DecodeError, FileError
from progrock.features import FeatureConfig
from progrock.features.files import features_from_file
from progrock.predict import expand_inputs

from conftest import SOURCE, SR, music


class Counter:
    """A sink counting the samples it receives."""

    def __init__(self):
        self.n = 0

    def update(self, y):
        self.n += y.size


# ---------------------------------------------------------------------------------------------
# scan streams: the whole-signal hash and fingerprint, block by block


def reference_fingerprint(y: np.ndarray, sr: int = SR) -> np.ndarray:
    """The fingerprint as computed on the whole signal before scan streamed (librosa.stft per block)."""
    mel = librosa.filters.mel(sr=sr, n_fft=FP_N_FFT, n_mels=FP_BANDS, fmin=300.0, fmax=4000.0)
    half = FP_N_FFT // 2
    n_frames = 1 + len(y) // FP_HOP
    E = np.empty((FP_BANDS, n_frames), dtype=np.float32)
    for t0 in range(0, n_frames, FP_BLOCK_FRAMES):
        t1 = min(n_frames, t0 + FP_BLOCK_FRAMES)
        lo, hi = t0 * FP_HOP - half, (t1 - 1) * FP_HOP + half
        seg = y[max(lo, 0):min(hi, len(y))]
        if lo < 0 or hi > len(y):
            seg = np.pad(seg, (max(0, -lo), max(0, hi - len(y))))
        S = np.abs(librosa.stft(seg, n_fft=FP_N_FFT, hop_length=FP_HOP, center=False)) ** 2
        E[:, t0:t1] = mel @ S
    band_diff = E[:-1] - E[1:]
    return (band_diff[:, 1:] - band_diff[:, :-1]) > 0


@pytest.mark.parametrize("ext,sr,channels,seconds", [
    ("flac", 44_100, 2, 100.0),   # more than one block of 8192 fingerprint frames (95 s)
    ("mp3", 22_050, 1, 30.0),
    ("opus", 48_000, 2, 30.0),
    ("m4a", 44_100, 2, 20.0),
])
def test_scan_probe_streams_the_whole_signal_hash_and_fingerprint(tmp_path, ext, sr, channels, seconds):
    y = music(seconds, sr=sr, seed=4, pitch_hz=262.0)
    if channels == 2:
        y = np.stack([y, 0.7 * np.roll(y, 999)], axis=1)
    path = write_audio(tmp_path / f"x.{ext}", y, sr)
    whole = decode(path).y
    info = _probe(str(path))
    bits = np.unpackbits(info["fp"], axis=1, count=info["fp_frames"]).astype(bool)
    ref = reference_fingerprint(whole)
    assert ref.shape[1] > 1000 and ref.any() and not ref.all()
    np.testing.assert_array_equal(bits, ref)
    assert info["audio_sha256"] == audio_hash(whole)
    assert info["duration"] == pytest.approx(len(whole) / SR, abs=1e-3)


@pytest.mark.parametrize("n", [1_000, FP_BLOCK_FRAMES * FP_HOP + 1_000, 2 * FP_BLOCK_FRAMES * FP_HOP - 3])
def test_fingerprint_equals_the_whole_signal_reference_across_block_edges(n):
    y = (0.1 * np.random.default_rng(n).standard_normal(n)).astype(np.float32)
    np.testing.assert_array_equal(fingerprint(y), reference_fingerprint(y))


# ---------------------------------------------------------------------------------------------
# sample rates a file may declare


def wav_declaring(path: Path, rate: int, n: int = 8_192) -> Path:
    """A 16-bit mono WAV of ``n`` samples whose header declares ``rate`` Hz (16 KB for 8,192 samples)."""
    sf.write(path, music(n / SR)[:n], SR, subtype="PCM_16", format="WAV")
    data = bytearray(path.read_bytes())
    data[24:32] = struct.pack("<II", rate, 2 * rate)  # sample rate and byte rate of the fmt chunk
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("rate", [1, 100, MIN_SOURCE_SR - 1, MAX_SOURCE_SR + 1, 2**31 - 1])
@pytest.mark.parametrize("ext", ["wav", "mka"])  # read by libsndfile; the same bytes by FFmpeg
def test_absurd_sample_rates_are_refused_naming_the_accepted_range(tmp_path, rate, ext):
    path = wav_declaring(tmp_path / f"x.{ext}", rate)
    for read in (decode, lambda p: features_from_file(p, FeatureConfig()), lambda p: stream_decode(p, Counter)):
        with pytest.raises(DecodeError) as info:
            read(path)
        assert info.value.path == str(path)
        assert info.value.reason == (f"sample rate of {rate:,} Hz is outside the accepted range "
                                     f"({MIN_SOURCE_SR:,} to {MAX_SOURCE_SR:,} Hz)")
    assert _probe(str(path))["error"].startswith(f"sample rate of {rate:,} Hz")


def test_aiff_at_one_hertz_is_refused(tmp_path):
    path = tmp_path / "x.aiff"
    sf.write(path, music(1.0), 1, format="AIFF")
    with pytest.raises(DecodeError, match="sample rate of 1 Hz is outside"):
        decode(path)


@pytest.mark.parametrize("rate", [MIN_SOURCE_SR, 384_000])
def test_the_edges_of_the_accepted_range_decode(tmp_path, rate):
    audio = decode(wav_declaring(tmp_path / "x.wav", rate, n=40_000))
    assert audio.source_sr == rate and audio.duration == pytest.approx(40_000 / rate, abs=1e-3)


# ---------------------------------------------------------------------------------------------
# headers claiming more than the file holds


def _lying_files(folder: Path) -> dict[str, Path]:
    """3 s of audio under headers claiming 4 GB (WAV), 2**36 samples (FLAC), 3.6 hours (MP3)."""
    y = music(3.0)
    wav = bytearray(write_audio(folder / "w.wav", y, SR).read_bytes())
    at = wav.find(b"data")
    wav[4:8], wav[at + 4:at + 8] = struct.pack("<I", 0xFFFFFFF0), struct.pack("<I", 0xFFFFFFE0)
    flac = bytearray(write_audio(folder / "f.flac", y, SR).read_bytes())
    flac[18:26] = (int.from_bytes(flac[18:26], "big") | (2**36 - 1)).to_bytes(8, "big")
    mp3 = bytearray(write_audio(folder / "m.mp3", y, SR).read_bytes())
    at = mp3.find(b"Xing")
    mp3[at + 8:at + 12] = struct.pack(">I", 500_000)  # frames of 576 samples: 3.6 hours at 22,050 Hz
    out = {}
    for name, data in (("lie.wav", wav), ("lie.flac", flac), ("lie.mp3", mp3)):
        out[name] = folder / name
        out[name].write_bytes(bytes(data))
    return out


def test_headers_claiming_huge_lengths_cost_only_what_the_file_holds(tmp_path):
    """Allocations (numpy's included, counted by tracemalloc) stay small; the real 3 s decode."""
    lies = _lying_files(tmp_path)
    assert sf.info(str(lies["lie.mp3"])).frames > 3 * 3600 * SR  # what libsndfile believes
    for name, path in lies.items():
        tracemalloc.start()
        try:
            audio = decode(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert audio.duration == pytest.approx(3.0, abs=0.06), name
        assert peak < 20e6, f"{name}: {peak / 1e6:.0f} MB allocated for 3 s of audio"


# ---------------------------------------------------------------------------------------------
# the longest recording accepted


def test_a_recording_over_the_limit_stops_early_naming_file_and_limit(tmp_path):
    path = write_audio(tmp_path / "long.flac", music(30.0), SR)
    sink = Counter()
    with pytest.raises(DecodeError) as info:
        stream_decode(path, lambda: sink, max_hours=10 / 3600)
    assert info.value.path == str(path)
    assert "longer than 0.00277778 hours" in info.value.reason and "PROGROCK_MAX_HOURS" in info.value.reason
    assert 0 < sink.n <= 10 * SR  # stopped at the limit, not after decoding the whole file
    assert decode(path, max_hours=math.inf).duration == pytest.approx(30.0)
    assert decode(path, max_hours=31 / 3600).duration == pytest.approx(30.0)


def test_the_limit_comes_from_the_environment(tmp_path, monkeypatch):
    long, short = write_audio(tmp_path / "long.ogg", music(12.0), SR), write_audio(tmp_path / "short.ogg",
                                                                                    music(6.0), SR)
    monkeypatch.setenv("PROGROCK_MAX_HOURS", str(8 / 3600))
    for read in (decode, lambda p: features_from_file(p, FeatureConfig())):
        with pytest.raises(DecodeError, match="longer than"):
            read(long)
    assert "longer than" in _probe(str(long))["error"]
    assert decode(short).duration == pytest.approx(6.0, abs=0.01)
    assert decode(long, max_hours=1.0).duration == pytest.approx(12.0, abs=0.01)  # the argument wins
    for bad in ("abc", "0", "-1", "nan"):
        monkeypatch.setenv("PROGROCK_MAX_HOURS", bad)
        with pytest.raises(ConfigError, match="PROGROCK_MAX_HOURS"):
            decode(short)


# ---------------------------------------------------------------------------------------------
# chained Ogg streams


@pytest.mark.parametrize("ext,rates,channels", [
    ("ogg", (44_100, 22_050), (1, 1)),   # the sample rate changes
    ("ogg", (22_050, 44_100), (2, 2)),
    ("opus", (48_000, 48_000), (1, 2)),  # the channels change
])
def test_every_stream_of_a_chained_ogg_is_decoded(tmp_path, ext, rates, channels):
    def part(name, seconds, sr, ch, seed):
        y = music(seconds, sr=sr, seed=seed, pitch_hz=200.0 * seed)
        return write_audio(tmp_path / f"{name}.{ext}", y if ch == 1 else np.stack([y, y], axis=1), sr)

    a, b = part("a", 5.0, rates[0], channels[0], 1), part("b", 7.0, rates[1], channels[1], 2)
    chained = tmp_path / f"chained.{ext}"
    chained.write_bytes(a.read_bytes() + b.read_bytes())
    audio, ya, yb = decode(chained), decode(a).y, decode(b).y
    assert audio.duration == pytest.approx(12.0, abs=0.01) and audio.source_sr == rates[0]
    head, tail = audio.y[:len(ya)], audio.y[len(ya):]
    assert len(tail) == pytest.approx(len(yb), abs=2)
    np.testing.assert_array_equal(head[:4 * SR], ya[:4 * SR])  # the same samples away from the seam
    n = min(len(tail), len(yb)) - SR
    assert np.corrcoef(tail[SR:n], yb[SR:n])[0, 1] > 0.999


# ---------------------------------------------------------------------------------------------
# FLAC MD5 signatures


def _flip(data: bytes, at: int, n: int = 1) -> bytes:
    return data[:at] + bytes(b ^ 0x5A for b in data[at:at + n]) + data[at + n:]


@pytest.mark.parametrize("subtype", ["PCM_S8", "PCM_16", "PCM_24"])
def test_flac_audio_not_matching_its_md5_is_decoded_with_a_warning(tmp_path, subtype):
    y = np.stack([music(6.0, seed=1), music(6.0, seed=2)], axis=1)
    data = write_audio(tmp_path / "clean.flac", y, SR, subtype=subtype).read_bytes()
    files = {"clean": data, "md5 altered": _flip(data, 30, 4), "frame damaged": _flip(data, len(data) // 2)}
    for ext in ("flac", "mka"):  # libsndfile first; FFmpeg alone
        for name, content in files.items():
            path = tmp_path / f"{name}.{ext}"
            path.write_bytes(content)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                audio = decode(path)
            found = [w for w in caught if issubclass(w.category, DecodeWarning)]
            if name == "clean":
                assert not found and audio.warnings == (), (ext, [str(w.message) for w in found])
                continue
            assert len(found) == 1 and str(path) in str(found[0].message), (name, ext)
            assert audio.warnings == ("the audio does not match the FLAC file's MD5 signature: "
                                      "the file is damaged (decoded anyway)",)
            assert audio.duration == pytest.approx(6.0)
    with pytest.warns(DecodeWarning):
        assert _probe(str(tmp_path / "md5 altered.flac"))["warnings"] == list(audio.warnings)
    assert _probe(str(tmp_path / "clean.flac"))["warnings"] == []


# ---------------------------------------------------------------------------------------------
# file endings: the walk and the decoder agree


def write_dsf(path: Path, seconds: float = 1.0, tone_hz: float = 441.0, rate: int = 2_822_400) -> Path:
    """A stereo DSD64 file (Sony DSF) holding a full-scale square wave at ``tone_hz``."""
    n = int(seconds * rate) // 8 * 8
    bits = ((np.arange(n) * 2 * tone_hz // rate) % 2 == 0).astype(np.uint8)
    block = 4096  # bytes per channel block
    per_channel = np.packbits(bits, bitorder="little")
    per_channel = np.pad(per_channel, (0, -len(per_channel) % block))
    data = b"".join(per_channel[i:i + block].tobytes() * 2 for i in range(0, len(per_channel), block))
    fmt = struct.pack("<4sQIIIIIIQII", b"fmt ", 52, 1, 0, 2, 2, rate, 1, n, block, 0)
    body = fmt + struct.pack("<4sQ", b"data", 12 + len(data)) + data
    path.write_bytes(struct.pack("<4sQQQ", b"DSD ", 28, 28 + len(body), 0) + body)
    return path


def test_dsf_files_are_walked_and_decoded(tmp_path):
    (tmp_path / "album").mkdir()
    path = write_dsf(tmp_path / "album" / "01 track.dsf")
    assert find_audio_files(tmp_path) == [path]
    audio = decode(path)
    assert (audio.decoder, audio.source_sr, audio.channels) == ("pyav", 352_800, 2)
    assert audio.duration == pytest.approx(1.0, abs=0.01)
    spectrum = np.abs(np.fft.rfft(audio.y))
    assert np.argmax(spectrum) * SR / len(audio.y) == pytest.approx(441.0, abs=2.0)


def test_every_ending_walked_is_one_the_decoder_reads(tmp_path):
    """Writable formats and libsndfile's endings are walked; a file under any walked ending decodes."""
    from progrock.audio.decode import _SNDFILE_EXTENSIONS

    assert {f".{ext}" for ext in FORMATS} <= AUDIO_EXTENSIONS and _SNDFILE_EXTENSIONS <= AUDIO_EXTENSIONS
    wav = write_audio(tmp_path / "src.wav", music(1.0), SR).read_bytes()
    folder = tmp_path / "songs"
    folder.mkdir()
    for ext in sorted(AUDIO_EXTENSIONS):
        (folder / f"song{ext}").write_bytes(wav)
    (folder / "LOUD.DSF").write_bytes(wav)
    (folder / "notes.txt").write_bytes(wav)
    found = find_audio_files(folder)
    assert len(found) == len(AUDIO_EXTENSIONS) + 1 and folder / "LOUD.DSF" in found
    for path in found:
        assert decode(path).duration == pytest.approx(1.0, abs=1e-3), path


# ---------------------------------------------------------------------------------------------
# paths that are not songs


def _within(seconds: float, fn):
    """``fn()`` in a thread; the test fails (instead of hanging) if it blocks."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"blocked for {seconds} s"
    return out


def test_fifo_and_devices_named_like_songs_are_not_regular_files(tmp_path):
    fifo = tmp_path / "prog" / "pipe.mp3"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    device = tmp_path / "prog" / "zero.wav"
    device.symlink_to("/dev/zero")
    write_audio(tmp_path / "prog" / "good.flac", music(3.0), SR)
    write_audio(tmp_path / "nonprog" / "good.ogg", music(3.0, seed=2), SR)
    for path, kind in ((fifo, "a FIFO (named pipe)"), (device, "a character device")):
        for read in (decode, lambda p: features_from_file(p, FeatureConfig())):
            got = _within(120, lambda: read(path))  # opening the FIFO would wait for a writer forever
            assert isinstance(got.get("error"), DecodeError), got
            assert got["error"].reason == f"not a regular file ({kind})"
    manifest = _within(300, lambda: scan(tmp_path))["value"]
    errors = {s.path: s.error for s in manifest.songs}
    assert errors == {"nonprog/good.ogg": "", "prog/good.flac": "",
                      "prog/pipe.mp3": "not a regular file (a FIFO (named pipe))",
                      "prog/zero.wav": "not a regular file (a character device)"}


def _deep_folder(root: Path, total: int) -> tuple[Path, int]:
    """Nested folders of 200-byte names under ``root`` until the path passes ``total`` bytes.

    Made through directory descriptors, as no single path that long can be
    opened. Returns the deepest folder's path and a descriptor of it.
    """
    fd = os.open(root, os.O_RDONLY)
    path = root
    while len(os.fsencode(path)) <= total:
        name = "d" * 200
        os.mkdir(name, dir_fd=fd)
        child = os.open(name, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd, path = child, path / name
    return path, fd


def test_paths_beyond_the_system_limit_are_reported_with_the_reason(tmp_path):
    path_max = os.pathconf("/", "PC_PATH_MAX")
    wav = write_audio(tmp_path / "src.wav", music(3.0), SR).read_bytes()
    root = tmp_path / "music"
    write_audio(root / "prog" / "good.flac", music(3.0), SR)
    write_audio(root / "nonprog" / "good.ogg", music(3.0, seed=2), SR)
    deep, fd = _deep_folder(root / "prog", path_max + 100)
    try:
        song = os.open("song.wav", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(song, wav)
        os.close(song)
    finally:
        os.close(fd)
    try:
        skipped: list[tuple[str, str]] = []
        found = find_audio_files(root, skipped=skipped)
        assert [p.name for p in found] == ["good.ogg", "good.flac"]
        [(where, reason)] = skipped
        assert deep.as_posix().startswith(where) and len(os.fsencode(where)) > path_max - 1
        assert reason == f"cannot read the folder: the path is too long ({len(os.fsencode(where))} bytes; " \
                         f"the system allows {path_max - 1})"
        with pytest.raises(FileError) as info:
            find_audio_files(root)
        assert (info.value.path, info.value.reason) == (where, reason)
        assert expand_inputs([root])[1] == skipped
        rows = {s.path: (s.label, s.error) for s in scan(root).songs}
        assert rows[Path(where).relative_to(root).as_posix()] == ("prog", reason)
        assert rows["prog/good.flac"] == ("prog", "")
        with pytest.raises(DecodeError, match="the path is too long"):
            decode(deep / "song.wav")
    finally:
        shutil.rmtree(root / "prog")


def test_a_file_name_longer_than_the_system_allows_is_named(tmp_path):
    name_max = os.pathconf("/", "PC_NAME_MAX")
    path = tmp_path / ("n" * (name_max + 40) + ".mp3")
    with pytest.raises(DecodeError) as info:
        decode(path)
    assert info.value.reason == f"a name in the path is too long ({name_max + 44} bytes; the system allows {name_max})"


def _as_nobody() -> list[str] | None:
    """The command prefix that runs a child as user ``nobody`` (65534), or None if there is none."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv and subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "true"],
                                  capture_output=True).returncode == 0:
        return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    return None


_NOBODY_CHILD = """
import contextlib, io, json, sys
from progrock.audio import find_audio_files
from progrock.cli import main
from progrock.errors import FileError
from progrock.predict import expand_inputs
music = sys.argv[1]
err = io.StringIO()
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    status = main(["scan", music, "--seed", "0", "--jobs", "1"])
feats = io.StringIO()
with contextlib.redirect_stderr(feats), contextlib.redirect_stdout(feats):
    features = main(["features", music, "--cache", music + "/../cache", "--jobs", "1"])
try:
    find_audio_files(music)
    raised = None
except FileError as exc:
    raised = [exc.path, exc.reason]
files, missing = expand_inputs([music])
print(json.dumps({"scan": status, "stderr": err.getvalue(), "expand": [[str(f) for f in files], missing],
                  "raised": raised, "features": [features, feats.getvalue()]}))
"""


def test_an_unreadable_folder_is_listed_with_its_reason_and_the_others_processed():
    """Root reads any folder, so the commands run as user nobody in a child process."""
    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("running as root and setpriv cannot drop to uid 65534, so no folder is unreadable")
    root = Path(tempfile.mkdtemp(prefix="progrock-perm-", dir="/tmp"))  # nobody can reach /tmp/x
    music_dir = root / "music"
    locked = music_dir / "prog" / "locked"
    try:
        for i, label in enumerate(("prog", "prog", "nonprog", "nonprog")):
            write_audio(music_dir / label / f"song{i}.flac", music(3.0, seed=i, pitch_hz=200.0 + 50 * i), SR)
        write_audio(locked / "hidden.flac", music(3.0, seed=9), SR)
        for p in sorted(root.rglob("*")):
            os.chmod(p, 0o777 if p.is_dir() else 0o666)
        os.chmod(root, 0o777)
        os.chmod(locked, 0o000)
        proc = subprocess.run(prefix + [sys.executable, "-c", _NOBODY_CHILD, str(music_dir)], capture_output=True,
                              text=True, env=dict(os.environ, HOME=str(root), PYTHONPATH=SOURCE), cwd=root,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        got = json.loads(proc.stdout)
        reason = "cannot read the folder: permission denied"
        assert got["scan"] == 1 and reason in " ".join(got["stderr"].split())
        assert got["expand"][1] == [[str(locked), reason]] and len(got["expand"][0]) == 4
        assert got["raised"] == [str(locked), reason]
        assert got["features"][0] == 1 and reason in " ".join(got["features"][1].split())
        assert "4 files: 4 computed" in got["features"][1]
        os.chmod(locked, 0o755)
        rows = {s.path: s for s in read_manifest(music_dir / "manifest.csv").songs}
        assert rows["prog/locked"].error == reason and rows["prog/locked"].label == "prog"
        assert sum(s.ok and bool(s.split) for s in rows.values()) == 4
    finally:
        if locked.exists():
            os.chmod(locked, 0o755)
        shutil.rmtree(root, ignore_errors=True)
