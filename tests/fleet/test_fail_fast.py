"""A worker with a broken wiring refuses to start with one clear line; a problem only a
turn can discover ends that turn `stopped(...)` with the reason, never "pending" forever."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from lash_tasks.store.migrate import upgrade
from tests.fleet.harness import CeleryProcess, Fleet, wait_until
from tests.runtime._llm_server import ScriptedHttpLlm
from tests.services import scratch_postgres_database

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(120)]

PREFIX = "lash-tasks worker: "


@contextmanager
def _database(revision: str | None) -> Iterator[str]:
    """A scratch database: empty (None) or migrated only up to `revision`."""
    with scratch_postgres_database("lash_ff") as url:
        if revision is not None:
            upgrade(url, revision)
        yield url


BROKEN = {
    "unknown_provider": (
        {"LASH_PROVIDER": "foo"},
        "LASH_PROVIDER 'foo' is not one of: scripted, openai, anthropic",
    ),
    "tool_that_does_not_import": (
        {"LASH_TOOLS": "lash_tasks.tools.builtins:BuiltinTools,no_such_pkg.tools:Tools"},
        "LASH_TOOLS entry 'no_such_pkg.tools:Tools': module 'no_such_pkg' not found",
    ),
    "openai_without_key": (
        {"LASH_PROVIDER": "openai", "OPENAI_API_KEY": ""},
        "OPENAI_API_KEY must be set when LASH_PROVIDER=openai uses the vendor's endpoint",
    ),
    "inline_attachments_for_a_durable_database": (
        {"LASH_ATTACHMENTS_URL": "memory://"},
        "a durable session store cannot use an inline attachment store",
    ),
    "database_without_schema": (
        {"database": "empty"},
        "the database has no lash-tasks schema yet: run `lash-tasks db upgrade`",
    ),
    "database_behind_this_build": (
        {"database": "0001"},
        "the database schema is at revision 0001 but this build needs ",
    ),
}


def _refusal(proc: CeleryProcess, timeout: float = 30) -> tuple[float, list[str]]:
    started = time.monotonic()
    wait_until(lambda: not proc.alive(), timeout, f"{proc.name} to refuse to start", poll=0.1)
    lines = [line for line in proc.log().splitlines() if line.startswith(PREFIX)]
    return time.monotonic() - started, lines


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_worker_with_a_broken_wiring_refuses_to_start(fleet: Fleet, case: str) -> None:
    """The worker process exits non-zero within seconds, never ready, printing one line
    that names the problem."""
    env, expected = BROKEN[case]
    env = dict(env)
    database = env.pop("database", None)
    with _database(None if database == "empty" else database) as url:
        if database is not None:
            env["LASH_DATABASE_URL"] = url
        worker = fleet.start_worker("broken", **env)
        elapsed, lines = _refusal(worker)
    log = worker.log()
    print(f"\n{case}: refused after {elapsed:.1f} s: {lines}")
    assert worker.popen.returncode == 78, log[-2000:]
    assert len(lines) == 1 and lines[0].startswith(PREFIX + expected), log[-2000:]
    assert "ready." not in log and "Traceback" not in log, log[-2000:]


def test_key_rejected_by_an_own_endpoint_stops_the_turn_with_the_reason(fleet: Fleet) -> None:
    """A key-less OpenAI-compatible endpoint lets the worker start; when it answers 401 the
    turn ends stopped(provider_error) naming the status, readable by the caller."""
    llm = ScriptedHttpLlm((401, b'{"error": {"message": "missing bearer token"}}'))
    try:
        worker = fleet.start_worker(
            "own-endpoint",
            LASH_PROVIDER="openai",
            OPENAI_BASE_URL=llm.base_url,
            OPENAI_API_KEY="",
            LASH_MODEL="local-model",
        )
        worker.wait_ready()
        client = fleet.client()
        client.create_session("s1", provider="openai", model="local-model")
        input_id = client.enqueue_turn("s1", "hello")
        answer = client.wait_for_input("s1", input_id, timeout=30)
    finally:
        llm.stop()
    assert answer.state == "completed"
    assert answer.outcome is not None, "the turn left no recorded outcome"
    assert (answer.outcome["status"], answer.outcome["reason"]) == ("stopped", "provider_error")
    assert "401" in answer.text, answer.outcome
    assert len(llm.requests) == 1
    assert client.store.turns.active("s1") is None
    client.close()
