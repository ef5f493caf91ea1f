"""A worker and a beat run from any directory, with nothing on PYTHONPATH, on our configuration."""

from __future__ import annotations

import pytest

from tests.fleet.harness import Fleet, wait_until

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(150)]

# Another project's Celery modules, first on sys.path for anything started in their directory.
# Were ours replaced by them, the worker would listen to an in-memory broker and beat would
# fire nothing.
FOREIGN_CELERYCONFIG = """
broker_url = "memory://"
task_serializer = "pickle"
accept_content = ["pickle"]
task_default_queue = "their.queue"
beat_schedule = {}
"""
FOREIGN_BEAT_SCHEDULE = "beat_schedule = {}\n"


def test_a_worker_beside_another_projects_celeryconfig_runs_ours(fleet: Fleet) -> None:
    """Started in a directory holding another project's celeryconfig.py and beat_schedule.py,
    with nothing on PYTHONPATH, a worker answers a turn and beat's sweep runs."""
    # Given: the fleet's processes start in its home, which holds the foreign modules.
    (fleet.home / "celeryconfig.py").write_text(FOREIGN_CELERYCONFIG)
    (fleet.home / "beat_schedule.py").write_text(FOREIGN_BEAT_SCHEDULE)
    assert "PYTHONPATH" not in fleet.env()

    # When
    worker = fleet.start_worker("w", concurrency=2)
    beat = fleet.start_beat()
    worker.wait_ready()
    beat.wait_ready()
    client = fleet.client()
    client.create_session("anywhere")
    input_id = client.enqueue_turn("anywhere", "hello")

    # Then
    answer = client.wait_for_input("anywhere", input_id, timeout=60)
    assert (answer.state, answer.text) == ("completed", "echo: hello")
    wait_until(lambda: bool(client.store.maintenance.runs("sweep")), 30, "beat's sweep to run")
    assert worker.alive() and beat.alive()
    client.close()
