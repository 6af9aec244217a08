"""Where the per-song work runs: local worker processes or a Dask cluster, behind one interface.

An engine maps one module-level function over many picklable items and yields
``(index, result)`` as each item ends. The callers (:func:`progrock.features.files.features_from_files`,
:func:`progrock.predict.classify_files`) hand every engine the same function, so
a song gives the same result wherever it runs.

* ``local`` — worker processes on this machine, one item at a time each, at
  most one per core (``jobs <= 1``: in this process). A worker that dies costs
  only the item it held, which ends as ``worker died while processing (signal
  9, SIGKILL): ...``; a new worker takes the rest.
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

Only a bounded number of items is in flight at a time (one per local worker;
``window`` tasks on Dask), so a library of millions of files neither floods the
scheduler nor holds every result.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import traceback
import uuid
from typing import Any, Callable, Iterator, Sequence

from progrock.errors import ProgrockError

Progress = Callable[[int], Any]
OnError = Callable[[Any, str], Any]

log = logging.getLogger(__name__)


class WorkerDied(ProgrockError):
    """The process running one item died (killed by a signal, or it exited) before giving a result.

    Attributes
    ----------
    reason : str
        ``worker died while processing (signal 9, SIGKILL): ...`` or ``(exit code N)``.
    exitcode : int
        The process's exit code; ``-N`` for signal ``N``.
    """

    def __init__(self, exitcode: int | None):
        self.exitcode = exitcode
        self.reason = _death_reason(exitcode)
        super().__init__(self.reason)


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = f", {signal.Signals(-exitcode).name}"
        except ValueError:
            name = ""
        cause = {signal.SIGKILL: "the system may have run out of memory",
                 signal.SIGSEGV: "a crash in native code, such as a decoder"}.get(-exitcode, "")
        return f"worker died while processing (signal {-exitcode}{name}){': ' + cause if cause else ''}"
    return f"worker died while processing (exit code {exitcode})"


def failure_reason(exc: BaseException) -> str:
    """One line naming an exception that escaped a job (or killed its worker)."""
    name = type(exc).__name__
    if isinstance(exc, WorkerDied):
        return exc.reason
    if name == "KilledWorker":
        return "its worker process died on every attempt (the file may crash the decoder)"
    return f"unexpected {name}: {exc}"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; all cores where that is unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


_CLAMPED: set[tuple[int, int]] = set()


def local_workers(jobs: int) -> int:
    """``jobs`` worker processes, at least 1 and at most :func:`usable_cores`.

    More processes than cores only add memory (each holds its own decoder and
    model) and slow every song down. Capping says so once per process on the
    ``progrock.parallel.engines`` logger (on stderr when logging is not configured).
    """
    jobs, cores = max(1, int(jobs)), usable_cores()
    if jobs > cores:
        if (jobs, cores) not in _CLAMPED:
            _CLAMPED.add((jobs, cores))
            log.warning("%d worker processes asked for, but this process may run on %d core%s: using %d",
                        jobs, cores, "s" if cores > 1 else "", cores)
        return cores
    return jobs


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
    """``jobs`` worker processes on this machine, started by a fork server.

    Each worker runs one item at a time and the engine knows which, so a worker
    that dies (killed by the out-of-memory killer, a decoder that crashes)
    costs only the item it held: that item ends as :class:`WorkerDied`
    (``on_error(item, "worker died while processing (signal 9, SIGKILL): ...")``),
    a new worker takes its place, the other workers go on, nothing already
    computed is lost. The item is not retried: a file that crashes a decoder
    would crash the next worker too.

    Workers are daemonic processes: a job cannot start processes of its own.
    They are forked from a server process started once (``forkserver``), not
    from this process: forking a process that runs other threads (PyTorch's
    and FFmpeg's, a web server's, a progress display's) copies locks those
    threads hold, and a worker that needs one waits forever. The server has
    the job modules imported already; each worker takes this process's
    environment variables and working folder when it starts. What a worker
    sees of this process is only its job function (by name) and its items,
    and, as with any ``forkserver`` or ``spawn`` start, the caller's main
    script is imported in each worker: a script that runs progrock's
    engines keeps its work under ``if __name__ == "__main__":``.

    Parameters
    ----------
    jobs : int
        Worker processes, capped at the cores this process may run on
        (:func:`local_workers`); ``<= 1`` runs every item in this process, where
        nothing protects the run from an item that kills its process.
    """

    name = "local"

    def __init__(self, jobs: int = 1):
        self.jobs = local_workers(jobs)

    def describe(self) -> str:
        return f"local, {self.jobs} process{'es' if self.jobs > 1 else ''}"

    def map_unordered(self, fn, items, *, progress=None, on_error=None):
        items = list(items)
        if self.jobs <= 1 or not items:
            for i, item in enumerate(items):
                yield i, _done(lambda: fn(item), item, on_error, progress)
            return
        for i, result in _run_pool(fn, items, min(self.jobs, len(items))):
            yield i, _done(result, items[i], on_error, progress)


# -- the local pool ------------------------------------------------------------------------------
#
# concurrent.futures' pool cannot say which item killed a worker (it fails every
# pending item), so the engine runs its own: one pipe per worker, one item at a
# time per worker, the worker's process sentinel watched beside its pipe.

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["progrock.features.files", "progrock.data.manifest", "progrock.predict",
                                 "progrock.cv", "progrock.corpus.generate", "progrock.parallel.warm"])
"""Workers come from a fork server with the job modules imported and the per-song work run once
(:mod:`progrock.parallel.warm`): a worker starts warm."""


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (its ``__cause__`` in the caller)."""

    def __str__(self) -> str:
        return self.args[0]


def _serve(fn: Callable, conn, environ: dict[str, str], cwd: str) -> None:
    """A worker's loop: receive ``(item,)``, send ``(True, fn(item))`` or ``(False, exception)``; ``()`` ends it.

    First the worker takes the parent's environment and working folder as they
    are now (the fork server has them as they were when it started).
    """
    os.environ.clear()
    os.environ.update(environ)
    try:
        os.chdir(cwd)
    except OSError:  # the folder is gone: only relative paths are affected, and they fail by name
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if not message:
            return
        try:
            out: tuple = (True, fn(message[0]))
        except Exception as exc:  # noqa: BLE001 - handed to the parent
            out = (False, _sendable(exc))
        try:
            conn.send(out)
        except OSError:  # the parent is gone
            return
        except Exception as exc:  # noqa: BLE001 - a result that cannot be pickled
            conn.send((False, RuntimeError(f"the job's result cannot be sent back ({type(exc).__name__}: {exc})")))


def _sendable(exc: Exception) -> Exception:
    """``exc`` with its traceback as text, or a RuntimeError naming it if it does not survive pickling."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - e.g. an exception class whose arguments are not its args
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    exc.__cause__ = _RemoteTraceback("".join(traceback.format_exception(exc)))
    return exc


class _Worker:
    """A worker process, the parent's end of its pipe and the index of the item it holds."""

    def __init__(self, fn: Callable):
        self.conn, child = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(target=_serve, args=(fn, child, dict(os.environ), os.getcwd()),
                                        daemon=True, name="progrock-worker")
        self.process.start()
        child.close()
        self.index: int | None = None

    def give(self, index: int, item: Any) -> bool:
        """Send an item, which the worker now holds; False if the worker is already gone."""
        self.index = index
        try:
            self.conn.send((item,))
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def stop(self, *, kill: bool) -> None:
        """End the process: asked to stop when idle, killed when it holds an item nobody awaits."""
        if self.process.is_alive() and not kill:
            try:
                self.conn.send(())
            except OSError:
                kill = True
        if kill and self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _value(ok: bool, value: Any) -> Callable[[], Any]:
    """A result callable for :func:`_done`: gives ``value``, or raises it if not ``ok``."""
    def result() -> Any:
        if ok:
            return value
        raise value
    return result


def _run_pool(fn: Callable, items: list, n_workers: int) -> Iterator[tuple[int, Callable[[], Any]]]:
    """``(index, result)`` per item as it ends, where ``result()`` gives ``fn(items[index])`` or raises.

    A worker that dies makes its item's ``result()`` raise :class:`WorkerDied`
    and is replaced while items remain.
    """
    todo = iter(range(len(items)))
    workers: list[_Worker] = []

    def retire(w: _Worker) -> None:
        w.process.join()
        w.conn.close()
        workers.remove(w)

    def feed(w: _Worker | None) -> None:
        """Give ``w`` the next item, if any is left; a new worker takes it if ``w`` is gone."""
        if w is not None:
            w.index = None
        i = next(todo, None)
        if i is None:
            return
        if w is None or not w.give(i, items[i]):
            if w is not None:  # it died while idle
                retire(w)
            w = _Worker(fn)
            workers.append(w)
            w.give(i, items[i])  # should this one die too, its death is reported for item i

    try:
        for _ in range(n_workers):
            feed(None)
        while busy := [w for w in workers if w.index is not None]:
            ready = set(multiprocessing.connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for w in busy:
                ended = w.process.sentinel in ready
                if w.conn not in ready and not ended:
                    continue
                i = w.index
                try:
                    ok, value = w.conn.recv()
                except (EOFError, OSError):  # the process ended without a result
                    w.process.join()
                    ok, value, ended = False, WorkerDied(w.process.exitcode), True
                except Exception as exc:  # noqa: BLE001 - a result that cannot be unpickled here
                    ok, value = False, RuntimeError(f"the job's result cannot be read ({type(exc).__name__}: {exc})")
                if ended:  # (it may also have ended right after sending its result)
                    retire(w)
                    w = None
                yield i, _value(ok, value)
                feed(w)
    finally:
        for w in workers:
            w.stop(kill=w.index is not None)


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
                self.cluster = LocalCluster(n_workers=local_workers(jobs), threads_per_worker=1,
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
