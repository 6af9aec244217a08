"""The web app: a page and an HTTP API that classify a person's own songs.

Endpoints
---------
``GET /``
    The page (static HTML/CSS/JS from this package; nothing from the internet).
``POST /api/classify``
    One song as the ``multipart/form-data`` field ``file`` -> :class:`~progrock.serve.schemas.Prediction`.
``GET /api/model``
    What the model is -> :class:`~progrock.serve.schemas.ModelInfo`.
``GET /report``
    The run's ``report.html`` (404 if the run has none).
``GET /static/...``
    The page's assets, from this package's ``static`` folder only.

Status codes of ``POST /api/classify``: 200 a verdict; 400 a malformed
multipart body; 413 the file (or the body) is larger than ``max_upload_bytes``,
checked from Content-Length before reading and on every chunk while streaming;
415 the request is not ``multipart/form-data``; 422 the upload is not a usable
song (no ``file`` field, empty, not decodable audio, shorter than the model's
minimum, longer than ``max_duration``); 500 an unexpected failure. Every error
is JSON ``{"error": reason}``.

Every endpoint answers 400 to a request whose ``Host`` is not one of
``allowed_hosts``: a web page elsewhere can point a name it controls at
127.0.0.1 (DNS rebinding) and have the visitor's browser read this server's
answers, song names included; the browser then sends that name as ``Host``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path

import re
from typing import Iterable

import soundfile as sf
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

import progrock
from progrock.errors import DecodeError, FileError, ProgrockError
from progrock.evaluation.verdict import describe_rule
from progrock.model.run import Run
from progrock.predict import classify_file, open_run
from progrock.serve.schemas import ErrorResponse, ModelInfo, Prediction
from progrock.serve.upload import (
    FIELD, MULTIPART_OVERHEAD, UploadError, UploadReceiver, display_name, format_bytes, multipart_boundary,
)

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024
"""Largest accepted upload by default: 200 MiB."""

DEFAULT_MAX_DURATION = 2 * 3600.0
"""Longest accepted song by default, in seconds of decoded audio (2 hours)."""

DEFAULT_MAX_CONCURRENT = max(1, min(4, os.cpu_count() or 1))
"""Songs decoded and classified at the same time (one per core, at most 4); others wait their turn.

Inference is thread-safe (evaluation mode, no gradients, no shared mutable
state): songs classified in parallel threads give exactly the serial
probabilities. The cap is for memory and CPU, not for correctness.
"""

PAGE_HEADERS = {
    # The page loads nothing from anywhere but this server.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

DESCRIPTION = """\
**progrock** tells progressive rock from other music **from the audio alone**:
tags and file names are never read.

Send a song to `POST /api/classify` as the multipart field `file` (any format
libsndfile or FFmpeg decodes: MP3, FLAC, Ogg, Opus, WAV, AIFF, M4A, ...). The
server decodes it, cuts it into 10-second snippets, lets the model give each
snippet a probability of prog and turns the snippets' votes into a verdict.
The answer carries the evidence: one probability per snippet, the *barcode*.

Errors are JSON `{"error": "reason"}`: 400 malformed multipart body (or a
`Host` this server does not answer to), 408 a request that stalled, 413 file
larger than the server's cap, 415 not `multipart/form-data`, 422 not a usable
song (missing, empty, not audio, too short or too long), 503 too many open
connections.

`GET /api/model` describes the model; `GET /report` is the run's evaluation
report; `GET /` is a page to drop songs on.
"""

_ERRORS = {
    400: {"model": ErrorResponse, "description": "Malformed multipart/form-data body."},
    413: {"model": ErrorResponse, "description": "The file is larger than the server's cap "
                                                 "(see `max_upload_bytes` in GET /api/model)."},
    415: {"model": ErrorResponse, "description": "The request is not multipart/form-data."},
    422: {"model": ErrorResponse, "description": "Not a usable song: no `file` field, an empty file, "
                                                 "bytes no decoder reads as audio, a song too short or "
                                                 "longer than the server's cap (see `max_duration_seconds` "
                                                 "in GET /api/model)."},
    500: {"model": ErrorResponse, "description": "Unexpected failure while classifying."},
}

_CLASSIFY_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": [FIELD],
            "properties": {FIELD: {
                "type": "string", "format": "binary",
                "description": "The song. Its type is found by decoding it, not from its name or "
                               "Content-Type; the name is only echoed back as `path`."}},
        }}},
    }
}


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


_HOST = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[^\s:@/\\\[\]]+)(?::[0-9]{0,5})?")


def host_name(host_header: str | None) -> str | None:
    """The name in a ``Host`` header, lower case, without port or IPv6 brackets; None if malformed.

    ``"LocalHost:8000"`` gives ``"localhost"``, ``"[::1]:8000"`` gives ``"::1"``;
    ``"a@b"``, ``"a/b"``, ``"a:b"`` and an empty header give None.
    """
    match = _HOST.fullmatch(host_header or "")
    return match["name"].strip("[]").lower() if match else None


class HostCheck:
    """ASGI middleware answering 400 ``{"error": reason}`` to requests for a host not in ``allowed``.

    Parameters
    ----------
    app : ASGI app
    allowed : iterable of str
        Host names and addresses (IPv6 without brackets); any port is accepted.
        ``"*"`` accepts every host.
    """

    def __init__(self, app, allowed: Iterable[str]):
        self.app = app
        self.allowed = {name.strip("[]").lower() for name in allowed}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket") and "*" not in self.allowed:
            header = Headers(scope=scope).get("host")
            if host_name(header) not in self.allowed:
                shown = "no Host header" if header is None else f"the host {header[:100]!r}"
                await _error(400, f"{shown} is not served here: this server answers requests for "
                                  f"{', '.join(sorted(f'[{n}]' if ':' in n else n for n in self.allowed))} "
                                  f"(add a name with "
                                  f"progrock serve --allowed-host)")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _declared_seconds(path: Path) -> float | None:
    """The length a file's header declares, if libsndfile reads the format (WAV, AIFF, FLAC, Ogg...)."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, ValueError, OSError):  # a format libsndfile does not know: decoding decides
        return None
    return info.frames / info.samplerate if info.samplerate > 0 else None


def classify_bounded(run: Run, path: Path, *, name: str, max_duration: float, model: str | None = None,
                     tags: bool = False):
    """:func:`progrock.predict.classify_file`, refusing a song longer than ``max_duration`` seconds.

    A length declared in the file's header is checked before decoding (a tiny
    WAV declaring 1 Hz claims hours), and the decoder stops as soon as the
    decoded samples pass the limit, so a small file that decodes to hours (a
    FLAC of silence, an MP3 at 8 kbit/s) is refused before its features are computed.

    Raises
    ------
    FileError
        Not audio, too short, or longer than ``max_duration`` (the reason says which).
    """
    cap = f"{max_duration / 60:g} minutes" if max_duration % 60 == 0 else f"{max_duration:g} s"
    declared = _declared_seconds(path)
    if declared is not None and declared > max_duration:  # refused from the header, before decoding
        raise DecodeError(path, f"longer than this server accepts ({cap} of audio): its header declares "
                                f"{declared / 60:,.1f} minutes")
    return classify_file(run, path, name=name, max_seconds=max_duration, model=model, tags=tags)


def _test_figures(run: Run) -> dict | None:
    """The default model's test figures with intervals, from the run's ``evaluation.json``."""
    import json

    if run.path is None or not (run.path.parent / "evaluation.json").is_file():
        return None
    try:
        sets = json.loads((run.path.parent / "evaluation.json").read_text()).get("sets", {})
    except (OSError, ValueError):
        return None
    m = sets.get("test", {}).get(run.default_model)
    if not m:
        return None
    return {"set": "test", "n": m.get("n"), "n_prog": m.get("n_prog"), **(m.get("intervals") or {})}


def model_info(run: Run, *, max_upload_bytes: int, has_report: bool,
               max_duration: float = DEFAULT_MAX_DURATION) -> ModelInfo:
    """The description ``GET /api/model`` answers with."""
    name = run.default_model
    entry = run.entries[name]
    fc, sc = run.feature_config(entry.feature_sets[0]), run.snippet_config
    nets = run.networks if entry.kind == "cnn" else []
    n_parameters = sum(p.numel() for net in nets for p in net.parameters())
    snippet_seconds = round(sc.length / sc.frame_rate, 1) if entry.kind == "cnn" else (
        3.0 if entry.kind in ("musicnn", "patches") else 0.0)
    vote_rule = describe_rule(entry.rule, entry.threshold)
    summary = (f"{entry.title} gives the verdict: {vote_rule}. The run holds {len(run.entries)} models: "
               + "; ".join(e.title for e in run.entries.values()) + ".")
    return ModelInfo(
        summary=summary, progrock_version=progrock.__version__,
        model_progrock_version=run.description.get("progrock_version"), class_names=["nonprog", "prog"],
        default_model=name, models={n: {"title": e.title, "kind": e.kind, "rule": e.rule, "threshold": e.threshold}
                                    for n, e in run.entries.items()},
        threshold=entry.threshold, vote_rule=vote_rule, feature_set=fc.name, feature_description=fc.describe(),
        feature_config=fc.to_dict(), snippet_seconds=snippet_seconds, snippet_config=sc.to_dict(),
        network=nets[0].config.to_dict() if nets else None, n_parameters=n_parameters,
        trained_on=run.trained_on, warning=run.warning,
        training={"recipe": run.description.get("recipe"), "validation": run.description.get("validation"),
                  **(run.description.get("training") or {})},
        metrics=_test_figures(run), max_upload_bytes=max_upload_bytes, max_duration_seconds=max_duration, report_url="/report" if has_report else None)


def create_app(run_dir: str | os.PathLike, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               max_concurrent: int = DEFAULT_MAX_CONCURRENT, max_duration: float = DEFAULT_MAX_DURATION,
               allowed_hosts: Iterable[str] | None = None) -> FastAPI:
    """The web app for a run (a run folder, or ``musicnn``: the built-in tagger).

    Parameters
    ----------
    run_dir : path-like
        A run folder (``model.json`` and, if present, ``report.html`` in it), or ``musicnn``.
    max_upload_bytes : int
        Largest accepted file in bytes (default 200 MiB).
    max_concurrent : int
        Songs decoded and classified at once; the rest wait (bounds memory and CPU).
    max_duration : float
        Longest accepted song in seconds of decoded audio (default 2 hours):
        with ``max_concurrent``, it bounds what the uploads in progress hold.
    allowed_hosts : iterable of str, optional
        Host names the app answers requests for (see :class:`HostCheck`;
        ``progrock serve`` passes :func:`progrock.serve.server.allowed_hosts`).
        None answers every host: only behind something that checks it.

    Raises
    ------
    ValueError
        A limit that is not a positive number.
    ModelError, ConfigError
        The run cannot be loaded (it is loaded once, here).
    """
    if not max_upload_bytes >= 1:
        raise ValueError(f"max_upload_bytes must be positive, got {max_upload_bytes}")
    if not 0 < max_duration < float("inf"):
        raise ValueError(f"max_duration must be a positive number of seconds, got {max_duration}")
    run = open_run(run_dir)
    # No /docs or /redoc: FastAPI's pages load Swagger UI and ReDoc from a CDN, and
    # progrock must work offline. The schema itself is at /openapi.json.
    app = FastAPI(title="progrock", version=progrock.__version__, description=DESCRIPTION,
                  summary="Tell progressive rock from other music, from the audio alone.",
                  docs_url=None, redoc_url=None)
    app.state.run = run
    app.state.max_upload_bytes = int(max_upload_bytes)
    app.state.max_duration = float(max_duration)
    app.state.slots = threading.BoundedSemaphore(max(1, int(max_concurrent)))
    app.state.report = (run.path.parent / "report.html") if run.path is not None else None
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=list(allowed_hosts))
    _add_error_handlers(app)
    _add_api(app)
    _add_page(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error the app answers is ``{"error": reason}``."""

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"not found: {request.url.path}"
        return _error(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "; ".join(str(e.get("msg", e)) for e in exc.errors()) or "invalid request")


async def _receive(request: Request, folder: Path, cap: int) -> tuple[Path | None, str, JSONResponse | None]:
    """Stream one multipart upload into ``folder``: ``(path, name, None)``, or ``(None, "", error answer)``."""
    try:
        boundary, charset = multipart_boundary(request.headers.get("content-type"))
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cap + MULTIPART_OVERHEAD:
            raise UploadError(413, f"the file is larger than this server accepts ({format_bytes(cap)})")
    except UploadError as exc:
        return None, "", _error(exc.status, exc.message, {"Connection": "close"} if exc.status == 413 else None)
    receiver = UploadReceiver(boundary, folder, max_bytes=cap, charset=charset)
    try:
        try:
            async for chunk in request.stream():
                if chunk:
                    await run_in_threadpool(receiver.feed, chunk)
            path = receiver.finish()
        finally:
            receiver.close()
    except ClientDisconnect:   # the client left (or stalled and was cut off): nobody to answer
        return None, "", _error(400, "the client disconnected before the upload ended")
    except UploadError as exc:
        message = exc.message
        if exc.status == 422 and receiver.filename is not None:
            message = f"{display_name(receiver.filename)}: {message}"
        return None, "", _error(exc.status, message, {"Connection": "close"} if exc.status == 413 else None)
    return path, display_name(receiver.filename), None


def _add_api(app: FastAPI) -> None:
    """``POST /api/classify`` and ``GET /api/model``."""
    run: Run = app.state.run

    def classify_upload(path: Path, name: str, model: str | None, tags: bool) -> Prediction:
        with app.state.slots:
            pred = classify_bounded(run, path, name=name, max_duration=app.state.max_duration, model=model,
                                    tags=tags)
        return Prediction(**pred.to_dict())

    @app.post("/api/classify", response_model=Prediction, responses=_ERRORS, tags=["classify"],
              summary="Classify one song", openapi_extra=_CLASSIFY_BODY)
    async def classify(request: Request):
        """Decode the uploaded song, cut it into snippets and give the verdict with its evidence.

        ``?model=NAME`` chooses one of the run's models (default: the run's
        default model); ``?tags=true`` adds what the pretrained tagger hears.
        The upload is streamed to a temporary folder under a name the server
        chooses and deleted afterwards; it is refused with 413 as soon as it
        passes the size cap.
        """
        model = request.query_params.get("model") or None
        tags = request.query_params.get("tags", "").lower() in ("1", "true", "yes", "on")
        if model is not None and model not in run.entries:
            return _error(400, f"this run has no model {model!r}; it has {', '.join(run.entries)}")
        with tempfile.TemporaryDirectory(prefix="progrock-upload-") as tmp:
            path, name, refused = await _receive(request, Path(tmp), app.state.max_upload_bytes)
            if refused is not None:
                return refused
            try:
                return await run_in_threadpool(classify_upload, path, name, model, tags)
            except FileError as exc:   # not audio, empty, too short: the reason without our temp path
                return _error(422, f"{name}: {exc.reason}")
            except ProgrockError as exc:
                return _error(422, f"{name}: {str(exc).replace(str(path), name)}")
            except Exception as exc:   # noqa: BLE001 - one bad song must not take the server down
                log.exception("classifying %r failed", name)
                return _error(500, f"{name}: unexpected {type(exc).__name__} while classifying")

    @app.get("/api/model", response_model=ModelInfo, tags=["model"], summary="Describe the run")
    def describe_model() -> ModelInfo:
        """The run's models, what they were trained on and how well they did, from the run's own files."""
        has_report = app.state.report is not None and app.state.report.is_file()
        return model_info(run, max_upload_bytes=app.state.max_upload_bytes, has_report=has_report,
                          max_duration=app.state.max_duration)


def _add_page(app: FastAPI) -> None:
    """The page, its assets, and the run's report."""

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    @app.get("/report", tags=["model"], summary="The run's evaluation report (HTML)",
             response_class=FileResponse,
             responses={200: {"content": {"text/html": {}}, "description": "The report."},
                        404: {"model": ErrorResponse, "description": "The run has no report."}})
    def report():
        """The run folder's ``report.html`` and nothing else from the run folder."""
        path = app.state.report
        if path is None or not path.is_file():
            return _error(404, "this run has no evaluation report (run `progrock evaluate` to write one)")
        return FileResponse(path, media_type="text/html",
                            headers={"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR, follow_symlink=False), name="static")
