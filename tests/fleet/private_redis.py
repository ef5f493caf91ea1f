"""A redis-server of the test's own, on a free port: the one Redis a test may stop and restart.

The machine's shared Redis on 6379 is never touched; this server is started, stopped and
restarted by its pid only, on the same port, so clients that knew it reconnect to it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.services import unavailable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """One redis-server without persistence: a restart loses every message, like a crash."""

    def __init__(self, folder: Path) -> None:
        if shutil.which("redis-server") is None:
            unavailable("redis-server (to run a private Redis)")
        self.folder = folder
        self.port = free_port()
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        assert self.popen is None, "already running"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        log = (self.folder / "redis-server.log").open("ab")
        self.popen = subprocess.Popen(
            ["redis-server", *args, "--dir", str(self.folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                pytest.fail(f"redis-server on port {self.port} exited at start", pytrace=False)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        pytest.fail(f"redis-server on port {self.port} did not listen", pytrace=False)

    def stop(self) -> None:
        """SIGTERM and wait, by pid: the port is free again when this returns."""
        if self.popen is None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)
        self.popen = None
