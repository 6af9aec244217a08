"""What the commands print: tables with intervals, one line per song, warnings about the run."""

from __future__ import annotations

from rich.table import Table

from progrock.cli import out


def print_evaluation(evaluation, sets: list[str] | None = None) -> None:
    """Per set and model: songs, balanced accuracy, MCC and ROC-AUC with 95 % intervals; comparisons."""
    from progrock.evaluation.intervals import format_interval

    table = Table(title="song-level metrics, 95 % bootstrap intervals over the songs "
                        "(cnn_snippet: single snippets, no interval)")
    for col in ("set", "model", "songs", "balanced accuracy", "MCC", "ROC-AUC", "vs cnn"):
        table.add_column(col, justify="left" if col in ("set", "model", "vs cnn") else "right")
    for set_name, models in evaluation.metrics.items():
        if sets and set_name not in sets:
            continue
        comparisons = evaluation.comparisons.get(set_name, {})
        for model, m in models.items():
            iv = m.get("intervals", {})
            cells = [format_interval(iv[k]) if k in iv else (f"{m[k]:.3f}" if m.get(k) is not None else "–")
                     for k in ("balanced_accuracy", "mcc", "roc_auc")]
            c = comparisons.get(model)
            vs = "" if c is None else ("better" if c["verdict"] == "A better" else "worse"
                                       if c["verdict"] == "B better" else "cannot tell")
            style = "bold" if model == evaluation.default_model else None
            table.add_row(set_name, model, f"{m['n']} ({m['n_prog']} prog)", *cells, vs, style=style)
    out.print(table)
    out.print(f"bold: the default model ({evaluation.default_model}); 'vs cnn' says better or worse only where "
              f"the paired interval of the difference excludes zero")
    for set_name, models in evaluation.metrics.items():
        shifted = [m for m, v in models.items() if (v.get("shift") or {}).get("shifted")]
        if shifted and (not sets or set_name in sets):
            out.print(f"[yellow]{set_name}: the probabilities of {', '.join(shifted)} have shifted against the "
                      f"validation songs: their thresholds may not fit this music (see ROC-AUC and the "
                      f"best-threshold balanced accuracy in the report)[/yellow]")
    for note in getattr(evaluation, "notes", []):
        out.print(f"[yellow]note: {note}[/yellow]")


def print_result(path: str, result) -> None:
    """One song's line: verdict, probability, votes, snippets, barcode, path and warnings."""
    from progrock.report.barcode import barcode_text

    colour = "magenta" if result.is_prog else "cyan"
    votes = "" if result.vote_fraction is None else f"votes={result.vote_fraction:.2f}  "
    line = (f"[{colour}]{result.verdict:>7}[/{colour}]  p={result.probability:.2f}  {votes}"
            f"n={result.n_snippets:<3} [{colour}]{barcode_text(result.snippet_probs, width=30)}[/{colour}]  {path}")
    if result.unfamiliar:
        line += "  [yellow](unlike the training music)[/yellow]"
    out.print(line)
    if result.tags:
        top = sorted(result.tags.items(), key=lambda kv: -kv[1])[:5]
        out.print("         hears: " + ", ".join(f"{t} {p:.2f}" for t, p in top))
