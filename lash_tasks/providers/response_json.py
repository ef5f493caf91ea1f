"""Small JSON helpers the wire modules read provider responses with: decode, excerpt, coerce."""

from __future__ import annotations

import json
from typing import Any

from lash_tasks.errors import ProviderError


def loads_body(body: bytes | str, provider: str) -> Any:
    """Decode a response body; a body that is not JSON is a malformed answer, never retried.

    A retry would send the same request to the same server, which has no reason to answer
    differently; the caller's own policy can still decide to try again later.
    """
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProviderError(
            f"{provider}: malformed JSON in response: {exc}",
            body_excerpt=excerpt_of(body),
            retryable=False,
        ) from exc


def excerpt_of(body: bytes | str, limit: int = 500) -> str:
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return text[:limit]


def as_int(value: Any) -> int:
    # Compatible servers send null, omit fields or occasionally send floats for token counts.
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return 0


def malformed(provider: str, what: str, data: Any) -> ProviderError:
    return ProviderError(
        f"{provider}: malformed response: {what}",
        body_excerpt=excerpt_of(json.dumps(data, default=str)),
        retryable=False,
    )
