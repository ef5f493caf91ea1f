"""Every id lash-tasks checks or derives: session ids, attachment ids, turn ids, node ids.

Checks run before an id reaches a query, a path, an object key or a broker message; a bad
id raises a typed `ValidationError` naming what is wrong. Derived ids are deterministic, so
a replayed step produces the very same ones.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from lash_tasks.errors import InvalidSessionId, ValidationError

# Public as patterns too: the ingress JSON Schemas publish them to non-Python senders.
SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$"
ATTACHMENT_ID_PATTERN = r"^[0-9a-f]{64}$"
_SESSION_ID = re.compile(SESSION_ID_PATTERN)
# An attachment id is the sha256 of its bytes, in lowercase hex.
_ATTACHMENT_ID = re.compile(ATTACHMENT_ID_PATTERN)


def check_session_id(session_id: object) -> str:
    """Return `session_id` if it is a usable id, else raise `InvalidSessionId` naming why."""
    if not isinstance(session_id, str):
        raise InvalidSessionId(f"session id must be a string, got {type(session_id).__name__}")
    if not session_id:
        raise InvalidSessionId("session id must not be empty")
    if not _SESSION_ID.fullmatch(session_id):
        raise InvalidSessionId(
            "session id must be 1-200 characters of letters, digits and . _ : @ -, "
            "starting with a letter or digit"
        )
    return session_id


def attachment_id_for(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_attachment_id(attachment_id: object) -> str:
    """Return `attachment_id` if it is 64 lowercase hex characters, else raise `ValidationError`.

    Ids become file names and object keys, so anything else (`../`, separators, upper case
    aliases of the same hash) is refused here rather than escaped later.
    """
    if not isinstance(attachment_id, str) or _ATTACHMENT_ID.fullmatch(attachment_id) is None:
        shown = attachment_id if isinstance(attachment_id, str) else type(attachment_id).__name__
        raise ValidationError(
            f"attachment id must be 64 lowercase hex characters (a sha256), got {shown!r:.80}",
        )
    return attachment_id


def derive_turn_id(
    kind: str, claimed_ids: Sequence[str], *, turn_seq: int, session_created_at: int
) -> str:
    """A turn's id: the session's turn number and what the turn claimed.

    Input ids and batch ids come back after vacuum (a caller's own id, a reused source
    key), so they alone do not name a turn. `turn_seq` never repeats within a session,
    and `session_created_at` tells a session from an earlier one under the same id.
    The id is stored with the active turn, so every re-run resumes it unchanged.
    """
    claimed = ",".join(sorted(claimed_ids))
    identity = f"{kind}:{session_created_at}:{turn_seq}:{claimed}"
    return f"turn_{hashlib.sha256(identity.encode()).hexdigest()[:24]}"


def node_id_for(turn_id: str, step_index: int, position: int) -> str:
    """Deterministic node ids: a replayed step produces the very same nodes."""
    return f"{turn_id}.{step_index}.{position}"


def steer_node_id(turn_id: str, input_id: str) -> str:
    """The node of a steer input a running turn accepted: named by the input, so a step
    re-run after a crash never adds it twice."""
    return f"{turn_id}.steer.{input_id}"


def wake_node_id(turn_id: str, batch_id: str, index: int) -> str:
    """The node of one payload of queued work a running turn took at a step boundary:
    named by its batch, so a step re-run after a crash never adds it twice."""
    return f"{turn_id}.wake.{batch_id}.{index}"


def effect_scope_id(session_id: str, turn_id: str) -> str:
    """The journal scope of one turn's effects."""
    return f"turn:{session_id}:{turn_id}"


def llm_replay_key(session_id: str, turn_id: str, step_index: int) -> str:
    """A step's LLM call in the effect journal: one per step, so a re-run finds it."""
    return f"{session_id}:{turn_id}:{step_index}:llm_call:0"


def tool_replay_key(
    session_id: str, turn_id: str, step_index: int, index: int, call_id: str
) -> str:
    """A step's tool call in the effect journal, by its position and the model's call id."""
    return f"{session_id}:{turn_id}:{step_index}:tool_call:{index}:{call_id}"
