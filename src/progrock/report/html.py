"""The run report: one self-contained HTML page (figures embedded), plus the PNGs beside it."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
from pathlib import Path

from progrock import __version__
from progrock.atomic import atomic_write_text
from progrock.constants import CLASSES
from progrock.evaluation.evaluate import Evaluation
from progrock.evaluation.intervals import format_interval
from progrock.evaluation.metrics import format_confusion
from progrock.report.plots import plot_confusion
from progrock.report.barcode import barcode_svg

MODEL_TITLES = {"cnn_snippet": "1D-CNN, single snippets"}
METRICS = [("balanced_accuracy", "balanced acc."), ("accuracy", "accuracy"),
           ("informedness", "informedness"), ("precision", "prog precision"),
           ("recall", "prog recall"), ("f1", "prog F1"), ("mcc", "MCC"), ("roc_auc", "ROC-AUC")]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#fafafa;color:#1f2933}
header{background:linear-gradient(120deg,#3b0764,#6d28d9);color:#fff;padding:28px 40px}
header h1{margin:0 0 6px;font-size:26px} header p{margin:0;opacity:.85}
main{max-width:1180px;margin:0 auto;padding:24px 40px 60px}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:18px 24px;margin:18px 0}
h2{font-size:19px;margin:4px 0 14px;color:#3b0764}
.cards{display:flex;gap:14px;flex-wrap:wrap}
.card{flex:1 1 200px;background:#f5f3ff;border-radius:8px;padding:12px 16px}
.card .v{font-size:28px;font-weight:600;color:#4c1d95} .card .k{font-size:13px;color:#52606d}
.warn{background:#fff7ed;border-left:4px solid #f97316;padding:10px 14px;border-radius:6px;margin-top:12px}
.ok{background:#f0fdf4;border-left:4px solid #22c55e;padding:10px 14px;border-radius:6px;margin-top:12px}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:6px 8px;border-bottom:1px solid #e4e7eb;text-align:right}
th{background:#f5f3ff;cursor:pointer;position:sticky;top:0} td.l,th.l{text-align:left}
tr.best td{font-weight:600;background:#faf5ff}
.figs{display:flex;flex-wrap:wrap;gap:12px} .figs figure{margin:0} .figs img{max-width:100%;border:1px solid #eee;border-radius:6px}
figcaption{font-size:12px;color:#52606d;text-align:center}
.bad{color:#b91c1c} .good{color:#15803d} .muted{color:#7b8794;font-size:13px}
svg.barcode{vertical-align:middle;border-radius:3px}
details summary{cursor:pointer;font-weight:600;margin:8px 0}
pre{background:#f5f7fa;padding:8px;border-radius:6px;font-size:12px;overflow:auto}
"""

SORT_JS = """
document.querySelectorAll('table.sortable th').forEach((th,i)=>th.addEventListener('click',()=>{
 const t=th.closest('table'),b=t.tBodies[0],rows=[...b.rows],asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
 rows.sort((a,c)=>{const x=a.cells[i].dataset.v??a.cells[i].innerText,y=c.cells[i].dataset.v??c.cells[i].innerText;
  const nx=parseFloat(x),ny=parseFloat(y);const r=(isNaN(nx)||isNaN(ny))?x.localeCompare(y):nx-ny;return asc?r:-r});
 rows.forEach(r=>b.appendChild(r));}));
"""


def _img(path: Path, caption: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _title(evaluation: Evaluation, model: str) -> str:
    return evaluation.titles.get(model) or MODEL_TITLES.get(model, model)


def write_confusion_pngs(evaluation: Evaluation, out_dir: Path) -> dict[tuple[str, str], Path]:
    """PNG confusion matrices for every set and model."""
    paths = {}
    for set_name, models in evaluation.metrics.items():
        for model, m in models.items():
            if "confusion" in m:
                title = f"{_title(evaluation, model)} — {set_name}"
                paths[(set_name, model)] = plot_confusion(
                    m["confusion"], CLASSES, title, out_dir / f"confusion_{set_name}_{model}.png")
    return paths


def _metrics_table(evaluation: Evaluation) -> str:
    head = "".join(f"<th>{label}</th>" for _, label in METRICS)
    rows = []
    for set_name, models in evaluation.metrics.items():
        best = evaluation.best_model(set_name)
        for model, m in models.items():
            cls = ' class="best"' if model == best else ""
            iv = m.get("intervals", {})
            cells = "".join(f'<td data-v="{m.get(k) if m.get(k) is not None else -9}">'
                            f'{format_interval(iv[k]) if k in iv else _fmt(m.get(k))}</td>' for k, _ in METRICS)
            rows.append(f"<tr{cls}><td class='l'>{html.escape(set_name)}</td>"
                        f"<td class='l'>{html.escape(_title(evaluation, model))}</td>"
                        f"<td>{m.get('n', '')}</td><td>{m.get('n_prog', '')}</td>{cells}</tr>")
    return (f"<table class='sortable'><thead><tr><th class='l'>set</th><th class='l'>model</th><th>n</th>"
            f"<th>prog</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def display_name(path: str) -> str:
    """A song's path for people: without the ``../`` that re-basing on the run folder adds."""
    parts = path.split("/")
    while parts and parts[0] == "..":
        parts.pop(0)
    return "/".join(parts)


def _songs_table(rows) -> str:
    body = []
    for r in sorted(rows, key=lambda r: -r.probability):
        correct = r.correct
        mark = "" if correct is None else ("<span class='good'>✓</span>" if correct else "<span class='bad'>✗</span>")
        body.append(
            f"<tr><td class='l' title='{html.escape(r.path)}'>{html.escape(display_name(r.path))}</td><td data-v='{r.probability}'>{r.probability:.2f}</td>"
            f"<td data-v='{r.vote_fraction or 0}'>{_fmt(r.vote_fraction)}</td><td class='l'>{r.verdict}</td>"
            f"<td class='l'>{r.truth or '?'}</td><td>{mark}</td><td>{r.n_snippets}</td>"
            f"<td class='l'>{barcode_svg(r.snippet_starts, r.snippet_probs, r.duration)}</td></tr>")
    return ("<table class='sortable'><thead><tr><th class='l'>song</th><th>p(prog)</th><th>votes</th>"
            "<th class='l'>predicted</th><th class='l'>true</th><th>ok</th><th>snippets</th>"
            "<th class='l'>barcode (start → end)</th></tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def _headline(evaluation: Evaluation) -> str:
    key = "test" if "test" in evaluation.metrics else next(iter(evaluation.metrics), None)
    if key is None:
        return ""
    m = evaluation.metrics[key]
    cards = []
    for model, v in m.items():
        if model == "cnn_snippet":
            continue
        iv = v.get("intervals", {}).get("balanced_accuracy")
        cards.append(f"<div class='card'><div class='v'>{_fmt(v.get('balanced_accuracy'))}</div>"
                     f"<div class='k'>{html.escape(_title(evaluation, model))}: song balanced accuracy on "
                     f"{key}, {v['n']} songs, 95 % interval {html.escape(format_interval(iv))}</div></div>")
    claims = [(model, c) for model, c in evaluation.comparisons.get(key, {}).items() if c["verdict"] != "cannot tell apart"]
    if claims:
        note = "<div class='ok'>" + "; ".join(
            f"{html.escape(_title(evaluation, model))} is {'better' if c['verdict'] == 'A better' else 'worse'} than "
            f"the CNN on the {key} set (difference {c['value']:+.3f}, 95 % interval "
            f"[{c['low']:+.3f}, {c['high']:+.3f}])" for model, c in claims) + "</div>"
    else:
        note = (f"<div class='warn'>On the {key} set the data cannot tell the models apart: every paired interval "
                f"of a model's difference to the CNN includes zero.</div>")
    return f"<div class='cards'>{''.join(cards)}</div>{note}"


def write_report(run_dir: str | os.PathLike, evaluation: Evaluation, *, data_summary: list[dict],
                 config: dict, run=None, title: str = "progrock run report") -> Path:
    """Write ``run_dir/report.html`` and the confusion PNGs beside it.

    Parameters
    ----------
    run_dir : path-like
        The run folder (``curves.png`` there is embedded when present).
    evaluation : Evaluation
    data_summary : list of dict
        Rows ``{set, label, songs, hours}`` (:func:`progrock.data.manifest.summary`).
    config : dict
        The run's full configuration, shown at the end.
    """
    run_dir = Path(run_dir)
    pngs = write_confusion_pngs(evaluation, run_dir)
    summary_rows = "".join(
        f"<tr><td class='l'>{html.escape(r['set'])}</td><td class='l'>{html.escape(r['label'])}</td>"
        f"<td>{r['songs']}</td><td>{r['hours']:.2f}</td></tr>" for r in data_summary)
    conf_html = []
    for set_name in evaluation.metrics:
        figs = "".join(_img(p, f"{_title(evaluation, m)} — {s}") for (s, m), p in pngs.items() if s == set_name)
        texts = "".join(f"<pre>{html.escape(_title(evaluation, m))}\n{format_confusion(v['confusion'])}</pre>"
                        for m, v in evaluation.metrics[set_name].items() if "confusion" in v)
        conf_html.append(f"<details {'open' if set_name == 'test' else ''}><summary>{html.escape(set_name)}</summary>"
                         f"<div class='figs'>{figs}</div><details><summary>as text</summary>{texts}</details></details>")
    songs_html = "".join(
        f"<details {'open' if name == 'test' else ''}><summary>{html.escape(name)} "
        f"({len(models.get(evaluation.default_model, []))} songs, {html.escape(_title(evaluation, evaluation.default_model))})"
        f"</summary>{_songs_table(models.get(evaluation.default_model, []))}</details>"
        for name, models in evaluation.songs.items())
    skipped = "".join(f"<li>{html.escape(p)}: {html.escape(r)}</li>" for p, r in evaluation.skipped)
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{html.escape(title)}</title>
<style>{CSS}</style></head><body>
<header><h1>{html.escape(title)}</h1><p>{html.escape(str(run_dir))} · progrock {__version__} · {when} ·
default model {html.escape(evaluation.default_model)}</p></header><main>
<section><h2>At a glance</h2>{_headline(evaluation)}</section>
<section><h2>Metrics (song level unless noted)</h2>{_metrics_table(evaluation)}
<p class="muted">Balanced accuracy is the mean of the recall of each class; informedness = sensitivity +
specificity − 1. Thresholds are chosen on validation, so validation figures are optimistic: judge on test.
Click a column to sort.</p></section>
<section><h2>Training</h2><div class="figs">{_img(run_dir / 'curves.png', 'loss and accuracy per epoch')}</div>
<p class="muted">Live curves and layer histograms: <code>tensorboard --logdir {html.escape(str(run_dir / 'tensorboard'))}</code></p></section>
<section><h2>Confusion matrices</h2>{''.join(conf_html)}</section>
<section><h2>Songs</h2><p class="muted">The barcode shows each snippet's probability of prog along the song
(pale = nonprog, dark = prog); hover for the time.</p>{songs_html}</section>
<section><h2>Data</h2><table><thead><tr><th class='l'>set</th><th class='l'>label</th><th>songs</th><th>hours</th></tr></thead>
<tbody>{summary_rows}</tbody></table>{'<h3>Skipped</h3><ul>' + skipped + '</ul>' if skipped else ''}</section>
<section><h2>Configuration</h2><pre>{html.escape(json.dumps(config, indent=2, default=str))}</pre></section>
</main><script>{SORT_JS}</script></body></html>"""
    path = run_dir / "report.html"
    atomic_write_text(path, page)
    return path
