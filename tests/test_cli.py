"""The command line end to end: corpus → scan → features, and failures reported."""

from __future__ import annotations

import csv

import numpy as np

from progrock.audio import write_audio
from progrock.cli import main
from progrock.features import FeatureConfig
from progrock.features.cache import FeatureStore

from conftest import SR, music


def test_corpus_scan_features_on_a_fresh_corpus(tmp_path, capsys):
    corpus, cache = tmp_path / "corpus", tmp_path / "cache"
    assert main(["corpus", str(corpus), "--songs", "8", "--seed", "3", "--duration-scale", "0.15",
                 "--jobs", "2"]) == 0
    files = sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix != ".json")
    assert len(files) == 8 and {p.parent.name for p in files} <= {"prog", "nonprog"}

    assert main(["scan", str(corpus), "--seed", "1"]) == 0
    with open(corpus / "manifest.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and all(r["audio_sha256"] and r["split"] and not r["error"] for r in rows)
    assert "train" in capsys.readouterr().out  # the summary table

    assert main(["features", str(corpus / "manifest.csv"), "--cache", str(cache), "--jobs", "2"]) == 0
    store = FeatureStore(cache, FeatureConfig())
    for r in rows:
        x = store.get(r["audio_sha256"])
        assert x is not None and x.shape == (43, 1 + int(float(r["duration"]) * SR) // 512)
    capsys.readouterr()
    assert main(["features", str(corpus / "manifest.csv"), "--cache", str(cache)]) == 0
    assert "0 computed, 8 cached" in capsys.readouterr().out


def test_features_on_a_folder_lists_bad_files_and_exits_1(tmp_path, capsys):
    write_audio(tmp_path / "music" / "good.flac", music(11.0), SR)
    (tmp_path / "music" / "broken.mp3").write_bytes(np.random.default_rng(0).bytes(3000))
    status = main(["features", str(tmp_path / "music"), "--cache", str(tmp_path / "cache")])
    captured = capsys.readouterr()
    assert status == 1
    assert "1 computed, 0 cached, 1 failed" in captured.out
    assert "broken.mp3" in captured.err and "not a recognised audio file" in captured.err


def test_errors_name_the_problem_and_exit_2(tmp_path, capsys):
    assert main(["scan", str(tmp_path / "nowhere")]) == 2
    assert "no such folder or manifest" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("path,label\nx.mp3,jazz\n")
    assert main(["scan", str(tmp_path / "bad.csv")]) == 2
    assert "unknown label 'jazz'" in capsys.readouterr().err
    assert main(["features", str(tmp_path), "--feature-set", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--feature-set" in err and "'nope' is not one of" in err and "seed43" in err   # a choice (issue 13)


def test_corpus_refuses_to_mix_into_an_existing_corpus(tmp_path, capsys):
    corpus = tmp_path / "c"
    args = ["corpus", str(corpus), "--duration-scale", "0.15", "--jobs", "1"]
    assert main(args + ["--songs", "6"]) == 0
    assert main(args + ["--songs", "3"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    (corpus / "notes.txt").write_text("mine")
    assert main(args + ["--songs", "3", "--overwrite"]) == 0
    songs = [p for p in corpus.rglob("*") if p.parent.name in ("prog", "nonprog")]
    assert len(songs) == 3 and (corpus / "notes.txt").read_text() == "mine"


def test_train_ensemble_option_sets_the_networks_of_the_default_recipe(demo_corpus, tmp_path):
    """`--ensemble K` (the issue's name; `--folds K` is the same option) trains K networks, saved as one run."""
    import json

    from progrock.model.run import load_run

    run_dir = tmp_path / "run"
    assert main(["train", str(demo_corpus), "--out", str(run_dir), "--ensemble", "3", "--epochs", "2",
                 "--batch-size", "64", "--models", "cnn", "--jobs", "2"]) in (0, 1)
    assert len(load_run(run_dir).networks) == 3
    assert json.loads((run_dir / "model.json").read_text())["cnn"]["members"] == 3
