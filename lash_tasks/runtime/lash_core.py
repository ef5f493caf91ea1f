"""`LashCore` and its builder (the lash core: store, LLM provider, tools, effect host); every
wiring rule is checked before anything runs.

core = (
    LashCore.builder()
    .with_sql_host(store, blobs)          # store, effect journal, attachments, envs
    .llm_providers(LlmProviders.from_settings(settings))  # or .llm_provider(one for all)
    .model(ModelSpec(id="scripted"))
    .build()
)
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from lash_tasks.errors import (
    ConfigurationError,
    DurabilityMismatch,
    MissingDependency,
    MissingModelSpec,
    ResidencyRequiresStore,
)
from lash_tasks.events.emitter import StepEventsFactory
from lash_tasks.machine import ModelSpec, SessionPolicy
from lash_tasks.machine.tool_budget import ToolOutputBudget
from lash_tasks.providers.llm_provider import LlmProvider
from lash_tasks.providers.registry import LlmProviders
from lash_tasks.runtime.effects import DurableEffectHost, EffectHost
from lash_tasks.runtime.process_envs import BlobProcessEnvStore, Facet, ProcessEnvStore
from lash_tasks.runtime.rebuild_cache import RuntimeCache
from lash_tasks.runtime.reply_sender import OutboxOnly, ReplySender
from lash_tasks.runtime.trace import Tracer, TraceSink
from lash_tasks.store.contracts import RuntimeStore
from lash_tasks.tools.registry import ToolRegistry

Residency = Literal["keep_all", "active_path_only"]


@dataclass(frozen=True)
class LeaseTimings:
    """Session, effect and process lease timing. ttl must cover three renewals."""

    ttl_ms: int = 30_000
    renew_ms: int = 10_000

    def __post_init__(self) -> None:
        if self.renew_ms <= 0 or self.ttl_ms < 3 * self.renew_ms:
            raise ConfigurationError(
                f"lease ttl ({self.ttl_ms} ms) must be at least 3 x renew interval "
                f"({self.renew_ms} ms)"
            )


def default_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class LashCore:
    """Everything a runtime needs, validated. Build one per worker process."""

    store: RuntimeStore | None
    blobs: Any
    process_envs: ProcessEnvStore
    effects: EffectHost
    # The LLM providers by name: each session's turns use the one its policy names.
    llm_providers: LlmProviders
    tools_factory: Callable[[], ToolRegistry]
    default_model: ModelSpec | None
    residency: Residency
    lease: LeaseTimings
    owner_id: str
    incarnation_id: str
    tracer: Tracer
    budget: ToolOutputBudget = field(default_factory=ToolOutputBudget)
    step_time_limit_ms: int | None = None
    # A turn step started this many times without committing ends its turn stopped.
    step_max_attempts: int = 5
    # How often a running step reads its turn's cancel flag.
    interrupt_poll_ms: int = 500
    cache: RuntimeCache = field(default_factory=RuntimeCache)
    # A delivery goes on with the lease it holds while the session has work, this many steps
    # at most, so that one busy session cannot hold a worker's thread for ever.
    steps_per_delivery: int = 8
    # What each step tells the session's live readers (none, unless a factory is wired).
    events: StepEventsFactory = field(default_factory=StepEventsFactory.disabled)
    # Publishes the replies a final commit wrote (none in this process: the sweeper does).
    replies: ReplySender = field(default_factory=OutboxOnly)
    # Asks a worker to run a process just registered (a background tool call), after its
    # registration committed. None: nobody is asked; the sweeper finds runnable processes.
    process_poke: Callable[[str], None] | None = None

    @staticmethod
    def builder() -> CoreBuilder:
        return CoreBuilder()

    @property
    def llm(self) -> LlmProvider:
        """The default LLM provider (the only one, when built with `llm_provider`)."""
        return self.llm_providers.default

    def require_store(self) -> RuntimeStore:
        if self.store is None:
            raise MissingDependency("this operation needs a session store")
        return self.store

    def default_policy(self) -> SessionPolicy | None:
        if self.default_model is None:
            return None
        return SessionPolicy(
            provider=self.llm_providers.default_name,
            model=self.default_model,
            residency=self.residency,
        )

    def close(self) -> None:
        self.llm_providers.close()
        if self.store is not None:
            self.store.close()


class CoreBuilder:
    """Collects the parts of a core; `build()` validates the wiring with typed errors."""

    def __init__(self) -> None:
        self._store: RuntimeStore | None = None
        self._blobs: Any = None
        self._process_envs: ProcessEnvStore | None = None
        self._effects: EffectHost | None = None
        self._llm: LlmProviders | None = None
        self._tools: Callable[[], ToolRegistry] = ToolRegistry
        self._model: ModelSpec | None = None
        self._residency: Residency = "active_path_only"
        self._lease = LeaseTimings()
        self._owner_id = default_owner_id()
        self._incarnation_id = uuid.uuid4().hex
        self._trace: TraceSink | None = None
        self._events = StepEventsFactory.disabled()
        self._replies: ReplySender = OutboxOnly()
        self._steps_per_delivery = 8
        self._process_registry: Facet | None = None
        self._trigger_store: Facet | None = None
        self._budget = ToolOutputBudget()
        self._step_limit_ms: int | None = None
        self._step_max_attempts = 5
        self._full_host = False
        self._process_poke: Callable[[str], None] | None = None

    def session_store(self, store: RuntimeStore | None) -> CoreBuilder:
        self._store = store
        return self

    def attachment_store(self, blobs: Any) -> CoreBuilder:
        self._blobs = blobs
        return self

    def process_env_store(self, envs: ProcessEnvStore) -> CoreBuilder:
        self._process_envs = envs
        return self

    def effect_host(self, effects: EffectHost) -> CoreBuilder:
        self._effects = effects
        return self

    def with_sql_host(self, store: RuntimeStore, blobs: Any) -> CoreBuilder:
        """The full host config: session store, effect journal, attachments and process
        environments from one database and one blob store."""
        self._store = store
        self._blobs = blobs
        self._process_envs = BlobProcessEnvStore(store.manifest, blobs)
        self._effects = None  # built in build(), once the lease timings are known
        self._full_host = True
        return self

    def llm_provider(self, llm: LlmProvider) -> CoreBuilder:
        """One LLM provider for every session, whatever provider it names."""
        self._llm = LlmProviders.single(llm)
        return self

    def llm_providers(self, providers: LlmProviders) -> CoreBuilder:
        """LLM providers by name: a session's turns use the one it names, and stop
        `provider_unavailable` when this core cannot serve it."""
        self._llm = providers
        return self

    def tools(self, factory: Callable[[], ToolRegistry]) -> CoreBuilder:
        self._tools = factory
        return self

    def model(self, spec: ModelSpec | None) -> CoreBuilder:
        self._model = spec
        return self

    def residency(self, residency: Residency) -> CoreBuilder:
        self._residency = residency
        return self

    def lease_timings(self, timings: LeaseTimings) -> CoreBuilder:
        self._lease = timings
        return self

    def owner(self, owner_id: str, incarnation_id: str | None = None) -> CoreBuilder:
        self._owner_id = owner_id
        if incarnation_id is not None:
            self._incarnation_id = incarnation_id
        return self

    def step_time_limit(self, seconds: float | None) -> CoreBuilder:
        """Longest a step may hold its session; None for no limit."""
        self._step_limit_ms = None if seconds is None else int(seconds * 1000)
        return self

    def step_max_attempts(self, attempts: int) -> CoreBuilder:
        """Starts of one turn step (crashes included) before its turn ends stopped."""
        if attempts < 1:
            raise ConfigurationError(f"step_max_attempts must be at least 1, got {attempts}")
        self._step_max_attempts = attempts
        return self

    def steps_per_delivery(self, steps: int) -> CoreBuilder:
        """How many steps one delivery may run with the lease it holds (1: one per poke)."""
        if steps < 1:
            raise ConfigurationError("steps per delivery must be at least 1")
        self._steps_per_delivery = steps
        return self

    def step_events(self, events: StepEventsFactory) -> CoreBuilder:
        """Where steps publish live session events (text deltas, tool calls, commits)."""
        self._events = events
        return self

    def reply_sender(self, sender: ReplySender) -> CoreBuilder:
        """Who publishes a turn's replies (`reply_to`) right after its final commit."""
        self._replies = sender
        return self

    def trace_sink(self, sink: TraceSink) -> CoreBuilder:
        self._trace = sink
        return self

    def tool_output_budget(self, budget: ToolOutputBudget) -> CoreBuilder:
        self._budget = budget
        return self

    def process_registry(self, registry: Facet) -> CoreBuilder:
        self._process_registry = registry
        return self

    def process_poke(self, poke: Callable[[str], None]) -> CoreBuilder:
        """How a step asks for a process it registered to be run (the fleet: a
        `lash.process.run` message)."""
        self._process_poke = poke
        return self

    def trigger_store(self, triggers: Facet) -> CoreBuilder:
        self._trigger_store = triggers
        return self

    def build(self) -> LashCore:
        if self._model is None:
            raise MissingModelSpec("a core needs a default model spec (builder.model(...))")
        if self._llm is None:
            raise MissingDependency("a core needs an LLM provider (builder.llm_provider(...))")
        effects = self._effects
        if effects is None and self._full_host and self._store is not None:
            effects = DurableEffectHost(
                self._store.journal, self._owner_id, self._lease.ttl_ms, self._incarnation_id
            )
        if effects is None:
            raise MissingDependency("a core needs an effect host (or a full host config)")
        if self._blobs is None:
            raise MissingDependency("a core needs an attachment store (or a full host config)")
        if self._process_envs is None:
            raise MissingDependency("a core needs a process-env store (or a full host config)")
        store_tier = _tier(self._store)
        if self._residency == "active_path_only" and store_tier != "durable":
            raise ResidencyRequiresStore(
                "residency active_path_only needs a persistent session store: "
                "trimmed orphans are irrecoverable"
            )
        if self._process_registry is not None and self._store is None:
            raise MissingDependency("a process registry needs a session store factory")
        _check_peers("durable session store", store_tier, self._blobs, self._process_envs)
        if _tier(self._process_registry) == "durable":
            for name, peer in (
                ("session store factory", self._store),
                ("trigger store", self._trigger_store),
                ("process-env store", self._process_envs),
            ):
                if _tier(peer) != "durable":
                    raise DurabilityMismatch(f"a durable process registry needs a durable {name}")
        _check_peers(
            "durable effect host", effects.durability_tier, self._blobs, self._process_envs
        )
        return LashCore(
            store=self._store,
            blobs=self._blobs,
            process_envs=self._process_envs,
            effects=effects,
            llm_providers=self._llm,
            tools_factory=self._tools,
            default_model=self._model,
            residency=self._residency,
            lease=self._lease,
            owner_id=self._owner_id,
            incarnation_id=self._incarnation_id,
            tracer=Tracer(self._trace),
            events=self._events,
            replies=self._replies,
            steps_per_delivery=self._steps_per_delivery,
            budget=self._budget,
            step_time_limit_ms=self._step_limit_ms,
            step_max_attempts=self._step_max_attempts,
            process_poke=self._process_poke,
        )


def _tier(facet: Any) -> str | None:
    if facet is None:
        return None
    return str(getattr(facet, "durability_tier", "inline"))


def _check_peers(what: str, tier: str | None, blobs: Any, envs: Any) -> None:
    if tier != "durable":
        return
    if _tier(blobs) != "durable":
        raise DurabilityMismatch(f"a {what} cannot use an inline attachment store")
    if _tier(envs) != "durable":
        raise DurabilityMismatch(f"a {what} cannot use an inline process-env store")
