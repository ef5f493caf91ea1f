"""A bounded cache of rebuilt session graphs keyed by (session_id, head_revision).

Correctness never depends on it: a revision that does not match is a miss, and a
miss only costs a reload.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from lash_tasks.machine import SessionGraph


class RuntimeCache:
    def __init__(self, max_sessions: int = 256) -> None:
        self.max_sessions = max_sessions
        self._entries: OrderedDict[str, tuple[int, SessionGraph]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def revision(self, session_id: str) -> int | None:
        """The head revision of the graph held for the session, if any."""
        with self._lock:
            entry = self._entries.get(session_id)
            return None if entry is None else entry[0]

    def get(self, session_id: str, head_revision: int) -> SessionGraph | None:
        with self._lock:
            entry = self._entries.get(session_id)
            if entry is None or entry[0] != head_revision:
                self.misses += 1
                return None
            self._entries.move_to_end(session_id)
            self.hits += 1
            graph = entry[1]
            return graph.copy()

    def put(self, session_id: str, head_revision: int, graph: SessionGraph) -> None:
        if self.max_sessions <= 0:
            return
        with self._lock:
            self._entries[session_id] = (
                head_revision,
                graph.copy(),
            )
            self._entries.move_to_end(session_id)
            while len(self._entries) > self.max_sessions:
                self._entries.popitem(last=False)

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._entries.pop(session_id, None)
