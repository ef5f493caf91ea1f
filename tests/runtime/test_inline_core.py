"""The inline wiring (in-memory SQLite, in-memory blobs, inline effect host) runs turns too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lash_tasks.attachments import InMemoryBlobStore
from lash_tasks.providers import ScriptedProvider, load_rules
from lash_tasks.runtime.effects import InlineEffectHost
from lash_tasks.runtime.lash_core import LashCore
from lash_tasks.runtime.process_envs import InlineProcessEnvStore
from lash_tasks.runtime.step_driver import run_step
from lash_tasks.store.records import InputDraft
from lash_tasks.store.schema import metadata
from lash_tasks.store.store import Store
from tests.runtime.conftest import FAST_LEASE, MODEL, builtin_tools

BIG = (
    '[{"match": "big", "tool_calls": [{"name": "repeat_text", '
    '"arguments": {"text": "0123456789", "times": 2000}}]}]'
)


@pytest.fixture
def memory_store() -> Iterator[Store]:
    store = Store.from_url("sqlite:///:memory:")
    metadata.create_all(store.database.engine)
    yield store
    store.close()


def test_inline_core_runs_a_tool_turn_executing_every_effect(memory_store: Store) -> None:
    """keep_all over an inline store: the turn finishes; the inline host executes each effect;
    an oversized tool output still lands in the (inline) attachment store."""
    llm = ScriptedProvider(load_rules(BIG))
    effects = InlineEffectHost()
    blobs = InMemoryBlobStore()
    core = (
        LashCore.builder()
        .session_store(memory_store)
        .attachment_store(blobs)
        .process_env_store(InlineProcessEnvStore())
        .effect_host(effects)
        .residency("keep_all")
        .llm_provider(llm)
        .model(MODEL)
        .tools(builtin_tools)
        .lease_timings(FAST_LEASE)
        .build()
    )
    memory_store.sessions.create("s1", core.default_policy())
    memory_store.inputs.enqueue(InputDraft("s1", "k1", {"text": "big please"}))
    # One delivery goes on with its lease through both steps of the turn.
    final = run_step(core, "s1")
    assert (final.status, final.steps) == ("finished", 2)
    assert effects.executed == 3  # llm, tool, llm
    assert llm.call_count == 2
    tool = memory_store.sessions.load("s1").graph.active_messages()[2]
    (attachment_id,) = tool.attachments
    assert blobs.get(attachment_id) == b"0123456789" * 2000
    assert memory_store.manifest.rows("s1") == []
    assert memory_store.turns.active("s1") is None
