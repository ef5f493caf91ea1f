"""Ingress payloads are validated at the edge: bad ones name the field and write nothing."""

from __future__ import annotations

from typing import Any

import pytest

from lash_tasks.errors import ValidationError
from lash_tasks.ingress import (
    CancelInputPayload,
    CreateSessionPayload,
    EnqueueTurnPayload,
    operations,
    parse_payload,
)
from lash_tasks.settings import Settings
from lash_tasks.store.store import Store


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (EnqueueTurnPayload, {"session_id": "s1"}, "text"),
        (EnqueueTurnPayload, {"session_id": "", "text": "hi"}, "session_id"),
        (EnqueueTurnPayload, {"session_id": "../etc", "text": "hi"}, "session_id"),
        (EnqueueTurnPayload, {"session_id": "s1", "text": "hi", "extra": 1}, "extra"),
        (EnqueueTurnPayload, {"session_id": 5, "text": "hi"}, "session_id"),
        (
            EnqueueTurnPayload,
            {"session_id": "s1", "text": "hi", "attachments": "ab"},
            "attachments",
        ),
        (
            EnqueueTurnPayload,
            {"session_id": "s1", "text": "hi", "attachments": ["../../etc/passwd"]},
            "attachments",
        ),
        (
            EnqueueTurnPayload,
            {"session_id": "s1", "text": "hi", "attachments": ["a" * 64] * 33},
            "attachments",
        ),
        (CreateSessionPayload, {"session_id": "s1", "max_turns": 0}, "max_turns"),
        (CreateSessionPayload, {"session_id": "s1", "model": ""}, "model"),
        (CancelInputPayload, {"input_id": "x"}, "session_id"),
        (CreateSessionPayload, {"session_id": "s1", "provider": "Open AI"}, "provider"),
        (CreateSessionPayload, {"session_id": "s1", "provider": ""}, "provider"),
        (CreateSessionPayload, {"session_id": "s1", "tools": "calculator"}, "tools"),
        (CreateSessionPayload, {"session_id": "s1", "tools": ["calc ulator"]}, "tools"),
        (CreateSessionPayload, {"session_id": "s1", "tools": ["t"] * 129}, "tools"),
        (
            EnqueueTurnPayload,
            {"session_id": "s1", "text": "hi", "reply_to": {"task": "app.answers"}},
            "reply_to.queue",
        ),
        (
            EnqueueTurnPayload,
            {"session_id": "s1", "text": "hi", "reply_to": {"task": "a b", "queue": "q"}},
            "reply_to.task",
        ),
        (
            EnqueueTurnPayload,
            {"session_id": "s1", "text": "hi", "reply_to": {"task": "t", "queue": "lash.turns"}},
            "reply_to.queue",
        ),
        (
            EnqueueTurnPayload,
            {"session_id": "s1", "text": "hi", "reply_to": "answers"},
            "reply_to",
        ),
        (
            EnqueueTurnPayload,
            {"session_id": "s1", "text": "hi", "reply_to": {"task": "t", "queue": "q", "x": 1}},
            "reply_to.x",
        ),
    ],
)
def test_bad_payload_names_the_field(model: Any, data: dict[str, Any], field: str) -> None:
    """Each invalid payload raises ValidationError whose message names the bad field."""
    with pytest.raises(ValidationError) as info:
        parse_payload(model, data)
    assert field in info.value.message


def test_non_object_payload_is_refused() -> None:
    """A payload that is not a JSON object is refused with a typed error."""
    with pytest.raises(ValidationError, match="JSON object"):
        parse_payload(EnqueueTurnPayload, ["s1", "hi"])


def test_enqueue_is_idempotent_by_source_key(store: Store, tmp_path: Any) -> None:
    """The same source key and text twice gives one input row."""
    settings = Settings.from_env({"LASH_HOME": str(tmp_path)})
    operations.create_session(store, CreateSessionPayload(session_id="s1"), settings)
    payload = parse_payload(
        EnqueueTurnPayload, {"session_id": "s1", "text": "hi", "source_key": "req-1"}
    )
    first = operations.enqueue_turn(store, payload)
    second = operations.enqueue_turn(store, payload)
    assert first.input_id == second.input_id
    assert len(store.inputs.list_all("s1")) == 1


def test_enqueue_to_unknown_session_writes_nothing(store: Store) -> None:
    """Enqueue for a session that does not exist fails with not-found and leaves no row."""
    from lash_tasks.errors import SessionNotFound

    payload = parse_payload(EnqueueTurnPayload, {"session_id": "ghost", "text": "hi"})
    with pytest.raises(SessionNotFound):
        operations.enqueue_turn(store, payload)
    assert store.maintenance.count_rows("lash_pending_inputs") == 0


def test_cancel_with_nothing_to_cancel_is_refused(store: Store, tmp_path: Any) -> None:
    """A cancel naming no input, no source key and no interrupt is a ValidationError (the
    ingress task, the client and the gateway share it), and changes nothing."""
    settings = Settings.from_env({"LASH_HOME": str(tmp_path)})
    operations.create_session(store, CreateSessionPayload(session_id="s1"), settings)
    waiting = operations.enqueue_turn(
        store, parse_payload(EnqueueTurnPayload, {"session_id": "s1", "text": "hi"})
    )
    with pytest.raises(ValidationError, match="needs an input_id, a source_key or interrupt"):
        operations.cancel_input(store, parse_payload(CancelInputPayload, {"session_id": "s1"}))
    assert [i.state for i in store.inputs.list_all("s1")] == ["pending"]
    assert store.inputs.get("s1", waiting.input_id) is not None


def test_create_session_refuses_an_unknown_provider_and_writes_nothing(
    store: Store, tmp_path: Any
) -> None:
    """provider must be one of the names the settings know (built-ins and named endpoints)."""
    from lash_tasks.errors import UnknownLlmProvider

    settings = Settings.from_env(
        {"LASH_HOME": str(tmp_path), "LASH_PROVIDER_OLLAMA_KIND": "openai"}
    )
    with pytest.raises(UnknownLlmProvider) as info:
        operations.create_session(
            store, CreateSessionPayload(session_id="s1", provider="gemini"), settings
        )
    assert info.value.message == (
        "provider: 'gemini' is not one of: scripted, openai, anthropic, ollama"
    )
    assert store.maintenance.count_rows("lash_sessions") == 0
    record = operations.create_session(
        store, CreateSessionPayload(session_id="s1", provider="ollama", model="llama3.1"), settings
    )
    assert record.policy is not None
    assert (record.policy.provider, record.policy.model.id) == ("ollama", "llama3.1")


def test_create_session_refuses_an_unknown_tool_and_writes_nothing(
    store: Store, tmp_path: Any
) -> None:
    """tools must name registered tools (the built-ins and LASH_TOOLS)."""
    from lash_tasks.errors import UnknownTool

    settings = Settings.from_env({"LASH_HOME": str(tmp_path)})
    with pytest.raises(UnknownTool) as info:
        operations.create_session(
            store, CreateSessionPayload(session_id="s1", tools=("calculator", "nope")), settings
        )
    assert info.value.message.startswith("tools: unknown tool 'nope'; registered: calculator")
    assert store.maintenance.count_rows("lash_sessions") == 0
    record = operations.create_session(
        store, CreateSessionPayload(session_id="s1", tools=("calculator",)), settings
    )
    assert record.policy is not None and record.policy.tools == ("calculator",)


def test_enqueue_keeps_reply_to_with_the_input(store: Store, tmp_path: Any) -> None:
    """reply_to travels in the input row, part of its content (and its idempotency)."""
    settings = Settings.from_env({"LASH_HOME": str(tmp_path)})
    operations.create_session(store, CreateSessionPayload(session_id="s1"), settings)
    payload = parse_payload(
        EnqueueTurnPayload,
        {"session_id": "s1", "text": "hi", "reply_to": {"task": "app.answer", "queue": "app"}},
    )
    row = operations.enqueue_turn(store, payload)
    assert row.input["reply_to"] == {"task": "app.answer", "queue": "app"}


def test_branch_from_an_unknown_node_is_refused_at_ingress(store: Store, tmp_path: Any) -> None:
    """The ingress operation (client, task, gateway) refuses it with the typed error."""
    from lash_tasks.errors import UnknownBranchPoint

    settings = Settings.from_env({"LASH_HOME": str(tmp_path)})
    operations.create_session(store, CreateSessionPayload(session_id="s1"), settings)
    payload = parse_payload(
        EnqueueTurnPayload, {"session_id": "s1", "text": "hi", "branch_from": "nowhere"}
    )
    with pytest.raises(UnknownBranchPoint, match=r"^branch_from: "):
        operations.enqueue_turn(store, payload)
    assert store.maintenance.count_rows("lash_pending_inputs") == 0
