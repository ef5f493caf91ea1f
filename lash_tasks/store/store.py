"""`Store`: the one SQL implementation of the store, as one part per area over one `Database`.

    store = Store.from_url("postgresql+psycopg2://...")
    store.sessions.create("s1", policy)
    store.processes.register(ProcessRegistration(...))
    store.inputs.enqueue(InputDraft("s1", "key-1", {"text": "hi"}))
    lease = store.leases.try_claim("s1", owner_id, incarnation_id)

Each part owns its tables' rules and opens its own transactions; none calls another. What
the runtime may use of them is spelled out in `contracts.py`.
"""

from __future__ import annotations

from lash_tasks.store.commits import Commits
from lash_tasks.store.database import Database
from lash_tasks.store.heartbeats import Heartbeats
from lash_tasks.store.inputs import Inputs
from lash_tasks.store.journal import EffectJournal
from lash_tasks.store.leases import Leases
from lash_tasks.store.maintenance import Maintenance
from lash_tasks.store.manifest import Manifest
from lash_tasks.store.processes import Processes
from lash_tasks.store.replies import Replies
from lash_tasks.store.session_events import SessionEvents
from lash_tasks.store.sessions import Sessions
from lash_tasks.store.step_transactions import StepTransactions
from lash_tasks.store.turns import Turns
from lash_tasks.store.work_queue import WorkQueue


class Store:
    """Every store part over one database. Build one per worker process."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.sessions = Sessions(database)
        self.inputs = Inputs(database)
        self.queue = WorkQueue(database)
        self.leases = Leases(database)
        self.heartbeats = Heartbeats(database)
        self.turns = Turns(database)
        # The fenced commit on its own (for tests and the rare commit outside a step).
        self.commits = Commits(database)
        # A turn step's transactions: open, (tools,) close.
        self.steps = StepTransactions(database)
        self.journal = EffectJournal(database)
        self.manifest = Manifest(database)
        self.maintenance = Maintenance(database)
        self.events = SessionEvents(database)
        self.processes = Processes(database)
        # Turn outcomes for callers that asked for them, until published.
        self.replies = Replies(database)

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(Database.from_url(url))

    @property
    def durability_tier(self) -> str:
        return self.database.durability_tier

    def close(self) -> None:
        self.database.close()
