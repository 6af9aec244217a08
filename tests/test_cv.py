"""Cross-validation: out-of-fold verdicts for every song, folds that never leak, intervals, resumption."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from progrock.cli import main
from progrock.data.manifest import read_manifest


@pytest.fixture(scope="module")
def cv_run(demo_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv")
    cache = tmp_path_factory.mktemp("cv-cache")
    args = ["cv", str(demo_corpus), "--out", str(out), "--folds", "3", "--recipe", "seed", "--epochs", "6",
            "--batch-size", "32", "--models", "cnn,logreg,extratrees", "--cache", str(cache), "--jobs", "2"]
    assert main(args) == 0
    return out, args


def test_every_song_gets_one_out_of_fold_verdict_per_model(cv_run, demo_corpus):
    out, _ = cv_run
    data = json.loads((out / "cv.json").read_text())
    songs = read_manifest(out / "r1-fold1" / "fold-manifest.csv").usable()
    n = len(songs)
    assert n == sum(1 for p in demo_corpus.rglob("*") if p.parent.name in ("prog", "nonprog"))
    for model in ("cnn", "logreg", "extratrees"):
        m = data["sets"]["out-of-fold"][model]
        assert m["n"] == n and m["intervals"]["balanced_accuracy"]["n"] == n
        iv = m["intervals"]["balanced_accuracy"]
        assert iv["low"] <= m["balanced_accuracy"] <= iv["high"]
    assert set(data["comparisons"]["out-of-fold"]) == {"logreg", "extratrees"}
    assert data["titles"]["cnn"] == "1D-CNN, snippet vote"                # the seed recipe's cnn votes
    page = (out / "report.html").read_text()
    assert "out-of-fold" in page and page.count('<svg class="structure"') >= n   # every song's timeline
    names = {r["path"] for r in json.loads((out / "r1-fold1" / "oof.json").read_text())["results"]["cnn"]}
    assert names and all((demo_corpus / name).is_file() for name in names)   # named as in the source folder


def test_a_folds_test_songs_never_train_or_validate_its_run(cv_run):
    out, _ = cv_run
    seen_test = []
    for k in (1, 2, 3):
        fold = out / f"r1-fold{k}"
        rows = list(csv.DictReader(open(fold / "fold-manifest.csv")))
        test = {r["audio_sha256"] for r in rows if r["split"] == "test"}
        rest = {r["audio_sha256"] for r in rows if r["split"] in ("train", "validation")}
        assert test and rest and not (test & rest)
        # the fold's run was trained on exactly its train split
        run_manifest = {r["audio_sha256"] for r in csv.DictReader(open(fold / "fold-manifest.csv"))
                        if r["split"] == "train"}
        assert json.loads((fold / "model.json").read_text())["trained_on"]["songs"]["prog"] == sum(
            1 for r in rows if r["split"] == "train" and r["label"] == "prog") and run_manifest
        oof = json.loads((fold / "oof.json").read_text())["results"]["cnn"]
        assert len(oof) == len(test)
        seen_test += [r["path"] for r in oof]
    assert len(seen_test) == len(set(seen_test))             # every song judged in exactly one fold


def test_an_interrupted_cv_resumes_with_the_missing_fold_only(cv_run):
    out, args = cv_run
    (out / "r1-fold2" / "oof.json").unlink()
    stamps = {k: (out / f"r1-fold{k}" / "model.safetensors").stat().st_mtime_ns for k in (1, 3)}
    before = json.loads((out / "cv.json").read_text())["sets"]["out-of-fold"]["logreg"]["balanced_accuracy"]
    assert main(args) == 0
    assert (out / "r1-fold2" / "oof.json").is_file()
    assert {k: (out / f"r1-fold{k}" / "model.safetensors").stat().st_mtime_ns for k in (1, 3)} == stamps
    after = json.loads((out / "cv.json").read_text())["sets"]["out-of-fold"]["logreg"]["balanced_accuracy"]
    assert after == before                                    # the same songs, the same seeds: the same figures
    assert main(args[:-2] + ["--folds", "4", "--jobs", "2"]) == 2      # other settings are refused


def test_repeats_average_and_keep_an_interval():
    from progrock.cv import _repeated_intervals
    from progrock.evaluation.verdict import SongResult

    rng = np.random.default_rng(0)
    truth = ["prog" if i % 3 == 0 else "nonprog" for i in range(60)]
    reps = []
    for r in range(3):
        right = rng.random(60) < 0.8
        reps.append([SongResult(path=str(i), truth=t, verdict=t if ok else ("nonprog" if t == "prog" else "prog"),
                                probability=float(ok == (t == "prog")) * 0.5 + 0.25)
                     for i, (t, ok) in enumerate(zip(truth, right))])
    iv = _repeated_intervals(reps, seed=0)["balanced_accuracy"]
    assert iv["n"] == 60 and iv["low"] < iv["value"] < iv["high"]
    assert 0.65 < iv["value"] < 0.95


def _small_library(root, n_prog: int, n_nonprog: int):
    from progrock.audio import write_audio

    from conftest import SR, music

    for i in range(n_prog):
        write_audio(root / "prog" / f"p{i}.flac", music(6.0, seed=i, pitch_hz=220), SR)
    for i in range(n_nonprog):
        write_audio(root / "nonprog" / f"n{i}.flac", music(6.0, seed=50 + i, pitch_hz=660), SR)
    return root


def test_folds_that_cannot_be_trained_are_refused_before_any_feature(tmp_path, capsys):
    lib = _small_library(tmp_path / "lib", 3, 6)
    out, cache = tmp_path / "cv", tmp_path / "cache"
    assert main(["cv", str(lib), "--out", str(out), "--folds", "3", "--recipe", "seed", "--models", "logreg",
                 "--cache", str(cache), "--jobs", "1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "leaves no prog song for its validation split (3 prog and 6 nonprog recordings in all)" in err
    assert not out.exists() and not list(cache.rglob("*.npy"))


def test_a_cv_folder_is_not_resumed_on_other_songs(tmp_path, capsys):
    lib = _small_library(tmp_path / "lib", 8, 8)
    args = ["cv", str(lib), "--out", str(tmp_path / "cv"), "--folds", "2", "--recipe", "seed", "--models", "logreg",
            "--cache", str(tmp_path / "cache"), "--jobs", "1"]
    assert main(args) == 0
    _small_library(tmp_path / "more", 1, 0)
    (tmp_path / "more" / "prog" / "p0.flac").rename(lib / "prog" / "new.flac")
    capsys.readouterr()
    assert main(args) == 2
    assert "holds a cross-validation of other songs" in capsys.readouterr().err


def test_the_folds_default_model_ties_break_by_preference_and_skipped_songs_are_kept(tmp_path):
    from progrock.cv import collect

    for k, default in enumerate(["logreg", "cnn", "logreg", "cnn"]):
        fold = tmp_path / f"r1-fold{k + 1}"
        fold.mkdir()
        rows = [{"path": f"s{k}-{i}", "verdict": "prog", "probability": 0.7, "truth": ("prog", "nonprog")[i % 2]}
                for i in range(4)]
        (fold / "oof.json").write_text(json.dumps({"default_model": default, "results": {"cnn": rows, "logreg": rows},
                                                   "skipped": [[f"short{k}.wav", "too short"]]}))
    ev = collect(tmp_path, folds=4, repeats=1)
    assert ev.default_model == "cnn"                          # 2-2: cnn comes first in the preference
    assert [p for p, _ in ev.skipped] == [f"short{k}.wav" for k in range(4)]


def test_the_configurations_record_the_placement_the_runs_judge_with(tmp_path):
    """cv.json and a run's config.json say where each recipe places a judged song's snippets, and
    cv.json's plan reads back the same."""
    from progrock.cv import plan_from_json, plan_to_json
    from progrock.training.fit import FitPlan
    from progrock.workflow import _config

    for recipe, placement in (("default", (0.0, 2.5)), ("seed", (10.0, 5.0))):
        plan = FitPlan(recipe=recipe)
        d = plan_to_json(plan)
        assert (d["snippet_config"]["predict_start"], d["snippet_config"]["predict_hop"]) == placement
        back = plan_from_json(json.loads(json.dumps(d)))
        assert back.run_snippets().placement(None) == placement and plan_to_json(back) == d
        run = _config(tmp_path, tmp_path / "manifest.csv", plan, [], cache=tmp_path, split_seed=0)
        assert (run["snippets"]["predict_start"], run["snippets"]["predict_hop"]) == placement
