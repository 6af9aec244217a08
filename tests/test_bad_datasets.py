"""Bad datasets: malformed manifests stop with a clear message; missing or contradictory songs are
listed, never silently dropped or mislabelled. The case list is docs/robustness.md."""

from __future__ import annotations

import shutil

import pytest

from progrock.audio import decode, write_audio
from progrock.cli import main
from progrock.data.manifest import list_songs, read_manifest, scan
from progrock.errors import DatasetError

from conftest import SR, music


@pytest.fixture
def songs(tmp_path):
    for i in range(3):
        write_audio(tmp_path / "prog" / f"p{i}.flac", music(3.0, seed=i, pitch_hz=200 + 30 * i), SR)
        write_audio(tmp_path / "nonprog" / f"n{i}.ogg", music(3.0, seed=10 + i, pitch_hz=500 + 30 * i), SR)
    return tmp_path


@pytest.mark.parametrize("data, message", [
    (b'path,label\n"prog/p0.flac,prog\nnonprog/n0.ogg,nonprog\n', "line 3: malformed CSV .*quote left open"),
    (b"path,label,split\nprog/p0.flac\nnonprog/n0.ogg,nonprog,train\n",
     "line 2: fewer fields than the header names"),
    (b"path,label\nprog/p0.flac,prog,test\n", "line 2: more fields than the header names"),
    (bytes(range(256)) * 20, "not UTF-8 text"),
    ("path,label\nprog/Ünïcødé.flac,prog\n".encode("latin-1"), "not UTF-8 text .*save the CSV as UTF-8"),
    ("path,label\nprog/p0.flac,prog\n".encode("utf-16"), "not UTF-8 text"),
    (b"path,label\nprog/p0\x00.flac,prog\n", "line 2: the path holds control characters"),
    (b"", "must name a 'path' column"),
    (b"path,label\nprog/p0.flac,Prog\n", "unknown label 'Prog'"),
    (b"path,label\n\n\nprog/p0.flac,prog\nprog/p1.flac,progressive\n", "line 5: unknown label 'progressive'"),
    (b"path,label,split\nprog/p0.flac,prog,train\n./prog/p0.flac,prog,test\n", "listed again with another"),
    (b"path,label\nprog/p0.flac,prog\nprog/../prog/p0.flac,nonprog\n", "listed again with another"),
])
def test_malformed_manifest_is_a_clear_error(songs, data, message):
    csv = songs / "list.csv"
    csv.write_bytes(data)
    with pytest.raises(DatasetError, match=message) as info:
        scan(csv)
    assert str(csv) in str(info.value)


def test_malformed_manifest_stops_train_with_status_2(songs, tmp_path, capsys):
    (songs / "list.csv").write_bytes(b'path,label\n"prog/p0.flac,prog\n')
    assert main(["train", str(songs / "list.csv"), "--out", str(tmp_path / "run"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "malformed CSV" in err and "list.csv" in err and "Traceback" not in err


def test_duplicate_rows_count_once(songs):
    (songs / "list.csv").write_text("path,label\nprog/p0.flac,prog\nprog/p0.flac,prog\n./prog/p0.flac,prog\n"
                                    "prog/sub/../p0.flac,prog\nnonprog/n0.ogg,nonprog\n")
    listed, _ = list_songs(songs / "list.csv")
    assert [s.path for s in listed] == ["prog/p0.flac", "nonprog/n0.ogg"]


def test_one_recording_under_both_labels_is_left_out_and_reported(songs, tmp_path, capsys):
    shutil.copy(songs / "prog" / "p0.flac", songs / "nonprog" / "p0 copy.flac")
    status = main(["scan", str(songs), "--out", str(tmp_path / "m.csv")])
    err = capsys.readouterr().err
    assert status == 1
    m = read_manifest(tmp_path / "m.csv")
    both = [s for s in m.songs if s.path in ("prog/p0.flac", "nonprog/p0 copy.flac")]
    assert len(both) == 2
    assert all(not s.split and "labelled both nonprog and prog" in s.error for s in both)
    assert "p0 copy.flac: the same recording is labelled both" in err
    assert all(s.path not in ("prog/p0.flac", "nonprog/p0 copy.flac") for s in m.usable())


def test_split_without_prog_stops_train_with_a_clear_message(songs, tmp_path, capsys):
    (songs / "list.csv").write_text(
        "path,label,split\nprog/p0.flac,prog,train\nprog/p1.flac,prog,train\nprog/p2.flac,prog,test\n"
        "nonprog/n0.ogg,nonprog,train\nnonprog/n1.ogg,nonprog,validation\nnonprog/n2.ogg,nonprog,test\n")
    status = main(["train", str(songs / "list.csv"), "--out", str(tmp_path / "run"), "--epochs", "1",
                   "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert "the validation split needs prog and nonprog songs, has ['nonprog']" in err
    assert not (tmp_path / "run" / "model.json").exists()


def test_missing_files_and_both_labels_are_listed_and_the_rest_trained(demo_corpus, tmp_path, capsys):
    """A CSV naming missing files and one recording under both labels: trained on the rest, exit 1."""
    files = sorted(p for p in demo_corpus.rglob("*") if p.parent.name in ("prog", "nonprog"))
    copy = tmp_path / "copy of a prog song.flac"
    write_audio(copy, decode(next(p for p in files if p.parent.name == "prog")).y, SR)
    rows = ["path,label"] + [f'"{p}",{p.parent.name}' for p in files]
    rows += [f'"{tmp_path / "gone.flac"}",prog', f'"{tmp_path / "nonprog" / "also gone.mp3"}",nonprog',
             f'"{copy}",nonprog']
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    status = main(["train", str(tmp_path / "list.csv"), "--out", str(tmp_path / "run"), "--epochs", "2",
                   "--batch-size", "64", "--recipe", "seed", "--models", "cnn", "--jobs", "2"])   # the session's cache
    err = capsys.readouterr().err
    assert status == 1, err
    assert "gone.flac: no such file" in err and "also gone.mp3: no such file" in err
    assert "copy of a prog song.flac: the same recording is labelled both nonprog and prog" in err
    m = read_manifest(tmp_path / "run" / "manifest.csv")
    used = {s.path for s in m.usable()}
    assert not any("gone" in p or "copy of" in p for p in used)
    assert len(used) == len(files) - 1            # the prog original is out too: its label is in doubt
    assert (tmp_path / "run" / "model.json").is_file()
    # no song is trained under a label other than its folder's
    assert all(s.label == ("prog" if "/prog/" in s.path else "nonprog") for s in m.usable())
