"""File names that are not UTF-8 (old disks, Samba shares): every output carries them escaped, and finds them again."""

from __future__ import annotations

import csv
import json
import os
import shutil

import pytest

from progrock.cli import main
from progrock.data.manifest import read_manifest
from progrock.paths import file_of, from_printable, printable

LATIN1 = b"caf\xe9 \xe0 la cr\xe8me.flac"           # 'café à la crème' in Latin-1: not UTF-8


def test_printable_names_round_trip():
    name = os.fsdecode(LATIN1)
    text = printable(name)
    assert text == "caf\\xe9 \\xe0 la cr\\xe8me.flac" and text.encode("utf-8")
    assert from_printable(text) == name
    assert printable("Ünïcødé sông – 1.flac") == "Ünïcødé sông – 1.flac"      # valid UTF-8 stays as it is


@pytest.fixture
def library(tmp_path, demo_corpus):
    root = tmp_path / "library"
    for label in ("prog", "nonprog"):
        (root / label).mkdir(parents=True)
        for p in sorted((demo_corpus / label).glob("song_*"))[:3]:       # the corpus holds every format
            shutil.copy(p, root / label / p.name)
    src = next((demo_corpus / "prog").glob("*.flac"))
    shutil.copy(src, os.path.join(os.fsencode(root / "prog"), LATIN1))
    return root


def test_scan_writes_and_finds_names_that_are_not_utf8(library, capsys):
    assert main(["scan", str(library), "--jobs", "1"]) == 0
    text = (library / "manifest.csv").read_bytes().decode("utf-8")        # the manifest is valid UTF-8
    assert "prog/caf\\xe9 \\xe0 la cr\\xe8me.flac" in text
    m = read_manifest(library / "manifest.csv")
    odd = next(s for s in m.songs if "caf" in s.path)
    assert odd.ok and m.resolve(odd).is_file() and os.fsencode(m.resolve(odd)).endswith(LATIN1)


def test_predict_outputs_carry_the_name_and_resume_finds_it(library, tiny_run, tmp_path, capsys):
    folder = library / "prog"
    assert main(["predict", str(tiny_run.run_dir), str(folder), "--json", "--model", "cnn", "--jobs", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert any(d["path"].endswith("caf\\xe9 \\xe0 la cr\\xe8me.flac") for d in lines)
    table = tmp_path / "verdicts.csv"
    assert main(["predict", str(tiny_run.run_dir), str(folder), "--out", str(table), "--model", "cnn"]) == 0
    rows = list(csv.DictReader(open(table, encoding="utf-8")))
    assert len(rows) == 4 and any(r["path"].endswith("caf\\xe9 \\xe0 la cr\\xe8me.flac") for r in rows)
    assert all(file_of(r["path"]).is_file() for r in rows)
    capsys.readouterr()
    assert main(["predict", str(tiny_run.run_dir), str(folder), "--out", str(table), "--model", "cnn"]) == 0
    assert "4 already in the table" in capsys.readouterr().err
    assert len(list(csv.DictReader(open(table, encoding="utf-8")))) == 4


def test_barcodes_of_songs_with_one_name_in_two_albums_are_both_kept(tmp_path, demo_corpus, tiny_run):
    songs = sorted((demo_corpus / "prog").glob("*.flac"))[:1] + sorted((demo_corpus / "nonprog").glob("*.flac"))[:1]
    for album, song in zip(("album1", "album2"), songs):
        (tmp_path / album).mkdir()
        shutil.copy(song, tmp_path / album / "01.flac")
    bars = tmp_path / "bars"
    assert main(["predict", str(tiny_run.run_dir), str(tmp_path / "album1"), str(tmp_path / "album2"),
                 "--barcodes", str(bars), "--model", "cnn", "--json"]) == 0
    assert sorted(p.name for p in bars.iterdir()) == ["album1__01.flac.png", "album2__01.flac.png"]


def test_evaluate_names_an_unreadable_file_whose_name_is_not_utf8(library, tmp_path, capsys):
    bad = os.path.join(os.fsencode(library / "nonprog"), b"d\xe9j\xe0.mp3")
    with open(bad, "wb") as fh:
        fh.write(b"not audio at all " * 64)
    report = tmp_path / "report"
    status = main(["evaluate", "musicnn", str(library), "--report", str(report), "--cache", str(tmp_path / "c"),
                   "--jobs", "1"])
    assert status in (0, 1), capsys.readouterr().err
    data = json.loads((report / "evaluation.json").read_text(encoding="utf-8"))
    skipped = {d["path"]: d["reason"] for d in data["skipped"]}
    assert any(p.endswith("d\\xe9j\\xe0.mp3") for p in skipped), skipped
    assert "d\\xe9j\\xe0.mp3" in (report / "report.html").read_text(encoding="utf-8")
