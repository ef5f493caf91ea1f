"""Store conformance: the Alembic-migrated schema equals the SQLAlchemy models, per dialect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

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
