"""Each session's turns use the LLM provider, model and tools it chose (both dialects)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lash_tasks.machine import ModelSpec, SessionPolicy
from lash_tasks.providers.registry import LlmProviders
from lash_tasks.settings import Settings
from lash_tasks.store.records import InputState
from tests.runtime._llm_server import ScriptedHttpLlm, chat_reply
from tests.runtime.conftest import Harness


@pytest.fixture
def local_llm() -> Iterator[ScriptedHttpLlm]:
    server = ScriptedHttpLlm((200, chat_reply("from the local endpoint")))
    yield server
    server.stop()


def _providers(tmp_path: Path, **env: str) -> LlmProviders:
    return LlmProviders.from_settings(
        Settings.from_env({"LASH_HOME": str(tmp_path), "LASH_SCRIPTED_CALL_LOG": "", **env})
    )


def test_each_session_is_served_by_the_provider_and_model_it_named(
    harness: Harness, local_llm: ScriptedHttpLlm, tmp_path: Path
) -> None:
    """A session naming the keyless endpoint `local` is answered by it, with its own model;
    a session naming `scripted` on the same core by the scripted provider."""
    providers = _providers(
        tmp_path, LASH_PROVIDER_LOCAL_KIND="openai", LASH_PROVIDER_LOCAL_BASE_URL=local_llm.base_url
    )
    core, _ = harness.core(providers=providers)
    local = harness.session("s-local", provider="local", model=ModelSpec(id="llama3.1"))
    scripted = harness.session("s-scripted")
    assert harness.turn(core, local, "hello").outcome == {
        "status": "finished",
        "reason": None,
        "text": "from the local endpoint",
        "retryable": False,
        "detail": {},
    }
    answer = harness.turn(core, scripted, "hello").outcome
    assert answer is not None and answer["text"] == "echo: hello"
    [request] = local_llm.requests
    assert request["model"] == "llama3.1"
    core.close()


def test_a_provider_this_worker_cannot_serve_stops_the_turn_without_a_call(
    harness: Harness, tmp_path: Path
) -> None:
    """A session naming `anthropic` on a worker without ANTHROPIC_API_KEY ends its turn
    stopped(provider_unavailable) with a readable reason, its input answered, no LLM call."""
    providers = _providers(tmp_path, ANTHROPIC_API_KEY="")
    core, _ = harness.core(providers=providers)
    sid = harness.session("s1", provider="anthropic", model=ModelSpec(id="claude"))
    harness.enqueue(sid, "hello")
    result = harness.run_until_settled(core, sid)
    assert result.outcome is not None
    assert (result.outcome["status"], result.outcome["reason"]) == (
        "stopped",
        "provider_unavailable",
    )
    assert "ANTHROPIC_API_KEY is not set on this worker" in result.outcome["text"]
    assert result.outcome["detail"]["provider"] == "anthropic"
    assert [i.state for i in harness.store.inputs.list_all(sid)] == [InputState.COMPLETED]
    path = harness.store.sessions.load(sid).graph.active_path()
    assert [(n.kind, n.payload.get("reason")) for n in path] == [
        ("message", None),
        ("event", "provider_unavailable"),
    ]
    assert harness.store.maintenance.count_rows("lash_effect_journal", sid) == 0
    core.close()


def test_a_provider_name_unknown_to_this_worker_stops_the_turn(
    harness: Harness, tmp_path: Path
) -> None:
    """A session created where `ollama` was configured, stepped by a worker that lacks it."""
    core, _ = harness.core(providers=_providers(tmp_path))
    sid = harness.session("s1", provider="ollama", model=ModelSpec(id="llama3.1"))
    harness.enqueue(sid, "hello")
    outcome = harness.run_until_settled(core, sid).outcome
    assert outcome is not None and outcome["reason"] == "provider_unavailable"
    assert "'ollama' is not configured on this worker" in outcome["text"]
    assert "it serves: scripted" in outcome["text"]
    core.close()


def test_a_session_sees_only_the_tools_it_selected(
    harness: Harness, local_llm: ScriptedHttpLlm, tmp_path: Path
) -> None:
    """tools=[...] at creation is the session's tool surface: the model is offered those,
    and the surface is persisted with the session's first commit."""
    providers = _providers(
        tmp_path, LASH_PROVIDER_LOCAL_KIND="openai", LASH_PROVIDER_LOCAL_BASE_URL=local_llm.base_url
    )
    core, _ = harness.core(providers=providers)
    sid = harness.session("s1", provider="local", tools=("calculator",))
    harness.turn(core, sid, "hello")
    [request] = local_llm.requests
    assert [t["function"]["name"] for t in request["tools"]] == ["calculator"]
    snapshot = harness.store.sessions.record(sid).tool_state
    assert snapshot is not None
    assert [t["manifest"]["name"] for t in snapshot["tools"]] == ["calculator"]
    core.close()


def test_policy_without_tools_offers_every_registered_tool(harness: Harness) -> None:
    """A policy persisted before sessions chose tools reads as `tools=None`: all of them."""
    policy = SessionPolicy.model_validate(
        json.loads('{"schema_version": 1, "provider": "scripted", "model": {"id": "m"}}')
    )
    assert policy.tools is None
