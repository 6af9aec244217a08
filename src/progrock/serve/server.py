"""Run the web app with uvicorn under limits a hostile network cannot get around.

uvicorn bounds neither how long a client may take to send a request nor how
many connections it holds: a few hundred sockets that send half a request line
(slowloris) keep file descriptors until the process can accept no more. Here:

* a request's line and headers must arrive within ``header_timeout`` seconds of
  the connection opening (or of the previous answer on a kept-alive one), else
  the server answers 408 (if part of a request came) and closes;
* a request body may pause at most ``body_timeout`` seconds between two pieces
  (waits caused by the server not reading do not count), else 408 and close;
* beyond ``max_connections`` open connections, a new one is answered 503 and
  closed at once.

Every one of these answers is JSON ``{"error": reason}``, like the app's own.
The listening sockets are bound here, before uvicorn starts, so a busy port or
an unknown host is a one-line :class:`~progrock.errors.ProgrockError` instead of
uvicorn's exit.
"""

from __future__ import annotations

import errno
import json
import resource
import socket
from dataclasses import dataclass
from typing import Iterable

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from progrock.errors import ProgrockError

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Host names every server answers to: this machine's loopback names."""

WILDCARD_HOSTS = ("0.0.0.0", "::", "")
"""Bind addresses meaning "every interface": they name no host a browser would ask for."""

SPARE_FILES = 64
"""File descriptors kept free beside the connections (the model, uploads, decoders, the log)."""


@dataclass(frozen=True)
class Limits:
    """What one client may hold of the server.

    Attributes
    ----------
    header_timeout : float
        Seconds for a request line and its headers to arrive.
    body_timeout : float
        Longest pause in seconds between two pieces of a request body.
    max_connections : int
        Open connections at a time; more are answered 503 and closed.
    """

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 100


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> list[str]:
    """Names the server answers requests for: :data:`LOCAL_HOSTS`, ``host`` unless a wildcard, ``extra``.

    IPv6 literals are given without brackets (``::1``) and every name in lower case.
    """
    names = list(LOCAL_HOSTS)
    for name in (host, *extra):
        name = name.strip().strip("[]").lower()
        if name not in WILDCARD_HOSTS and name not in names:
            names.append(name)
    return names


def _raw_answer(transport, status: str, message: str, extra: str = "") -> None:
    """Write a whole JSON error answer and close: for requests the app never saw."""
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"connection: close\r\n{extra}\r\n")
    transport.write(head.encode("latin-1") + body)
    transport.close()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines on a request's headers and body and a cap on connections.

    The subclass only watches: after each piece of data (and each answer) it
    looks at what the connection waits for next and sets the matching timer.
    """

    limits = Limits()
    _timer = None
    _waiting_for: str | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            _raw_answer(transport, "503 Service Unavailable",
                        f"the server holds {self.limits.max_connections} connections, its limit; try again shortly",
                        "retry-after: 5\r\n")
            return
        self._follow()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.transport.is_closing():
            self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm(None, None)
        super().connection_lost(exc)

    # -- the deadlines ---------------------------------------------------------------------------

    def _follow(self) -> None:
        """Set the timer for what the connection now waits for: headers, body, or the app (none)."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            if self._waiting_for != "headers":  # a deadline for the whole head, not per piece
                self._arm("headers", self._headers_late, self.limits.header_timeout)
        elif cycle.more_body and not cycle.response_started:
            self._arm("body", self._body_late, self.limits.body_timeout)  # renewed by every piece
        else:
            self._arm(None, None)

    def _arm(self, what: str | None, callback, seconds: float = 0.0) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting_for = what
        if callback is not None:
            self._timer = self.loop.call_later(seconds, callback)

    def _headers_late(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.conn.trailing_data[0]:  # part of a request came
            _raw_answer(self.transport, "408 Request Timeout",
                        f"the request's headers did not arrive within {self.limits.header_timeout:g} s")
        else:  # an idle connection: closed without a word, as a kept-alive one is
            self.transport.close()

    def _body_late(self) -> None:
        self._timer = None
        if self.transport.is_closing() or self.cycle is None:
            return
        if self.flow.read_paused:  # the server is not reading: not the client's pause
            self._arm("body", self._body_late, self.limits.body_timeout)
            return
        self.cycle.disconnected = True  # the app's receive() now ends the request
        self.cycle.message_event.set()
        _raw_answer(self.transport, "408 Request Timeout",
                    f"the request's body stopped arriving (nothing for {self.limits.body_timeout:g} s)")


def _protocol(limits: Limits) -> type[GuardedH11Protocol]:
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to ``host`` (every address it resolves to) and ``port``, not yet listening.

    Raises
    ------
    ProgrockError
        The port is in use or needs privileges, or the host does not resolve
        to an address of this machine.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ProgrockError(f"--host {host}: not an address or a name of this machine ({exc.strerror})") from None
    sockets: list[socket.socket] = []
    failure: OSError | None = None
    for family, kind, proto, _, address in dict.fromkeys(infos):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) and failure is None:
                failure = exc  # e.g. ::1 where IPv6 is off: fine if another address binds
                continue
            for s in sockets:
                s.close()
            raise ProgrockError(_bind_reason(host, port, exc)) from None
        sockets.append(sock)
    if not sockets:
        raise ProgrockError(_bind_reason(host, port, failure))
    return sockets


def _bind_reason(host: str, port: int, exc: OSError | None) -> str:
    if exc is not None and exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use; choose another with --port"
    if exc is not None and exc.errno == errno.EACCES:
        return f"port {port} on {host} needs privileges (ports below 1024); choose another with --port"
    if exc is not None and exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine; choose another with --host"
    return f"cannot listen on {host}, port {port}: {exc.strerror if exc is not None else 'no address'}"


def check_file_limit(max_connections: int) -> None:
    """Make room for ``max_connections`` open sockets under the process's file limit (raising the soft
    limit up to the hard one if needed).

    Raises
    ------
    ProgrockError
        The hard limit is too low.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max_connections + SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise ProgrockError(f"--max-connections {max_connections} needs {need} open files, but this "
                                f"process may open only {hard} (ulimit -n); choose at most "
                                f"{max(1, hard - SPARE_FILES)}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def make_server(app, limits: Limits = Limits(), *, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for ``app`` speaking HTTP/1.1 through :class:`GuardedH11Protocol` with ``limits``.

    Start it with ``server.run(sockets=bind_sockets(host, port))``.
    """
    return uvicorn.Server(uvicorn.Config(app, http=_protocol(limits), lifespan="off", log_level=log_level,
                                         timeout_keep_alive=5, h11_max_incomplete_event_size=16 * 1024))


def bound_port(server: uvicorn.Server) -> int:
    """The port a started server listens on (useful after binding port 0)."""
    return server.servers[0].sockets[0].getsockname()[1]
