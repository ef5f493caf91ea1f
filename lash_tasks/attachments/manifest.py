"""Layer 2 contracts: what the attachment code needs from the session store's manifest.

The store's `Manifest` part (`store.manifest`, see `lash_tasks.store.manifest`) satisfies both;
they are spelled out here so that this package depends on a contract, not on the store package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lash_tasks.attachments.values import OwnerKind


class ManifestEntry(Protocol):
    @property
    def attachment_id(self) -> str: ...

    @property
    def committed_at(self) -> int | None: ...

    @property
    def media_type(self) -> str | None: ...


class AttachmentManifest(Protocol):
    """What a session's attachment facade reads and writes."""

    @property
    def durability_tier(self) -> str: ...

    def record_intent(
        self,
        session_id: str,
        attachment_id: str,
        uri: str,
        owner_kind: OwnerKind | None = None,
        owner_id: str | None = None,
        media_type: str | None = None,
    ) -> None: ...

    def holds_ref(self, session_id: str, attachment_id: str) -> bool: ...

    def row(self, session_id: str, attachment_id: str) -> ManifestEntry | None: ...

    def forget_ref(self, session_id: str, attachment_id: str) -> bool: ...

    def rows(self, session_id: str) -> Sequence[ManifestEntry]: ...


class ManifestRoots(Protocol):
    """What garbage collection asks: which attachments are still referenced, and when."""

    def has_live_ref(self, attachment_id: str, cutoff_ms: int) -> bool: ...

    def live_attachment_ids(self, cutoff_ms: int) -> set[str]: ...

    def forget_dead_intents(self, cutoff_ms: int) -> int: ...

    def now_ms(self) -> int: ...
