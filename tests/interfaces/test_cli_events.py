"""`lash-tasks watch` and `enqueue --wait`: live events for a person, or one JSON per line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from lash_tasks.attachments import FilesystemBlobStore
from lash_tasks.events.emitter import StepEvents
from lash_tasks.events.publisher import NullEventPublisher, RedisEventPublisher, stream_key
from lash_tasks.runtime.lash_core import LeaseTimings
from lash_tasks.store.records import Lease
from lash_tasks.store.store import Store
from tests.fleet.conftest import REDIS_DB, exclusive_redis_db
from tests.interfaces.test_cli import run_cli
from tests.runtime.conftest import Harness
from tests.services import REDIS_HOST, REDIS_PORT, require_redis
from tests.store_conformance.support import unchanged


@pytest.fixture
def home(tmp_path: Path) -> Path:
    result = run_cli(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    return tmp_path


@pytest.fixture
def redis_env() -> Iterator[dict[str, str]]:
    require_redis()
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    with exclusive_redis_db(REDIS_DB):
        yield {"LASH_REDIS_URL": url}


def open_store(home: Path) -> Store:
    return Store.from_url(f"sqlite:///{home / 'lash.db'}")


def commit_logged_step(home: Path, session_id: str, outcome: dict[str, Any]) -> None:
    """What a wired step driver commits on the embedded default: a tool call and the end."""
    store = open_store(home)
    lease = store.leases.try_claim(session_id, "test", "inc", 30_000)
    assert isinstance(lease, Lease)
    step = StepEvents(NullEventPublisher(), True, session_id, "turn-1", 0)
    step.tool_call_started("c1", "calculator")
    step.tool_call_finished("c1", "calculator", 3)
    records = step.commit_events(1, outcome, ["in-1"])
    store.commits.commit(unchanged(session_id, 0, lease.fence, None, events=records))
    store.close()


def test_watch_prints_the_database_event_log_for_a_person_and_as_json(home: Path) -> None:
    """On the embedded default, watch shows tool calls and the answer; --json prints one
    event per line with db cursors; --cursor resumes after one."""
    assert run_cli(home, "session", "create", "w1").returncode == 0
    commit_logged_step(home, "w1", {"status": "finished", "text": "The answer is 42"})

    human = run_cli(home, "watch", "w1", "--timeout", "1")
    assert human.returncode == 0, human.stderr
    assert human.stdout == (
        "  [tool] calculator ...\n  [tool] calculator done in 3 ms\nThe answer is 42\n[finished]\n"
    )
    lines = run_cli(home, "watch", "w1", "--timeout", "1", "--json").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["cursor"] for e in events] == ["db-1", "db-2", "db-3", "db-4"]
    assert events[-1]["type"] == "turn_finished"
    resumed = run_cli(home, "--json", "watch", "w1", "--cursor", "db-2", "--timeout", "1")
    assert [json.loads(line)["cursor"] for line in resumed.stdout.splitlines()] == [
        "db-3",
        "db-4",
    ]


def test_watch_refuses_a_bad_cursor_with_one_clear_line(home: Path) -> None:
    """A malformed cursor exits 2 with an error naming it, and no traceback."""
    assert run_cli(home, "session", "create", "w2").returncode == 0
    bad = run_cli(home, "watch", "w2", "--cursor", "yesterday")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "error: cursor 'yesterday' is malformed: expected a database cursor like db-42"
    )


@pytest.mark.redis
def test_watch_streams_text_deltas_inline(home: Path, redis_env: dict[str, str]) -> None:
    """With Redis, watch prints the answer's deltas on one line as they come, then the end."""
    sid = f"w-{uuid.uuid4().hex[:8]}"
    publisher = RedisEventPublisher(redis_env["LASH_REDIS_URL"])
    step = StepEvents(publisher, False, sid, "turn-1", 0)
    step.turn_started(["in-1"])
    for piece in ("Hel", "lo ", "world"):
        step.text_delta(piece)
    step.commit_events(1, {"status": "finished", "text": "Hello world"})
    step.committed()
    step.close()
    publisher.close()
    try:
        shown = run_cli(home, "watch", sid, "--timeout", "1", env=redis_env)
    finally:
        redis.Redis.from_url(redis_env["LASH_REDIS_URL"]).delete(stream_key(sid))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "[turn turn-1 started]\nHello world\n[finished]\n"


@pytest.mark.redis
@pytest.mark.timeout(120)
def test_enqueue_wait_streams_the_turn_then_prints_the_answer(
    home: Path, redis_env: dict[str, str]
) -> None:
    """enqueue --wait --json prints each event of the turn as it happens (one per line),
    then the answer confirmed by the database as the last line."""
    sid = f"w-{uuid.uuid4().hex[:8]}"
    assert run_cli(home, "session", "create", sid, env=redis_env).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASH_")}
    env.update(LASH_HOME=str(home), **redis_env)
    waiting = subprocess.Popen(
        [sys.executable, "-m", "lash_tasks.cli", "--json", "enqueue", sid, "hi", "--wait"],
        env=env,
        cwd=str(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = open_store(home)
    publisher = RedisEventPublisher(redis_env["LASH_REDIS_URL"])
    try:
        deadline = time.monotonic() + 60
        while not store.inputs.list_all(sid) and time.monotonic() < deadline:
            time.sleep(0.05)
        (row,) = store.inputs.list_all(sid)
        time.sleep(0.5)  # the waiter is reading the stream by now
        step = StepEvents(publisher, False, sid, "turn-1", 0)
        step.turn_started([row.input_id])
        step.text_delta("done: ")
        harness = Harness(store, FilesystemBlobStore(home / "blobs"), home)
        core, _ = harness.core(lease=LeaseTimings(30_000, 10_000))
        outcome = harness.run_until_settled(core, sid).outcome
        assert outcome is not None
        step.commit_events(1, outcome, [row.input_id])
        step.committed()
        step.close()
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
        publisher.close()
        store.close()
        redis.Redis.from_url(redis_env["LASH_REDIS_URL"]).delete(stream_key(sid))
    assert waiting.returncode == 0, err
    *event_lines, answer_line = out.splitlines()
    types = [json.loads(line)["type"] for line in event_lines]
    assert types == ["turn_started", "text_delta", "step_committed", "turn_finished"]
    answer = json.loads(answer_line)
    assert answer["input_id"] == row.input_id and answer["state"] == "completed"
    assert answer["outcome"]["text"] == outcome["text"]


@pytest.mark.timeout(120)
def test_enqueue_wait_prints_the_answer_when_no_event_showed_it(home: Path) -> None:
    """On the embedded default with no events logged for the turn, enqueue --wait still
    prints the answer from the database, then its state."""
    assert run_cli(home, "session", "create", "w5").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASH_")}
    env["LASH_HOME"] = str(home)
    waiting = subprocess.Popen(
        [sys.executable, "-m", "lash_tasks.cli", "enqueue", "w5", "hi", "--wait"],
        env=env,
        cwd=str(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = open_store(home)
    try:
        deadline = time.monotonic() + 60
        while not store.inputs.list_all("w5") and time.monotonic() < deadline:
            time.sleep(0.05)
        harness = Harness(store, FilesystemBlobStore(home / "blobs"), home)
        core, _ = harness.core(lease=LeaseTimings(30_000, 10_000))
        outcome = harness.run_until_settled(core, "w5").outcome
        assert outcome is not None
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
        store.close()
    assert waiting.returncode == 0, err
    assert out == f"{outcome['text']}\n[completed]\n"
