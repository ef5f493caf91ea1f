"""`lash-tasks bench`: the benchmark runs end to end and writes its figures; bad cases fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import require_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASH_")}
    return subprocess.run(
        [sys.executable, "-m", "lash_tasks.cli", "bench", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
        cwd=str(tmp_path),
    )


def test_bench_prints_a_table_and_writes_json_and_a_chart(tmp_path: Path) -> None:
    """The in-process cases run on a scratch PostgreSQL database and report real counts."""
    require_postgres()
    out, chart = tmp_path / "bench.json", tmp_path / "bench.svg"
    result = _bench(
        tmp_path,
        "--quick",
        "--only",
        "database,history",
        "--json-out",
        str(out),
        "--chart",
        str(chart),
    )
    assert result.returncode == 0, result.stderr
    assert "tx per one-step turn" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["database"]["step_transactions"] >= 1
    assert figures["database"]["turn_statements"] > figures["database"]["step_statements"]
    assert figures["history"]["rebuild"]["ratio"] > 0
    assert chart.read_text().startswith("<svg")


def test_bench_rejects_an_unknown_case(tmp_path: Path) -> None:
    """`--only` names cases; an unknown one is a one-line error and exit status 2."""
    result = _bench(tmp_path, "--only", "nope")
    assert result.returncode == 2
    assert "unknown benchmark case" in result.stderr
