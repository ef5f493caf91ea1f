"""Apply Alembic migrations (`lash-tasks db upgrade`), check a database is at this build's
revision. Never run at import time."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from lash_tasks.errors import SchemaMissing, SchemaOutdated
from lash_tasks.store.database import explain_database_error

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def require_current_schema(engine: Engine) -> None:
    """Raise unless the database holds this build's schema (`lash-tasks db upgrade` done).

    A database at a revision this build does not know was migrated by a newer build (a
    rolling upgrade): that is accepted, since migrations only ever add.
    """
    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    needed = set(scripts.get_heads())
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except (DBAPIError, SQLAlchemyTimeoutError) as exc:
        raise explain_database_error(exc) from exc
    if not current:
        raise SchemaMissing(
            "the database has no lash-tasks schema yet: run `lash-tasks db upgrade`"
        )
    if current == needed or not all(_known(scripts, rev) for rev in current):
        return
    raise SchemaOutdated(
        f"the database schema is at revision {', '.join(sorted(current))} but this build "
        f"needs {', '.join(sorted(needed))}: run `lash-tasks db upgrade`"
    )


def _known(scripts: ScriptDirectory, revision: str) -> bool:
    try:
        return scripts.get_revision(revision) is not None
    except CommandError:
        return False
