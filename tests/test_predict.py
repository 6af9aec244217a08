"""Classifying a person's own files: verdicts, evidence, bad files, stable output."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest

from progrock.audio import decode, write_audio
from progrock.cli import main
from progrock.errors import ProgrockError
from progrock.model.run import load_run
from progrock.predict import classify_array, classify_file

from conftest import SR, music

KEYS = {"path", "verdict", "probability", "vote_fraction", "n_snippets", "duration", "snippet_starts",
        "snippet_probs", "snippet_seconds", "threshold", "rule", "model", "truth", "unfamiliar", "familiarity",
        "tags", "explanation"}


@pytest.fixture(scope="module")
def model(tiny_run):
    return load_run(tiny_run.run_dir)


@pytest.mark.parametrize("name", ["cnn", "structure", "extratrees"])
def test_prediction_equals_the_evaluation_of_the_same_song(tiny_run, model, name):
    """Predict and evaluate cut and judge a song the same way, with every model."""
    row = tiny_run.evaluation.songs["test"][name][0]
    pred = classify_file(model, tiny_run.run_dir / row.path, model=name)
    assert pred.snippet_probs == row.snippet_probs and pred.probability == row.probability
    assert pred.snippet_starts == row.snippet_starts and pred.unfamiliar == row.unfamiliar
    assert pred.verdict == row.verdict and pred.model == name
    if name == "cnn":
        assert pred.vote_fraction == pytest.approx(row.vote_fraction, abs=1e-4)
        # The verdict follows the vote: at least half the snippets at or above the threshold.
        votes = np.mean(np.array(pred.snippet_probs) >= model.entries["cnn"].threshold)
        assert pred.is_prog == (votes >= 0.5)
    if name == "structure":                                     # it says which inputs pushed it
        assert len(pred.explanation) == 5 and {"input", "value", "push"} <= set(pred.explanation[0])


def test_tags_and_file_name_do_not_change_the_verdict(tmp_path, demo_corpus, model):
    src = next((demo_corpus / "prog").glob("*.flac"))
    audio = decode(src)
    a = write_audio(tmp_path / "Yes - Close to the Edge.flac", audio.y, SR, tags={"genre": "Progressive Rock"})
    b = write_audio(tmp_path / "unknown.flac", audio.y, SR, tags={"genre": "Schlager", "title": "?"})
    pa, pb = classify_file(model, a), classify_file(model, b)
    assert pa.snippet_probs == pb.snippet_probs and pa.verdict == pb.verdict


def test_array_layer_refuses_another_sample_rate(model):
    with pytest.raises(ProgrockError, match="44100 Hz"):
        classify_array(model, music(12.0, sr=44_100), 44_100, name="x")
    pred = classify_array(model, music(12.0), SR, name="x", model="cnn")
    assert pred.n_snippets == len(pred.snippet_probs) == 1 and pred.duration == pytest.approx(12.0)


def test_predict_cli_json_goes_on_after_bad_files(tmp_path, demo_corpus, tiny_run, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    songs = sorted((demo_corpus / "nonprog").iterdir())[:3]
    for s in songs:
        shutil.copy(s, folder / s.name)
    (folder / "broken.mp3").write_bytes(b"\xff\xfb" + np.random.default_rng(2).bytes(5000))
    write_audio(folder / "blip.wav", music(0.5), SR)  # under the 2-s minimum
    status = main(["predict", str(tiny_run.run_dir), str(folder), "--json", "--jobs", "2", "--model", "cnn"])
    captured = capsys.readouterr()
    assert status == 1
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [d["path"].split("/")[-1] for d in lines] == sorted(s.name for s in songs)
    for d in lines:
        assert set(d) == KEYS and d["verdict"] in ("prog", "nonprog")
        assert 0 <= d["probability"] <= 1 and d["n_snippets"] == len(d["snippet_probs"]) >= 1
    assert "broken.mp3" in captured.err and "blip.wav" in captured.err and "too short" in captured.err


def test_predict_cli_csv_and_barcode_pngs(tmp_path, demo_corpus, tiny_run, capsys):
    song = next((demo_corpus / "prog").iterdir())
    assert main(["predict", str(tiny_run.run_dir), str(song), "--csv", "--barcodes", str(tmp_path / "bars"),
                 "--model", "cnn"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1 and rows[0]["path"] == str(song)
    assert len(rows[0]["snippet_probs"].split()) == int(rows[0]["n_snippets"])
    png = tmp_path / "bars" / f"prog__{song.name}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_cli_plain_output_shows_verdict_and_barcode(demo_corpus, tiny_run, capsys):
    song = next((demo_corpus / "nonprog").iterdir())
    assert main(["predict", str(tiny_run.run_dir), str(song)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.split()[0] in ("prog", "nonprog") and "p=" in line and str(song) in line
