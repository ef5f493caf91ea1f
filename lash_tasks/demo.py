"""`lash-tasks demo`: the embedded default end to end — a real worker process, a session,
a few turns (one uses a tool, one delegates to a subagent), answers printed. No servers, no
API keys."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

from lash_tasks.client import Client
from lash_tasks.settings import Settings
from lash_tasks.store.migrate import upgrade

SUBAGENT_TASK = "List the three primary colours."
SUBAGENT_ANSWER = "Red, yellow and blue."
DELEGATE = "Please ask a subagent to list the three primary colours."
DEMO_RULES = [
    {
        "match": "multiply",
        "tool_calls": [{"name": "calculator", "arguments": {"expression": "6 * 7"}}],
    },
    # The delegating turn starts a subagent, then waits in short steps: the subagent's
    # answer joins this very turn at its next step, and the final answer uses it.
    {
        "match": "ask a subagent",
        "tool_calls": [{"name": "spawn_subagent", "arguments": {"task": SUBAGENT_TASK}}],
    },
    {"match": SUBAGENT_TASK, "text": SUBAGENT_ANSWER},
    {
        "match": "ask a subagent",
        "repeat_tool": True,
        "tool_calls": [{"name": "sleep_ms", "arguments": {"ms": 250}}],
    },
    {"match": f"] {SUBAGENT_ANSWER}", "text": f"My subagent says: {SUBAGENT_ANSWER}"},
]
DEMO_INPUTS = [
    "Hello! Who are you?",
    "Please multiply six by seven with your calculator.",
    "Thanks, that is all.",
]


def run_demo(settings: Settings, turns: int = 3) -> str:
    upgrade(settings.database_url)
    env = dict(os.environ)
    env.setdefault("LASH_SCRIPTED_RULES", json.dumps(DEMO_RULES))
    env["LASH_HOME"] = str(settings.home)
    log_path = settings.home / "demo-worker.log"
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
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
                "4",
                "-Q",
                "lash.turns,lash.ingress,lash.processes,lash.maintenance",
                "-l",
                "warning",
                "--without-mingle",
                "--without-gossip",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = Client.from_env()
    lines = [f"worker pid {worker.pid}, database {settings.database_url}"]
    try:
        session_id = f"demo-{uuid.uuid4().hex[:8]}"
        client.create_session(session_id, max_turns=100)
        lines.append(f"session {session_id}")
        for text in [*(DEMO_INPUTS * ((turns // len(DEMO_INPUTS)) + 1))[:turns], DELEGATE]:
            started = time.monotonic()
            input_id = client.enqueue_turn(session_id, text)
            answer = client.wait_for_input(session_id, input_id, timeout=60)
            elapsed = (time.monotonic() - started) * 1000
            lines.append(f"  user: {text}")
            lines.append(f"  agent: {answer.text}   ({elapsed:.0f} ms, {answer.state})")
        for process in client.store.processes.for_session(session_id):
            summary = (process.result or {}).get("summary", "")
            lines.append(
                f"  subagent {process.process_id} ({process.status}, session "
                f"{process.process_id}.child): {summary}"
            )
        view = client.session_view(session_id)
        tools = sum(1 for n in view.transcript if n.get("role") == "tool")
        lines.append(
            f"committed revision {view.head_revision}, {len(view.transcript)} nodes, "
            f"{tools} tool result(s); inspect with: lash-tasks show {session_id}"
        )
    finally:
        client.close()
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
    return "\n".join(lines)
