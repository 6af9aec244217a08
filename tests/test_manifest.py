"""Datasets: folder layouts and CSVs, copy-aware stratified seeded splits."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from progrock.audio import write_audio
from progrock.data.manifest import read_manifest, scan, summary
from progrock.errors import DatasetError

from conftest import SR, music


def make_collection(root, n_prog=6, n_nonprog=14, seconds=3.0):
    for i in range(n_prog):
        write_audio(root / "prog" / f"p{i:02d}.flac", music(seconds, seed=100 + i, pitch_hz=200 + 13 * i), SR)
    for i in range(n_nonprog):
        sub = "top_of_the_pops/" if i % 2 else ""
        write_audio(root / "nonprog" / f"{sub}n{i:02d}.ogg", music(seconds, seed=200 + i, pitch_hz=300 + 11 * i), SR)


def test_folder_layout_nested_labels_extra_set_and_summary(tmp_path):
    make_collection(tmp_path)
    write_audio(tmp_path / "djent" / "d0.mp3", music(3.0, seed=7), SR)
    m = scan(tmp_path, seed=1)
    labels = Counter(s.label for s in m.songs if s.split in ("train", "validation", "test"))
    assert labels == {"prog": 6, "nonprog": 14}
    nested = [s for s in m.songs if "top_of_the_pops" in s.path]
    assert nested and all(s.label == "nonprog" for s in nested)
    djent = [s for s in m.songs if s.split == "djent"]
    assert len(djent) == 1 and djent[0].label == ""
    assert m.sets == ["train", "validation", "test", "djent"]
    assert all(s.duration == pytest.approx(3.0, abs=0.01) and s.source_sr == SR for s in m.songs)
    rows = {(r["set"], r["label"]): r["songs"] for r in summary(m)}
    assert sum(rows.values()) == 21


def test_split_is_stratified_seeded_and_round_trips(tmp_path):
    make_collection(tmp_path, n_prog=10, n_nonprog=20, seconds=2.0)
    a, b, c = scan(tmp_path, seed=5), scan(tmp_path, seed=5), scan(tmp_path, seed=6)
    split = lambda m: {s.path: s.split for s in m.songs}
    assert split(a) == split(b) and split(a) != split(c)
    for label, n in (("prog", 10), ("nonprog", 20)):
        counts = Counter(s.split for s in a.songs if s.label == label)
        assert counts["train"] == round(0.7 * n) and counts["validation"] >= 1 and counts["test"] >= 1
    a.write(tmp_path / "manifest.csv")
    back = read_manifest(tmp_path / "manifest.csv")
    assert [(s.path, s.label, s.split, s.audio_sha256, s.group) for s in back.songs] == \
           [(s.path, s.label, s.split, s.audio_sha256, s.group) for s in a.songs]
    assert back.resolve(back.songs[0]).is_file()


def test_copies_of_one_recording_stay_in_one_split(tmp_path):
    make_collection(tmp_path, n_prog=4, n_nonprog=10, seconds=12.0)
    y = music(12.0, seed=999, pitch_hz=277.0)
    # One recording four times: FLAC, MP3 and AAC re-encodes, and a retagged WAV.
    for name in ("copy.flac", "copy.mp3", "copy.m4a", "copy again.wav"):
        write_audio(tmp_path / "nonprog" / name, y, SR, tags={"title": name})
    for seed in range(8):
        m = scan(tmp_path, seed=seed)
        copies = [s for s in m.songs if "copy" in s.path]
        assert len({s.group for s in copies}) == 1
        assert len({s.split for s in copies}) == 1
        others = [s for s in m.songs if "copy" not in s.path]
        assert len({s.group for s in others}) == len(others)  # no false copies


def test_one_recording_under_both_labels_is_flagged_not_split(tmp_path):
    make_collection(tmp_path, n_prog=3, n_nonprog=6, seconds=2.0)
    y = music(4.0, seed=31)
    write_audio(tmp_path / "prog" / "x.flac", y, SR)
    write_audio(tmp_path / "nonprog" / "x.flac", y, SR)
    m = scan(tmp_path)
    flagged = [s for s in m.songs if s.path.endswith("/x.flac")]
    assert all(s.split == "" and "labelled both" in s.error for s in flagged)


def test_csv_manifest_with_labels_and_given_splits(tmp_path):
    make_collection(tmp_path, n_prog=3, n_nonprog=5, seconds=2.0)
    rows = ["path,label,split", "prog/p00.flac,prog,test", "prog/p01.flac,prog,",
            "prog/p02.flac,prog,", "nonprog/n00.ogg,nonprog,test"] + \
           [f"nonprog/{'top_of_the_pops/' if i % 2 else ''}n{i:02d}.ogg,nonprog," for i in range(1, 5)]
    csv = tmp_path / "list.csv"
    csv.write_text("\n".join(rows) + "\n")
    m = scan(csv)
    by_path = {s.path: s for s in m.songs}
    assert by_path["prog/p00.flac"].split == "test" and by_path["nonprog/n00.ogg"].split == "test"
    assert all(s.split for s in m.songs) and all(not s.error for s in m.songs)


@pytest.mark.parametrize("text, message", [
    ("path,label\nprog/p00.flac,jazz\n", "unknown label 'jazz'"),
    ("file,label\nx.mp3,prog\n", "must name a 'path' column"),
    ("path,label\n", "lists no songs"),
    ("path,label\nprog/p00.flac,prog\nprog/p00.flac,nonprog\n", "listed again with another label"),
    ('path,label\nprog/p00.flac,prog,extra,fields\n', "more fields than the header"),
])
def test_bad_csv_manifests_give_clear_errors(tmp_path, text, message):
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    with pytest.raises(DatasetError, match=message):
        scan(csv)


def test_missing_and_broken_files_are_kept_with_their_reason(tmp_path):
    make_collection(tmp_path, n_prog=2, n_nonprog=4, seconds=2.0)
    (tmp_path / "prog" / "broken.mp3").write_bytes(np.random.default_rng(1).bytes(4000))
    csv = tmp_path / "list.csv"
    csv.write_text("path,label\nprog/p00.flac,prog\nprog/gone.flac,prog\nprog/broken.mp3,prog\n"
                   "nonprog/n00.ogg,nonprog\n")
    m = scan(csv)
    errors = {s.path: s.error for s in m.songs}
    assert errors["prog/gone.flac"] == "no such file"
    assert "not a recognised audio file" in errors["prog/broken.mp3"]
    assert not errors["prog/p00.flac"]
