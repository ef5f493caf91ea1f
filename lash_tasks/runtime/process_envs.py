"""Process-environment stores: where background processes find the environment to rebuild
their runtime from. Each store (a "facet" of the host) declares its durability tier.

The builder refuses to wire a durable store to an inline peer: a crash would keep
one half of the state and lose the other.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Protocol

from lash_tasks.attachments.blobs import BlobStore
from lash_tasks.attachments.manifest import AttachmentManifest
from lash_tasks.attachments.session_store import attachments_for
from lash_tasks.errors import NotFound


class Facet(Protocol):
    durability_tier: str


class ProcessEnvStore(Protocol):
    """Captured environments that background processes rebuild their runtime from. An
    environment belongs to the session that started the process, and is owned by the
    process: it stays as long as the session holds it."""

    durability_tier: str

    def put_env(self, session_id: str, process_id: str, env: dict[str, Any]) -> str: ...

    def get_env(self, session_id: str, ref: str) -> dict[str, Any]: ...


def _env_ref(env: dict[str, Any]) -> str:
    data = json.dumps(env, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()


class InlineProcessEnvStore:
    """Environments in process memory: lost with the process."""

    durability_tier = "inline"

    def __init__(self) -> None:
        self._envs: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def put_env(self, session_id: str, process_id: str, env: dict[str, Any]) -> str:
        ref = _env_ref(env)
        with self._lock:
            self._envs[(session_id, ref)] = env
        return ref

    def get_env(self, session_id: str, ref: str) -> dict[str, Any]:
        with self._lock:
            if (session_id, ref) not in self._envs:
                raise NotFound(f"session {session_id!r} has no process environment {ref!r}")
            return self._envs[(session_id, ref)]


class BlobProcessEnvStore:
    """Environments as JSON blobs written through the session's attachment facade: the
    manifest records each one (owned by its process, stamped when the process completes)
    before its bytes land, so attachment GC keeps it for as long as the session holds it.
    As durable as the blob store."""

    def __init__(self, manifest: AttachmentManifest, blobs: BlobStore) -> None:
        self.manifest = manifest
        self.blobs = blobs
        self.durability_tier: str = blobs.durability_tier

    def put_env(self, session_id: str, process_id: str, env: dict[str, Any]) -> str:
        data = json.dumps(env, sort_keys=True, separators=(",", ":")).encode()
        facade = attachments_for(self.manifest, self.blobs, session_id, "process", process_id)
        return facade.put(data, "application/json")

    def get_env(self, session_id: str, ref: str) -> dict[str, Any]:
        facade = attachments_for(self.manifest, self.blobs, session_id)
        value = json.loads(facade.get(ref))
        if not isinstance(value, dict):
            raise NotFound(f"process environment {ref!r} is not an object")
        return value
