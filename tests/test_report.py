"""The HTML report: says how sure every figure is, claims only what the comparisons allow, loads nothing.

The evaluations here are built from songs' results by the evaluation's own
functions (metrics, intervals, paired comparisons): no training, a page in about a second.
"""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from conftest import music
from progrock.constants import FRAME_RATE
from progrock.data.snippets import SnippetConfig
from progrock.evaluation.evaluate import Evaluation, model_metrics
from progrock.evaluation.intervals import format_interval, paired_difference
from progrock.evaluation.verdict import SongResult
from progrock.model.run import ModelEntry, Run
from progrock.report.barcode import barcode_svg, barcode_text, time_marks
from progrock.report.html import headline_set, write_report

TITLES = {"cnn": "1D-CNN, snippet vote", "logreg": "Logistic regression (song statistics)"}
VOID = {"meta", "img", "br", "input", "hr", "link", "source", "col", "area", "base", "wbr"}


class Page(HTMLParser):
    """The page's elements as ``(tag, attrs, text)`` with a check that every element is closed in order."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.text = text
        self.stack: list[list] = []
        self.elements: list[list] = []
        self.errors: list[str] = []
        self.feed(text)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed: {[e[0] for e in self.stack]}")

    def handle_starttag(self, tag, attrs):
        element = [tag, dict(attrs), ""]
        self.elements.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        self.elements.append([tag, dict(attrs), ""])

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1][0] if self.stack else 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        for element in self.stack:
            element[2] += data

    def find(self, tag: str | None = None, **attrs) -> list[list]:
        """Elements of ``tag`` whose attributes hold ``attrs`` (``class_`` matches one class word)."""
        out = []
        for t, a, text in self.elements:
            if tag is not None and t != tag:
                continue
            if "class_" in attrs and attrs["class_"] not in a.get("class", "").split():
                continue
            if all(a.get(k) == v for k, v in attrs.items() if k != "class_"):
                out.append([t, a, " ".join(text.split())])
        return out


def _result(path, model, truth, prob, *, duration=60.0, snippets=True, **extra) -> SongResult:
    starts = list(np.arange(0.0, max(duration - 10.0, 0.0) + 1e-9, 10.0)) if snippets else []
    return SongResult(path=path, verdict="prog" if prob >= 0.5 else "nonprog", probability=prob, model=model,
                      vote_fraction=None if not snippets else float(prob >= 0.5), n_snippets=len(starts),
                      duration=duration, snippet_starts=starts, snippet_probs=[prob] * len(starts),
                      snippet_seconds=10.0 if snippets else 0.0, threshold=0.5, rule="vote" if snippets else "mean",
                      truth=truth, **extra)


def _songs(model: str, probs, truths, **kw) -> list[SongResult]:
    return [_result(f"music/{t}/song_{i:02d}.ogg", model, t, float(p), **kw)
            for i, (p, t) in enumerate(zip(probs, truths))]


def _evaluation(songs: dict[str, dict[str, list[SongResult]]], *, means: dict | None = None) -> Evaluation:
    """An evaluation as :func:`progrock.evaluation.evaluate.evaluate` makes it, from the songs' results."""
    ev = Evaluation(thresholds={m: 0.5 for m in TITLES}, titles=dict(TITLES), default_model="cnn")
    for set_name, by_model in songs.items():
        ev.songs[set_name] = by_model
        ev.metrics[set_name] = {m: model_metrics(rows, validation_means=(means or {}).get(m) if set_name == "test"
                                                 else None) for m, rows in by_model.items()}
        y = np.array([r.truth == "prog" for r in by_model["cnn"]])
        pred = {m: np.array([r.is_prog for r in rows]) for m, rows in by_model.items()}
        ev.comparisons[set_name] = {m: paired_difference(y, pred[m], pred["cnn"]) for m in by_model if m != "cnn"}
    return ev


TRUTHS = ["prog"] * 20 + ["nonprog"] * 20


def _clear_case(**kw) -> Evaluation:
    """On 40 test songs the logistic model is right on all, the CNN on 26: a difference the data can see."""
    rng = np.random.default_rng(0)
    good = np.r_[rng.uniform(0.6, 0.95, 20), rng.uniform(0.05, 0.4, 20)]
    wrong = np.r_[np.arange(20) < 7, np.arange(20) < 7]            # the CNN misses 7 of each class
    cnn = np.where(wrong, 1.0 - good, good)
    test = {"cnn": _songs("cnn", cnn, TRUTHS), "logreg": _songs("logreg", good, TRUTHS, snippets=False)}
    validation = {"cnn": _songs("cnn", good[::2], TRUTHS[::2]),
                  "logreg": _songs("logreg", good[::2], TRUTHS[::2], snippets=False)}
    return _evaluation({"validation": validation, "test": test}, **kw)


def _tie_case() -> Evaluation:
    """Both models give the same verdicts: no difference to find."""
    rng = np.random.default_rng(1)
    p = np.r_[rng.uniform(0.3, 0.9, 20), rng.uniform(0.1, 0.7, 20)]
    return _evaluation({"test": {"cnn": _songs("cnn", p, TRUTHS),
                                 "logreg": _songs("logreg", np.clip(p + 0.01, 0, 1), TRUTHS, snippets=False)}})


def _write(tmp_path, ev: Evaluation, **kw) -> tuple[str, Page]:
    folder = tmp_path / "report"
    path = write_report(folder, ev, data_summary=[], config={"folds": 5, "repeats": 1}, **kw)
    text = path.read_text()
    return text, Page(text)


def test_the_page_is_well_formed_and_shows_every_models_interval(tmp_path):
    ev = _clear_case()
    text, page = _write(tmp_path, ev)
    assert page.errors == []
    assert text.startswith("<!doctype html>")
    cells = [e[2] for e in page.find("td")]
    for set_name in ("validation", "test"):
        for model in ("cnn", "logreg"):
            iv = ev.metrics[set_name][model]["intervals"]["balanced_accuracy"]
            assert iv["low"] is not None and format_interval(iv) in cells, (set_name, model)
    for model in ("cnn", "logreg"):
        card = page.find("div", class_="card", **{"data-model": model})[0][2]
        iv = ev.metrics["test"][model]["intervals"]["balanced_accuracy"]
        assert f"95 % interval [{iv['low']:.2f}, {iv['high']:.2f}]" in card and "40 songs (20 prog)" in card


def test_the_banner_claims_a_difference_only_where_the_paired_interval_excludes_zero(tmp_path):
    clear = _clear_case()
    assert clear.comparisons["test"]["logreg"]["verdict"] == "A better"
    text, page = _write(tmp_path / "clear", clear)
    banner = page.find("div", class_="banner")[0][2]
    assert "Logistic regression (song statistics) is better than 1D-CNN, snippet vote" in banner
    assert "cannot tell the models apart" not in text

    tie = _tie_case()
    assert tie.comparisons["test"]["logreg"]["verdict"] == "cannot tell apart"
    text, page = _write(tmp_path / "tie", tie)
    banner = page.find("div", class_="banner")[0][2]
    assert "cannot tell the models apart" in banner and "includes zero" in banner
    assert "is better than" not in text and "is worse than" not in text


def test_the_shift_warning_names_only_the_shifted_models(tmp_path):
    """The CNN's validation means lie far from its test means; the logistic model's equal them."""
    first = _clear_case()
    here = {m: {c: float(np.mean([r.probability for r in first.songs["test"][m] if r.truth == c]))
                for c in ("prog", "nonprog")} for m in TITLES}
    means = {"cnn": {c: v + 0.3 for c, v in here["cnn"].items()}, "logreg": here["logreg"]}
    ev = _clear_case(means=means)
    assert ev.metrics["test"]["cnn"]["shift"]["shifted"] and not ev.metrics["test"]["logreg"]["shift"]["shifted"]
    _, page = _write(tmp_path, ev)
    warnings = page.find("p", class_="shift")
    assert [(w[1]["data-set"], w[1]["data-model"]) for w in warnings] == [("test", "cnn")]
    assert "its threshold (0.50) may not fit this music" in warnings[0][2]
    assert "1D-CNN, snippet vote" in page.find("div", class_="shift-summary")[0][2]
    assert "Logistic" not in page.find("div", class_="shift-summary")[0][2]


def test_every_labelled_set_has_roc_pr_and_reliability_figures_the_headline_set_open(tmp_path):
    ev = _clear_case()
    _, page = _write(tmp_path, ev)
    for set_name in ("validation", "test"):
        for kind in ("roc", "pr", "calibration", "confusion"):
            figures = page.find("figure", class_=kind, **{"data-set": set_name})
            assert len(figures) == 1, (set_name, kind)
    images = [e[1]["src"] for e in page.find("img")]
    assert len(images) == 8
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    curves = {e[1]["data-set"]: "open" in e[1] for e in page.find("details") if "data-set" in e[1]}
    assert curves == {"validation": False, "test": True}


def test_time_marks_end_at_the_last_whole_step_of_the_song():
    assert time_marks(420.0)[-1] == 420.0 and np.diff(time_marks(420.0)).tolist() == [60.0] * 7
    assert time_marks(419.0)[-1] == 360.0
    assert time_marks(150.0)[-1] == 150.0 and time_marks(150.0)[1] == 30.0
    assert time_marks(45.0) == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert len(time_marks(3600.0)) - 1 <= 8


def test_the_terminal_strip_never_leaves_a_blank_and_rises_with_the_probability():
    strip = barcode_text([0.0, 0.02, 0.3, 0.6, 0.99, 1.0], width=6)
    assert " " not in strip and strip[0] == "▁" and strip[-1] == "█"
    assert list(strip) == sorted(strip)                       # the block characters rise with p
    assert barcode_text([0.0] * 100, width=30) == "▁" * 30


def test_the_barcode_has_a_time_axis_with_minute_marks():
    duration = 200.0                                   # 3:20: marks every 30 s, the last at 3:00
    starts = list(np.arange(0.0, 190.0, 10.0))
    svg = barcode_svg(starts, np.linspace(0, 1, len(starts)).tolist(), duration, width=260)
    root = ET.fromstring(svg)
    labels = [t for t in root.iter("text") if t.get("class") == "tick-label"]
    assert [t.text for t in labels] == ["0:00", "0:30", "1:00", "1:30", "2:00", "2:30", "3:00"]
    assert float(labels[-1].get("x")) == pytest.approx(180.0 / 200.0 * 260, abs=0.1)
    assert int(root.get("height")) > 18                # the axis sits under the strip
    assert sum(r.find("title") is not None for r in root.iter("rect")) == len(starts)
    plain = ET.fromstring(barcode_svg(starts, [0.5] * len(starts), duration, axis=False))
    assert not [t for t in plain.iter("text")]


def test_songs_table_shows_axis_structure_familiarity_and_explanations(tmp_path):
    from progrock.features import FeatureConfig, compute_features
    from progrock.features.structure import song_timeline

    ev = _tie_case()
    long_song = ev.songs["test"]["cnn"][0].path
    for rows in ev.songs["test"].values():
        for r in rows:
            r.unfamiliar, r.familiarity = (True, 1.8) if r.path == long_song else (False, 0.4)
        rows[0].duration = 200.0
    ev.songs["test"]["cnn"][0].snippet_starts = list(np.arange(0.0, 190.0, 10.0))
    ev.songs["test"]["cnn"][0].snippet_probs = [0.7] * 19
    for r in ev.songs["test"]["logreg"]:
        r.explanation = [{"input": "odd_metre_max", "value": 0.5, "push": 0.8},
                         {"input": "duration_s", "value": 200.0, "push": -0.3}]
    timeline = song_timeline(compute_features(music(20.0), FeatureConfig.named("seed43")), frame_rate=FRAME_RATE)
    _, page = _write(tmp_path, ev, timelines={long_song: timeline})
    assert page.errors == []
    rows = page.find("tr", **{"data-song": long_song})
    assert len(rows) == 1 and "unlike the training music" in rows[0][2]
    others = [e for e in page.find("tr") if e[1].get("data-song") not in (None, long_song)]
    assert len(others) == 39 and not any("unlike the training music" in e[2] for e in others)
    # the long song's barcode ends its axis at 3:00, and its structure is drawn (only it has a timeline)
    text = _row_html(page, long_song)
    assert '<svg class="structure"' in text and text.count('<svg class="barcode"') == 1
    assert [t.text for t in ET.fromstring(text[text.index("<svg class=\"barcode\""):text.index("</svg>") + 6])
            .iter("text")][-1] == "3:00"
    why = [e for e in page.find("td", **{"data-m": "logreg"}) if "odd_metre_max" in e[2]]
    assert len(why) == 40 and "↑ odd_metre_max = 0.5" in why[0][2] and "↓ duration_s = 200" in why[0][2]
    table = page.find("table", class_="songs")[0][1]
    assert page.find("select", class_="model-pick")[0][1]["data-target"] == table["id"] and table["data-show"] == "cnn"


def _row_html(page: Page, song: str) -> str:
    """The raw markup of the row of ``song`` (from the page's text)."""
    start = page.text.index(f"data-song='{song}'")
    return page.text[start:page.text.index("</tr>", start)]


def test_copies_and_skipped_files_are_listed_with_their_reasons(tmp_path):
    ev = _tie_case()
    ev.copies = [("albums/nonprog/copy-song_03.ogg", "../corpus/nonprog/song_03.ogg")]
    ev.skipped = [("albums/prog/broken.mp3", "cannot decode: no audio stream"),
                  ("albums/prog/short.wav", "0.4 s of audio, a snippet needs 10 s")]
    _, page = _write(tmp_path, ev)
    copies = page.find("ul", class_="copies")[0][2]
    assert "albums/nonprog/copy-song_03.ogg is a copy of the training song corpus/nonprog/song_03.ogg" in copies
    skipped = page.find("ul", class_="skipped")[0][2]
    assert "albums/prog/broken.mp3: cannot decode: no audio stream" in skipped
    assert "albums/prog/short.wav: 0.4 s of audio" in skipped


def test_the_report_writes_one_file_and_loads_nothing_from_elsewhere(tmp_path):
    text, page = _write(tmp_path, _clear_case())
    assert sorted(p.name for p in (tmp_path / "report").rglob("*")) == ["report.html"]
    for tag, attrs, _ in page.elements:
        for key in ("src", "href", "srcset", "data", "action"):
            value = attrs.get(key) or ""
            assert not value.startswith(("http:", "https:", "//", "ftp:")), (tag, key, value[:40])
        assert not (tag in ("script", "link", "iframe") and (attrs.get("src") or attrs.get("href"))), tag
    assert "@import" not in text and "url(" not in text


def test_the_headline_falls_back_to_validation_only_when_nothing_else_is_labelled(tmp_path):
    clear = _clear_case()
    assert headline_set(clear) == ("test", "")
    del clear.metrics["test"]
    key, caution = headline_set(clear)
    assert key == "validation" and "optimistic" in caution
    _, page = _write(tmp_path, clear)
    assert "optimistic" in page.find("div", class_="caution")[0][2]
    assert "Song balanced accuracy on the validation set" in [e[2] for e in page.find("h3")]


def test_a_cross_validation_leads_with_out_of_fold_figures(tmp_path):
    clear = _clear_case()
    oof = Evaluation(thresholds=clear.thresholds, titles=clear.titles, default_model="logreg",
                     metrics={"out-of-fold": clear.metrics["test"]}, songs={"out-of-fold": clear.songs["test"]},
                     comparisons={"out-of-fold": clear.comparisons["test"]})
    assert headline_set(oof) == ("out-of-fold", "")
    text, page = _write(tmp_path, oof, title="progrock cross-validation")
    assert page.errors == [] and page.find("title")[0][2] == "progrock cross-validation"
    assert "Song balanced accuracy on the out-of-fold set" in [e[2] for e in page.find("h3")]
    assert "5 folds × 1 repeat(s)" in text
    assert page.find("table", class_="songs")[0][1]["data-show"] == "logreg"


def test_the_runs_warning_training_data_and_models_are_shown(tmp_path):
    run = Run({"cnn": ModelEntry("cnn", TITLES["cnn"], "vote", 0.45, threshold_rule="on validation"),
               "logreg": ModelEntry("logistic", TITLES["logreg"], "mean", 0.5, input="song_statistics")},
              "cnn", {}, SnippetConfig(),
              description={"trained_on": {"source": "/data/demo/corpus", "synthetic": True,
                                          "songs": {"prog": 12, "nonprog": 30}, "feature_sets": ["seed43"]}})
    assert run.warning
    _, page = _write(tmp_path, _clear_case(), run=run)
    alarm = page.find("div", class_="run-warning")[0][2]
    assert "synthetic demo corpus" in alarm and "never heard real music" in alarm
    facts = page.find("ul", class_="facts")[0][2]
    assert "Trained on 12 prog and 30 nonprog songs from /data/demo/corpus" in facts
    assert "Default model: 1D-CNN, snippet vote" in facts and "validation figures are optimistic" in facts
    _, plain = _write(tmp_path / "real", _clear_case(), run=Run({}, "cnn", {}, SnippetConfig(), description={
        "trained_on": {"source": "/music", "synthetic": False, "songs": {"prog": 40, "nonprog": 90}}}))
    assert plain.find("div", class_="run-warning") == []


def test_a_trained_runs_report_embeds_training_curves_and_structure_without_loose_pngs(tiny_run):
    run_dir = tiny_run.run_dir
    assert sorted(run_dir.glob("*.png")) == []
    text = (run_dir / "report.html").read_text()
    page = Page(text)
    assert page.errors == []
    kept = json.loads((run_dir / "training" / "cnn-1" / "model.json").read_text())["training"]
    assert f"CNN member 1: weights kept from epoch {kept['best_epoch']} of {kept['epochs_run']}" in text
    assert f"progrock tensorboard {run_dir}" in text
    tested = {r.path for r in tiny_run.evaluation.songs["test"]["cnn"]}
    drawn = {e[1]["data-song"] for e in page.find("tr") if "data-song" in e[1]}
    assert tested <= drawn and text.count('<svg class="structure"') >= len(tested)
