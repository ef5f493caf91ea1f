"""The `lash-tasks` CLI on the embedded default: db upgrade, sessions, clear errors, --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lash_tasks.store.store import Store


def run_cli(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LASH_")}
    full_env["LASH_HOME"] = str(home)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "lash_tasks.cli", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(home),
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    result = run_cli(tmp_path, "--json", "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "upgraded"
    return tmp_path


def test_session_lifecycle_from_the_shell(home: Path) -> None:
    """create → enqueue → show → cancel → delete, each with machine-readable output."""
    created = run_cli(home, "--json", "session", "create", "cli-1")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout) == {"session_id": "cli-1"}
    enqueued = run_cli(home, "--json", "enqueue", "cli-1", "hello")
    assert enqueued.returncode == 0, enqueued.stderr
    input_id = json.loads(enqueued.stdout)["input_id"]
    shown = json.loads(run_cli(home, "--json", "show", "cli-1").stdout)
    assert shown["pending_inputs"] == [input_id]
    cancelled = json.loads(run_cli(home, "--json", "cancel", "cli-1", input_id).stdout)
    assert cancelled["outcome"] == "cancelled"
    again = json.loads(run_cli(home, "--json", "cancel", "cli-1", input_id).stdout)
    assert again["outcome"] == "already_cancelled"
    status = json.loads(run_cli(home, "--json", "status").stdout)
    assert status["sessions"] == 1
    assert status["processes"]["running"] == 0 and status["processes"]["abandoned"] == 0
    assert shown["processes"] == [] and shown["children"] == []
    tree = json.loads(run_cli(home, "--json", "show", "--tree", "cli-1").stdout)
    assert tree == {"tree": ["cli-1"]}
    deleted = json.loads(run_cli(home, "--json", "delete", "cli-1").stdout)
    assert deleted == {
        "session_id": "cli-1",
        "deleted": True,
        "orphaned_process_ids": [],
        "revoked_grants": 0,
        "cleared_wakes": 0,
    }


def test_enqueue_attaches_files(home: Path) -> None:
    """--attach puts each file for the session (type from its name) and names it in the input;
    an unreadable file is one clear error and enqueues nothing."""
    assert run_cli(home, "session", "create", "cli-1").returncode == 0
    (home / "pixel.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    enqueued = run_cli(home, "--json", "enqueue", "cli-1", "look", "--attach", "pixel.png")
    assert enqueued.returncode == 0, enqueued.stderr
    input_id = json.loads(enqueued.stdout)["input_id"]
    store = Store.from_url(f"sqlite:///{home / 'lash.db'}")
    try:
        [row] = store.manifest.rows("cli-1")
        assert (row.media_type, row.owner_kind, row.owner_id) == ("image/png", "input", input_id)
        assert store.inputs.get("cli-1", input_id).input["attachments"] == [row.attachment_id]  # type: ignore[union-attr]
        missing = run_cli(home, "enqueue", "cli-1", "look", "--attach", "nope.png")
        assert missing.returncode == 2
        assert "nope.png" in missing.stderr and "Traceback" not in missing.stderr
        assert len(store.inputs.list_all("cli-1")) == 1
    finally:
        store.close()


def test_errors_are_one_clear_line_and_exit_2(home: Path) -> None:
    """Unknown sessions and bad ids give a typed error message, not a traceback."""
    missing = run_cli(home, "show", "nope")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: session 'nope' does not exist"
    bad = run_cli(home, "--json", "enqueue", "bad id!", "hi")
    assert bad.returncode == 2
    error = json.loads(bad.stderr)["error"]
    assert error["code"] == "validation_error"
    assert "session_id" in error["message"]


def test_flower_refuses_to_start_without_authentication(home: Path) -> None:
    """Flower shows task arguments, so it never starts without basic auth."""
    result = run_cli(home, "flower")
    assert result.returncode == 2
    assert "LASH_FLOWER_BASIC_AUTH" in result.stderr


def test_maintenance_job_runs_and_reports(home: Path) -> None:
    """`maintenance vacuum` runs in-process and prints its report."""
    result = run_cli(home, "--json", "maintenance", "vacuum")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["job"] == "vacuum"
    assert report["removed_nodes"] == 0


@pytest.mark.timeout(120)
def test_demo_runs_a_real_worker_on_the_embedded_default(tmp_path: Path) -> None:
    """`lash-tasks demo` needs no servers: a worker process answers three turns, one via a
    tool, then a turn that delegates to one subagent and answers with its result."""
    result = run_cli(tmp_path, "demo")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "agent: echo: Hello! Who are you?" in result.stdout
    assert "agent: done: 42" in result.stdout
    assert "agent: My subagent says: Red, yellow and blue." in result.stdout
    (subagent,) = [line for line in result.stdout.splitlines() if "subagent proc_" in line]
    assert "(completed, session proc_" in subagent
    assert subagent.endswith(".child): Red, yellow and blue.")


def test_an_unmigrated_database_says_to_run_db_upgrade(tmp_path: Path) -> None:
    """Before `db upgrade`, commands explain what to do instead of printing a traceback."""
    result = run_cli(tmp_path, "status", "--json")
    assert result.returncode == 2
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "schema_missing"
    assert "lash-tasks db upgrade" in error["message"]


def test_sessions_input_status_and_show_from_the_shell(home: Path) -> None:
    """`sessions` lists with filters, `input` shows one input, `status` counts only what is
    still pending, `session create` takes the provider and tools."""
    created = run_cli(
        home, "session", "create", "a", "--provider", "scripted", "--tool", "calculator"
    )
    assert created.returncode == 0, created.stderr
    assert run_cli(home, "session", "create", "b").returncode == 0
    input_id = json.loads(run_cli(home, "--json", "enqueue", "b", "hello").stdout)["input_id"]
    dropped = json.loads(run_cli(home, "--json", "enqueue", "b", "never mind").stdout)
    assert run_cli(home, "cancel", "b", dropped["input_id"]).returncode == 0

    listed = json.loads(run_cli(home, "--json", "sessions").stdout)
    assert [(s["session_id"], s["activity"]) for s in listed] == [("a", "idle"), ("b", "waiting")]
    waiting = json.loads(run_cli(home, "--json", "sessions", "--state", "waiting").stdout)
    assert [s["session_id"] for s in waiting] == ["b"]
    assert "b  waiting  pending 1" in run_cli(home, "sessions", "--limit", "5").stdout

    shown = json.loads(run_cli(home, "--json", "input", "b", input_id).stdout)
    assert (shown["text"], shown["state"], shown["outcome"]) == ("hello", "pending", None)
    status = json.loads(run_cli(home, "--json", "status").stdout)
    assert (status["sessions"], status["pending_inputs"]) == (2, 1)
    view = json.loads(run_cli(home, "--json", "show", "a").stdout)
    assert (view["provider"], view["tools"], view["active_turn"]) == (
        "scripted",
        ["calculator"],
        None,
    )


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("sessions", "--limit", "0"), "limit"),
        (("input", "b", "in_nope"), "in_nope"),
        (("session", "create", "c", "--provider", "gemini"), "provider"),
        (("session", "create", "c", "--tool", "nope"), "tools"),
        (("enqueue", "b", "hi", "--branch-from", "nowhere"), "branch_from"),
    ],
)
def test_bad_values_exit_non_zero_naming_the_field(
    home: Path, args: tuple[str, ...], field: str
) -> None:
    assert run_cli(home, "session", "create", "b").returncode == 0
    done = run_cli(home, *args)
    assert done.returncode == 2, done.stdout
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and field in line
    assert "Traceback" not in done.stderr
    store = Store.from_url(f"sqlite:///{home / 'lash.db'}")
    try:
        assert store.maintenance.count_rows("lash_sessions") == 1
        assert store.maintenance.count_rows("lash_pending_inputs") == 0
    finally:
        store.close()
