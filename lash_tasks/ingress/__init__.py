"""The ingress: payloads checked at the edge (`payloads`), the operations that write them
(`operations`) and the read views (`reads`), shared by the Python client, the ingress tasks,
the CLI and the HTTP gateway."""

from lash_tasks.ingress.payloads import (
    CancelInputPayload,
    CreateSessionPayload,
    EnqueueTurnPayload,
    parse_payload,
)

__all__ = [
    "CancelInputPayload",
    "CreateSessionPayload",
    "EnqueueTurnPayload",
    "parse_payload",
]
