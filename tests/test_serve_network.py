"""The server under a hostile network, against a live uvicorn on 127.0.0.1 (as ``progrock serve`` runs it).

Stalled and dripping connections are cut at their deadline while a normal user
still gets the page and a verdict; connections beyond the cap are refused; a
request for another host (DNS rebinding) gets 400; a song that decodes to
hours is refused with 422 while the server keeps answering; bad options and a
busy port are one-line errors with exit status 2. Every wait here is bounded
in count and in time; the server's timeouts are set short for the test.
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from progrock.audio import write_audio
from progrock.cli import main
from progrock.model.run import load_run
from progrock.predict import classify_file
from progrock.serve import create_app
from progrock.serve.app import host_name
from progrock.serve.server import LOCAL_HOSTS, Limits, allowed_hosts, bind_sockets, bound_port, make_server

from conftest import SR, music
from test_serve import BOUNDARY, http_exchange, multipart_body

SHORT = Limits(header_timeout=1.5, body_timeout=1.5, max_connections=40)
MULTIPART_HEADER = f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n".encode()
HANG_GUARD = 30.0
"""Seconds a test waits for something the server must do, before failing instead of hanging."""


@contextlib.contextmanager
def serving(app, limits: Limits = SHORT):
    """``app`` run as ``progrock serve`` runs it, in a thread on 127.0.0.1; yields (base URL, server)."""
    sockets = bind_sockets("127.0.0.1", 0)
    server = make_server(app, limits)
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        for _ in range(600):                   # wait for the socket (at most ~30 s)
            if server.started or not thread.is_alive():
                break
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{bound_port(server)}", server
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        for sock in sockets:
            sock.close()


def wait_until(predicate, what: str) -> None:
    for _ in range(int(HANG_GUARD / 0.02)):
        if predicate():
            return
        time.sleep(0.02)
    pytest.fail(f"no {what} within {HANG_GUARD} s")


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=HANG_GUARD)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails after HANG_GUARD)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


@pytest.fixture(scope="module")
def run_dir(tiny_run) -> Path:
    return tiny_run.run_dir


@pytest.fixture(scope="module")
def app(run_dir):
    return create_app(run_dir, allowed_hosts=allowed_hosts("127.0.0.1"))


@pytest.fixture(scope="module")
def song(demo_corpus) -> Path:
    return next(demo_corpus.rglob("*.ogg"))


@pytest.fixture(scope="module")
def verdict(run_dir, song) -> dict:
    return classify_file(load_run(run_dir), song, name=song.name).to_dict()


def classify(base: str, song: Path, name: str | None = None) -> httpx.Response:
    return httpx.post(f"{base}/api/classify", files={"file": (name or song.name, song.read_bytes())},
                      timeout=120)


# ---------------------------------------------------------------------------------------------
# slowloris


def test_stalled_connections_do_not_starve_a_user_and_are_cut_at_their_deadline(app, song, verdict):
    with serving(app, Limits(header_timeout=3, body_timeout=3, max_connections=40)) as (base, server):
        silent = [connect(base) for _ in range(8)]
        half_line = [connect(base) for _ in range(8)]
        for sock in half_line:
            sock.sendall(b"GET /api/mo")
        half_body = [connect(base) for _ in range(8)]
        for sock in half_body:
            sock.sendall(b"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1\r\n" + MULTIPART_HEADER
                         + b"Content-Length: 100000\r\n\r\n" + multipart_body(b"RIFF" + bytes(1000))[:500])
        wait_until(lambda: len(server.server_state.connections) >= 24, "stalled connections held")

        page = httpx.get(f"{base}/", timeout=HANG_GUARD)
        assert page.status_code == 200 and "<html" in page.text.lower()
        r = classify(base, song)
        assert r.status_code == 200, r.text
        assert r.json() == verdict

        for sock in silent:                     # idle: closed without a word
            assert read_until_closed(sock) == b""
        for sock in half_line:
            status, error = status_and_error(read_until_closed(sock))
            assert status == 408 and "headers did not arrive within 3 s" in error
        for sock in half_body:
            status, error = status_and_error(read_until_closed(sock))
            assert status == 408 and "body stopped arriving (nothing for 3 s)" in error
        for sock in silent + half_line + half_body:
            sock.close()
        wait_until(lambda: len(server.server_state.connections) == 0, "connections released")
        assert httpx.get(f"{base}/api/model", timeout=HANG_GUARD).status_code == 200



def test_headers_dripping_in_are_cut_at_the_deadline_not_renewed_by_each_byte(app):
    """One byte of headers every 0.2 s: each byte comes well within any idle timeout, the headers never."""
    with serving(app) as (base, _):
        sock = connect(base)
        sock.sendall(b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        drip = b"X-Slow: " + b"a" * 200            # 200 bytes would take 40 s at this pace
        answer = b""
        for byte in drip:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([sock], [], [], 0.2)[0]:
                answer = read_until_closed(sock)
                break
        assert answer, "the server let the headers drip on"
        status, error = status_and_error(answer)
        assert status == 408 and "headers did not arrive" in error
        sock.close()


def test_a_stalled_upload_leaves_nothing_behind_and_logs_no_traceback(app, tmp_path, monkeypatch, caplog):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with serving(app) as (base, _):
        server_log = logging.getLogger("uvicorn.error")   # configured by uvicorn: it does not reach the root
        monkeypatch.setattr(server_log, "handlers", [*server_log.handlers, caplog.handler])
        sock = connect(base)
        body = multipart_body(bytes(50_000), b"song.wav")
        sock.sendall(b"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1\r\n" + MULTIPART_HEADER
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:30_000])
        status, error = status_and_error(read_until_closed(sock))
        sock.close()
        assert status == 408, error
        wait_until(lambda: not list(tmp_path.iterdir()), "the upload's temporary folder removed")
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


def test_connections_beyond_the_cap_get_503_and_room_comes_back(app):
    with serving(app, Limits(header_timeout=1.5, body_timeout=1.5, max_connections=4)) as (base, server):
        held = [connect(base) for _ in range(4)]
        wait_until(lambda: len(server.server_state.connections) == 4, "four connections held")
        extra = connect(base)
        status, error = status_and_error(read_until_closed(extra))
        assert status == 503 and "4 connections" in error
        extra.close()
        for sock in held:                       # their header deadline frees the places
            assert read_until_closed(sock) == b""
            sock.close()
        wait_until(lambda: len(server.server_state.connections) == 0, "connections released")
        assert httpx.get(f"{base}/api/model", timeout=HANG_GUARD).status_code == 200


# ---------------------------------------------------------------------------------------------
# DNS rebinding


def request_for(base: str, host: bytes | None, path: str = "/api/model") -> tuple[int, dict, bytes]:
    """GET ``path`` with ``Host: host`` (None: an HTTP/1.0 request without a Host header)."""
    if host is None:
        head = f"GET {path} HTTP/1.0\r\n".encode()
    else:
        head = f"GET {path} HTTP/1.1\r\nHost: ".encode() + host + b"\r\n"
    return http_exchange(base, head + b"Connection: close\r\n\r\n")


def test_requests_for_other_hosts_are_refused(run_dir, song):
    app = create_app(run_dir, allowed_hosts=allowed_hosts("127.0.0.1", ["music.lan", "[fd00::7]"]))
    with serving(app) as (base, _):
        port = base.rsplit(":", 1)[1].encode()
        for host in (b"attacker.example", b"attacker.example:" + port, b"localhost.attacker.example",
                     b"127.0.0.1.nip.io", b"evil@127.0.0.1", b"127.0.0.1/x", b"[::2]:" + port, None):
            for path in ("/api/model", "/report", "/", "/static/app.js", "/openapi.json"):
                status, headers, body = request_for(base, host, path)
                assert status == 400, (host, path, status)
                assert headers["content-type"] == "application/json"
                assert "is not served here" in json.loads(body)["error"], (host, path)
                assert b"song_" not in body and b"threshold" not in body
        r = httpx.post(f"{base}/api/classify", files={"file": (song.name, song.read_bytes())},
                       headers={"Host": "attacker.example"}, timeout=HANG_GUARD)
        assert r.status_code == 400 and "attacker.example" in r.json()["error"]

        for host in (b"localhost", b"localhost:" + port, b"LOCALHOST:" + port, b"127.0.0.1:" + port,
                     b"[::1]:" + port, b"[::1]", b"music.lan", b"Music.Lan:443", b"[fd00::7]:" + port):
            status, _, body = request_for(base, host)
            assert status == 200, (host, body)
            assert json.loads(body)["class_names"] == ["nonprog", "prog"]


def test_a_star_answers_every_host_and_no_list_checks_nothing(run_dir):
    for hosts in (allowed_hosts("127.0.0.1", ["*"]), None):
        with serving(create_app(run_dir, allowed_hosts=hosts)) as (base, _):
            status, _, body = request_for(base, b"attacker.example")
            assert status == 200 and json.loads(body)["class_names"] == ["nonprog", "prog"], hosts


def test_allowed_hosts_follow_the_bind_address():
    assert allowed_hosts("127.0.0.1") == list(LOCAL_HOSTS)
    assert allowed_hosts("0.0.0.0") == allowed_hosts("::") == list(LOCAL_HOSTS)   # wildcards name no host
    assert allowed_hosts("192.168.1.20") == [*LOCAL_HOSTS, "192.168.1.20"]
    assert allowed_hosts("Box.Local", ["[fe80::1]", "music.lan"]) == [*LOCAL_HOSTS, "box.local", "fe80::1",
                                                                       "music.lan"]
    assert host_name("[::1]:8000") == "::1" and host_name("LocalHost:80") == "localhost"
    for bad in ("a@b", "a/b", "a:b", "", None, "[::1", "a b"):
        assert host_name(bad) is None, bad


# ---------------------------------------------------------------------------------------------
# uploads that decode to hours


def wav_declaring_hours(path: Path) -> Path:
    """200 kB of WAV at 1 Hz: 200,000 frames, 55 hours once resampled to 22,050 Hz (17 GB of float32)."""
    sf.write(path, np.zeros(200_000, np.float32), 1, subtype="PCM_U8")
    assert sf.info(str(path)).duration == 200_000 and path.stat().st_size < 250_000
    return path


def test_a_song_longer_than_the_cap_is_refused_while_the_server_keeps_answering(run_dir, demo_corpus, tmp_path):
    bomb = wav_declaring_hours(tmp_path / "bomb.wav")
    song = Path(write_audio(tmp_path / "twelve seconds.wav", music(12.0), SR))
    verdict = classify_file(load_run(run_dir), song, name=song.name).to_dict()
    long_song = next(demo_corpus.rglob("*.m4a"))   # libsndfile reads no M4A: counted while decoding
    app = create_app(run_dir, max_duration=20.0, max_concurrent=2, allowed_hosts=LOCAL_HOSTS)
    with serving(app) as (base, _):
        jobs = [("bomb", bomb, f"bomb{i}.wav") for i in range(4)] + [("bomb", bomb, "bomb.dat")]
        jobs += [("long", long_song, f"long{i}.m4a") for i in range(3)] + [("song", song, song.name)] * 2
        with ThreadPoolExecutor(len(jobs)) as pool:
            answers = list(pool.map(lambda job: classify(base, job[1], job[2]), jobs))
            model_info = httpx.get(f"{base}/api/model", timeout=HANG_GUARD)
        for (kind, _, name), r in zip(jobs, answers):
            if kind == "song":
                assert r.status_code == 200 and r.json() == verdict
            else:
                assert r.status_code == 422, (name, r.text)
                assert r.json()["error"].startswith(f"{name}: longer than this server accepts (20 s of audio)")
        assert model_info.status_code == 200 and model_info.json()["max_duration_seconds"] == 20.0
    # Under the cap, the same long song is classified.
    with serving(create_app(run_dir, max_duration=3600.0, allowed_hosts=LOCAL_HOSTS)) as (base, _):
        r = classify(base, long_song)
        assert r.status_code == 200 and r.json()["duration"] > 20


# ---------------------------------------------------------------------------------------------
# the command's options


@pytest.mark.parametrize("option, value, message", [
    ("--max-upload-mb", "0", "'0' is not a positive number"),
    ("--max-upload-mb", "-1", "'-1' is not a positive number"),
    ("--max-upload-mb", "nan", "'nan' is not a positive number"),
    ("--max-duration", "inf", "'inf' is not a positive number"),
    ("--header-timeout", "0", "'0' is not a positive number"),
    ("--body-timeout", "soon", "'soon' is not a number"),
    ("--port", "70000", "70000 is not in the range 0<=x<=65535"),
    ("--port", "-1", "-1 is not in the range 0<=x<=65535"),
    ("--max-connections", "0", "0 is not in the range 1<=x<=100000"),
])
def test_bad_options_are_one_line_errors_with_status_2(run_dir, capsys, option, value, message):
    assert main(["serve", str(run_dir), option, value]) == 2
    err = capsys.readouterr().err
    assert f"Invalid value for '{option}': {message}" in err and "Traceback" not in err


def test_a_busy_port_is_a_one_line_error_with_status_2(run_dir, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(run_dir), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"error: port {port} on 127.0.0.1 is in use; choose another with --port" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_an_unknown_host_is_a_one_line_error_with_status_2(run_dir, capsys):
    assert main(["serve", str(run_dir), "--host", "no-such-host.invalid"]) == 2
    err = capsys.readouterr().err
    assert "error: --host no-such-host.invalid: not an address or a name of this machine" in err
    assert "Traceback" not in err
    assert main(["serve", str(run_dir), "--host", "192.0.2.1", "--port", "0"]) == 2   # TEST-NET: not ours
    assert "192.0.2.1 is not an address of this machine; choose another with --host" in capsys.readouterr().err
