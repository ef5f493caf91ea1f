"""Bad process pokes on a real worker: a malformed process id is rejected loudly (FAILURE,
never retried) and an unknown one is a logged no-op; neither writes anything."""

from __future__ import annotations

import pytest

from tests.fleet.harness import Fleet
from tests.fleet.test_bad_messages import assert_rejected

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(120)]


def test_bad_process_pokes_are_rejected_or_ignored_and_write_nothing(fleet: Fleet) -> None:
    """Non-string and malformed process ids: FAILURE with MessageRejected naming the field;
    an id nobody registered: SUCCESS `unknown`; no process row appears."""
    worker = fleet.start_worker("w0", concurrency=2)
    worker.wait_ready()
    client = fleet.client()
    app = fleet.publisher()

    for process_id in (123, "", "../etc/passwd"):
        sent = app.send_task("lash.process.run", (process_id,), queue="lash.processes")
        reason = assert_rejected(fleet, worker, sent)
        assert reason.startswith(f"lash.process.run({process_id!r}) rejected"), reason
        assert "process_id" in reason

    unknown = app.send_task("lash.process.run", ("proc_nobody",), queue="lash.processes")
    assert unknown.get(timeout=30)["status"] == "unknown"
    assert "poke for unknown process proc_nobody" in worker.log()
    assert client.store.maintenance.count_rows("lash_processes") == 0
    assert worker.alive()
    client.close()
