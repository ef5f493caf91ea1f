"""Real fleet parts for tests: Celery worker and beat processes against Redis and PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from lash_tasks.client import Client
from lash_tasks.settings import Settings
from lash_tasks.store.store import Store

REPO = Path(__file__).resolve().parents[2]
# For fleets whose workers load test-only modules (`LASH_TOOLS=tests.tools...`); a worker of
# lash-tasks itself needs nothing on PYTHONPATH.
TESTS_ON_PATH = {"PYTHONPATH": str(REPO)}


@dataclass
class Fleet:
    """One isolated fleet: its own database, its own Redis database, its own folders."""

    database_url: str
    redis_url: str
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[CeleryProcess] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        # Nothing of ours on PYTHONPATH: workers find lash_tasks as installed, as in production.
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("LASH_") and k != "PYTHONPATH"
        }
        env.update(
            {
                "LASH_HOME": str(self.home),
                "LASH_DATABASE_URL": self.database_url,
                "LASH_BROKER_URL": self.redis_url,
                "LASH_RESULT_BACKEND": self.redis_url,
                "LASH_REDIS_URL": self.redis_url,
                "LASH_ATTACHMENTS_URL": (self.home / "attachments").as_uri(),
                "LASH_PROVIDER": "scripted",
                "LASH_SCRIPTED_CALL_LOG": str(self.call_log),
                "LASH_LEASE_TTL_MS": "3000",
                "LASH_LEASE_RENEW_MS": "1000",
                "LASH_SWEEP_INTERVAL_S": "2",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        env.update(overrides)
        return env

    @property
    def call_log(self) -> Path:
        return self.home / "llm-calls.jsonl"

    def settings(self) -> Settings:
        return Settings.from_env(self.env())

    def publisher(self) -> Celery:
        """A JSON-only Celery app that only publishes, configured like the fleet."""
        app = Celery("lash-tests", broker=self.redis_url, backend=self.redis_url)
        app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            result_serializer="json",
            task_routes={
                "lash.ingress.*": {"queue": "lash.ingress"},
                "lash.session.*": {"queue": "lash.turns"},
                "lash.maintenance.*": {"queue": "lash.maintenance"},
            },
        )
        return app

    def client(self) -> Client:
        return Client(Store.from_url(self.database_url), self.settings(), self.publisher())

    def redis(self) -> redis.Redis[bytes]:
        return redis.Redis.from_url(self.redis_url)

    def start_worker(
        self,
        name: str,
        *,
        concurrency: int = 4,
        pool: str = "threads",
        queues: str = "lash.turns,lash.ingress,lash.processes,lash.maintenance",
        log_name: str | None = None,
        **env: str,
    ) -> CeleryProcess:
        args = [
            "worker",
            "-Q",
            queues,
            "-P",
            pool,
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "info",
        ]
        log = self.home / f"{log_name or name}.log"
        proc = CeleryProcess.start(name, args, self.env(**env), log, cwd=self.home)
        self.processes.append(proc)
        return proc

    def start_beat(self, name: str = "beat", **env: str) -> CeleryProcess:
        schedule = self.home / f"{name}-schedule"
        args = ["beat", "-s", str(schedule), "-l", "info"]
        log = self.home / f"{name}.log"
        proc = CeleryProcess.start(name, args, self.env(**env), log, cwd=self.home)
        self.processes.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.processes:
            proc.stop()

    def queue_length(self, queue: str = "lash.turns") -> int:
        """Messages waiting in one broker queue (kombu keeps each queue as a Redis list)."""
        return int(self.redis().llen(queue))

    def task_results(self) -> list[dict[str, Any]]:
        """Every task result the Redis result backend holds, with its task id."""
        import json

        client = self.redis()
        out = []
        for key in client.scan_iter(match="celery-task-meta-*", count=500):
            raw = client.get(key)
            if raw is not None:
                out.append(json.loads(raw))
        return out

    def live_leases(self, store: Store, session_ids: Iterable[str]) -> list[str]:
        """Sessions whose lease has an owner and has not expired by the database clock."""
        now = store.database.db_now_ms()
        live = []
        for sid in session_ids:
            owner, _, expires = store.leases.state(sid)
            if owner is not None and expires is not None and expires > now:
                live.append(sid)
        return live


@dataclass
class CeleryProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls, name: str, args: list[str], env: dict[str, str], log: Path, cwd: Path
    ) -> CeleryProcess:
        """Start `celery -A lash_tasks.worker.app ARGS` in `cwd` (the fleet's home, far from
        the repository: `python -m` puts the working directory first on sys.path)."""
        handle = log.open("ab")
        popen = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "lash_tasks.worker.app", *args],
            env=env,
            cwd=str(cwd),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        return cls(name, popen, log)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def owner_id(self) -> str:
        """The lease owner id of a threads-pool worker: its Celery node name (`-n name@%h`)."""
        return f"{self.name}@{socket.gethostname()}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        if not self.alive():
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if "ready." in text or "beat: Starting" in text:
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{text[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log()[-3000:]}")


def calc_rules(delay_ms: int = 0, match: str = "calc") -> str:
    """LASH_SCRIPTED_RULES: inputs containing `match` call the calculator (6*7), then
    the default answer "done: 42" ends the turn: two steps, two LLM calls per turn."""
    import json

    rule: dict[str, Any] = {
        "match": match,
        "tool_calls": [{"name": "calculator", "arguments": {"expression": "6*7"}}],
    }
    if delay_ms:
        rule["delay_ms"] = delay_ms
    return json.dumps([rule])


def calc_transcript(texts: Iterable[str]) -> list[tuple[str, str]]:
    """The committed transcript of `calc_rules` turns, one per input text, in order."""
    expected: list[tuple[str, str]] = []
    for text in texts:
        expected += [("user", text), ("assistant", ""), ("tool", "42"), ("assistant", "done: 42")]
    return expected


def wait_until(check: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def transcript_pairs(client: Client, session_id: str) -> list[tuple[str, str]]:
    """(role, text) of the committed active path, tool messages included."""
    view = client.session_view(session_id)
    return [
        (str(n.get("role")), str(n.get("text", "")))
        for n in view.transcript
        if n["kind"] == "message"
    ]


def all_inputs_done(client: Client, session_ids: Iterable[str]) -> bool:
    return all(
        row.state in ("completed", "cancelled")
        for sid in session_ids
        for row in client.store.inputs.list_all(sid)
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    import json

    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
