"""Fixtures for runtime tests: a core over the `store` fixture, a filesystem blob store,
the scripted provider and the builtin tools."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lash_tasks.attachments import FilesystemBlobStore
from lash_tasks.machine import Message, ModelSpec, SessionPolicy
from lash_tasks.machine.tool_budget import ToolOutputBudget
from lash_tasks.providers import ScriptedProvider, ScriptRule, load_rules
from lash_tasks.providers.llm_provider import LlmProvider
from lash_tasks.providers.registry import LlmProviders
from lash_tasks.runtime.lash_core import LashCore, LeaseTimings, Residency
from lash_tasks.runtime.reply_sender import ReplySender
from lash_tasks.runtime.step_driver import StepResult, run_step
from lash_tasks.runtime.trace import TraceSink
from lash_tasks.store.records import InputDraft, PendingInput
from lash_tasks.store.store import Store
from lash_tasks.tools.builtins import BuiltinTools
from lash_tasks.tools.registry import ToolRegistry

# Short leases where expiry matters: ttl covers three renewals.
FAST_LEASE = LeaseTimings(ttl_ms=900, renew_ms=300)
MODEL = ModelSpec(id="scripted")


def builtin_tools() -> ToolRegistry:
    return ToolRegistry([BuiltinTools()])


def rules(text: str) -> tuple[ScriptRule, ...]:
    return load_rules(text)


def wait_ms(ms: int) -> None:
    time.sleep(ms / 1000)


@dataclass
class Harness:
    """Builds cores, sessions and inputs over one store and one blob store."""

    store: Store
    blobs: FilesystemBlobStore
    tmp_path: Path
    cores: list[LashCore] = field(default_factory=list)

    def core(
        self,
        script: Iterable[ScriptRule] | str = (),
        *,
        owner: str = "worker-a",
        incarnation: str | None = None,
        lease: LeaseTimings = FAST_LEASE,
        provider: LlmProvider | None = None,
        providers: LlmProviders | None = None,
        sink: TraceSink | None = None,
        residency: Residency = "active_path_only",
        budget: ToolOutputBudget | None = None,
        tools: Callable[[], ToolRegistry] = builtin_tools,
        steps_per_delivery: int = 1,
        replies: ReplySender | None = None,
        process_poke: Callable[[str], None] | None = None,
    ) -> tuple[LashCore, ScriptedProvider]:
        parsed = load_rules(script) if isinstance(script, str) else tuple(script)
        scripted = ScriptedProvider(parsed)
        builder = LashCore.builder().with_sql_host(self.store, self.blobs)
        if providers is not None:
            builder = builder.llm_providers(providers)
        else:
            builder = builder.llm_provider(provider if provider is not None else scripted)
        builder = (
            builder.model(MODEL)
            .tools(tools)
            .residency(residency)
            .lease_timings(lease)
            .owner(owner, incarnation)
            .steps_per_delivery(steps_per_delivery)
        )
        if sink is not None:
            builder = builder.trace_sink(sink)
        if replies is not None:
            builder = builder.reply_sender(replies)
        if budget is not None:
            builder = builder.tool_output_budget(budget)
        if process_poke is not None:
            builder = builder.process_poke(process_poke)
        core = builder.build()
        self.cores.append(core)
        return core, scripted

    def session(self, session_id: str = "s1", **policy: Any) -> str:
        self.store.sessions.create(session_id, SessionPolicy(**{"model": MODEL, **policy}))
        return session_id

    def enqueue(
        self, session_id: str, text: str, key: str | None = None, **extra: Any
    ) -> PendingInput:
        draft = InputDraft(session_id, key or f"key-{text}", {"text": text, **extra})
        return self.store.inputs.enqueue(draft)

    def turn(self, core: LashCore, session_id: str, text: str, **extra: Any) -> StepResult:
        """Enqueue one input and step until its turn finishes."""
        self.enqueue(session_id, text, **extra)
        return self.run_until_settled(core, session_id)

    def messages(self, session_id: str) -> list[Message]:
        return self.store.sessions.load(session_id).graph.active_messages()

    def run_until_settled(self, core: LashCore, session_id: str, limit: int = 10) -> StepResult:
        """Step until the turn finishes; fail on anything but progress."""
        for _ in range(limit):
            result = run_step(core, session_id)
            assert result.status in ("progressed", "finished", "command"), result
            if result.status == "finished":
                return result
        raise AssertionError(f"turn did not finish in {limit} steps")


@pytest.fixture
def harness(store: Store, tmp_path: Path) -> Harness:
    """A core factory over the `store` fixture (both dialects) and blobs under tmp_path."""
    return Harness(store, FilesystemBlobStore(tmp_path / "blobs"), tmp_path)
