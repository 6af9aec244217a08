"""A table of song verdicts written row by row: follow a long run, resume it.

``predict --out verdicts.csv`` appends one row per song as it finishes and
flushes it, so ``tail -f`` shows progress and a killed run loses at most the
row being written. Reopening the same table skips the songs already in it; a
last row cut off mid-write is dropped (and its song classified again).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from progrock.errors import ProgrockError
from progrock.paths import file_of, printable

COLUMNS = ("path", "verdict", "probability", "vote_fraction", "n_snippets", "duration", "model",
           "snippet_probs")
"""The columns of ``predict --csv`` and ``--out``: the keys of a
:class:`~progrock.evaluation.verdict.SongResult` (``snippet_probs`` space-separated)."""


def row_of(path: str, result) -> list:
    """A :class:`~progrock.evaluation.verdict.SongResult` as a table row (the path printable:
    :func:`progrock.paths.printable`)."""
    votes = "" if result.vote_fraction is None else result.vote_fraction      # song-level models: no vote
    return [printable(path), result.verdict, result.probability, votes, result.n_snippets, result.duration,
            result.model, " ".join(f"{p:.3f}" for p in result.snippet_probs)]


def write_header(fh) -> csv.writer:
    """A CSV writer on ``fh`` with the header written."""
    writer = csv.writer(fh)
    writer.writerow(COLUMNS)
    return writer


def song_key(path: str | os.PathLike) -> str:
    """What identifies a song across runs: its absolute path, printable (as the table holds it)."""
    return printable(os.path.abspath(file_of(os.fspath(path))))


class VerdictTable:
    """A CSV of verdicts opened for appending.

    Parameters
    ----------
    path : path-like
        Created with a header if missing; if it exists it must have this
        table's header, and its songs are :attr:`done`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.done: set[str] = set()
        if self.path.suffix.lower() == ".parquet":
            raise ProgrockError(f"{self.path}: only CSV tables are written (.csv)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if not fresh:
            self._drop_partial_row()
            with self.path.open(newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header is None:
                    fresh = True
                elif tuple(header) != COLUMNS:
                    raise ProgrockError(f"{self.path}: not a verdict table (header {header}); "
                                        "choose another --out")
                else:
                    self.done = {song_key(row[0]) for row in reader if row}
        self._fh = self.path.open("a", newline="", encoding="utf-8")
        self._writer = write_header(self._fh) if fresh else csv.writer(self._fh)
        self._fh.flush()

    def _drop_partial_row(self) -> None:
        """Cut a last line that has no newline: a row interrupted mid-write."""
        with self.path.open("rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)

    def __contains__(self, path: str | os.PathLike) -> bool:
        return song_key(path) in self.done

    def add(self, path: str, result) -> None:
        """Append and flush one song's row."""
        self._writer.writerow(row_of(path, result))
        self._fh.flush()
        self.done.add(song_key(path))

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "VerdictTable":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
