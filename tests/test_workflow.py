"""A tiny end-to-end CPU run: corpus → features → train → save → load → evaluate → report,
and a run judging music it has never seen as it is."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from progrock.cli import main
from progrock.evaluation.metrics import binary_metrics
from progrock.model.run import load_run
from progrock.workflow import evaluate_run


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run


def test_short_training_beats_chance_on_held_out_songs(run):
    """The CNN's song verdicts on validation and test songs together are clearly better than chance."""
    rows = run.evaluation.songs["validation"]["cnn"] + run.evaluation.songs["test"]["cnn"]
    y = np.array([r.truth == "prog" for r in rows])
    pred = np.array([r.verdict == "prog" for r in rows])
    prob = np.array([r.probability for r in rows])
    m = binary_metrics(y, pred, prob)
    assert y.sum() >= 3 and (~y).sum() >= 5
    assert m["balanced_accuracy"] >= 0.7, m
    assert m["roc_auc"] >= 0.75, m


def test_run_folder_describes_itself(run):
    d = run.run_dir
    for name in ("config.json", "manifest.csv", "model.safetensors", "model.json", "evaluation.json",
                 "report.html", "training/cnn-1/history.json", "training/cnn-1/curves.png"):
        assert (d / name).is_file(), name
    config = json.loads((d / "config.json").read_text())
    assert config["training"]["epochs"] == 40 and config["features"]["seed43"]["name"] == "seed43"
    assert config["snippets"]["hop"] == {"prog": 8.0, "nonprog": 12.0} and config["recipe"] == "seed"
    assert len(json.loads((d / "training/cnn-1/history.json").read_text())) == 40
    meta = json.loads((d / "model.json").read_text())
    assert set(meta["models"]) == {"cnn", "cnn_mean", "logreg", "extratrees", "structure"}
    assert meta["trained_on"]["synthetic"] is True and meta["trained_on"]["songs"]["prog"] >= 3
    assert meta["default_model"] in meta["models"]


def test_report_shows_every_model_with_intervals_and_claims_only_what_the_data_supports(run):
    html = (run.run_dir / "report.html").read_text()
    for text in ("1D-CNN, snippet vote", "ExtraTrees (song statistics)", "Logistic regression",
                 "Confusion matrices", "<svg class=\"barcode\"", "data:image/png;base64", "95 % interval"):
        assert text in html, text
    comparisons = run.evaluation.comparisons["test"]
    assert set(comparisons) >= {"logreg", "extratrees", "structure"}
    claims = [m for m, c in comparisons.items() if c["verdict"] != "cannot tell apart"]
    assert ("cannot tell the models apart" in html) == (not claims)
    for m, c in comparisons.items():
        assert (c["verdict"] == "cannot tell apart") == (c["low"] is None or c["low"] <= 0 <= c["high"]
                                                         or min(run.evaluation.metrics["test"]["cnn"]["n_prog"],
                                                                run.evaluation.metrics["test"]["cnn"]["n"]
                                                                - run.evaluation.metrics["test"]["cnn"]["n_prog"]) < 5)


def test_reloaded_run_gives_the_same_evaluation(run):
    again, report = evaluate_run(run.run_dir, write=False)
    assert report is None
    for name in ("validation", "test"):
        for model in ("cnn", "extratrees", "structure"):
            a = [(r.path, r.probability, r.snippet_probs) for r in run.evaluation.songs[name][model]]
            b = [(r.path, r.probability, r.snippet_probs) for r in again.songs[name][model]]
            assert a == b
        assert again.metrics[name]["cnn"] == run.evaluation.metrics[name]["cnn"]
    assert load_run(run.run_dir).entries["cnn"].threshold == pytest.approx(run.run.entries["cnn"].threshold)


def test_evaluate_cli_json_has_metrics_per_set_and_model_and_never_overwrites_the_report(run, capsys):
    before = (run.run_dir / "report.html").read_bytes()
    assert main(["evaluate", str(run.run_dir), "--set", "test", "--set", "validation", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"test", "validation"}
    for model in ("cnn", "cnn_mean", "cnn_snippet", "extratrees", "logreg", "structure"):
        for key in ("accuracy", "balanced_accuracy", "informedness", "precision", "recall", "f1",
                    "mcc", "roc_auc", "confusion"):
            assert key in data["test"][model], (model, key)
    assert data["test"]["cnn"]["intervals"]["balanced_accuracy"]["n"] == data["test"]["cnn"]["n"]
    assert main(["evaluate", str(run.run_dir), "--set", "test", "--models", "cnn"]) == 0
    written = sorted((run.run_dir / "evaluations").glob("test-*/report.html"))
    assert written and (run.run_dir / "report.html").read_bytes() == before


def test_evaluate_refuses_unknown_set(run, capsys):
    assert main(["evaluate", str(run.run_dir), "--set", "djent"]) == 2
    assert "no set named djent" in capsys.readouterr().err


def _new_data(tmp_path, demo_corpus, run):
    """Songs the run never saw (its own test songs, copied to a new folder) plus one copy of a training song."""
    rows = list(csv.DictReader(open(run.run_dir / "manifest.csv")))
    root = tmp_path / "albums"
    for r in rows:
        if r["split"] == "test":
            dst = root / r["label"] / (r["path"].rsplit("/", 1)[-1])
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(run.run_dir / r["path"], dst)
    trained = next(r for r in rows if r["split"] == "train" and r["label"] == "nonprog")
    shutil.copy(run.run_dir / trained["path"], root / "nonprog" / ("copy-" + trained["path"].rsplit("/", 1)[-1]))
    return root, [r for r in rows if r["split"] == "test"], trained


def test_new_data_is_judged_whole_without_refitting(run, demo_corpus, tmp_path):
    """A labelled folder the run never saw is one set with every song; copies of training songs are set apart;
    the classical models' figures equal those of the saved models applied directly."""
    root, test_rows, trained = _new_data(tmp_path, demo_corpus, run)
    saved = load_run(run.run_dir)
    before = {n: {k: a.copy() for k, a in m.arrays.items()} for n, m in saved.classical.items()}
    evaluation, report = evaluate_run(run.run_dir, root, report_dir=tmp_path / "report")
    assert list(evaluation.songs) == ["albums", "copies of training songs"]
    assert len(evaluation.songs["albums"]["cnn"]) == len(test_rows)
    assert [p.rsplit("/", 1)[-1] for p, _ in evaluation.copies] == ["copy-" + trained["path"].rsplit("/", 1)[-1]]
    assert report == tmp_path / "report" / "report.html" and report.is_file()
    # no refit: the stored models give the same probabilities on the same songs as in the run's own evaluation
    own = {r.path.rsplit("/", 1)[-1]: r.probability for r in run.evaluation.songs["test"]["extratrees"]}
    new = {r.path.rsplit("/", 1)[-1]: r.probability for r in evaluation.songs["albums"]["extratrees"]}
    assert new == own
    again = load_run(run.run_dir)
    for n, arrays in before.items():
        for k, a in arrays.items():
            np.testing.assert_array_equal(again.classical[n].arrays[k], a)


def test_a_split_column_keeps_its_sets(run, tmp_path):
    rows = list(csv.DictReader(open(run.run_dir / "manifest.csv")))
    test = [r for r in rows if r["split"] == "test"]
    lines = ["path,label,split"] + [f"{run.run_dir / r['path']},{r['label']},{'a' if i % 2 else 'b'}"
                                    for i, r in enumerate(test)]
    (tmp_path / "mine.csv").write_text("\n".join(lines) + "\n")
    evaluation, _ = evaluate_run(run.run_dir, tmp_path / "mine.csv", write=False)
    assert sorted(evaluation.songs) == ["a", "b"]
    assert sum(len(v["cnn"]) for v in evaluation.songs.values()) == len(test)


def test_a_copied_run_folder_evaluates_without_its_training_data(run, tmp_path):
    copy = tmp_path / "moved-run"
    shutil.copytree(run.run_dir, copy, ignore=shutil.ignore_patterns("training", "tensorboard", "evaluations"))
    root, test_rows, _ = _new_data(tmp_path, None, run)
    evaluation, _ = evaluate_run(copy, root, write=False)
    assert set(evaluation.metrics["albums"]) >= {"cnn", "cnn_mean", "logreg", "extratrees", "structure"}


def test_a_tampered_saved_model_is_refused(run, tmp_path, capsys):
    copy = tmp_path / "tampered"
    shutil.copytree(run.run_dir, copy, ignore=shutil.ignore_patterns("training", "tensorboard", "evaluations"))
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF                                    # a bit of the last model's arrays (a classical one)
    (copy / "model.safetensors").write_bytes(bytes(data))
    assert main(["predict", str(copy), str(next(run.run_dir.glob("*.csv")))]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors" in err and "does not match" in err


def test_an_edited_description_is_refused_with_its_file_named(run, tmp_path, capsys):
    copy = tmp_path / "edited"
    shutil.copytree(run.run_dir, copy, ignore=shutil.ignore_patterns("training", "tensorboard", "evaluations"))
    meta = json.loads((copy / "model.json").read_text())
    meta["models"]["logreg"]["threshold"] = 1.5
    (copy / "model.json").write_text(json.dumps(meta))
    assert main(["predict", str(copy), str(next(run.run_dir.glob("*.csv")))]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{copy / 'model.json'}: " in err and "1.5" in err
