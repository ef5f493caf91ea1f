"""The README's "Running a fleet" commands, exactly as written, work on a fresh machine.

The commands are read from README.md itself, so the test breaks when the README drifts. Only
the values of the exported variables are ours (a scratch PostgreSQL database and a private
Redis); every command line runs verbatim through bash, in an empty working directory.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lash_tasks.store.store import Store
from tests.fleet.harness import REPO, wait_until
from tests.fleet.private_redis import PrivateRedis, free_port
from tests.services import scratch_postgres_database

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(150)]

SECTION = "Running a fleet (PostgreSQL + Redis)"
LONG_RUNNING = {"worker", "beat", "flower"}
# Commands that follow a session until interrupted, like `tail -f`.
FOLLOWING = {"watch"}


def readme_blocks(section: str) -> list[list[str]]:
    """The bash blocks of one README section, as lists of non-empty lines."""
    text = (REPO / "README.md").read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else len(text)]
    blocks = re.findall(r"```bash\n(.*?)```", body, flags=re.DOTALL)
    return [[line for line in block.splitlines() if line.strip()] for block in blocks]


def without_comment(line: str) -> str:
    return re.sub(r"\s+#\s.*$", "", line).strip()


def subcommand(line: str) -> str:
    words = line.split()
    return words[words.index("lash-tasks") + 1]


class Shell:
    """Runs README lines verbatim through bash, each in its own process group."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def run(self, line: str, timeout: float = 60) -> str:
        done = subprocess.run(
            ["bash", "-c", line],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            timeout=timeout,
        )
        output = (done.stdout + done.stderr).decode(errors="replace")
        assert done.returncode == 0, f"`{line}` exited {done.returncode}:\n{output[-3000:]}"
        return output

    def start(self, line: str) -> Path:
        log = self.cwd.parent / f"{subcommand(line)}.log"
        with log.open("ab") as handle:
            popen = subprocess.Popen(
                ["bash", "-c", line],
                cwd=self.cwd,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((line, popen, log))
        return log

    def alive(self, line: str) -> bool:
        return all(p.poll() is None for started, p, _ in self.started if started == line)

    def stop_all(self) -> None:
        for _, popen, _ in reversed(self.started):
            if popen.poll() is None:
                os.killpg(popen.pid, signal.SIGTERM)
                try:
                    popen.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(popen.pid, signal.SIGKILL)
                    popen.wait(timeout=10)


def wait_for_text(shell: Shell, line: str, log: Path, text: str, timeout: float = 40) -> None:
    def seen() -> bool:
        assert shell.alive(line), f"`{line}` exited:\n{log.read_text(errors='replace')[-3000:]}"
        return text in log.read_text(errors="replace")

    wait_until(seen, timeout, f"{text!r} from `{line}`")


def http_status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_readme_fleet_commands_run_as_written(tmp_path: Path, redis_server: PrivateRedis) -> None:
    """db upgrade, worker, beat and Flower start from an empty directory; a turn runs."""
    fleet_block, operate_block = readme_blocks(SECTION)[:2]
    exports = [line for line in fleet_block if line.startswith("export ")]
    commands = [without_comment(line) for line in fleet_block if line not in exports]
    assert [subcommand(c) for c in commands] == ["db", "worker", "beat", "flower"], commands

    with scratch_postgres_database("lash_readme") as database_url:
        # Given: our values for the README's variables (same Redis database numbers), nothing
        # else of ours, and an empty working directory (no LASH_HOME: the default ./.lash).
        ours = {"LASH_DATABASE_URL": database_url}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LASH_", "FLOWER_"))}
        for line in exports:
            name, value = line.removeprefix("export ").split("=", 1)
            if name in ("LASH_BROKER_URL", "LASH_RESULT_BACKEND"):
                ours[name] = redis_server.url.rsplit("/", 1)[0] + "/" + value.rsplit("/", 1)[1]
            assert name in ours, f"the README exports {name}, which this test does not supply"
            env[name] = ours[name]
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["LASH_SWEEP_INTERVAL_S"] = "2"  # beat ticks within the test's patience
        flower_port = free_port()
        env["FLOWER_PORT"] = str(flower_port)  # not 5555: other test runs may hold it
        workdir = tmp_path / "empty"
        workdir.mkdir()
        shell = Shell(workdir, env)
        try:
            # When: each README line runs as written.
            upgrade, worker, beat, flower = commands
            assert "upgraded" in shell.run(upgrade)
            logs = {line: shell.start(line) for line in (worker, beat, flower)}
            wait_for_text(shell, worker, logs[worker], "ready.")
            wait_for_text(shell, beat, logs[beat], "Sending due task lash-sweep")

            # Then: Flower answers, but only with the README's credentials.
            auth = re.search(r"LASH_FLOWER_BASIC_AUTH=(\S+)", flower)
            assert auth is not None, flower
            url = f"http://127.0.0.1:{flower_port}/"
            wait_until(lambda: _answers(shell, flower, url), 40, "Flower to listen")
            assert http_status(url) == 401
            assert http_status(url, "ops:wrong") == 401
            assert http_status(url, auth.group(1)) == 200

            # And: the README's session commands run a turn through that fleet.
            runnable = [without_comment(line) for line in operate_block if "<" not in line]
            outputs = []
            for line in runnable:
                if subcommand(line) in FOLLOWING:
                    # It shows the session's turn so far, then keeps following it.
                    log = shell.start(line)
                    wait_for_text(shell, line, log, "echo: hello", timeout=20)
                    outputs.append(log.read_text(errors="replace"))
                else:
                    outputs.append(shell.run(line))
            assert any("echo: hello" in out for out in outputs), outputs
            store = Store.from_url(database_url)
            try:
                wait_until(lambda: bool(store.maintenance.runs("sweep")), 20, "a sweep to run")
            finally:
                store.close()
            for line in (worker, beat, flower):
                assert shell.alive(line), logs[line].read_text(errors="replace")[-3000:]
        finally:
            shell.stop_all()


def _answers(shell: Shell, line: str, url: str) -> bool:
    assert shell.alive(line), f"`{line}` exited"
    try:
        http_status(url)
    except OSError:
        return False
    return True
