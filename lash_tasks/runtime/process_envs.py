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

from lash_tasks.errors import NotFound


class Facet(Protocol):
    durability_tier: str


class ProcessEnvStore(Protocol):
    """Captured environments that background processes rebuild their runtime from."""

    durability_tier: str

    def put_env(self, env: dict[str, Any]) -> str: ...

    def get_env(self, ref: str) -> dict[str, Any]: ...


def _env_ref(env: dict[str, Any]) -> str:
    data = json.dumps(env, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()


class InlineProcessEnvStore:
    """Environments in process memory: lost with the process."""

    durability_tier = "inline"

    def __init__(self) -> None:
        self._envs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def put_env(self, env: dict[str, Any]) -> str:
        ref = _env_ref(env)
        with self._lock:
            self._envs[ref] = env
        return ref

    def get_env(self, ref: str) -> dict[str, Any]:
        with self._lock:
            if ref not in self._envs:
                raise NotFound(f"no process environment {ref!r}")
            return self._envs[ref]


class BlobProcessEnvStore:
    """Environments as content-addressed JSON blobs; as durable as the blob store."""

    def __init__(self, blobs: Any) -> None:
        self.blobs = blobs
        self.durability_tier: str = blobs.durability_tier

    def put_env(self, env: dict[str, Any]) -> str:
        data = json.dumps(env, sort_keys=True, separators=(",", ":")).encode()
        return str(self.blobs.put(data, "application/json").attachment_id)

    def get_env(self, ref: str) -> dict[str, Any]:
        value = json.loads(self.blobs.get(ref))
        if not isinstance(value, dict):
            raise NotFound(f"process environment {ref!r} is not an object")
        return value
