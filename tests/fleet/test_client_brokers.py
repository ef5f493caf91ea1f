"""A Client built from explicit settings pokes through its own broker: two clients of two
fleets in one process never poke each other's."""

from __future__ import annotations

from pathlib import Path

import pytest

from lash_tasks.client import Client
from lash_tasks.settings import Settings
from lash_tasks.store.migrate import upgrade
from tests.fleet.harness import Fleet

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(120)]


def test_two_clients_in_one_process_poke_their_own_brokers(fleet: Fleet, tmp_path: Path) -> None:
    """Client A (PostgreSQL + Redis, a real worker) gets its turn answered promptly — no
    beat runs, so only its own poke can have done it; client B (embedded: SQLite and a
    broker folder) leaves its poke in its own folder, and none reaches A's Redis."""
    fleet.start_worker("w1").wait_ready()
    settings_b = Settings.from_env({"LASH_HOME": str(tmp_path / "b")})
    settings_b.ensure_local_dirs()
    upgrade(settings_b.database_url)
    client_a = Client.from_settings(fleet.settings())
    client_b = Client.from_settings(settings_b)
    try:
        client_b.create_session("on-b")
        client_b.enqueue_turn("on-b", "hello b")
        client_a.create_session("on-a")
        answer = client_a.wait_for_input("on-a", client_a.enqueue_turn("on-a", "hello a"), 20)
        assert answer.text == "echo: hello a"
        folder = Path(settings_b.broker_transport_options()["data_folder_in"])
        pokes = [p.read_text() for p in folder.iterdir()]
        assert len(pokes) == 1 and "on-b" in pokes[0] and "on-a" not in pokes[0]
        [waiting] = client_b.session_view("on-b").pending_inputs
        assert client_b.input("on-b", waiting).state == "pending"  # nobody consumes B's folder
        assert fleet.redis().get("lash:poke:on-b") is None
    finally:
        client_a.close()
        client_b.close()
