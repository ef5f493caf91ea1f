"""The CLI as an operator meets it: --version, help on everything, input text from stdin or
a file, exit statuses, Celery options passed through, the ingress schemas."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lash_tasks.cli import _parser
from lash_tasks.ingress.contract import INGRESS_TASKS
from lash_tasks.store.store import Store
from tests.interfaces.test_cli import run_cli


@pytest.fixture
def home(tmp_path: Path) -> Path:
    assert run_cli(tmp_path, "db", "upgrade").returncode == 0
    assert run_cli(tmp_path, "session", "create", "s1").returncode == 0
    return tmp_path


def _inputs(home: Path) -> list[Any]:
    store = Store.from_url(f"sqlite:///{home / 'lash.db'}")
    try:
        return [row.input["text"] for row in store.inputs.list_all("s1")]
    finally:
        store.close()


def _commands(parser: argparse.ArgumentParser, path: str = "lash-tasks") -> list[Any]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _commands(child, f"{path} {name}")
    return found


def test_version_prints_the_installed_version() -> None:
    """`--version` prints the package version and exits 0."""
    from importlib.metadata import version

    done = subprocess.run(
        [sys.executable, "-m", "lash_tasks.cli", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"lash-tasks {version('lash-tasks')}"


def test_every_command_and_option_has_help() -> None:
    """Each command has a description and each of its options and arguments a help text."""
    for path, parser in _commands(_parser()):
        if path != "lash-tasks":
            assert parser.description, f"{path} has no description"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{path} {choice.dest} has no help"
            elif not isinstance(action, argparse._HelpAction):
                assert action.help, f"{path} {'/'.join(action.option_strings) or action.dest}"


def test_help_runs_for_every_command(home: Path) -> None:
    """`COMMAND --help` exits 0 for every command, through a subprocess."""
    for path, _ in _commands(_parser()):
        words = path.split()[1:]
        done = run_cli(home, *words, "--help")
        assert done.returncode == 0, (path, done.stderr)
        assert "usage: " in done.stdout


def test_enqueue_reads_the_text_from_stdin(home: Path) -> None:
    """`enqueue S -` takes the text from standard input, as it is."""
    text = "line one\nline two ünïcode\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASH_")}
    done = subprocess.run(
        [sys.executable, "-m", "lash_tasks.cli", "--json", "enqueue", "s1", "-"],
        input=text,
        env={**env, "LASH_HOME": str(home)},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "pending"
    assert _inputs(home) == [text]


def test_enqueue_reads_a_large_text_from_a_file(home: Path) -> None:
    """`--file` carries a text far beyond what argv allows (300 KB)."""
    text = "x" * 300_000
    (home / "long.txt").write_text(text)
    done = run_cli(home, "--json", "enqueue", "s1", "--file", "long.txt")
    assert done.returncode == 0, done.stderr
    assert _inputs(home) == [text]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ((), "text"),
        (("both", "--file", "long.txt"), "text"),
        (("--file", "missing.txt"), "missing.txt"),
        (("--file", "binary.bin"), "binary.bin"),
    ],
)
def test_enqueue_without_exactly_one_text_source_is_refused(
    home: Path, args: tuple[str, ...], named: str
) -> None:
    """No text, two sources, a missing or non-UTF-8 file: one error line naming it, exit 2,
    nothing written."""
    (home / "long.txt").write_text("hi")
    (home / "binary.bin").write_bytes(b"\xff\xfe\x00bad")
    done = run_cli(home, "enqueue", "s1", *args)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and named in done.stderr
    assert "Traceback" not in done.stderr
    assert _inputs(home) == []


def test_cancel_of_an_unknown_input_exits_1(home: Path) -> None:
    """A `not_found` outcome is printed and exits 1; a real cancel exits 0."""
    missing = run_cli(home, "--json", "cancel", "s1", "in_nope")
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["outcome"] == "not_found"
    input_id = json.loads(run_cli(home, "--json", "enqueue", "s1", "hi").stdout)["input_id"]
    done = run_cli(home, "--json", "cancel", "s1", input_id)
    assert done.returncode == 0
    assert json.loads(done.stdout)["outcome"] == "cancelled"


def test_unknown_options_are_refused_outside_celery_commands(home: Path) -> None:
    """Only worker, beat and flower pass options on; elsewhere an unknown option is exit 2."""
    done = run_cli(home, "show", "s1", "--autoscale", "3,1")
    assert done.returncode == 2
    assert "unrecognized arguments: --autoscale 3,1" in done.stderr


def test_worker_and_beat_pass_celery_options_through() -> None:
    """Options lash-tasks does not define reach Celery unchanged, after its own."""
    parser = _parser()
    args, extra = parser.parse_known_args(
        ["worker", "-P", "prefork", "--autoscale", "10,2", "--without-mingle", "-E", "-c", "3"]
    )
    assert (args.pool, args.concurrency, args.queues) == ("prefork", 3, None)
    assert extra == ["--autoscale", "10,2", "--without-mingle", "-E"]
    args, extra = parser.parse_known_args(["beat", "-s", "/tmp/s", "--max-interval", "5"])
    assert args.schedule == "/tmp/s"
    assert extra == ["--max-interval", "5"]


def test_schema_prints_each_ingress_payload_schema(home: Path) -> None:
    """`schema` prints every ingress task's JSON Schema; `schema TASK` one; unknown: exit 2."""
    every = json.loads(run_cli(home, "--json", "schema").stdout)
    assert set(every) == set(INGRESS_TASKS)
    one = json.loads(run_cli(home, "--json", "schema", "lash.ingress.enqueue_turn").stdout)
    assert one == every["lash.ingress.enqueue_turn"]
    assert one["x-lash-queue"] == "lash.ingress"
    assert set(one["required"]) == {"session_id", "text"}
    assert one["additionalProperties"] is False
    unknown = run_cli(home, "schema", "lash.ingress.nope")
    assert unknown.returncode == 2 and "task" in unknown.stderr
