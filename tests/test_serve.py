"""The web API: real songs of the demo corpus in, the same verdicts as ``predict`` out.

Bad uploads (too big, not audio, empty, hostile names) are refused with a JSON
reason, leave nothing behind on disk and do not stop the server.
"""

from __future__ import annotations

import contextlib
import json
import socket
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path

import httpx
import pytest
import uvicorn

with warnings.catch_warnings():  # starlette nudges towards httpx2; httpx is what the project installs
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

from progrock.audio import write_audio
from progrock.model.run import load_run
from progrock.evaluation.verdict import SongResult
from progrock.predict import classify_file
from progrock.serve import create_app
from progrock.serve.schemas import Prediction
from progrock.serve.upload import MULTIPART_OVERHEAD, display_name

from conftest import SR, music

KEYS = {f.name for f in fields(SongResult)}
BOUNDARY = "progrock-test-boundary-5f1c"


# ---------------------------------------------------------------------------------------------
# helpers shared with test_browser.py


@contextlib.contextmanager
def serving(app):
    """Run ``app`` with uvicorn in a background thread on 127.0.0.1; yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        for _ in range(600):                   # wait for the socket (at most ~30 s)
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def one_file_per_format(corpus: Path) -> list[Path]:
    """The first song of each file format in the corpus (sorted by name)."""
    seen: dict[str, Path] = {}
    for path in sorted(corpus.rglob("*")):
        if path.is_file() and path.suffix and path.suffix != ".json":
            seen.setdefault(path.suffix.lower(), path)
    return list(seen.values())


def multipart_body(data: bytes, filename: bytes | None = b"song.wav", *, field: bytes = b"file") -> bytes:
    """A multipart/form-data body written byte by byte, so a test controls exactly what is sent."""
    disposition = b'form-data; name="' + field + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    return (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: " + disposition
            + b"\r\nContent-Type: application/octet-stream\r\n\r\n" + data
            + b"\r\n--" + BOUNDARY.encode() + b"--\r\n")


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def http_exchange(base: str, request: bytes) -> tuple[int, dict, bytes]:
    """Send raw bytes to the live server and read one response: (status, headers, body)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before a response: {data!r}"
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return status, headers, body


def files_under(*roots: Path) -> set[Path]:
    """Every path below the roots (recursive)."""
    return {p for root in roots for p in root.rglob("*")}


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def run_dir(tiny_run) -> Path:
    return tiny_run.run_dir


@pytest.fixture(scope="module")
def model(run_dir):
    return load_run(run_dir)


@pytest.fixture(scope="module")
def client(run_dir):
    with TestClient(create_app(run_dir)) as c:
        yield c


@pytest.fixture
def upload_tmp(tmp_path, monkeypatch) -> Path:
    """Point the temporary folder (TMPDIR and tempfile.tempdir) at a test folder two levels down."""
    root = tmp_path / "outer" / "tmp"
    root.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(root))
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def assert_still_serving(client, song: Path) -> None:
    """The server answers normal requests after a bad one."""
    assert client.get("/api/model").status_code == 200
    r = client.post("/api/classify", files={"file": (song.name, song.read_bytes())})
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------------------------------------
# classifying


def test_prediction_schema_mirrors_song_prediction():
    """The response model has exactly the keys of SongResult.to_dict() for a song of unknown class."""
    assert set(Prediction.model_fields) == KEYS


@pytest.mark.parametrize("choice", ["default", "cnn"])
def test_songs_in_every_format_get_the_verdict_predict_gives(client, model, demo_corpus, choice):
    songs = one_file_per_format(demo_corpus)
    assert {p.suffix for p in songs} >= {".mp3", ".flac", ".wav", ".ogg"}, songs
    name = model.default_model if choice == "default" else choice
    labels = set()
    for song in songs:
        r = client.post(f"/api/classify?model={name}",
                        files={"file": (song.name, song.read_bytes(), "audio/whatever")})
        assert r.status_code == 200, (song, r.text)
        got = r.json()
        assert set(got) == KEYS
        assert got["verdict"] in {"prog", "nonprog"}
        assert 0 <= got["probability"] <= 1 and (got["vote_fraction"] is None or 0 <= got["vote_fraction"] <= 1)
        assert all(0 <= p <= 1 for p in got["snippet_probs"])
        assert got["n_snippets"] == len(got["snippet_probs"]) == len(got["snippet_starts"])
        assert got["model"] == name
        assert got["path"] == song.name
        # Exactly what the command line's classify_file says about the same file.
        assert got == classify_file(model, song, name=song.name, model=name).to_dict()
        labels.add(got["verdict"])
    if choice == "cnn":
        assert labels == {"prog", "nonprog"}, "a model that says one thing for every format proves little"


def test_the_query_chooses_the_model(client, model, demo_corpus):
    song = one_file_per_format(demo_corpus)[0]
    r = client.post("/api/classify?model=cnn", files={"file": (song.name, song.read_bytes(), "audio/whatever")})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["model"] == "cnn" and got["n_snippets"] >= 1 and 0 <= got["vote_fraction"] <= 1
    assert got == classify_file(model, song, name=song.name, model="cnn").to_dict()
    r = client.post("/api/classify?model=nonesuch", files={"file": (song.name, song.read_bytes(), "audio/x")})
    assert r.status_code == 400 and "no model 'nonesuch'" in r.json()["error"]


def test_type_is_found_by_decoding_not_by_name(client, model, demo_corpus):
    """A FLAC named .dat and a WAV named .mp3 are still classified; the name never changes the verdict."""
    flac = next(demo_corpus.rglob("*.flac"))
    wav = next(demo_corpus.rglob("*.wav"))
    for song, name in ((flac, "mystery.dat"), (flac, "no-ending"), (wav, "actually-a-wav.mp3")):
        r = client.post("/api/classify", files={"file": (name, song.read_bytes(), "text/plain")})
        assert r.status_code == 200, (name, r.text)
        assert r.json()["path"] == name
        assert r.json()["snippet_probs"] == classify_file(model, song).snippet_probs


def test_parallel_requests_give_the_serial_answers(run_dir, model, demo_corpus):
    """Several songs classified at once by a live server: the same probabilities as one by one."""
    songs = one_file_per_format(demo_corpus)[:4]
    expected = [classify_file(model, s, name=s.name).to_dict() for s in songs]
    with serving(create_app(run_dir, max_concurrent=2)) as base:
        def post(song):
            return httpx.post(f"{base}/api/classify", files={"file": (song.name, song.read_bytes())},
                              timeout=120).json()
        with ThreadPoolExecutor(len(songs)) as pool:
            got = list(pool.map(post, songs))
    assert got == expected


# ---------------------------------------------------------------------------------------------
# the model and the schema


def test_model_endpoint_describes_the_run(client, model, run_dir):
    r = client.get("/api/model")
    assert r.status_code == 200
    info = r.json()
    default = model.entries[model.default_model]
    assert info["class_names"] == ["nonprog", "prog"]
    assert info["default_model"] == model.default_model and set(info["models"]) == set(model.entries)
    assert info["threshold"] == pytest.approx(default.threshold)
    assert info["feature_config"] == model.feature_config("seed43").to_dict()
    assert info["snippet_config"] == model.snippet_config.to_dict()
    saved = json.loads((run_dir / "model.json").read_text())
    assert info["training"]["validation"] == saved["validation"] and info["training"]["recipe"] == "seed"
    # the headline is the test figure with its interval and the number of songs, not a validation figure
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    test = evaluation["sets"]["test"][model.default_model]
    assert info["metrics"]["set"] == "test" and info["metrics"]["n"] == test["n"]
    assert info["metrics"]["balanced_accuracy"] == test["intervals"]["balanced_accuracy"]
    assert info["trained_on"]["synthetic"] is True and "never heard real music" in info["warning"]
    assert info["progrock_version"] and info["model_progrock_version"]
    assert info["max_upload_bytes"] == 200 * 1024 * 1024
    assert info["report_url"] == "/report"
    assert "1D-CNN" in info["summary"] and f"{default.threshold:.2f}" in info["summary"]


def test_openapi_documents_the_upload_and_the_answers(client):
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "progrock" and schema["info"]["description"]
    op = schema["paths"]["/api/classify"]["post"]
    form = op["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"]
    assert (form["properties"]["file"]["type"], form["properties"]["file"]["format"]) == ("string", "binary")
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][ok]["properties"]) == KEYS
    for status in ("400", "413", "415", "422"):
        ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"].keys() == {"error"}
    assert "get" in schema["paths"]["/api/model"]
    assert "/" not in schema["paths"]          # the page is not part of the API


# ---------------------------------------------------------------------------------------------
# bad uploads


def test_upload_over_the_cap_is_refused_with_413(run_dir, demo_corpus):
    song = next(demo_corpus.rglob("*.wav"))
    data = song.read_bytes()
    with TestClient(create_app(run_dir, max_upload_bytes=len(data))) as exact:
        assert exact.post("/api/classify", files={"file": (song.name, data)}).status_code == 200
    with TestClient(create_app(run_dir, max_upload_bytes=len(data) - 1)) as small:
        r = small.post("/api/classify", files={"file": (song.name, data)})
        assert r.status_code == 413
        assert "larger than" in r.json()["error"]
        # Declared too big up front: refused from the Content-Length alone.
        r = small.post("/api/classify", content=multipart_body(data + b"x" * (MULTIPART_OVERHEAD + 1)),
                       headers=MULTIPART)
        assert r.status_code == 413
        assert small.get("/api/model").status_code == 200


def test_oversized_stream_is_refused_before_it_ends(run_dir, upload_tmp):
    """Chunked upload, no Content-Length: the 413 comes while the client is still sending."""
    with serving(create_app(run_dir, max_upload_bytes=4096)) as base:
        start = multipart_body(b"\0" * 10_000, b"big.wav")[:-40]   # part header + 10 kB; never closed
        head = (b"POST /api/classify HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
                + f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n".encode())
        chunk = f"{len(start):x}\r\n".encode() + start + b"\r\n"   # no final 0-chunk: the body never ends
        status, headers, body = http_exchange(base, head + chunk)
        assert status == 413, body
        assert "larger than" in json.loads(body)["error"]
        # A Content-Length beyond the cap is refused before any of the body is sent.
        status, _, body = http_exchange(base, b"POST /api/classify HTTP/1.1\r\nHost: test\r\n"
                                        + f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n".encode()
                                        + b"Content-Length: 1000000000\r\n\r\n")
        assert status == 413 and "error" in json.loads(body)
        assert httpx.get(f"{base}/api/model").status_code == 200
    assert list(upload_tmp.iterdir()) == []


@pytest.mark.parametrize("data, name, status, reason", [
    (b"These are words, not music. " * 40, "lyrics.mp3", 422, "lyrics.mp3: not a recognised audio file"),
    (b"", "empty.flac", 422, "empty.flac: empty file (0 bytes)"),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 8, "garbage.mp3", 422, "garbage.mp3:"),
])
def test_bad_upload_gets_a_reason_and_the_server_goes_on(client, demo_corpus, upload_tmp, data, name,
                                                         status, reason):
    r = client.post("/api/classify", files={"file": (name, data, "audio/mpeg")})
    assert r.status_code == status, r.text
    assert r.json()["error"].startswith(reason), r.json()
    assert "progrock-upload" not in r.json()["error"]      # the server's temporary path is not leaked
    assert list(upload_tmp.iterdir()) == []
    assert_still_serving(client, next(demo_corpus.rglob("*.ogg")))


def test_too_short_song_is_refused_with_the_reason(client, tmp_path, upload_tmp):
    short = write_audio(tmp_path / "blip.wav", music(1.0), SR)
    r = client.post("/api/classify", files={"file": ("blip.wav", Path(short).read_bytes())})
    assert r.status_code == 422
    assert r.json()["error"].startswith("blip.wav: too short")
    assert list(upload_tmp.iterdir()) == []


def test_requests_that_are_not_one_file_upload(client, demo_corpus):
    song = next(demo_corpus.rglob("*.wav"))
    data = song.read_bytes()
    r = client.post("/api/classify", content=data, headers={"Content-Type": "audio/wav"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]
    r = client.post("/api/classify", files={"song": ("a.wav", data)})
    assert r.status_code == 422 and "'file'" in r.json()["error"]
    r = client.post("/api/classify", files=[("file", ("a.wav", data)), ("file", ("b.wav", data))])
    assert r.status_code == 422 and "one file" in r.json()["error"]
    truncated = multipart_body(data)[: len(data) // 2]
    r = client.post("/api/classify", content=truncated, headers=MULTIPART)
    assert r.status_code in (400, 422) and r.json()["error"]
    assert client.get("/api/nothing").json() == {"error": "not found: /api/nothing"}
    assert_still_serving(client, song)


@pytest.mark.parametrize("name", [
    b"../../etc/passwd", b"a/../../x.mp3", b"..\\..\\evil.wav", b"<absolute>",
    b"nul\x00byte.wav", b"..", b"", b"C:\\Users\\me\\Music\\song.wav", "d\u00e9j\u00e0 vu.wav".encode(),
])
def test_hostile_file_names_cannot_touch_other_files(client, model, demo_corpus, upload_tmp, name):
    """The client's name never becomes a path: nothing appears outside the temporary folder,
    the answer is the audio's own verdict (or a 4xx), and the temporary folder is emptied."""
    song = next(demo_corpus.rglob("*.wav"))
    outer = upload_tmp.parent
    if name == b"<absolute>":                  # an absolute path into the test's own folder
        name = str(outer / "planted.wav").encode()
    before = files_under(outer.parent)
    cwd_before = set(Path.cwd().iterdir())
    r = client.post("/api/classify", content=multipart_body(song.read_bytes(), name), headers=MULTIPART)
    assert r.status_code == 200 or 400 <= r.status_code < 500, r.text
    if r.status_code == 200:
        got = r.json()
        assert got["snippet_probs"] == classify_file(model, song).snippet_probs
        assert not any(c in got["path"] for c in "/\\\x00") and got["path"] not in ("", ".", "..")
        assert got["path"] == display_name(name.decode("utf-8", errors="replace"))
    else:
        assert r.json()["error"]
    assert list(upload_tmp.iterdir()) == []
    assert files_under(outer.parent) == before
    assert set(Path.cwd().iterdir()) == cwd_before


def test_display_name_keeps_only_a_printable_last_component():
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("a/../../x.mp3") == "x.mp3"
    assert display_name("..\\..\\evil.wav") == "evil.wav"
    assert display_name("nul\x00byte\n.wav") == "nulbyte.wav"
    assert display_name("..") == display_name("") == display_name(None) == "upload"
    assert display_name("Yes – Roundabout.flac") == "Yes – Roundabout.flac"
    # what a browser sends for a name with quotes and a line break (the HTML form-data encoding)
    assert display_name("Yes, %22Roundabout%22.flac") == 'Yes, "Roundabout".flac'
    assert display_name("two%0D%0Alines.flac") == "twolines.flac"


# ---------------------------------------------------------------------------------------------
# the page, the report and nothing else


def test_report_is_served_and_nothing_else_of_the_run(client, run_dir):
    r = client.get("/report")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.content == (run_dir / "report.html").read_bytes()
    secret = (run_dir / "config.json").read_text()[:60]
    for path in ("/report/config.json", "/report/..%2Fconfig.json", "/config.json", "/model.json",
                 "/report.html/../config.json", "/static/..%2Fapp.py", "/static/%2e%2e/%2e%2e/errors.py",
                 "/static/../../config.json", "/static/", "/manifest.csv"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert secret not in r.text and "def create_app" not in r.text, path
        assert "error" in r.json(), path


def test_raw_dot_dot_paths_do_not_leave_the_static_folder(run_dir):
    """Paths sent byte for byte (no client-side normalisation) to a live server."""
    secret = (run_dir / "config.json").read_text()[:60]
    with serving(create_app(run_dir)) as base:
        for path in ("/report/../config.json", "/static/../app.py", "/static/../../progrock/errors.py",
                     "/static/..%2f..%2fconfig.json", "/static/%2e%2e/upload.py", "//etc/passwd"):
            status, _, body = http_exchange(base, f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                                            .encode())
            assert status in (400, 404), (path, status)
            assert secret.encode() not in body and b"import" not in body, path
        status, _, body = http_exchange(base, b"GET /static/app.js HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert status == 200 and b"/api/classify" in body


def test_report_missing_is_a_json_404(tmp_path, run_dir):
    for name in ("model.json", "model.safetensors"):
        (tmp_path / name).write_bytes((run_dir / name).read_bytes())
    with TestClient(create_app(tmp_path)) as c:
        r = c.get("/report")
        assert r.status_code == 404 and "no evaluation report" in r.json()["error"]
        assert c.get("/api/model").json()["report_url"] is None


def test_page_and_assets_come_from_the_package_only(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    html = r.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in html
        assert client.get(asset).status_code == 200
    # Nothing from the internet: no absolute URLs in the page or its assets.
    for text in (html, client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
        assert "//cdn" not in text
    assert client.get("/static/nothing.js").status_code == 404


def test_no_page_depends_on_a_cdn(client):
    """FastAPI's /docs and /redoc pull Swagger UI and ReDoc from a CDN: they are off."""
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").status_code == 200
