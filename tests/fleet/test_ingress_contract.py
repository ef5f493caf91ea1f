"""The broker contract from outside: a worker started plainly consumes every lash queue, and
the examples of docs/ingress.md (a plain Celery app, plain kombu) get their input written
and answered by it."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fleet.harness import REPO, CeleryProcess, Fleet, wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(180)]

DOC = REPO / "docs" / "ingress.md"


def doc_examples() -> dict[str, str]:
    """The doc's Python examples, by the heading of their section."""
    text = DOC.read_text()
    examples = {}
    for heading, body in re.findall(r"^## (.+?)\n(.*?)(?=^## |\Z)", text, re.M | re.S):
        blocks = re.findall(r"```python\n(.*?)```", body, re.S)
        if blocks:
            (examples[heading],) = blocks
    return examples


def start_cli_worker(fleet: Fleet, name: str, *options: str) -> CeleryProcess:
    """`lash-tasks worker` as an operator types it: no -Q, Celery options passed through."""
    log = fleet.home / f"{name}.log"
    handle = log.open("ab")
    popen = subprocess.Popen(
        [sys.executable, "-m", "lash_tasks.cli", "worker", "-n", f"{name}@%h", *options],
        env=fleet.env(),
        cwd=str(fleet.home),
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    handle.close()
    proc = CeleryProcess(name, popen, log)
    fleet.processes.append(proc)
    return proc


def run_example(fleet: Fleet, code: str, tmp: Path) -> str:
    script = tmp / "example.py"
    script.write_text(code)
    env = fleet.env(LASH_BROKER_URL=fleet.redis_url, LASH_RESULT_BACKEND=fleet.redis_url)
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        cwd=str(tmp),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_doc_examples_reach_a_plain_worker_through_lash_ingress(
    fleet: Fleet, tmp_path: Path
) -> None:
    """A worker started without -Q (extra Celery options passed through) consumes all four
    lash queues; the Celery-app example creates a session and enqueues, the kombu example
    enqueues; both inputs are written and answered."""
    # Given: a worker as an operator starts it, Celery options passed through
    worker = start_cli_worker(
        fleet, "docs", "-c", "2", "--without-mingle", "--without-gossip", "-E"
    )
    worker.wait_ready()
    assert "-Q" not in " ".join(worker.popen.args)  # type: ignore[arg-type]

    # Then: `celery inspect` sees it consume every lash queue
    inspect = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "lash_tasks.worker.app", "inspect",
         "active_queues", "-d", f"docs@{socket.gethostname()}", "--json", "-t", "10"],
        env=fleet.env(),
        cwd=str(fleet.home),
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert inspect.returncode == 0, inspect.stderr
    [queues] = json.loads(inspect.stdout).values()
    assert {q["name"] for q in queues} == {
        "lash.turns",
        "lash.ingress",
        "lash.processes",
        "lash.maintenance",
    }

    # When: the doc's examples run as written
    examples = doc_examples()
    assert set(examples) == {"From a plain Celery app (another service's own)",
                             "From kombu, without Celery"}  # fmt: skip
    celery_out = run_example(fleet, examples["From a plain Celery app (another service's own)"],
                             tmp_path)  # fmt: skip
    kombu_out = run_example(fleet, examples["From kombu, without Celery"], tmp_path)

    # Then: both inputs are written and answered in order
    assert "'status': 'created'" in celery_out and "'status': 'enqueued'" in celery_out
    assert kombu_out.startswith("sent ")
    client = fleet.client()
    try:
        wait_until(
            lambda: len(client.store.inputs.list_all("order-17")) == 2, 30, "both inputs written"
        )
        rows = client.store.inputs.list_all("order-17")
        assert [r.source_key for r in rows] == ["order-17:q1", "order-17:q2"]
        for row in rows:
            answer = client.wait_for_input("order-17", row.input_id, timeout=60)
            assert answer.state == "completed"
            assert answer.text == f"echo: {row.input['text']}"
        record = client.store.sessions.record("order-17")
        assert record.policy is not None
        assert record.policy.system_prompt == "You answer tersely."

        # And the maintenance queue is served by the same plain worker
        app = fleet.publisher()
        report = app.send_task("lash.maintenance.vacuum", queue="lash.maintenance").get(timeout=30)
        assert report["job"] == "vacuum"
        app.close()
    finally:
        client.close()
