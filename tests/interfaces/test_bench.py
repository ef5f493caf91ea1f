"""`lash-tasks bench`: the benchmark runs end to end and writes its figures; bad cases fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fleet.conftest import REDIS_DB, exclusive_redis_db
from tests.services import REDIS_HOST, REDIS_PORT, require_postgres, require_redis

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]


def _bench(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASH_")}
    env.update(extra)
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


@pytest.mark.redis
def test_bench_measures_token_to_reader_latency(tmp_path: Path) -> None:
    """The `events` case streams answers through a real worker and reports the latency from
    the LLM server writing a token to a live reader holding it, against the 20 ms target."""
    require_postgres()
    require_redis()
    import redis

    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    out = tmp_path / "bench.json"
    with exclusive_redis_db(REDIS_DB):
        redis.Redis.from_url(url).flushdb()
        result = _bench(
            tmp_path,
            "--quick",
            "--only",
            "events",
            "--json-out",
            str(out),
            LASH_BENCH_REDIS_URL=url,
        )
    assert result.returncode == 0, result.stderr
    assert "token -> reader p50" in result.stdout
    figures = json.loads(out.read_text())["events"]
    assert figures["turns"] == 8 and figures["deltas"] >= 8 * 3
    assert 0 < figures["delta_p50_ms"] < figures["target_ms"] == 20
