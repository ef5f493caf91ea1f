"""Sessions choose their LLM provider on a real fleet: one worker serves a keyless local
endpoint and the scripted provider side by side, and stops the turn of a session whose
provider it has no credentials for."""

from __future__ import annotations

import pytest

from tests.fleet.harness import Fleet
from tests.runtime._llm_server import ScriptedHttpLlm, chat_reply

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(120)]


def test_each_session_is_served_by_the_provider_it_named(fleet: Fleet) -> None:
    """`local` (LASH_PROVIDER_LOCAL_*, no key) answers its session with the session's model;
    the default scripted provider answers another; `anthropic` without ANTHROPIC_API_KEY
    ends its turn stopped(provider_unavailable) with the reason."""
    llm = ScriptedHttpLlm((200, chat_reply("from ollama")))
    fleet.extra_env.update(
        {
            "LASH_PROVIDER_LOCAL_KIND": "openai",
            "LASH_PROVIDER_LOCAL_BASE_URL": llm.base_url,
            "ANTHROPIC_API_KEY": "",
        }
    )
    try:
        fleet.start_worker("w1").wait_ready()
        client = fleet.client()
        client.create_session("via-local", provider="local", model="llama3.1")
        client.create_session("via-scripted")
        client.create_session("via-anthropic", provider="anthropic", model="claude-sonnet-4-5")
        answers = {
            sid: client.wait_for_input(sid, client.enqueue_turn(sid, "hello"), timeout=30)
            for sid in ("via-local", "via-scripted", "via-anthropic")
        }
    finally:
        llm.stop()
    assert answers["via-local"].text == "from ollama"
    assert [r["model"] for r in llm.requests] == ["llama3.1"]
    assert answers["via-scripted"].text == "echo: hello"
    stopped = answers["via-anthropic"].outcome
    assert stopped is not None
    assert (stopped["status"], stopped["reason"]) == ("stopped", "provider_unavailable")
    assert "ANTHROPIC_API_KEY is not set on this worker" in stopped["text"]
    client.close()
