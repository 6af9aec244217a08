"""Where the per-song work runs: local worker processes or a Dask cluster, behind one interface.

An engine maps one module-level function over many picklable items and yields
``(index, result)`` as each item ends. The callers (:func:`progrock.features.store.extract_many`,
:func:`progrock.predict.classify_files`) hand every engine the same function, so
a song gives the same result wherever it runs.

* ``local`` — a :class:`~concurrent.futures.ProcessPoolExecutor` on this machine
  (``jobs <= 1``: in this process).
* ``dask`` — a ``distributed`` cluster: ``Client(scheduler)`` for a running one,
  or a :class:`distributed.LocalCluster` of ``jobs`` single-threaded worker
  processes when no address is given. The scheduler re-runs the tasks of a
  worker that dies; a task that kills ``distributed.scheduler.allowed-failures``
  workers in a row (a file that crashes the decoder) ends as a failure of that
  item, not of the run.

Per-file problems (a broken file, a song too short) are the job function's
*return value*, never an exception, so no engine retries them. A task that does
raise is passed to ``on_error(item, reason)``, which turns it into a result, or,
without ``on_error``, raised in the caller.

Only a bounded window of items is in flight at a time (``window``), so a library
of millions of files neither floods the scheduler nor holds every result.
"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterator, Sequence

from progrock.errors import ProgrockError

Progress = Callable[[int], Any]
OnError = Callable[[Any, str], Any]


def failure_reason(exc: BaseException) -> str:
    """One line naming an exception that escaped a job (or killed its worker)."""
    name = type(exc).__name__
    if name == "KilledWorker":
        return "its worker process died on every attempt (the file may crash the decoder)"
    if name == "BrokenProcessPool":
        return "a worker process died (the file may crash the decoder)"
    return f"unexpected {name}: {exc}"


class Engine:
    """The interface: :meth:`map_unordered`, :meth:`map_ordered`, :meth:`close`; a context manager."""

    name = "engine"

    def map_unordered(self, fn: Callable, items: Sequence, *, progress: Progress | None = None,
                      on_error: OnError | None = None) -> Iterator[tuple[int, Any]]:
        """``(index, fn(items[index]))`` in the order the items finish; ``progress(1)`` after each."""
        raise NotImplementedError

    def map_ordered(self, fn: Callable, items: Sequence, *, progress: Progress | None = None,
                    on_error: OnError | None = None) -> Iterator[Any]:
        """``fn(item)`` for each item, in the order of ``items`` (results wait for their turn)."""
        waiting: dict[int, Any] = {}
        nxt = 0
        for i, out in self.map_unordered(fn, items, progress=progress, on_error=on_error):
            waiting[i] = out
            while nxt in waiting:
                yield waiting.pop(nxt)
                nxt += 1

    def describe(self) -> str:
        """A short line for people: where the work runs."""
        return self.name

    def close(self) -> None:
        """Release the workers (and a cluster this engine started)."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _done(result: Callable[[], Any], item: Any, on_error: OnError | None, progress: Progress | None) -> Any:
    """``result()``; an exception it raises goes to ``on_error(item, reason)`` (else is raised); then progress."""
    try:
        out = result()
    except Exception as exc:  # noqa: BLE001 - handed to on_error, else raised
        if on_error is None:
            raise
        out = on_error(item, failure_reason(exc))
    if progress:
        progress(1)
    return out


class LocalEngine(Engine):
    """``jobs`` worker processes on this machine (forked: imports made here are inherited).

    Parameters
    ----------
    jobs : int
        Worker processes; ``<= 1`` runs every item in this process.
    window : int, optional
        Items in flight at a time (default ``4 * jobs``).
    """

    name = "local"

    def __init__(self, jobs: int = 1, *, window: int | None = None):
        self.jobs = max(1, int(jobs))
        self.window = window or 4 * self.jobs

    def describe(self) -> str:
        return f"local, {self.jobs} process{'es' if self.jobs > 1 else ''}"

    def map_unordered(self, fn, items, *, progress=None, on_error=None):
        items = list(items)
        if self.jobs <= 1 or len(items) <= 1:
            for i, item in enumerate(items):
                yield i, _done(lambda: fn(item), item, on_error, progress)
            return
        pool = ProcessPoolExecutor(max_workers=min(self.jobs, len(items)))
        try:
            todo = iter(range(len(items)))
            pending: dict = {}

            def fill() -> None:
                while len(pending) < self.window:
                    i = next(todo, None)
                    if i is None:
                        return
                    pending[pool.submit(fn, items[i])] = i

            fill()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = pending.pop(fut)
                    yield i, _done(fut.result, items[i], on_error, progress)
                fill()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class DaskEngine(Engine):
    """Tasks on a Dask ``distributed`` cluster.

    Parameters
    ----------
    scheduler : str, optional
        A running scheduler's address (``tcp://host:8786``). Without one, a
        ``LocalCluster`` of ``jobs`` single-threaded worker processes is started
        here and shut down by :meth:`close`.
    jobs : int
        Workers of the ``LocalCluster`` (ignored with ``scheduler``).
    retries : int
        Re-runs of a task that *raised* (a passing fault such as a shared disk
        that hiccuped). Tasks of a worker that died are re-run by the scheduler
        regardless. Per-file errors are results, never retried.
    window : int, optional
        Tasks in flight at a time (default: ``max(256, 4 × worker threads)``).
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, *, jobs: int = 1, retries: int = 2,
                 window: int | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - the test extra installs it
            raise ProgrockError("--engine dask needs the 'distributed' package: "
                                "pip install 'progrock[dask]'") from exc
        self.retries = retries
        self.cluster = None
        try:
            if scheduler:
                self.client = Client(scheduler, timeout="30s")
            else:
                self.cluster = LocalCluster(n_workers=max(1, int(jobs)), threads_per_worker=1,
                                            processes=True, host="127.0.0.1", dashboard_address=_dashboard())
                self.client = Client(self.cluster)
        except OSError as exc:
            raise ProgrockError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        self._check_workers()
        from progrock.parallel.dask_plugin import ArrayFriendlyMalloc

        self.client.register_plugin(ArrayFriendlyMalloc())  # undo Dask's malloc setting (see there)
        threads = sum(self.client.nthreads().values())
        self.window = window or max(256, 4 * threads)

    def _check_workers(self) -> None:
        """Workers that cannot import this progrock would fail every task: say so once, up front."""
        from progrock import __version__

        found = self.client.run(_progrock_version, on_error="return")
        bad = {w: v for w, v in found.items() if v != __version__}
        if bad:
            w, v = next(iter(bad.items()))
            raise ProgrockError(f"Dask worker {w} has progrock {v!r}, this client {__version__!r}: "
                                "install the same progrock on every worker")

    def describe(self) -> str:
        info = self.client.scheduler_info()
        workers = info.get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        where = "a local cluster" if self.cluster is not None else self.client.scheduler.address
        link = f", dashboard {self.client.dashboard_link}" if _dashboard() else ""
        return f"dask, {len(workers)} workers / {threads} threads on {where}{link}"

    def map_unordered(self, fn, items, *, progress=None, on_error=None):
        from distributed import as_completed

        items = list(items)
        run = uuid.uuid4().hex[:8]
        key_of: dict[str, int] = {}
        todo = iter(range(len(items)))
        flow = as_completed()

        def submit() -> bool:
            i = next(todo, None)
            if i is None:
                return False
            fut = self.client.submit(fn, items[i], key=f"{fn.__name__}-{run}-{i}", pure=False,
                                     retries=self.retries)
            key_of[fut.key] = i
            flow.add(fut)
            return True

        for _ in range(self.window):
            if not submit():
                break
        try:
            for fut in flow:
                i = key_of.pop(fut.key)
                out = _done(fut.result, items[i], on_error, progress)  # KilledWorker, or a job that raised
                fut.release()
                submit()
                yield i, out
        finally:
            if key_of:  # the caller stopped early: drop what is still queued
                flow.clear()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _progrock_version() -> str:
    from progrock import __version__

    return __version__


def _dashboard() -> str | None:
    """Dask's dashboard needs bokeh: serve it (on a free port) only where bokeh is installed."""
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return None
    return ":0"


ENGINES: dict[str, type[Engine]] = {"local": LocalEngine, "dask": DaskEngine}
"""Engines by name: the CLI's ``--engine`` choices."""


def make_engine(name: str = "local", *, jobs: int = 1, scheduler: str | None = None) -> Engine:
    """The engine called ``name``; ``scheduler`` only with ``"dask"``."""
    if name not in ENGINES:
        raise ProgrockError(f"unknown engine {name!r}; choose one of {', '.join(sorted(ENGINES))}")
    if name == "dask":
        return DaskEngine(scheduler, jobs=jobs)
    if scheduler:
        raise ProgrockError("--scheduler is an address of a Dask cluster: use it with --engine dask")
    return ENGINES[name](jobs)


def workers_share(path: str | os.PathLike) -> str:
    """``path`` as every worker must see it: absolute (on storage mounted at the same place)."""
    return os.path.abspath(os.fspath(path))


def file_outcome(work: Callable[[], Any]) -> tuple[Any, str]:
    """``(work(), "")``, or ``(None, reason)`` when it fails: what a per-file job returns.

    A file's own problem (:class:`~progrock.errors.ProgrockError`: not audio,
    too short...) gives its reason; anything else is an unexpected failure,
    named. Either way the batch goes on, and no engine retries the file.
    """
    try:
        return work(), ""
    except ProgrockError as exc:
        return None, getattr(exc, "reason", str(exc))
    except Exception as exc:  # noqa: BLE001 - one file must not stop a batch
        return None, f"unexpected {type(exc).__name__}: {exc}"
