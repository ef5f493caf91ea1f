"""Wiring rules of `LashCore.builder()`: every misuse is a typed error before anything runs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lash_tasks.attachments import FilesystemBlobStore, InMemoryBlobStore
from lash_tasks.errors import (
    ConfigurationError,
    DurabilityMismatch,
    MissingDependency,
    MissingModelSpec,
    ResidencyRequiresStore,
)
from lash_tasks.machine import ModelSpec
from lash_tasks.providers import ScriptedProvider
from lash_tasks.runtime.effects import DurableEffectHost, InlineEffectHost
from lash_tasks.runtime.lash_core import CoreBuilder, LashCore, LeaseTimings
from lash_tasks.runtime.process_envs import BlobProcessEnvStore, InlineProcessEnvStore
from lash_tasks.store.store import Store

MODEL = ModelSpec(id="scripted")


@dataclass
class FakeFacet:
    """A process registry or trigger store: only its durability tier matters to the builder."""

    durability_tier: str


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[Store]:
    """A durable Store (SQLite file); the builder never touches its tables."""
    store = Store.from_url(f"sqlite:///{tmp_path / 'wiring.db'}")
    yield store
    store.close()


@pytest.fixture
def memory_store() -> Iterator[Store]:
    store = Store.from_url("sqlite:///:memory:")
    yield store
    store.close()


@pytest.fixture
def durable_blobs(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


def _inline_parts() -> CoreBuilder:
    """Everything but a store: inline effect host, attachments and process envs."""
    return (
        LashCore.builder()
        .llm_provider(ScriptedProvider())
        .model(MODEL)
        .effect_host(InlineEffectHost())
        .attachment_store(InMemoryBlobStore())
        .process_env_store(InlineProcessEnvStore())
        .residency("keep_all")
    )


def test_missing_model_spec_is_refused(
    file_store: Store, durable_blobs: FilesystemBlobStore
) -> None:
    """A core without a default model spec raises MissingModelSpec."""
    builder = LashCore.builder().with_sql_host(file_store, durable_blobs)
    with pytest.raises(MissingModelSpec):
        builder.llm_provider(ScriptedProvider()).build()


def test_missing_llm_provider_is_refused(
    file_store: Store, durable_blobs: FilesystemBlobStore
) -> None:
    """A core without an LLM provider raises MissingDependency."""
    with pytest.raises(MissingDependency, match="LLM provider"):
        LashCore.builder().with_sql_host(file_store, durable_blobs).model(MODEL).build()


def test_missing_effect_host_is_refused() -> None:
    """Without an effect host (and no full host config) the build raises MissingDependency."""
    builder = (
        LashCore.builder()
        .llm_provider(ScriptedProvider())
        .model(MODEL)
        .attachment_store(InMemoryBlobStore())
        .process_env_store(InlineProcessEnvStore())
        .residency("keep_all")
    )
    with pytest.raises(MissingDependency, match="effect host"):
        builder.build()


def test_missing_attachment_store_is_refused() -> None:
    """Without an attachment store the build raises MissingDependency."""
    builder = _inline_parts().attachment_store(None)
    with pytest.raises(MissingDependency, match="attachment store"):
        builder.build()


def test_missing_process_env_store_is_refused() -> None:
    """Without a process-env store the build raises MissingDependency."""
    builder = (
        LashCore.builder()
        .llm_provider(ScriptedProvider())
        .model(MODEL)
        .effect_host(InlineEffectHost())
        .attachment_store(InMemoryBlobStore())
        .residency("keep_all")
    )
    with pytest.raises(MissingDependency, match="process-env store"):
        builder.build()


def test_active_path_only_without_a_store_is_refused() -> None:
    """Residency active_path_only with no store at all raises ResidencyRequiresStore."""
    with pytest.raises(ResidencyRequiresStore, match="irrecoverable"):
        _inline_parts().residency("active_path_only").build()


def test_active_path_only_with_an_inline_store_is_refused(memory_store: Store) -> None:
    """An in-memory SQLite store is tier 'inline', so active_path_only is refused with it."""
    assert memory_store.durability_tier == "inline"
    builder = _inline_parts().session_store(memory_store).residency("active_path_only")
    with pytest.raises(ResidencyRequiresStore):
        builder.build()


def test_inline_store_with_keep_all_builds(memory_store: Store) -> None:
    """The embedded inline wiring (inline store, keep_all, inline peers) is accepted."""
    core = _inline_parts().session_store(memory_store).build()
    assert core.residency == "keep_all"
    assert core.effects.durability_tier == "inline"


def test_process_registry_without_a_store_is_refused() -> None:
    """A process registry without a session store raises MissingDependency."""
    builder = _inline_parts().process_registry(FakeFacet("inline"))
    with pytest.raises(MissingDependency, match="process registry"):
        builder.build()


def test_durable_store_with_inline_attachment_store_is_refused(file_store: Store) -> None:
    """A durable session store wired to an in-memory blob store raises DurabilityMismatch."""
    builder = (
        LashCore.builder()
        .with_sql_host(file_store, InMemoryBlobStore())
        .llm_provider(ScriptedProvider())
        .model(MODEL)
    )
    with pytest.raises(DurabilityMismatch, match="attachment store"):
        builder.build()


def test_durable_store_with_inline_process_env_store_is_refused(
    file_store: Store, durable_blobs: FilesystemBlobStore
) -> None:
    """A durable session store wired to an inline process-env store raises DurabilityMismatch."""
    builder = (
        LashCore.builder()
        .with_sql_host(file_store, durable_blobs)
        .process_env_store(InlineProcessEnvStore())
        .llm_provider(ScriptedProvider())
        .model(MODEL)
    )
    with pytest.raises(DurabilityMismatch, match="process-env store"):
        builder.build()


def test_durable_process_registry_needs_a_durable_session_store(memory_store: Store) -> None:
    """A durable process registry over an inline session store raises DurabilityMismatch."""
    builder = (
        _inline_parts()
        .session_store(memory_store)
        .process_registry(FakeFacet("durable"))
        .trigger_store(FakeFacet("durable"))
    )
    with pytest.raises(DurabilityMismatch, match="session store factory"):
        builder.build()


def test_durable_process_registry_needs_a_durable_trigger_store(
    file_store: Store, durable_blobs: FilesystemBlobStore
) -> None:
    """A durable process registry without (or with an inline) trigger store is refused."""
    for triggers in (None, FakeFacet("inline")):
        builder = (
            LashCore.builder()
            .with_sql_host(file_store, durable_blobs)
            .llm_provider(ScriptedProvider())
            .model(MODEL)
            .process_registry(FakeFacet("durable"))
        )
        if triggers is not None:
            builder = builder.trigger_store(triggers)
        with pytest.raises(DurabilityMismatch, match="trigger store"):
            builder.build()


def test_durable_process_registry_needs_a_durable_process_env_store(
    file_store: Store, durable_blobs: FilesystemBlobStore
) -> None:
    """A durable process registry with an inline process-env store raises DurabilityMismatch."""
    builder = (
        LashCore.builder()
        .with_sql_host(file_store, durable_blobs)
        .process_env_store(InlineProcessEnvStore())
        .llm_provider(ScriptedProvider())
        .model(MODEL)
        .process_registry(FakeFacet("durable"))
        .trigger_store(FakeFacet("durable"))
    )
    with pytest.raises(DurabilityMismatch, match="process-env store"):
        builder.build()


def test_durable_effect_host_with_inline_attachment_store_is_refused(
    file_store: Store,
) -> None:
    """A durable effect host next to an in-memory attachment store raises DurabilityMismatch."""
    builder = _inline_parts().effect_host(DurableEffectHost(file_store.journal, "w"))
    with pytest.raises(DurabilityMismatch, match="effect host cannot use an inline attachment"):
        builder.build()


def test_durable_effect_host_with_inline_process_env_store_is_refused(
    file_store: Store, durable_blobs: FilesystemBlobStore
) -> None:
    """A durable effect host next to an inline process-env store raises DurabilityMismatch."""
    builder = (
        _inline_parts()
        .effect_host(DurableEffectHost(file_store.journal, "w"))
        .attachment_store(durable_blobs)
    )
    with pytest.raises(DurabilityMismatch, match="effect host cannot use an inline process-env"):
        builder.build()


@pytest.mark.parametrize(("ttl_ms", "renew_ms"), [(899, 300), (30_000, 0), (100, 50)])
def test_lease_ttl_below_three_renewals_is_a_configuration_error(
    ttl_ms: int, renew_ms: int
) -> None:
    """LeaseTimings with ttl < 3 x renew (or renew <= 0) raises ConfigurationError."""
    with pytest.raises(ConfigurationError):
        LeaseTimings(ttl_ms=ttl_ms, renew_ms=renew_ms)


@pytest.mark.parametrize("attempts", [0, -1])
def test_step_max_attempts_below_one_is_a_configuration_error(attempts: int) -> None:
    """A turn step must be allowed at least one attempt."""
    with pytest.raises(ConfigurationError, match="step_max_attempts"):
        LashCore.builder().step_max_attempts(attempts)


def test_lease_ttl_of_exactly_three_renewals_is_accepted() -> None:
    """ttl == 3 x renew is the smallest accepted lease."""
    assert LeaseTimings(ttl_ms=900, renew_ms=300).ttl_ms == 900


def test_full_host_config_wires_durable_parts(
    file_store: Store, durable_blobs: FilesystemBlobStore
) -> None:
    """with_sql_host supplies a durable effect journal, blobs and process envs; all checks pass."""
    timings = LeaseTimings(ttl_ms=1200, renew_ms=400)
    core = (
        LashCore.builder()
        .with_sql_host(file_store, durable_blobs)
        .llm_provider(ScriptedProvider())
        .model(MODEL)
        .lease_timings(timings)
        .owner("worker-x", "inc-1")
        .process_registry(FakeFacet("durable"))
        .trigger_store(FakeFacet("durable"))
        .build()
    )
    assert core.store is file_store
    assert core.blobs is durable_blobs
    assert core.residency == "active_path_only"
    assert isinstance(core.effects, DurableEffectHost)
    assert core.effects.durability_tier == "durable"
    assert core.effects.owner == "worker-x"
    assert core.effects.ttl_ms == 1200
    assert isinstance(core.process_envs, BlobProcessEnvStore)
    assert core.process_envs.durability_tier == "durable"
    assert (core.owner_id, core.incarnation_id) == ("worker-x", "inc-1")
    policy = core.default_policy()
    assert policy is not None and policy.model == MODEL
