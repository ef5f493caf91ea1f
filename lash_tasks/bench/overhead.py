"""Step overhead and whole-turn latency next to a no-op Celery task on the same worker."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

from lash_tasks.bench.fleet import BenchFleet
from lash_tasks.bench.measure import Timings, alternate
from lash_tasks.client import Client
from lash_tasks.settings import Settings
from lash_tasks.store.records import InputDraft
from lash_tasks.store.store import Store

NOOP_TASK = "celery.accumulate"
STEP_TASK = "lash.session.step"
TIMEOUT_S = 60


def _round_trip(app: Any, name: str, args: tuple[Any, ...]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = app.send_task(name, args=args, queue="lash.turns").get(timeout=TIMEOUT_S)
    return time.perf_counter() - started, result


def step_vs_noop(
    fleet: BenchFleet, rounds: int, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """`lash.session.step` running a one-step turn vs `celery.accumulate`, alternated.

    The input is written before the clock starts; the step's figure is send -> result of a
    task that takes the lease, claims the input, calls the (instant) scripted LLM and commits
    the final commit.
    """
    app = fleet.celery_app()
    store = Store.from_url(fleet.database_url)
    client = Client(store, Settings.from_env(fleet.env()), app)
    sessions = [f"overhead-{i}" for i in range(8)]
    for session_id in sessions:
        client.create_session(session_id)
    cycle = itertools.cycle(sessions)

    def step() -> float:
        session_id = next(cycle)
        store.inputs.enqueue(InputDraft(session_id, uuid.uuid4().hex, {"text": "hello"}))
        seconds, result = _round_trip(app, STEP_TASK, (session_id,))
        if result.get("status") != "finished":
            raise RuntimeError(f"bench step did not finish a turn: {result}")
        return seconds

    def noop() -> float:
        return _round_trip(app, NOOP_TASK, (1,))[0]

    try:
        steps, noops = alternate(step, noop, rounds, progress=progress)
    finally:
        client.close()
    return _ratio_figures("step", steps, noops)


def turn_vs_noop(
    fleet: BenchFleet, rounds: int, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """A whole turn as a user sees it (enqueue -> input completed) vs the no-op task."""
    app = fleet.celery_app()
    client = Client(Store.from_url(fleet.database_url), Settings.from_env(fleet.env()), app)
    sessions = [f"turn-{i}" for i in range(8)]
    for session_id in sessions:
        client.create_session(session_id)
    cycle = itertools.cycle(sessions)

    def turn() -> float:
        session_id = next(cycle)
        started = time.perf_counter()
        input_id = client.enqueue_turn(session_id, "hello")
        answer = client.wait_for_input(session_id, input_id, timeout=TIMEOUT_S, poll=0.001)
        if answer.state != "completed":
            raise RuntimeError(f"bench turn did not complete: {answer}")
        return time.perf_counter() - started

    def noop() -> float:
        return _round_trip(app, NOOP_TASK, (1,))[0]

    try:
        turns, noops = alternate(turn, noop, rounds, progress=progress)
    finally:
        client.close()
    return _ratio_figures("turn", turns, noops)


def _ratio_figures(name: str, measured: Timings, noop: Timings) -> dict[str, Any]:
    return {
        f"{name}_p50_ms": measured.p50_ms,
        f"{name}_p99_ms": measured.p99_ms,
        "noop_p50_ms": noop.p50_ms,
        "noop_p99_ms": noop.p99_ms,
        "ratio_p50": measured.p50_ms / noop.p50_ms,
        "ratio_p99": measured.p99_ms / noop.p99_ms,
        "rounds": len(measured.samples),
    }
