"""A throw-away fleet for one benchmark run: a scratch database, real worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from lash_tasks.errors import InvalidEnvironment
from lash_tasks.store.migrate import upgrade

PG_ADMIN_URL = os.environ.get(
    "LASH_BENCH_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("LASH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
QUEUES = "lash.turns,lash.ingress,lash.processes,lash.maintenance"


@contextmanager
def scratch_postgres() -> Iterator[str]:
    """A fresh PostgreSQL database for one run, migrated, dropped afterwards."""
    name = f"lash_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def scratch_sqlite(home: Path) -> Iterator[str]:
    url = f"sqlite:///{home / 'bench.db'}"
    upgrade(url)
    yield url


@dataclass
class Worker:
    popen: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


@dataclass
class BenchFleet:
    """Worker processes of one benchmark case, all on the same database and broker."""

    database_url: str
    broker_url: str
    home: Path
    embedded: bool
    workers: list[Worker] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LASH_")}
        env.update(
            {
                "LASH_HOME": str(self.home),
                "LASH_DATABASE_URL": self.database_url,
                "LASH_ATTACHMENTS_URL": (self.home / "attachments").as_uri(),
                "LASH_PROVIDER": "scripted",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if not self.embedded:
            env.update(
                {
                    "LASH_BROKER_URL": self.broker_url,
                    "LASH_RESULT_BACKEND": self.broker_url,
                    "LASH_REDIS_URL": self.broker_url,
                }
            )
        env.update(extra)
        return env

    def start_workers(self, count: int, concurrency: int, **env: str) -> None:
        for index in range(count):
            log_path = self.home / f"worker-{len(self.workers)}.log"
            with log_path.open("ab") as log:
                popen = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "lash_tasks.worker.app",
                        "worker",
                        "-P",
                        "threads",
                        "-c",
                        str(concurrency),
                        "-Q",
                        QUEUES,
                        "-n",
                        f"bench{len(self.workers)}-{index}@%h",
                        "--without-mingle",
                        "--without-gossip",
                        "-l",
                        "info",
                    ],
                    env=self.env(**env),
                    cwd=str(self.home),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self.workers.append(Worker(popen, log_path))
        for worker in self.workers:
            _wait_ready(worker)

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

    def celery_app(self) -> Any:
        """The fleet's own Celery app, configured from the same settings as the workers."""
        from celery import Celery

        from lash_tasks.settings import Settings

        settings = Settings.from_env(self.env())
        app = Celery("lash-bench", broker=settings.broker_url, backend=settings.result_backend)
        app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            result_serializer="json",
            broker_transport_options=settings.broker_transport_options(),
        )
        return app


def _wait_ready(worker: Worker, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "ready." in worker.log_path.read_text(errors="replace"):
            return
        if worker.popen.poll() is not None:
            raise RuntimeError(f"bench worker exited: {worker.log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    raise TimeoutError(f"bench worker not ready after {timeout} s")


@contextmanager
def bench_fleet(embedded: bool) -> Iterator[BenchFleet]:
    """A scratch database (PostgreSQL, or SQLite with --embedded) and an empty broker."""
    with tempfile.TemporaryDirectory(prefix="lash-bench-") as tmp:
        home = Path(tmp)
        if embedded:
            with scratch_sqlite(home) as url:
                fleet = BenchFleet(url, "filesystem://", home, embedded=True)
                try:
                    yield fleet
                finally:
                    fleet.stop_workers()
            return
        client = _empty_redis(REDIS_URL)
        with scratch_postgres() as url:
            fleet = BenchFleet(url, REDIS_URL, home, embedded=False)
            try:
                yield fleet
            finally:
                fleet.stop_workers()
                client.flushdb()


def _empty_redis(url: str) -> Any:
    import redis

    client = redis.Redis.from_url(url)
    if client.dbsize():
        raise InvalidEnvironment(
            f"the benchmark needs an empty Redis database and {url} holds keys; point "
            "LASH_BENCH_REDIS_URL at an unused one",
            variable="LASH_BENCH_REDIS_URL",
        )
    return client
