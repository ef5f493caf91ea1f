"""Store conformance: the Alembic-migrated schema equals the SQLAlchemy models, per dialect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from lash_tasks.store.migrate import upgrade
from lash_tasks.store.schema import metadata
from tests.services import scratch_postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each dialect: a new SQLite file or a scratch PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
    else:
        with scratch_postgres_database("lash_mig") as url:
            yield url


def test_migrated_schema_equals_the_models(fresh_url: str) -> None:
    """After `upgrade(url)` autogenerate finds no difference (types included) to the models."""
    upgrade(fresh_url)
    engine = create_engine(fresh_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, metadata)
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert diff == [], diff
    assert set(metadata.tables) <= tables
    assert "alembic_version" in tables


def test_upgrade_is_idempotent(fresh_url: str) -> None:
    """Running `upgrade` twice leaves the schema at head with nothing to change."""
    upgrade(fresh_url)
    upgrade(fresh_url)
    engine = create_engine(fresh_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_upgrade_from_0001_keeps_rows_and_fills_the_new_columns(fresh_url: str) -> None:
    """Rows written under 0001 survive the upgrade to head: nodes get a database-clock
    created_ms, sessions turn_seq 0, and input ids become unique per session."""
    upgrade(fresh_url, "0001")
    engine = create_engine(fresh_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO lash_sessions (session_id, head_revision, config, input_tokens,"
                    " output_tokens, graph_changed_at, created_at, updated_at)"
                    " VALUES ('s1', 1, '{}', 0, 0, 1, 1, 1)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO lash_graph_nodes (session_id, node_id, seq, kind, payload,"
                    " created_at) VALUES ('s1', 'n1', 1, 'message', '{}', '2020-01-01')"
                )
            )
            conn.execute(text(_INPUT_ROW.format(session="s1", key="k1")))
        upgrade(fresh_url)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT turn_seq FROM lash_sessions")).scalar_one() == 0
            created_ms = conn.execute(text("SELECT created_ms FROM lash_graph_nodes")).scalar_one()
            assert created_ms > 1_700_000_000_000  # the upgrade's time, not the ISO string's
            conn.execute(text(_INPUT_ROW.format(session="s2", key="k1")))
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(_INPUT_ROW.format(session="s1", key="k2")))
    finally:
        engine.dispose()


_INPUT_ROW = (
    "INSERT INTO lash_pending_inputs (input_id, session_id, source_key, ingress, state, input,"
    " content_hash, enqueued_at, updated_at)"
    " VALUES ('msg-1', '{session}', '{key}', 'next_turn', 'pending', '{{}}', 'h', 1, 1)"
)
