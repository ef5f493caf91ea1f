"""A scripted HTTP server on 127.0.0.1 for provider tests; nothing here leaves loopback."""

from __future__ import annotations

import json
import select
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class Reply:
    """What the server answers to one request."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    # The body is written in these pieces, flushed one by one, to exercise streaming reads.
    chunks: int = 1
    delay: float = 0.0
    # Announce more bytes than are sent and hang up: a connection cut mid-body.
    truncate: bool = False
    # A model that stalls: hold the answer this long, or until the client hangs up (seen in
    # `LocalServer.hangups`), before the status line or, with `hold_after`, after that many
    # body bytes.
    hold: float = 0.0
    hold_after: int | None = None

    @classmethod
    def json(cls, data: Any, status: int = 200, **kwargs: Any) -> Reply:
        return cls(status=status, body=json.dumps(data).encode(), **kwargs)

    @classmethod
    def fixture(cls, name: str, **kwargs: Any) -> Reply:
        kind = "text/event-stream" if name.endswith(".sse") else "application/json"
        kwargs.setdefault("content_type", kind)
        return cls(body=fixture_bytes(name), **kwargs)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (read-timeout and cut-off tests) leaves the handler writing
        # into a closed socket; that is the scenario under test, not a server fault.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LocalServer:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        # When (time.monotonic()) a held request's client closed its connection.
        self.hangups: list[float] = []
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def enqueue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def take(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            if self.replies:
                return self.replies.popleft()
        return Reply.json({"error": "no scripted reply"}, status=500)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _peek(sock: socket.socket) -> bytes:
    """The next byte the client sent, without taking it; b"" once it hung up."""
    try:
        return sock.recv(1, socket.MSG_PEEK)
    except ConnectionError:
        return b""


def _make_handler(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = server.take(Recorded("POST", self.path, headers, body))
            if reply.delay:
                time.sleep(reply.delay)
            if reply.hold and reply.hold_after is None and self._held(reply.hold):
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            extra = 100 if reply.truncate else 0
            self.send_header("Content-Length", str(len(reply.body) + extra))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.truncate:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            size = max(1, -(-len(reply.body) // reply.chunks))
            body = reply.body
            if reply.hold and reply.hold_after is not None:
                self.wfile.write(body[: reply.hold_after])
                self.wfile.flush()
                if self._held(reply.hold):
                    return
                body = body[reply.hold_after :]
            for start in range(0, len(body), size):
                self.wfile.write(body[start : start + size])
                self.wfile.flush()

        def _held(self, seconds: float) -> bool:
            """Wait up to `seconds` for the client to hang up; True (and recorded) if it did."""
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                readable, _, _ = select.select([self.connection], [], [], left)
                if readable and not _peek(self.connection):
                    server.hangups.append(time.monotonic())
                    self.close_connection = True
                    return True
            return False

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
