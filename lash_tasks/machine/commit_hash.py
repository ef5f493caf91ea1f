"""The turn-commit hash: equal for a replayed turn even when its ids and clocks differ."""

from __future__ import annotations

import hashlib
import json
from typing import Any

VOLATILE_KEYS = frozenset(
    {
        "node_id",
        "parent_node_id",
        "leaf_node_id",
        "created_at",
        "timestamp",
        "committed_at",
        "message_id",
        "part_id",
    }
)
# `id` is volatile only inside message and part objects, where providers mint fresh ones.
_ID_CONTAINERS = frozenset({"message", "part", "payload"})


def scrub(value: Any, container: str | None = None) -> Any:
    """Drop volatile keys recursively so only meaningful content is hashed."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            if key in VOLATILE_KEYS:
                continue
            if key == "id" and container in _ID_CONTAINERS:
                continue
            out[str(key)] = scrub(inner, str(key))
        return out
    if isinstance(value, (list, tuple)):
        return [scrub(v, container) for v in value]
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def turn_commit_hash(content: Any) -> str:
    """sha256 hex of the canonical JSON of `content` after scrubbing volatile keys."""
    return hashlib.sha256(canonical_json(scrub(content)).encode()).hexdigest()


def stable_hash(content: Any) -> str:
    """sha256 hex of canonical JSON, nothing scrubbed (envelopes, registrations)."""
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()
