"""Flower runs only behind authentication, its Prometheus /metrics included."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from lash_tasks.errors import InvalidEnvironment, MissingDependency
from lash_tasks.worker.flower_launch import flower_arguments


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_credentials_never_go_on_the_command_line() -> None:
    """--basic-auth and --unauthenticated-api are refused: credentials come from the env."""
    env = {"LASH_FLOWER_BASIC_AUTH": "ops:secret"}
    for option in ("--basic-auth=a:b", "--unauthenticated-api"):
        with pytest.raises(InvalidEnvironment, match="LASH_FLOWER_BASIC_AUTH"):
            flower_arguments(env, "127.0.0.1", None, [option])
    with pytest.raises(InvalidEnvironment, match="user:password"):
        flower_arguments({"LASH_FLOWER_BASIC_AUTH": "no-colon"}, "127.0.0.1", None, [])


def test_without_the_extra_flower_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower is an extra: without it the command says which one to install."""
    monkeypatch.setitem(sys.modules, "flower", None)  # as if not installed
    with pytest.raises(MissingDependency, match=r"lash-tasks\[flower\]"):
        flower_arguments({"LASH_FLOWER_BASIC_AUTH": "ops:secret"}, "127.0.0.1", None, [])


@pytest.mark.timeout(90)
def test_flower_metrics_need_the_same_credentials_as_its_pages(tmp_path: Path) -> None:
    """Started by `lash-tasks flower`, Flower answers /metrics with 401 without credentials
    and with the metrics given them; its pages likewise."""
    # Given: Flower on the embedded default, with basic auth
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LASH_", "FLOWER_"))}
    env.update({"LASH_HOME": str(tmp_path), "LASH_FLOWER_BASIC_AUTH": "ops:secret"})
    log = (tmp_path / "flower.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lash_tasks.cli", "flower", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    good = {"Authorization": "Basic " + base64.b64encode(b"ops:secret").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"ops:guess").decode()}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthcheck", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, (tmp_path / "flower.log").read_text()
                assert time.monotonic() < deadline, "Flower did not start"
                time.sleep(0.3)

        # Then
        assert httpx.get(f"{base}/metrics", timeout=5).status_code == 401
        assert httpx.get(f"{base}/metrics", headers=bad, timeout=5).status_code == 401
        allowed = httpx.get(f"{base}/metrics", headers=good, timeout=5)
        assert allowed.status_code == 200
        assert "flower_" in allowed.text
        assert httpx.get(f"{base}/workers", timeout=5).status_code == 401
        # The password is in Flower's environment, never in its command line.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert b"secret" not in cmdline
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()
