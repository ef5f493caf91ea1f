"""Layer 2 contract: what the attachment code needs from the session store's manifest.

`SqlStore` satisfies it (see `lash_tasks.store.manifest`); it is spelled out here so that this
package depends on a contract, not on the store package.
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

    def manifest_row(self, session_id: str, attachment_id: str) -> ManifestEntry | None: ...

    def forget_ref(self, session_id: str, attachment_id: str) -> bool: ...

    def manifest_rows(self, session_id: str) -> Sequence[ManifestEntry]: ...

    def has_live_ref(self, attachment_id: str, cutoff_ms: int) -> bool: ...

    def live_attachment_ids(self, cutoff_ms: int) -> set[str]: ...

    def forget_dead_intents(self, cutoff_ms: int) -> int: ...

    def manifest_now_ms(self) -> int: ...
