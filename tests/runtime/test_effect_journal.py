"""Effect journal conformance (DurableEffectHost over the store, both dialects) and the
inline host: an effect runs at most once per replay key; replays return the record."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from lash_tasks.errors import (
    EffectBusy,
    EffectError,
    Interrupted,
    RecordedFailure,
    ReplayMismatch,
    ToolError,
)
from lash_tasks.machine import ModelSpec, SessionPolicy
from lash_tasks.runtime.effects import (
    DurableEffectHost,
    EffectRequest,
    InlineEffectHost,
    Outcome,
)
from lash_tasks.runtime.step_control import StepControl
from lash_tasks.store.store import Store

EFFECT = EffectRequest(
    session_id="s1",
    turn_id="turn_1",
    replay_key="s1:turn_1:0:llm_call:0",
    envelope={"kind": "llm_call", "request": {"model": "m", "messages": ["hi"]}},
)


@pytest.fixture(autouse=True)
def _session_s1(request: pytest.FixtureRequest) -> None:
    """The journal only runs effects of a session that exists: every store test gets s1."""
    if "store" in request.fixturenames:
        store: Store = request.getfixturevalue("store")
        store.sessions.create("s1", SessionPolicy(model=ModelSpec(id="test-model")))


class Counter:
    """An effect body that counts its executions."""

    def __init__(self, outcome: Outcome | None = None, error: Exception | None = None) -> None:
        self.calls = 0
        self.outcome = outcome if outcome is not None else {"text": "hello"}
        self.error = error

    def __call__(self) -> Outcome:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.outcome


def _entry(store: Store, effect: EffectRequest = EFFECT) -> dict[str, Any]:
    entries = [
        e for e in store.journal.entries(effect.session_id) if e["replay_key"] == effect.replay_key
    ]
    assert len(entries) == 1, entries
    return entries[0]


def test_first_run_executes_and_records(store: Store) -> None:
    """No record: the effect executes once and its outcome is journaled as completed."""
    host = DurableEffectHost(store.journal, "worker-a")
    body = Counter({"text": "hello", "n": 1})
    assert host.run(EFFECT, body) == {"text": "hello", "n": 1}
    assert body.calls == 1
    assert host.executed == 1
    entry = _entry(store)
    assert entry["status"] == "completed"
    assert entry["outcome"] == {"text": "hello", "n": 1}
    assert entry["turn_id"] == "turn_1"


def test_second_run_returns_the_stored_outcome_without_executing(store: Store) -> None:
    """A completed record is replayed: same outcome, the body is not called again (any host)."""
    first = Counter({"text": "first"})
    DurableEffectHost(store.journal, "worker-a").run(EFFECT, first)
    again = Counter({"text": "second"})
    for owner in ("worker-a", "worker-b"):
        host = DurableEffectHost(store.journal, owner)
        assert host.run(EFFECT, again) == {"text": "first"}
        assert host.replayed == 1 and host.executed == 0
    assert again.calls == 0
    assert first.calls == 1


def test_failed_effect_replays_the_same_error_without_executing(store: Store) -> None:
    """A LashError from the body is journaled as failed; a replay raises it as RecordedFailure."""
    host = DurableEffectHost(store.journal, "worker-a")
    body = Counter(error=ToolError("disk on fire", path="/x"))
    with pytest.raises(ToolError):
        host.run(EFFECT, body)
    assert body.calls == 1
    entry = _entry(store)
    assert entry["status"] == "failed"
    assert entry["error"]["code"] == "tool_error"
    with pytest.raises(RecordedFailure) as replayed:
        DurableEffectHost(store.journal, "worker-b").run(EFFECT, body)
    assert body.calls == 1
    assert replayed.value.message == "disk on fire"
    assert replayed.value.error == entry["error"]
    assert replayed.value.retryable is False


def test_in_progress_effect_with_a_live_lease_is_busy(store: Store) -> None:
    """While one host executes under a live effect lease, another gets EffectBusy (retryable)."""
    holder = DurableEffectHost(store.journal, "worker-a", ttl_ms=30_000)
    other = DurableEffectHost(store.journal, "worker-b", ttl_ms=30_000)
    seen: list[EffectBusy] = []
    inner = Counter({"text": "never"})

    def body() -> Outcome:
        with pytest.raises(EffectBusy) as busy:
            other.run(EFFECT, inner)
        seen.append(busy.value)
        return {"text": "holder"}

    assert holder.run(EFFECT, body) == {"text": "holder"}
    assert inner.calls == 0
    assert seen[0].retryable is True
    retry = seen[0].details["retry_after_ms"]
    assert 0 < retry <= 30_000
    assert _entry(store)["outcome"] == {"text": "holder"}


def test_expired_effect_lease_is_taken_over_and_stale_finalize_refused(store: Store) -> None:
    """After the effect lease expires another host takes over; the old holder cannot finalize."""
    slow = DurableEffectHost(store.journal, "worker-a", ttl_ms=150)
    taker = DurableEffectHost(store.journal, "worker-b", ttl_ms=30_000)
    taken = Counter({"text": "from b"})

    def stalled_body() -> Outcome:
        time.sleep(0.3)  # paused past its effect lease
        assert taker.run(EFFECT, taken) == {"text": "from b"}
        return {"text": "from a"}

    with pytest.raises(EffectError, match="lease expired or was taken over"):
        slow.run(EFFECT, stalled_body)
    assert taken.calls == 1
    entry = _entry(store)
    assert entry["status"] == "completed"
    assert entry["outcome"] == {"text": "from b"}


def test_finalize_with_a_superseded_token_is_refused(store: Store) -> None:
    """journal_finalize with a token whose lease was taken over changes nothing."""
    prepare: Callable[[str, int], Any] = lambda owner, ttl: store.journal.prepare(  # noqa: E731
        scope_id=EFFECT.scope_id,
        replay_key=EFFECT.replay_key,
        session_id="s1",
        turn_id="turn_1",
        envelope_hash="h" * 64,
        owner=owner,
        ttl_ms=ttl,
    )
    first = prepare("worker-a", 100)
    time.sleep(0.2)
    second = prepare("worker-b", 30_000)
    assert second.took_over is True
    with pytest.raises(EffectError):
        store.journal.finalize(EFFECT.scope_id, EFFECT.replay_key, first.lease_token, outcome={})
    assert _entry(store)["status"] == "in_progress"
    store.journal.finalize(
        EFFECT.scope_id, EFFECT.replay_key, second.lease_token, outcome={"ok": 1}
    )
    assert _entry(store)["outcome"] == {"ok": 1}


def test_different_envelope_for_the_same_key_is_a_terminal_mismatch(store: Store) -> None:
    """A recorded envelope hash that differs raises ReplayMismatch (terminal, not retryable)."""
    DurableEffectHost(store.journal, "worker-a").run(EFFECT, Counter())
    changed = EffectRequest(
        EFFECT.session_id,
        EFFECT.turn_id,
        EFFECT.replay_key,
        {"kind": "llm_call", "request": {"model": "m", "messages": ["something else"]}},
    )
    body = Counter()
    with pytest.raises(ReplayMismatch) as mismatch:
        DurableEffectHost(store.journal, "worker-a").run(changed, body)
    assert body.calls == 0
    assert mismatch.value.retryable is False
    assert mismatch.value.details["replay_key"] == EFFECT.replay_key


def test_effects_are_keyed_per_scope_and_replay_key(store: Store) -> None:
    """Distinct replay keys (or turns) are distinct effects, each executed once."""
    host = DurableEffectHost(store.journal, "worker-a")
    body = Counter()
    other_key = EffectRequest("s1", "turn_1", "s1:turn_1:1:llm_call:0", EFFECT.envelope)
    other_turn = EffectRequest("s1", "turn_2", EFFECT.replay_key, EFFECT.envelope)
    for effect in (EFFECT, other_key, other_turn, EFFECT, other_key, other_turn):
        host.run(effect, body)
    assert body.calls == 3
    assert other_turn.scope_id != EFFECT.scope_id


def test_inline_host_always_executes() -> None:
    """The inline host keeps no journal: every run executes the body."""
    host = InlineEffectHost()
    body = Counter()
    for _ in range(3):
        assert host.run(EFFECT, body) == {"text": "hello"}
    assert body.calls == 3
    assert host.executed == 3
    assert host.durability_tier == "inline"


def test_transient_failure_is_not_recorded_and_runs_again(store: Store) -> None:
    """A retryable non-provider error frees the effect: the next attempt executes at once."""
    from lash_tasks.errors import StoreUnavailable

    host = DurableEffectHost(store.journal, "worker-a")
    flaky = Counter(error=StoreUnavailable("blob store down"))
    with pytest.raises(StoreUnavailable):
        host.run(EFFECT, flaky)
    assert _entry(store)["status"] == "in_progress"
    healthy = Counter({"text": "ok"})
    assert DurableEffectHost(store.journal, "worker-b").run(EFFECT, healthy) == {"text": "ok"}
    assert healthy.calls == 1
    assert _entry(store)["status"] == "completed"


def test_provider_errors_journal_only_when_final(store: Store) -> None:
    """A retryable provider error frees the effect; a non-retryable one is its outcome."""
    from lash_tasks.errors import ProviderError

    host = DurableEffectHost(store.journal, "worker-a")
    overloaded = Counter(error=ProviderError("overloaded", status=529, retryable=True))
    with pytest.raises(ProviderError):
        host.run(EFFECT, overloaded)
    assert _entry(store)["status"] == "in_progress"
    unauthorized = Counter(error=ProviderError("bad key", status=401, retryable=False))
    with pytest.raises(ProviderError):
        host.run(EFFECT, unauthorized)
    replay = Counter()
    with pytest.raises(RecordedFailure) as info:
        host.run(EFFECT, replay)
    assert replay.calls == 0
    assert info.value.retryable is False
    assert (overloaded.calls, unauthorized.calls) == (1, 1)


def test_interrupted_call_is_journaled_and_replayed_without_executing(store: Store) -> None:
    """A call cut by an interrupt is recorded failed(interrupted); a re-run gets that record
    back as a RecordedFailure and never executes the call again."""
    host = DurableEffectHost(store.journal, "worker-a")
    with pytest.raises(Interrupted):
        host.run(EFFECT, Counter(error=Interrupted("turn interrupted on request")))
    entry = _entry(store)
    assert (entry["status"], entry["error"]["code"]) == ("failed", "interrupted")
    again = Counter()
    with pytest.raises(RecordedFailure) as info:
        DurableEffectHost(store.journal, "worker-b").run(EFFECT, again)
    assert info.value.error["code"] == "interrupted"
    assert again.calls == 0


def test_unexpected_exception_frees_the_effect_for_the_next_attempt(store: Store) -> None:
    """A bug (not a LashError) is no outcome: the row is freed, so the next attempt runs the
    effect at once instead of meeting effect_busy until the effect lease runs out."""
    host = DurableEffectHost(store.journal, "worker-a", ttl_ms=30_000)
    with pytest.raises(KeyError):
        host.run(EFFECT, Counter(error=KeyError("bug")))
    assert _entry(store)["status"] == "in_progress"
    again = Counter({"text": "second"})
    assert DurableEffectHost(store.journal, "worker-b").run(EFFECT, again) == {"text": "second"}
    assert again.calls == 1


def test_a_step_control_renews_only_the_effects_of_its_own_step(store: Store) -> None:
    """renew(control) extends the leases of effects run under that control, and no other."""
    host = DurableEffectHost(store.journal, "worker-a", ttl_ms=1000)
    store.sessions.create("s2", SessionPolicy(model=ModelSpec(id="test-model")))
    mine, other = StepControl(), StepControl()
    other_effect = EffectRequest("s2", "turn_2", "s2:turn_2:0:llm_call:0", EFFECT.envelope)
    entered = threading.Barrier(3)
    release = threading.Event()

    def hold() -> Outcome:
        entered.wait(5)
        release.wait(10)
        return {"text": "late"}

    ended: dict[str, object] = {}

    def run(name: str, effect: EffectRequest, control: StepControl) -> None:
        try:
            ended[name] = host.run(effect, hold, control)
        except EffectError as exc:
            ended[name] = exc

    threads = [
        threading.Thread(target=run, args=("mine", EFFECT, mine)),
        threading.Thread(target=run, args=("other", other_effect, other)),
    ]
    for thread in threads:
        thread.start()
    entered.wait(5)
    try:
        deadline = time.monotonic() + 2.1  # two ttls, renewing one of the two every 100 ms
        while time.monotonic() < deadline:
            host.renew(mine)
            time.sleep(0.1)
        with pytest.raises(EffectBusy):
            DurableEffectHost(store.journal, "worker-b").run(EFFECT, Counter())
        taken = Counter({"text": "taken over"})
        assert DurableEffectHost(store.journal, "worker-b").run(other_effect, taken) == {
            "text": "taken over"
        }
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=5)
    assert ended["mine"] == {"text": "late"}
    assert isinstance(ended["other"], EffectError)  # its lease lapsed: it cannot record
