"""The beat schedule and the slots of maintenance firings come from `Settings`, one source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lash_tasks.settings import Settings
from lash_tasks.worker.beat_schedule import beat_schedule_for, job_intervals_s
from lash_tasks.worker.maintenance import JOBS, current_slot

REPO = Path(__file__).resolve().parents[2]
INTERVALS = {
    "LASH_SWEEP_INTERVAL_S": "7",
    "LASH_TOMBSTONE_ORPHANS_INTERVAL_S": "60",
    "LASH_VACUUM_INTERVAL_S": "120",
    "LASH_RECLAIM_ATTACHMENTS_INTERVAL_S": "180",
    "LASH_PRUNE_PROCESSES_INTERVAL_S": "240",
}


def test_every_job_fires_at_its_interval_from_settings() -> None:
    """LASH_<JOB>_INTERVAL_S sets each job's beat interval and expiry, on the maintenance queue."""
    schedule = beat_schedule_for(Settings.from_env(INTERVALS))
    assert {name: entry["schedule"] for name, entry in schedule.items()} == {
        "lash-sweep": 7.0,
        "lash-tombstone_orphans": 60.0,
        "lash-vacuum": 120.0,
        "lash-reclaim_attachments": 180.0,
        "lash-prune_processes": 240.0,
    }
    for job in JOBS:
        entry = schedule[f"lash-{job}"]
        assert entry["task"] == f"lash.maintenance.{job}"
        assert entry["options"] == {"queue": "lash.maintenance", "expires": entry["schedule"]}


def test_unset_intervals_are_the_documented_defaults() -> None:
    """Unset: sweep 15 s, tombstone 5 min, vacuum, attachment reclaim and pruning 1 h."""
    assert job_intervals_s(Settings.from_env({})) == {
        "sweep": 15,
        "tombstone_orphans": 300,
        "vacuum": 3600,
        "reclaim_attachments": 3600,
        "prune_processes": 3600,
    }


def test_a_firing_slot_follows_the_configured_interval() -> None:
    """A worker puts a firing in the interval-long slot of the same settings beat fires by."""
    settings = Settings.from_env(INTERVALS)
    assert current_slot("vacuum", 1000.5, settings) == "960"
    assert current_slot("sweep", 1000.5, settings) == "994"
    assert current_slot("vacuum", 1000.5, Settings.from_env({})) == "0"


@pytest.mark.parametrize("variable", sorted(INTERVALS))
@pytest.mark.parametrize("value", ["0", "1.5", "hourly"])
def test_a_bad_interval_is_refused_naming_the_variable(variable: str, value: str) -> None:
    """Zero, fractions and words are refused with InvalidEnvironment naming the variable."""
    from lash_tasks.errors import InvalidEnvironment

    with pytest.raises(InvalidEnvironment) as info:
        Settings.from_env({variable: value})
    assert variable in info.value.message


def _entry_point(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LASH_")}
    clean.update(LASH_HOME=str(tmp_path / "home"), **env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,  # the repository's top-level entry points are importable from here only
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_top_level_entry_points_read_the_same_settings(tmp_path: Path) -> None:
    """The repository's beat_schedule.py and celeryconfig.py give the package's values."""
    code = (
        "import json, beat_schedule, celeryconfig; print(json.dumps(["
        "beat_schedule.beat_schedule, celeryconfig.beat_schedule, celeryconfig.task_serializer]))"
    )
    done = _entry_point(code, tmp_path, **INTERVALS)
    assert done.returncode == 0, done.stderr
    top_level, from_config, serializer = json.loads(done.stdout)
    expected = beat_schedule_for(Settings.from_env(INTERVALS))
    assert top_level == from_config == expected
    assert serializer == "json"


def test_the_top_level_beat_schedule_refuses_a_bad_sweep_interval(tmp_path: Path) -> None:
    """`import beat_schedule` with LASH_SWEEP_INTERVAL_S=0 fails naming the variable (it used
    to read the variable itself and schedule a sweep every 0 s)."""
    done = _entry_point("import beat_schedule", tmp_path, LASH_SWEEP_INTERVAL_S="0")
    assert done.returncode != 0
    assert "InvalidEnvironment" in done.stderr
    assert "LASH_SWEEP_INTERVAL_S" in done.stderr
