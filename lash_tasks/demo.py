"""`lash-tasks demo`: the embedded default end to end — a real worker process, a session,
a few turns (one uses a tool), answers printed. No servers, no API keys."""

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

DEMO_RULES = [
    {
        "match": "multiply",
        "tool_calls": [{"name": "calculator", "arguments": {"expression": "6 * 7"}}],
    }
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
                "2",
                "-Q",
                "lash.turns,lash.ingress,lash.maintenance",
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
        client.create_session(session_id)
        lines.append(f"session {session_id}")
        for text in (DEMO_INPUTS * ((turns // len(DEMO_INPUTS)) + 1))[:turns]:
            started = time.monotonic()
            input_id = client.enqueue_turn(session_id, text)
            answer = client.wait_for_input(session_id, input_id, timeout=60)
            elapsed = (time.monotonic() - started) * 1000
            lines.append(f"  user: {text}")
            lines.append(f"  agent: {answer.text}   ({elapsed:.0f} ms, {answer.state})")
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
