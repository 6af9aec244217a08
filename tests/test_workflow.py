"""A tiny end-to-end CPU run: corpus → features → train → save → load → evaluate → report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from progrock.cli import main
from progrock.evaluation.metrics import binary_metrics
from progrock.model.checkpoint import load_model
from progrock.workflow import evaluate_run


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run


def test_short_training_beats_chance_on_held_out_songs(run):
    """The CNN's song verdicts on validation and test songs together are clearly better than chance."""
    rows = run.evaluation.songs["validation"] + run.evaluation.songs["test"]
    y = np.array([r.truth == "prog" for r in rows])
    pred = np.array([r.verdict == "prog" for r in rows])
    prob = np.array([r.probability for r in rows])
    m = binary_metrics(y, pred, prob)
    assert y.sum() >= 3 and (~y).sum() >= 5
    assert m["balanced_accuracy"] >= 0.7, m
    assert m["roc_auc"] >= 0.75, m


def test_run_folder_describes_itself(run):
    d = run.run_dir
    for name in ("config.json", "manifest.csv", "model.safetensors", "model.json", "history.json",
                 "evaluation.json", "report.html", "curves.png"):
        assert (d / name).is_file(), name
    config = json.loads((d / "config.json").read_text())
    assert config["training"]["epochs"] == 40 and config["features"]["name"] == "seed43"
    assert config["snippets"]["hop"] == {"prog": 8.0, "nonprog": 12.0}
    assert len(json.loads((d / "history.json").read_text())) == 40


def test_report_shows_cnn_and_baselines_with_song_confusion_matrices(run):
    html = (run.run_dir / "report.html").read_text()
    for text in ("1D-CNN, snippet vote", "ExtraTrees (song statistics)", "Logistic regression",
                 "Confusion matrices", "<svg class=\"barcode\"", "data:image/png;base64"):
        assert text in html, text
    for model in ("cnn", "cnn_snippet", "extratrees", "logreg"):
        assert (run.run_dir / f"confusion_test_{model}.png").is_file()
    test = run.evaluation.metrics["test"]
    cnn, best_baseline = test["cnn"]["balanced_accuracy"], max(
        test["extratrees"]["balanced_accuracy"], test["logreg"]["balanced_accuracy"])
    # The report says so when a baseline beats the CNN, and only then.
    assert ("A baseline beats the CNN" in html) == (best_baseline > cnn)


def test_reloaded_model_gives_the_same_evaluation(run):
    again = evaluate_run(run.run_dir, write=False)
    for name in ("validation", "test"):
        a = [(r.path, r.snippet_probs) for r in run.evaluation.songs[name]]
        b = [(r.path, r.snippet_probs) for r in again.songs[name]]
        assert a == b
        assert again.metrics[name]["cnn"] == run.evaluation.metrics[name]["cnn"]
    model = load_model(run.run_dir)
    assert model.threshold == pytest.approx(run.training.threshold)


def test_evaluate_cli_json_has_metrics_per_set_and_model(run, capsys):
    assert main(["evaluate", str(run.run_dir), "--set", "test", "--set", "validation", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"test", "validation"}
    for model in ("cnn", "cnn_mean", "cnn_snippet", "extratrees", "logreg"):
        for key in ("accuracy", "balanced_accuracy", "informedness", "precision", "recall", "f1",
                    "mcc", "roc_auc", "confusion"):
            assert key in data["test"][model], (model, key)


def test_evaluate_refuses_unknown_set(run, capsys):
    assert main(["evaluate", str(run.run_dir), "--set", "djent"]) == 2
    assert "no set named djent" in capsys.readouterr().err
