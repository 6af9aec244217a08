"""The report: one self-contained HTML page that says how sure every figure is.

:func:`write_report` writes ``FOLDER/report.html`` and nothing else: figures
are PNG data URIs, barcodes and structure timelines inline SVG, style and
script inline; nothing is loaded from elsewhere. The page, top to bottom:

1. **At a glance**: the headline set (test; out-of-fold for a
   cross-validation; new data for ``progrock evaluate RUN DATA``; validation
   only when there is nothing else, labelled optimistic), each model's song
   balanced accuracy with its 95 % interval and the number of songs; a claim
   that one model beats another only where the paired interval excludes zero;
   the run's warning, what it was trained on, its default model.
2. **Metrics** per set and model, with intervals, the threshold-free figures
   and a warning where a model's probabilities shifted against validation.
3. **Curves** per set: ROC, precision-recall and a reliability diagram.
4. **Confusion matrices** per set, a panel per model.
5. **Songs** per set: every model's verdict (a selector switches model), the
   barcode with a time axis, the structure timeline, the familiarity flag and
   the inputs that pushed an explaining model's verdict.
6. **Copies and skipped files**; 7. **Training**: the CNN members' curves, the
   TensorBoard command, the models and the configuration; 8. **Data**.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
from pathlib import Path

import numpy as np

from progrock import __version__
from progrock.atomic import atomic_write_text
from progrock.constants import CLASSES
from progrock.evaluation.evaluate import REFERENCE, Evaluation, calibration
from progrock.evaluation.intervals import MIN_PER_CLASS, MIN_TO_COMPARE, format_interval
from progrock.evaluation.metrics import format_confusion
from progrock.evaluation.verdict import SongResult
from progrock.report.barcode import barcode_svg
from progrock.report.structure import structure_svg

MODEL_TITLES = {"cnn_snippet": "1D-CNN, single snippets"}
COPIES = "copies of training songs"
"""The set :func:`progrock.workflow.evaluate_run` puts new songs in that copy training songs."""
NO_HEADLINE = ("train", "validation", COPIES)
"""Sets whose figures are no guide to new music: the headline comes from another set where there is one."""
INTERVAL_METRICS = [("balanced_accuracy", "balanced accuracy"), ("mcc", "MCC"), ("roc_auc", "ROC-AUC")]
WHY_HEADER = ("inputs that pushed the verdict<br><span class='muted'>↑ towards prog, ↓ towards nonprog "
              "(push on the logit)</span>")
POINT_METRICS = [("accuracy", "accuracy"), ("precision", "prog precision"), ("recall", "prog recall"),
                 ("f1", "prog F1")]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#fafafa;color:#1f2933}
header{background:linear-gradient(120deg,#3b0764,#6d28d9);color:#fff;padding:28px 40px}
header h1{margin:0 0 6px;font-size:26px} header p{margin:0;opacity:.85}
main{max-width:1280px;margin:0 auto;padding:24px 40px 60px}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:18px 24px;margin:18px 0}
h2{font-size:19px;margin:4px 0 14px;color:#3b0764} h3{font-size:15px;margin:14px 0 8px}
.cards{display:flex;gap:14px;flex-wrap:wrap}
.card{flex:1 1 210px;background:#f5f3ff;border-radius:8px;padding:12px 16px}
.card.default{outline:2px solid #7c3aed}
.card .v{font-size:28px;font-weight:600;color:#4c1d95} .card .iv{font-size:15px;color:#4c1d95}
.card .k{font-size:13px;color:#52606d}
.warn{background:#fff7ed;border-left:4px solid #f97316;padding:10px 14px;border-radius:6px;margin:10px 0}
.alarm{background:#fef2f2;border-left:6px solid #dc2626;padding:12px 16px;border-radius:6px;margin:0 0 14px;
 font-weight:600;color:#7f1d1d}
.ok{background:#f0fdf4;border-left:4px solid #22c55e;padding:10px 14px;border-radius:6px;margin:10px 0}
.facts{font-size:14px;line-height:1.5} .facts li{margin:2px 0}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0 10px}
th,td{padding:5px 7px;border-bottom:1px solid #e4e7eb;text-align:right;vertical-align:middle}
th{background:#f5f3ff;cursor:pointer;position:sticky;top:0} td.l,th.l{text-align:left}
tr.default td{font-weight:600;background:#faf5ff}
.figs{display:flex;flex-wrap:wrap;gap:12px} .figs figure{margin:0}
.figs img{max-width:100%;border:1px solid #eee;border-radius:6px}
figcaption{font-size:12px;color:#52606d;text-align:center;max-width:420px}
.bad{color:#b91c1c} .good{color:#15803d} .muted{color:#7b8794;font-size:12px}
.unfamiliar{background:#fde68a;color:#78350f;border-radius:4px;padding:1px 5px;font-size:12px;white-space:nowrap}
svg.barcode,svg.structure{display:block;border-radius:3px}
ul.why{margin:0;padding:0;list-style:none;font-size:12px;text-align:left;white-space:nowrap}
ul.why li.up{color:#581c87} ul.why li.down{color:#52606d}
td:not(.l){white-space:nowrap} td.iv{white-space:normal;min-width:70px} .nw{white-space:nowrap}
table.metrics td:first-child{min-width:190px} .scroll{overflow-x:auto}
details summary{cursor:pointer;font-weight:600;margin:8px 0}
pre{background:#f5f7fa;padding:8px;border-radius:6px;font-size:12px;overflow:auto}
code{background:#f5f7fa;padding:1px 4px;border-radius:4px}
.songs [data-m]{display:none}
"""

SCRIPT = """
document.querySelectorAll('table.sortable th').forEach((th,i)=>th.addEventListener('click',()=>{
 const t=th.closest('table'),b=t.tBodies[0],rows=[...b.rows],asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
 rows.sort((a,c)=>{const x=a.cells[i].dataset.v??a.cells[i].innerText,y=c.cells[i].dataset.v??c.cells[i].innerText;
  const nx=parseFloat(x),ny=parseFloat(y);const r=(isNaN(nx)||isNaN(ny))?x.localeCompare(y):nx-ny;return asc?r:-r});
 rows.forEach(r=>b.appendChild(r));}));
document.querySelectorAll('select.model-pick').forEach(s=>s.addEventListener('change',()=>{
 document.getElementById(s.dataset.target).dataset.show=s.value;}));
"""


def _e(text) -> str:
    return html.escape(str(text))


def _fmt(v, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _title(evaluation: Evaluation, model: str) -> str:
    return evaluation.titles.get(model) or MODEL_TITLES.get(model, model)


def display_name(path: str) -> str:
    """A song's path for people: without the ``../`` that re-basing on the run folder adds."""
    parts = path.split("/")
    while parts and parts[0] == "..":
        parts.pop(0)
    return "/".join(parts)


def _png(fig, *, alt: str, kind: str, set_name: str, caption: str = "") -> str:
    """A figure as an embedded PNG (``<figure class="{kind}" data-set=...>``)."""
    from progrock.report.plots import png_bytes

    data = base64.b64encode(png_bytes(fig)).decode()
    return (f'<figure class="{kind}" data-set="{_e(set_name)}"><img src="data:image/png;base64,{data}" '
            f'alt="{_e(alt)}"><figcaption>{_e(caption or alt)}</figcaption></figure>')


def _png_file(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure class="training"><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _labelled(rows: list[SongResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y, pred, prob`` arrays of the songs with a known class."""
    known = [r for r in rows if r.truth in CLASSES]
    return (np.array([CLASSES.index(r.truth) for r in known], dtype=np.int64),
            np.array([r.is_prog for r in known], dtype=np.int64),
            np.array([r.probability for r in known], dtype=np.float64))


# ---------------------------------------------------------------------------------------------
# at a glance


def headline_set(evaluation: Evaluation) -> tuple[str | None, str]:
    """The set whose figures lead the page, and a caution to print with it ('' when none is needed).

    Test, else out-of-fold, else the first set of new data; validation (optimistic) or train only when
    nothing else is labelled.
    """
    labelled = [s for s, ms in evaluation.metrics.items() if any(m != "cnn_snippet" for m in ms)]
    for name in ("test", "out-of-fold"):
        if name in labelled:
            return name, ""
    others = [s for s in labelled if s not in NO_HEADLINE]
    if others:
        return others[0], ""
    if "validation" in labelled:
        return "validation", ("these are validation figures, and they are optimistic: every threshold was "
                              "chosen on these songs; there is no test set to judge on")
    if "train" in labelled:
        return "train", "these are training figures: the models learnt these songs; they say nothing of new music"
    return None, ""


def _cards(evaluation: Evaluation, key: str) -> str:
    cards = []
    for model, m in evaluation.metrics[key].items():
        if model == "cnn_snippet":
            continue
        iv = m.get("intervals", {}).get("balanced_accuracy")
        if iv and iv.get("low") is not None:
            interval = f"95 % interval [{iv['low']:.2f}, {iv['high']:.2f}]"
        else:
            interval = f"no 95 % interval: fewer than {MIN_PER_CLASS} songs of a class"
        repeats = f", mean of {m['repeats']} repeats" if m.get("repeats") else ""
        default = model == evaluation.default_model
        cards.append(
            f"<div class='card{' default' if default else ''}' data-model='{_e(model)}'>"
            f"<div class='v'>{_fmt((iv or {}).get('value', m.get('balanced_accuracy')))}</div>"
            f"<div class='iv'>{_e(interval)}</div>"
            f"<div class='k'>{_e(_title(evaluation, model))}{' (default model)' if default else ''}: "
            f"song balanced accuracy on {_e(key)}, {m['n']} songs ({m['n_prog']} prog){repeats}</div></div>")
    return f"<div class='cards'>{''.join(cards)}</div>"


def _difference(c: dict) -> str:
    if c.get("low") is None:
        return f"difference {c['value']:+.3f}, no interval"
    return f"difference {c['value']:+.3f}, 95 % interval [{c['low']:+.3f}, {c['high']:+.3f}]"


def comparison_banner(evaluation: Evaluation, key: str) -> str:
    """Which models the data can tell apart from the CNN on set ``key``, and only those.

    A model is called better or worse only where its paired interval of the difference in song
    balanced accuracy excludes zero (``comparisons[key][m]["verdict"]``).
    """
    comps = evaluation.comparisons.get(key, {})
    ref = _e(_title(evaluation, REFERENCE))
    claims = {m: c for m, c in comps.items() if c["verdict"] in ("A better", "B better")}
    if claims:
        lines = [f"<li>{_e(_title(evaluation, m))} is {'better' if c['verdict'] == 'A better' else 'worse'} "
                 f"than {ref} on the {_e(key)} songs (song balanced accuracy, {_e(_difference(c))}, "
                 f"{c['n']} songs)</li>" for m, c in claims.items()]
        ties = [_e(_title(evaluation, m)) for m in comps if m not in claims]
        rest = (f"<p>The data cannot tell {', '.join(ties)} from {ref}: those intervals include zero.</p>"
                if ties else "")
        return f"<div class='ok banner'><ul>{''.join(lines)}</ul>{rest}</div>"
    if comps:
        ref_metrics = evaluation.metrics[key].get(REFERENCE, {})
        smaller = min(ref_metrics.get("n_prog", 0), ref_metrics.get("n", 0) - ref_metrics.get("n_prog", 0))
        why = (f"with {smaller} songs in the smaller class (fewer than {MIN_TO_COMPARE}) no difference counts, "
               "whatever its interval" if smaller < MIN_TO_COMPARE else
               f"every paired 95 % interval of a model's difference to {ref} includes zero")
        items = "".join(f"<li>{_e(_title(evaluation, m))} − {ref}: {_e(_difference(c))}</li>"
                        for m, c in comps.items())
        return (f"<div class='warn banner'>On the {_e(key)} songs the data cannot tell the models apart: "
                f"{why} (song balanced accuracy).<ul>{items}</ul></div>")
    if len([m for m in evaluation.metrics[key] if m != "cnn_snippet"]) > 1:
        return (f"<div class='warn banner'>On the {_e(key)} songs the data cannot tell the models apart: "
                f"no paired comparison could be made (both classes and {ref} are needed).</div>")
    return "<div class='muted'>One model only: nothing to compare.</div>"


def _trained_on(run) -> str:
    t = getattr(run, "trained_on", None) or {}
    if not t:
        return ""
    songs = t.get("songs") or {}
    if not songs:                                  # the built-in tagger: pretrained, none of your songs
        return (f"<li>Pretrained on {_e(t.get('source', '?'))}; it has heard none of your songs; "
                f"features: {_e(', '.join(t.get('feature_sets', [])))}.</li>")
    kind = " — progrock's synthetic demo corpus" if t.get("synthetic") else ""
    fold = getattr(run, "description", {}).get("cross_validation_fold")
    who = f"The run of fold {_e(fold)} was trained" if fold else "Trained"
    return (f"<li>{who} on {songs.get('prog', '?')} prog and {songs.get('nonprog', '?')} nonprog songs from "
            f"<code>{_e(t.get('source', '?'))}</code>{kind}; "
            f"features: {_e(', '.join(t.get('feature_sets', [])))}.</li>")


def _folds_run(folder: Path, evaluation: Evaluation):
    """For a cross-validation: a :class:`~progrock.model.run.Run` describing what its first fold was trained on
    (its warning holds for every fold), or ``None``."""
    from progrock.data.snippets import SnippetConfig
    from progrock.model.run import Run

    for path in sorted(folder.glob("r*-fold*/model.json")):
        try:
            described = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(described, dict) and isinstance(described.get("trained_on"), dict):
            return Run({}, evaluation.default_model, {}, SnippetConfig(),
                       description={"trained_on": described["trained_on"], "cross_validation_fold": path.parent.name})
    return None


def _glance(evaluation: Evaluation, run, config: dict) -> str:
    key, caution = headline_set(evaluation)
    warning = getattr(run, "warning", None)
    parts = [f"<div class='alarm run-warning'>⚠ {_e(warning[0].upper() + warning[1:])}</div>"] if warning else []
    facts = [_trained_on(run)]
    if "out-of-fold" in evaluation.metrics:
        facts.append(f"<li>Cross-validation: {_e(config.get('folds', '?'))} folds × {_e(config.get('repeats', 1))} "
                     "repeat(s); every song judged by a run that never heard it (out-of-fold).</li>")
    facts.append(f"<li>Default model: <b>{_e(_title(evaluation, evaluation.default_model))}</b> "
                 f"(<code>{_e(evaluation.default_model)}</code>), what <code>progrock predict</code> and the web "
                 "page use unless told otherwise.</li>")
    facts.append("<li>Thresholds are chosen on the validation songs, so validation figures are optimistic; "
                 "judge on test (or out-of-fold, or new data).</li>")
    facts += [f"<li class='note'>{_e(note[0].upper() + note[1:])}.</li>" for note in evaluation.notes]
    if key is None:
        parts.append("<p>No labelled songs: no figures, only verdicts (see Songs).</p>")
        return "".join(parts) + f"<ul class='facts'>{''.join(facts)}</ul>"
    if caution:
        parts.append(f"<div class='warn caution'>{_e(caution)}</div>")
    parts += [f"<h3>Song balanced accuracy on the {_e(key)} set</h3>", _cards(evaluation, key),
              comparison_banner(evaluation, key)]
    shifted = [m for m, v in evaluation.metrics[key].items() if (v.get("shift") or {}).get("shifted")]
    if shifted:
        names = ", ".join(_title(evaluation, m) for m in shifted)
        parts.append(f"<div class='warn shift-summary'>The probabilities of {_e(names)} moved against validation "
                     "on these songs: their thresholds may not fit this music (see Metrics).</div>")
    rows = evaluation.songs.get(key, {}).get(evaluation.default_model, [])
    strange = sum(bool(r.unfamiliar) for r in rows)
    if strange:
        facts.append(f"<li>{strange} of {len(rows)} {_e(key)} songs are unlike the training music: "
                     "their verdicts deserve less trust.</li>")
    if evaluation.copies or evaluation.skipped:
        facts.append(f"<li>{_count(len(evaluation.copies), 'copy', 'copies')} of training songs judged apart; "
                     f"{_count(len(evaluation.skipped), 'file')} skipped (see below).</li>")
    return "".join(parts) + f"<ul class='facts'>{''.join(facts)}</ul>"


# ---------------------------------------------------------------------------------------------
# metrics


def _shift_note(evaluation: Evaluation, set_name: str, model: str, shift: dict) -> str:
    moved = ", ".join(f"{c} songs' mean {shift['validation'][c]:.2f} → {shift['here'][c]:.2f}"
                      for c in shift.get("moved", {}))
    return (f"<p class='warn shift' data-set='{_e(set_name)}' data-model='{_e(model)}'>⚠ "
            f"{_e(_title(evaluation, model))} on {_e(set_name)}: its probabilities moved against validation "
            f"({_e(moved)}); its threshold ({evaluation.thresholds.get(model, 0.5):.2f}) may not fit this music.</p>")


def _comparison_cell(c: dict | None) -> str:
    if not c:
        return "<td>–</td>"
    word = {"A better": "better", "B better": "worse"}.get(c["verdict"], "cannot tell apart")
    if c["verdict"] == "cannot tell apart" and c.get("low") is not None and not c["low"] <= 0 <= c["high"]:
        word += f": fewer than {MIN_TO_COMPARE} songs of a class"
    iv = f" [{c['low']:+.2f}, {c['high']:+.2f}]" if c.get("low") is not None else ""
    return (f"<td class='iv' data-v='{c['value']}'>{c['value']:+.3f}<span class='nw'>{iv}</span><br>"
            f"<span class='muted'>{word}</span></td>")


def _interval_html(m: dict | None) -> str:
    """:func:`format_interval`'s text, free to wrap only between the value and its interval."""
    value, _, interval = format_interval(m).partition(" ")
    return _e(value) + (f" <span class='nw'>{_e(interval)}</span>" if interval else "")


def _metrics_row(evaluation: Evaluation, set_name: str, model: str, m: dict) -> str:
    iv = m.get("intervals", {})
    snippet = model == "cnn_snippet"
    cells = "".join(f"<td class='iv' data-v='{m.get(k) if m.get(k) is not None else -9}'>"
                    f"{_interval_html(iv[k]) if k in iv else _fmt(m.get(k))}</td>" for k, _ in INTERVAL_METRICS)
    best = m.get("best_balanced_accuracy")
    cells += f"<td data-v='{best if best is not None else -9}'>{_fmt(best)}</td>"
    cells += "".join(f"<td>{_fmt(m.get(k))}</td>" for k, _ in POINT_METRICS)
    cells += _comparison_cell(evaluation.comparisons.get(set_name, {}).get(model))
    shifted = (m.get("shift") or {}).get("shifted")
    notes = "⚠ shifted" if shifted else ""
    notes += f" mean of {m['repeats']} repeats" if m.get("repeats") else ""
    threshold = evaluation.thresholds.get(REFERENCE if snippet else model)
    name = _title(evaluation, model) + (" (per snippet: n counts snippets)" if snippet else "")
    cls = " class='default'" if model == evaluation.default_model else ""
    return (f"<tr{cls} data-model='{_e(model)}'><td class='l'>{_e(name)}</td><td>{m.get('n', '')}</td>"
            f"<td>{m.get('n_prog', '')}</td><td>{_fmt(threshold, 2)}</td>{cells}<td class='l nw'>{_e(notes)}</td></tr>")


def _metrics_set(evaluation: Evaluation, set_name: str) -> str:
    models = evaluation.metrics[set_name]
    head = "".join(f"<th>{label}<br><span class='muted'>[95 % interval]</span></th>" for _, label in INTERVAL_METRICS)
    head += "<th>best balanced acc.<br><span class='muted'>upper bound</span></th>"
    head += "".join(f"<th>{label}</th>" for _, label in POINT_METRICS)
    head += f"<th>− {_e(_title(evaluation, REFERENCE))}<br><span class='muted'>balanced acc. [95 %]</span></th>"
    rows = "".join(_metrics_row(evaluation, set_name, m, v) for m, v in models.items())
    notes = "".join(_shift_note(evaluation, set_name, m, v["shift"]) for m, v in models.items()
                    if (v.get("shift") or {}).get("shifted"))
    return (f"<h3>{_e(set_name)}</h3><div class='scroll'><table class='sortable metrics' data-set='{_e(set_name)}'>"
            f"<thead><tr><th class='l'>model</th><th>songs</th><th>prog</th><th>threshold</th>{head}"
            f"<th class='l'>notes</th></tr></thead><tbody>{rows}</tbody></table></div>{notes}")


def _metrics_section(evaluation: Evaluation) -> str:
    if not any(evaluation.metrics.values()):
        return "<p>No labelled songs: no metrics.</p>"
    return "".join(_metrics_set(evaluation, s) for s, m in evaluation.metrics.items() if m) + (
        "<p class='muted'>Song level unless noted. Balanced accuracy is the mean of the two classes' recalls. "
        "Intervals: percentile bootstrap over the songs (2,000 resamples); none with fewer than "
        f"{MIN_PER_CLASS} songs of a class. ROC-AUC and the best balanced accuracy need no threshold; the best "
        "balanced accuracy (at the best threshold for that set) is an upper bound: its threshold is chosen on "
        "the very songs it is measured on. "
        "Snippets of one song are not independent, so the per-snippet row has no interval. "
        "Click a column to sort.</p>")


# ---------------------------------------------------------------------------------------------
# curves and confusion matrices


def _curves(evaluation: Evaluation, set_name: str) -> str:
    """ROC, precision-recall and reliability figures of every model on one set's labelled songs."""
    from progrock.report.plots import calibration_figure, pr_figure, roc_figure

    models, roc_points, pr_points, tables = {}, {}, {}, {}
    for model, rows in evaluation.songs.get(set_name, {}).items():
        y, pred, prob = _labelled(rows)
        if not len(y):
            continue
        title = _title(evaluation, model)
        models[title] = (y, prob)
        m = evaluation.metrics.get(set_name, {}).get(model) or {}
        tables[title] = m.get("calibration") or calibration(y, prob)
        if len(np.unique(y)) == 2:
            tp, fp = int(((pred == 1) & (y == 1)).sum()), int(((pred == 1) & (y == 0)).sum())
            roc_points[title] = (fp / (y == 0).sum(), tp / (y == 1).sum())
            if tp + fp:
                pr_points[title] = (tp / (y == 1).sum(), tp / (tp + fp))
    if not models:
        return "<p class='muted'>No labelled songs in this set: no curves.</p>"
    figs = []
    if len(np.unique(next(iter(models.values()))[0])) == 2:
        figs += [_png(roc_figure(models, points=roc_points, title=f"ROC — {set_name}"), kind="roc",
                      set_name=set_name, alt=f"ROC curves, {set_name}",
                      caption="ROC curves; dots: each model's verdicts at its threshold (the snippet vote can sit "
                              "off the curve of its mean probability)"),
                 _png(pr_figure(models, points=pr_points, title=f"Precision-recall — {set_name}"), kind="pr",
                      set_name=set_name, alt=f"precision-recall curves, {set_name}",
                      caption="precision-recall curves (prog positive); dots: the verdicts at each threshold")]
    else:
        figs.append("<p class='muted'>One class only: no ROC or precision-recall curve.</p>")
    figs.append(_png(calibration_figure(tables, title=f"Reliability — {set_name}"), kind="calibration",
                     set_name=set_name, alt=f"reliability diagram, {set_name}",
                     caption="reliability: share of prog songs against the mean probability per bin "
                             "(on the diagonal: calibrated)"))
    return f"<div class='figs'>{''.join(figs)}</div>"


def _confusions(evaluation: Evaluation, set_name: str) -> str:
    from progrock.report.plots import confusions_figure

    found = {m: v["confusion"] for m, v in evaluation.metrics.get(set_name, {}).items() if "confusion" in v}
    if not found:
        return "<p class='muted'>No labelled songs in this set.</p>"
    fig = confusions_figure({_title(evaluation, m) + (" (snippets)" if m == "cnn_snippet" else ""): c
                             for m, c in found.items()}, title=f"{set_name}: rows true, columns predicted")
    texts = "".join(f"<pre>{_e(_title(evaluation, m))}\n{_e(format_confusion(c))}</pre>" for m, c in found.items())
    return (f"<div class='figs'>{_png(fig, kind='confusion', set_name=set_name, alt=f'confusion matrices, {set_name}')}"
            f"</div><details><summary>as text</summary>{texts}</details>")


def _per_set(evaluation: Evaluation, names, key: str | None, body) -> str:
    """A ``<details>`` per set, the headline set open, each holding ``body(set_name)``."""
    return "".join(f"<details{' open' if name == key else ''} data-set='{_e(name)}'><summary>{_e(name)}</summary>"
                   f"{body(name)}</details>" for name in names)


# ---------------------------------------------------------------------------------------------
# songs


def _barcode_groups(by_model: dict[str, list[SongResult]]) -> list[list[str]]:
    """Models grouped by identical snippet evidence (the CNN's models share one barcode); snippetless last."""
    groups: dict[tuple, list[str]] = {}
    for m, rows in by_model.items():
        if any(r.snippet_probs for r in rows):
            key = tuple(sorted((r.path, tuple(r.snippet_starts), tuple(r.snippet_probs)) for r in rows))
        else:
            key = ("none",)
        groups.setdefault(key, []).append(m)
    return [g for k, g in groups.items() if k != ("none",)] + ([groups[("none",)]] if ("none",) in groups else [])


def _why(explanation: list[dict] | None) -> str:
    if not explanation:
        return "–"
    items = "".join(f"<li class='{'up' if e['push'] > 0 else 'down'}'>{'↑' if e['push'] > 0 else '↓'} "
                    f"{_e(e['input'])} = {e['value']:.3g} <span class='muted'>({e['push']:+.2f})</span></li>"
                    for e in explanation)
    return f"<ul class='why'>{items}</ul>"


def _familiar(r: SongResult) -> str:
    if r.unfamiliar is None:
        return "<td class='l' data-v='-1'>–</td>"
    tip = f"distance to the training music: {r.familiarity:.2f} × the cut-off" if r.familiarity is not None else ""
    if r.unfamiliar:
        return (f"<td class='l' data-v='{r.familiarity}'><span class='unfamiliar' title='{_e(tip)}'>"
                "unlike the training music</span></td>")
    return f"<td class='l' data-v='{r.familiarity}'><span class='muted' title='{_e(tip)}'>familiar</span></td>"


def _model_cells(r: SongResult | None, model: str, explains: bool) -> str:
    if r is None:
        return f"<td data-m='{model}'>–</td>" * (4 if explains else 3)
    mark = "" if r.correct is None else "<span class='good'>✓</span>" if r.correct else "<span class='bad'>✗</span>"
    cells = (f"<td data-m='{model}' data-v='{r.probability}'>{r.probability:.2f}</td>"
             f"<td class='l' data-m='{model}'>{r.verdict}</td><td data-m='{model}'>{mark}</td>")
    return cells + (f"<td class='l' data-m='{model}'>{_why(r.explanation)}</td>" if explains else "")


def _barcode_cell(r: SongResult | None, group: list[str]) -> str:
    attr = _e(" ".join(group))
    if r is None or not r.snippet_probs:
        return f"<td class='l' data-m='{attr}'><span class='muted'>song-level model: no snippets</span></td>"
    return (f"<td class='l' data-m='{attr}' data-v='{r.n_snippets}'><span class='muted'>{r.n_snippets} snippets of "
            f"{r.snippet_seconds:.3g} s</span>"
            f"{barcode_svg(r.snippet_starts, r.snippet_probs, r.duration, snippet_seconds=r.snippet_seconds)}</td>")


def _songs_table(evaluation: Evaluation, set_name: str, table_id: str, timelines: dict[str, dict]) -> str:
    by_model = evaluation.songs[set_name]
    models = list(by_model)
    default = evaluation.default_model if evaluation.default_model in by_model else models[0]
    index = {m: {r.path: r for r in rows} for m, rows in by_model.items()}
    explains = {m for m in models if any(r.explanation for r in by_model[m])}
    groups = _barcode_groups(by_model)
    drawn = any(r.path in timelines for r in by_model[default])
    head = "".join(f"<th data-m='{m}'>p(prog)</th><th class='l' data-m='{m}'>verdict</th><th data-m='{m}'>ok</th>"
                   + (f"<th class='l' data-m='{m}'>{WHY_HEADER}</th>" if m in explains else "")
                   for m in models)
    head += "<th class='l'>truth</th>" + "".join(
        f"<th class='l' data-m='{_e(' '.join(g))}'>barcode: p(prog) along the song</th>" for g in groups)
    head += "<th class='l'>structure: sections · key · tempo</th>" if drawn else ""
    head += "<th class='l'>familiarity</th>"
    body = []
    for r in sorted(by_model[default], key=lambda r: -r.probability):
        cells = "".join(_model_cells(index[m].get(r.path), m, m in explains) for m in models)
        cells += f"<td class='l'>{_e(r.truth or '?')}</td>"
        cells += "".join(_barcode_cell(index[g[0]].get(r.path), g) for g in groups)
        if drawn:
            cells += f"<td class='l'>{structure_svg(timelines[r.path]) if r.path in timelines else '–'}</td>"
        body.append(f"<tr data-song='{_e(r.path)}'><td class='l' title='{_e(r.path)}'>{_e(display_name(r.path))}</td>"
                    f"{cells}{_familiar(r)}</tr>")
    options = "".join(f"<option value='{m}'{' selected' if m == default else ''}>{_e(_title(evaluation, m))}</option>"
                      for m in models)
    return (f"<label>model <select class='model-pick' data-target='{table_id}'>{options}</select></label> "
            f"<span class='muted'>{len(by_model[default])} songs</span>"
            f"<div class='scroll'><table class='sortable songs' id='{table_id}' data-show='{default}'><thead><tr>"
            f"<th class='l'>song</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def _model_css(evaluation: Evaluation) -> str:
    """One rule per model: its columns show when the songs table's ``data-show`` names it."""
    models = {m for by_model in evaluation.songs.values() for m in by_model}
    return "".join(f'.songs[data-show="{m}"] [data-m~="{m}"]{{display:table-cell}}' for m in sorted(models))


def _songs_section(evaluation: Evaluation, key: str | None, timelines: dict[str, dict]) -> str:
    names = list(evaluation.songs)
    ids = {name: f"songs-{i}" for i, name in enumerate(names)}
    return ("<p class='muted'>The barcode shows each snippet's probability of prog along the song (pale = "
            "nonprog, dark = prog; hover for the time); the structure timeline shows sections (darker = louder), "
            "the key (colour round the circle of fifths) and the tempo (line; purple where the metre reads odd). "
            "Choose a model to see its verdicts.</p>"
            + _per_set(evaluation, names, key, lambda s: _songs_table(evaluation, s, ids[s], timelines)))


# ---------------------------------------------------------------------------------------------
# copies, skipped files, training, data


def _copies_section(evaluation: Evaluation) -> str:
    copies = "".join(f"<li><code>{_e(display_name(p))}</code> is a copy of the training song "
                     f"<code>{_e(display_name(t))}</code></li>" for p, t in evaluation.copies)
    skipped = "".join(f"<li><code>{_e(display_name(p))}</code>: {_e(r)}</li>" for p, r in evaluation.skipped)
    return (f"<h3>Copies of training songs ({len(evaluation.copies)})</h3>"
            + (f"<p>Judged apart, in the set “{COPIES}”: a model has heard them, so they do not count in the "
               f"other sets' figures.</p><ul class='copies'>{copies}</ul>" if copies else "<p>None.</p>")
            + f"<h3>Skipped files ({len(evaluation.skipped)})</h3>"
            + (f"<ul class='skipped'>{skipped}</ul>" if skipped else "<p>None.</p>"))


def _member_caption(folder: Path, *, figure: bool = True) -> str:
    """``CNN member k: weights kept from epoch E of N`` from a member's ``model.json``."""
    caption = f"CNN member {folder.name.rsplit('-', 1)[-1]}"
    try:
        t = json.loads((folder / "model.json").read_text())["training"]
        early = ", stopped early" if t.get("stopped_early") else ""
        line = " (dotted line)" if figure else ""
        return f"{caption}: weights kept from epoch {t['best_epoch']} of {t['epochs_run']}{early}{line}"
    except (OSError, ValueError, KeyError, TypeError):
        return caption


def _members(run_dir: Path) -> list[Path]:
    found = [p for p in (run_dir / "training").glob("cnn-*") if p.name.rsplit("-", 1)[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[-1]))


def _run_models(run) -> str:
    entries = getattr(run, "entries", {}) or {}
    rows = "".join(f"<tr><td class='l'><code>{_e(n)}</code></td><td class='l'>{_e(e.title)}</td>"
                   f"<td class='l'>{_e(e.kind)}</td><td class='l'>{_e(e.rule)}</td><td>{e.threshold:.3f}</td>"
                   f"<td class='l'>{_e(e.threshold_rule)}</td></tr>" for n, e in entries.items())
    return ("<h3>Models</h3><table><thead><tr><th class='l'>name</th><th class='l'>title</th><th class='l'>kind</th>"
            "<th class='l'>rule</th><th>threshold</th><th class='l'>threshold chosen</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>") if rows else ""


def _training_section(folder: Path, run, config: dict) -> str:
    run_dir = Path(run.path).parent if getattr(run, "path", None) is not None else None
    parts = [_run_models(run)]
    if run_dir is not None:
        figs = "".join(_png_file(m / "curves.png", _member_caption(m)) for m in _members(run_dir)
                       if (m / "curves.png").is_file())
        parts.append(f"<h3>CNN training</h3><div class='figs'>{figs or '<p>No training curves in the run.</p>'}</div>"
                     f"<p>Live curves, layer histograms and the kept epoch's PR curve: "
                     f"<code>progrock tensorboard {_e(run_dir)}</code></p>")
    folds = sorted(p for p in folder.glob("r*-fold*") if p.is_dir())
    if folds:
        items = "".join(f"<li><code>{_e(p.name)}</code>: "
                        f"{_e('; '.join(_member_caption(m, figure=False) for m in _members(p)) or 'not trained')} — "
                        f"<code>progrock tensorboard {_e(p)}</code></li>" for p in folds)
        parts.append(f"<h3>The folds' runs</h3><ul class='facts'>{items}</ul>")
    parts.append(f"<details><summary>configuration</summary><pre>{_e(json.dumps(config, indent=2, default=str))}"
                 "</pre></details>")
    return "".join(parts)


def _data_section(data_summary: list[dict]) -> str:
    if not data_summary:
        return ""
    rows = "".join(f"<tr><td class='l'>{_e(r['set'])}</td><td class='l'>{_e(r['label'])}</td>"
                   f"<td>{r['songs']}</td><td>{r['hours']:.2f}</td></tr>" for r in data_summary)
    return ("<section><h2>Data</h2><table><thead><tr><th class='l'>set</th><th class='l'>label</th><th>songs</th>"
            f"<th>hours</th></tr></thead><tbody>{rows}</tbody></table></section>")


def write_report(folder: str | os.PathLike, evaluation: Evaluation, *, data_summary: list[dict], config: dict,
                 run=None, title: str = "progrock run report", timelines: dict[str, dict] | None = None) -> Path:
    """Write ``folder/report.html``, self-contained (see the module's docstring); no other file is written.

    Parameters
    ----------
    folder : path-like
        Where the page goes (a run folder, an evaluation's folder, a cross-validation's folder).
    evaluation : Evaluation
    data_summary : list of dict
        Rows ``{set, label, songs, hours}`` (:func:`progrock.data.manifest.summary`); empty to leave out.
    config : dict
        The configuration, shown at the end.
    run : Run, optional
        The run judged: its warning, what it was trained on, its models and its members' training curves.
    title : str
    timelines : dict, optional
        Song path -> :func:`progrock.features.structure.song_timeline` (drawn beside the barcode).

    Returns
    -------
    Path
        The page.
    """
    folder = Path(folder)
    key = headline_set(evaluation)[0]
    labelled = [s for s, m in evaluation.metrics.items() if m]
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{_e(title)}</title>
<style>{CSS}{_model_css(evaluation)}</style></head><body>
<header><h1>{_e(title)}</h1><p>{_e(folder)} · progrock {__version__} · {when} ·
default model {_e(_title(evaluation, evaluation.default_model))}</p></header><main>
<section id="glance"><h2>At a glance</h2>{_glance(evaluation, run or _folds_run(folder, evaluation), config)}</section>
<section id="metrics"><h2>Metrics</h2>{_metrics_section(evaluation)}</section>
<section id="curves"><h2>Curves</h2>{_per_set(evaluation, labelled, key, lambda s: _curves(evaluation, s))}</section>
<section id="confusion"><h2>Confusion matrices</h2>
{_per_set(evaluation, labelled, key, lambda s: _confusions(evaluation, s))}</section>
<section id="songs"><h2>Songs</h2>{_songs_section(evaluation, key, timelines or {})}</section>
<section id="copies"><h2>Copies and skipped files</h2>{_copies_section(evaluation)}</section>
<section id="training"><h2>Training</h2>{_training_section(folder, run, config)}</section>
{_data_section(data_summary)}
</main><script>{SCRIPT}</script></body></html>"""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "report.html"
    atomic_write_text(path, page)
    return path
