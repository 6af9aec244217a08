"""Real recordings through scan -> features -> predict, in the formats of a real collection.

Two songs of Debian's ``fretsonfire-songs-muldjord`` (Ogg Vorbis, 44.1 kHz
stereo; see ``conftest.real_songs``), cut to 40 s and written here as 32-bit
float WAV (the reference: the samples exactly), FLAC, Ogg Vorbis, MP3, Opus and
M4A/AAC. Known answers: the six copies of one recording are one group in one
split; the FLAC copy's features equal the reference's to 16-bit rounding; lossy
copies stay close to it; every file is classified.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from progrock.audio import write_audio
from progrock.cli import main
from progrock.features import FeatureConfig
from progrock.features.cache import FeatureStore

from conftest import real_songs

FORMATS = ("wav", "flac", "ogg", "mp3", "opus", "m4a")


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """``music/prog/<song>.<ext>`` for the first song, ``music/nonprog/...`` for the second."""
    root = tmp_path_factory.mktemp("real") / "music"
    for label, src in zip(("prog", "nonprog"), real_songs()[:2]):
        y, sr = sf.read(src, dtype="float32", frames=40 * 44_100)
        for ext in FORMATS:
            write_audio(root / label / f"{label} song.{ext}", y, sr, subtype="FLOAT" if ext == "wav" else None)
    return root


def test_scan_features_and_predict_on_real_recordings_in_every_format(collection, tiny_run, tmp_path, capsys):
    assert main(["scan", str(collection), "--seed", "0", "--split", "0.5,0.5,0"]) == 0
    with open(collection / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12 and not any(r["error"] for r in rows)
    for label in ("prog", "nonprog"):
        mine = [r for r in rows if r["label"] == label]
        assert len({r["group"] for r in mine}) == 1 and len({r["split"] for r in mine}) == 1  # one recording
        assert all(abs(float(r["duration"]) - 40.0) < 0.1 for r in mine)
    assert rows[0]["group"] != rows[-1]["group"]

    cache = tmp_path / "cache"
    assert main(["features", str(collection / "manifest.csv"), "--cache", str(cache), "--jobs", "2"]) == 0
    assert "12 files: 12 computed, 0 cached, 0 failed" in capsys.readouterr().out
    store = FeatureStore(cache, FeatureConfig())
    for label in ("prog", "nonprog"):
        x = {r["path"].rsplit(".", 1)[1]: store.get(r["audio_sha256"]) for r in rows if r["label"] == label}
        ref = x["wav"]
        assert ref.shape[0] == 43 and np.all(np.isfinite(ref))
        n = ref.shape[1]
        for ext, feats in x.items():
            assert abs(feats.shape[1] - n) <= 2, ext           # codec delay / padding: a frame or two
        # Lossless 16-bit: the MFCCs (rows 0-19, about +-600) within 0.1, everything else within 0.25
        # (measured 0.04 and 0.12).
        flac = x["flac"][:, :n]
        assert np.max(np.abs(flac[:20] - ref[:20])) < 0.1 and np.max(np.abs(flac[20:] - ref[20:])) < 0.25
        # Lossy: the song-level means (what a baseline sees) stay close to the reference's: median
        # difference over the 43 features 0.02-0.09 measured; the other song differs by about 1.8.
        for ext in ("ogg", "mp3", "opus", "m4a"):
            diff = np.abs(x[ext].mean(axis=1) - ref.mean(axis=1))
            assert np.median(diff) < 0.25, (ext, np.median(diff))

    status = main(["predict", str(tiny_run.run_dir), str(collection), "--json", "--cache", str(cache)])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    results = [json.loads(line) for line in out]
    assert len(results) == 12
    for r in results:
        assert r["verdict"] in ("prog", "nonprog") and 0.0 <= r["probability"] <= 1.0
        assert r["n_snippets"] == len(r["snippet_probs"]) >= 5 and abs(r["duration"] - 40.0) < 0.1
