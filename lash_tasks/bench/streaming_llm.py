"""A streaming LLM on 127.0.0.1 speaking OpenAI Chat Completions, for the benchmark and tests.

Every answer is `answer(last user text)` (by default `"echo: <text>"`), sent as server-sent
events one word at a time, `delta_delay_s` apart, so a reader can watch a turn stream and a
test can kill a worker mid-answer. The server notes when it wrote each delta
(`time.perf_counter`, one clock with a reader in the same process): the start of the
"provider token → reader" latency. Requests without `"stream": true` get one JSON body.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def echo_answer(user_text: str) -> str:
    return f"echo: {user_text}"


def words(text: str) -> list[str]:
    """The pieces an answer streams in: each word with the space before it."""
    return re.findall(r"\s*\S+|\s+", text)


@dataclass
class StreamedCall:
    """One request the server answered: its body, the deltas written, and when each left
    (`time.perf_counter`)."""

    request: dict[str, Any]
    pieces: list[str] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    finished: bool = False
    broken: bool = False  # the client went away mid-answer


class _QuietServer(ThreadingHTTPServer):
    """A worker that closes its connection (a turn ended, a worker stopped) is no error
    worth a traceback in the benchmark's output."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class StreamingLlmServer:
    def __init__(
        self,
        *,
        delta_delay_s: float = 0.0,
        answer: Callable[[str], str] = echo_answer,
    ) -> None:
        self.delta_delay_s = delta_delay_s
        self.answer = answer
        self.calls: list[StreamedCall] = []
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        """What OPENAI_BASE_URL should say."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def record(self, request: dict[str, Any]) -> StreamedCall:
        call = StreamedCall(request)
        with self._lock:
            self.calls.append(call)
        return call

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StreamingLlmServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _last_user_text(request: dict[str, Any]) -> str:
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-local",
        "object": "chat.completion.chunk",
        "model": "local-stream",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def _handler(server: StreamingLlmServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            call = server.record(request)
            text = server.answer(_last_user_text(request))
            if not request.get("stream"):
                self._whole(text)
                call.finished = True
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                self._write(_chunk({"role": "assistant", "content": ""}))
                for piece in words(text):
                    if server.delta_delay_s:
                        time.sleep(server.delta_delay_s)
                    self._write(_chunk({"content": piece}))
                    call.sent_at.append(time.perf_counter())
                    call.pieces.append(piece)
                self._write(_chunk({}, "stop"))
                usage = {"prompt_tokens": 1, "completion_tokens": len(words(text))}
                self._write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
                self._write(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                call.finished = True
            except OSError:  # the worker died or hung up mid-answer: what some tests want
                call.broken = True
                self.close_connection = True

        def _write(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _whole(self, text: str) -> None:
            body = json.dumps(
                {
                    "id": "chatcmpl-local",
                    "model": "local-stream",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": len(words(text))},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
