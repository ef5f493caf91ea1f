"""`SqlStore`: the one SQL implementation of the store contract, on PostgreSQL or SQLite."""

from __future__ import annotations

from lash_tasks.store.attempts import AttemptsMixin
from lash_tasks.store.commit import CommitMixin
from lash_tasks.store.dialects import make_engine
from lash_tasks.store.heartbeats import HeartbeatsMixin
from lash_tasks.store.inputs import InputsMixin
from lash_tasks.store.journal import JournalMixin
from lash_tasks.store.leases import LeasesMixin
from lash_tasks.store.maintenance import MaintenanceMixin
from lash_tasks.store.maintenance_runs import MaintenanceRunsMixin
from lash_tasks.store.manifest import ManifestMixin
from lash_tasks.store.turns import TurnsMixin


class SqlStore(
    CommitMixin,
    InputsMixin,
    LeasesMixin,
    MaintenanceMixin,
    JournalMixin,
    ManifestMixin,
    TurnsMixin,
    MaintenanceRunsMixin,
    AttemptsMixin,
    HeartbeatsMixin,
):
    """Every store capability over one SQLAlchemy engine. Build one per worker process."""

    @classmethod
    def from_url(cls, url: str) -> SqlStore:
        engine, dialect = make_engine(url)
        return cls(engine, dialect)

    def close(self) -> None:
        self.engine.dispose()
