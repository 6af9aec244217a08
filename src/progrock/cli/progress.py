"""Progress on stderr: bars on a terminal, plain lines otherwise (``make demo > log`` shows where it is).

One :class:`Meter` per stage (decoding, features, training...). On a
terminal it is a rich progress bar; otherwise it prints a line when a tenth
of the work is done or :data:`EVERY_SECONDS` have passed, with the elapsed
time and an estimate of what is left::

    features: 48/160 (30 %), 0:41 elapsed, about 1:35 left
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

EVERY_SECONDS = 30.0
"""Longest silence between two plain progress lines."""


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Lines:
    """Plain progress lines for one stage (stderr is not a terminal)."""

    def __init__(self, console: Console, name: str, total: int | None = None):
        self.console, self.name, self.total = console, name, total
        self.done, self.info = 0, ""
        self.start = self.last = time.monotonic()
        self.last_tenth = 0

    def update(self, done: int | None = None, *, advance: int = 0, total: int | None = None, info: str = "") -> None:
        if total is not None:
            self.total = total
        self.done = self.done + advance if done is None else done
        self.info = info or self.info
        now = time.monotonic()
        tenth = int(10 * self.done / self.total) if self.total else 0
        finished = self.total is not None and self.done >= self.total
        if finished or tenth > self.last_tenth or now - self.last >= EVERY_SECONDS:
            self.last, self.last_tenth = now, tenth
            self.console.print(self.line(now), highlight=False, soft_wrap=True)

    def line(self, now: float) -> str:
        elapsed = now - self.start
        text = f"{self.name}: {self.done}"
        if self.total:
            text += f"/{self.total} ({100 * self.done / self.total:.0f} %)"
        text += f", {_clock(elapsed)} elapsed"
        if self.total and 0 < self.done < self.total:
            text += f", about {_clock(elapsed * (self.total - self.done) / self.done)} left"
        return text + (f"  {self.info}" if self.info else "")


class Meters:
    """Progress of several stages on one console: bars on a terminal, :class:`Lines` otherwise."""

    def __init__(self, console: Console):
        self.console = console
        self.bars = console.is_terminal or os.environ.get("PROGROCK_PROGRESS") == "1"
        self._progress = (Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                   TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console)
                          if self.bars else None)
        self._stages: dict[str, object] = {}

    def __enter__(self) -> "Meters":
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, name: str, done: int | None = None, *, advance: int = 0, total: int | None = None,
               info: str = "") -> None:
        """Move stage ``name`` to ``done`` (or by ``advance``); ``total`` when known."""
        if self._progress is None:
            stage = self._stages.setdefault(name, Lines(self.console, name, total))
            stage.update(done, advance=advance, total=total, info=info)
            return
        if name not in self._stages:
            self._stages[name] = self._progress.add_task(name, total=total, info="")
        task = self._stages[name]
        kw = {"info": info} if info else {}
        if total is not None:
            kw["total"] = total
        if done is not None:
            kw["completed"] = done
        if advance:
            kw["advance"] = advance
        self._progress.update(task, **kw)

    def counter(self, name: str, total: int | None = None) -> Callable:
        """``advance(n=1)`` for stage ``name``, with ``advance.set_total(n)``."""
        if total is not None:
            self.update(name, 0, total=total)

        def advance(n: int = 1, *_args, **_kw) -> None:
            self.update(name, advance=n if isinstance(n, int) else 1)

        advance.set_total = lambda t: self.update(name, total=t)
        return advance


@contextmanager
def meter(console: Console, name: str, total: int | None = None):
    """One stage's ``advance`` (see :meth:`Meters.counter`)."""
    with Meters(console) as m:
        yield m.counter(name, total)
