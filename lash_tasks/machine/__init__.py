"""Pure session core: graph, policy, commit drafts, the turn step, ids.

No I/O, clock or randomness.
"""

from lash_tasks.machine.commit_hash import canonical_json, stable_hash, turn_commit_hash
from lash_tasks.machine.commits import (
    ClaimCompletion,
    ClearActiveTurn,
    CommitDraft,
    CommitResult,
    Fence,
    GraphAppend,
    GraphDelta,
    GraphReplaceFull,
    GraphUnchanged,
    KeepActiveTurn,
    OutboxReply,
    QueuedWorkDraft,
    SessionSnapshot,
    TurnStamp,
)
from lash_tasks.machine.graph import Node, NodeDraft, SessionGraph
from lash_tasks.machine.messages import (
    AttachmentContent,
    LlmRequest,
    LlmResponse,
    Message,
    ToolCall,
    ToolManifest,
    Usage,
)
from lash_tasks.machine.policy import ModelSpec, SessionPolicy, parse_model_spec, parse_policy
from lash_tasks.machine.turn_state import (
    ClaimRef,
    ReplyRoute,
    StepContext,
    TurnOutcome,
    TurnState,
)

__all__ = [
    "AttachmentContent",
    "ClaimCompletion",
    "ClaimRef",
    "ClearActiveTurn",
    "CommitDraft",
    "CommitResult",
    "Fence",
    "GraphAppend",
    "GraphDelta",
    "GraphReplaceFull",
    "GraphUnchanged",
    "KeepActiveTurn",
    "LlmRequest",
    "LlmResponse",
    "Message",
    "ModelSpec",
    "Node",
    "NodeDraft",
    "OutboxReply",
    "QueuedWorkDraft",
    "ReplyRoute",
    "SessionGraph",
    "SessionPolicy",
    "SessionSnapshot",
    "StepContext",
    "ToolCall",
    "ToolManifest",
    "TurnOutcome",
    "TurnStamp",
    "TurnState",
    "Usage",
    "canonical_json",
    "parse_model_spec",
    "parse_policy",
    "stable_hash",
    "turn_commit_hash",
]
