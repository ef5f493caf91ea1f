"""Store conformance: session rows, graph reads and bad input at the store's edges."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from lash_tasks.errors import (
    InvalidModelSpec,
    InvalidSessionId,
    SchemaVersionError,
    SessionExists,
    SessionNotFound,
)
from lash_tasks.machine import ModelSpec, SessionPolicy, SessionSnapshot
from lash_tasks.store.records import ActivePath, FullGraph, InputDraft
from lash_tasks.store.store import Store
from tests.store_conformance.support import (
    POLICY,
    append,
    commit_chain,
    msg,
    new_session,
    take_lease,
)

BAD_SESSION_IDS = ["", " ", "has space", "-leading-dash", "x" * 201, "slash/inside", "é"]


def test_create_session_starts_at_revision_zero_and_is_idempotent(store: Store) -> None:
    """A new session is at head revision 0; re-creating it with the same policy is a no-op."""
    first = store.sessions.create("s1", POLICY)
    assert first.head_revision == 0
    assert first.leaf_node_id is None
    assert first.policy == POLICY
    again = store.sessions.create("s1", POLICY)
    assert again == first
    other = SessionPolicy(model=ModelSpec(id="another-model"))
    with pytest.raises(SessionExists):
        store.sessions.create("s1", other)
    assert store.sessions.record("s1").policy == POLICY
    assert store.sessions.list_ids() == ["s1"]


def test_durability_tier_of_a_file_or_server_store_is_durable(store: Store) -> None:
    """A file-backed SQLite store and a PostgreSQL store both declare the durable tier."""
    assert store.durability_tier == "durable"


def test_commit_increments_head_and_round_trips_nodes_and_snapshot(store: Store) -> None:
    """Each commit moves the head by one; nodes, leaf, usage and snapshots load back unchanged."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    nodes = [msg("n1", None, "hello"), msg("n2", "n1", "world", role="assistant")]
    snapshot = SessionSnapshot(
        tool_state={"tools": ["read"]},
        tool_state_generation=3,
        plugin_snapshot={"p": 1},
        usage_delta=(10, 5),
    )
    result = store.commits.commit(append(sid, 0, lease.fence, nodes, snapshot=snapshot))
    assert result.head_revision == 1
    assert not result.replayed
    result = commit_chain(store, lease, "n3")
    assert result.head_revision == 2

    loaded = store.sessions.load(sid)
    assert loaded.record.head_revision == 2
    assert loaded.record.leaf_node_id == "n3"
    assert loaded.record.tool_state == {"tools": ["read"]}
    assert loaded.record.tool_state_generation == 3
    assert loaded.record.plugin_snapshot == {"p": 1}
    assert (loaded.record.usage.input_tokens, loaded.record.usage.output_tokens) == (10, 5)
    assert [n.node_id for n in loaded.graph.active_path()] == ["n1", "n2", "n3"]
    assert loaded.graph.nodes["n2"] == nodes[1]
    assert loaded.active_turn is None
    assert store.sessions.load_node(sid, "n1") == nodes[0]
    assert store.sessions.load_node(sid, "missing") is None


def test_active_path_read_selects_only_requested_ancestry(store: Store) -> None:
    """ActivePath() reads the persisted leaf's ancestry, ActivePath(x) x's; FullGraph keeps all."""
    sid = new_session(store)
    lease = take_lease(store, sid)
    # root -> a1 -> a2 (old branch), root -> b1 -> b2 (current branch)
    commit_chain(store, lease, "root", "a1", "a2")
    nodes = [msg("b1", "root"), msg("b2", "b1")]
    store.commits.commit(append(sid, 1, lease.fence, nodes))

    full = store.sessions.load(sid, FullGraph())
    assert set(full.graph.nodes) == {"root", "a1", "a2", "b1", "b2"}
    assert full.graph.leaf_node_id == "b2"

    current = store.sessions.load(sid, ActivePath())
    assert list(current.graph.nodes) == ["root", "b1", "b2"]
    assert current.graph.leaf_node_id == "b2"
    assert isinstance(current.scope, ActivePath)

    old = store.sessions.load(sid, ActivePath(leaf="a1"))
    assert list(old.graph.nodes) == ["root", "a1"]
    assert old.graph.leaf_node_id == "a1"
    assert [n.node_id for n in old.graph.active_path()] == ["root", "a1"]


def test_active_path_of_an_empty_session_is_empty(store: Store) -> None:
    """A session with no nodes loads an empty graph under either scope."""
    sid = new_session(store)
    assert len(store.sessions.load(sid, ActivePath()).graph) == 0
    assert len(store.sessions.load(sid, FullGraph()).graph) == 0


def test_active_path_reads_do_not_cross_sessions(store: Store) -> None:
    """Two sessions may use the same node ids; each read sees only its own session's nodes."""
    for sid, text_ in (("s1", "one"), ("s2", "two")):
        new_session(store, sid)
        lease = take_lease(store, sid)
        store.commits.commit(append(sid, 0, lease.fence, [msg("n1", None, text_), msg("n2", "n1")]))
    one = store.sessions.load("s1", ActivePath())
    assert one.graph.nodes["n1"].payload["text"] == "one"
    assert store.sessions.load_node("s2", "n1").payload["text"] == "two"  # type: ignore[union-attr]


def test_loading_an_unknown_session_raises_session_not_found(store: Store) -> None:
    """Reads of a session that does not exist raise SessionNotFound."""
    with pytest.raises(SessionNotFound):
        store.sessions.load("nope")
    with pytest.raises(SessionNotFound):
        store.sessions.record("nope")
    with pytest.raises(SessionNotFound):
        store.sessions.load_node("nope", "n1")
    assert store.sessions.exists("nope") is False


@pytest.mark.parametrize("bad", BAD_SESSION_IDS)
def test_invalid_session_ids_are_refused_and_nothing_is_written(store: Store, bad: str) -> None:
    """Empty or malformed session ids raise InvalidSessionId at every entry point."""
    with pytest.raises(InvalidSessionId):
        store.sessions.create(bad, POLICY)
    with pytest.raises(InvalidSessionId):
        store.sessions.load(bad)
    with pytest.raises(InvalidSessionId):
        store.inputs.enqueue(InputDraft(bad, "k", {"text": "x"}))
    with pytest.raises(InvalidSessionId):
        store.leases.try_claim(bad, "w", "i")
    with pytest.raises(InvalidSessionId):
        store.commits.commit(append(bad, 0, None, [msg("n1", None)]))
    with pytest.raises(InvalidSessionId):
        store.sessions.delete(bad)
    assert store.sessions.list_ids() == []


def test_non_string_session_id_is_refused(store: Store) -> None:
    """A session id that is not a string raises InvalidSessionId."""
    with pytest.raises(InvalidSessionId):
        store.sessions.create(123, POLICY)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "model",
    [{"id": ""}, {"id": "m", "context_window_tokens": 0}, {"id": "m", "bogus": 1}, {}],
)
def test_invalid_model_spec_is_refused_and_nothing_written(store: Store, model: dict) -> None:
    """Creating a session with an invalid model spec raises InvalidModelSpec and writes nothing."""
    with pytest.raises(InvalidModelSpec):
        store.sessions.create("s1", {"model": model})  # type: ignore[arg-type]
    assert store.sessions.exists("s1") is False


def _corrupt(store: Store, sql: str, **params: object) -> None:
    with store.database.engine.begin() as conn:
        conn.execute(text(sql), params)


def test_unknown_fields_in_a_persisted_node_raise_schema_version_error(store: Store) -> None:
    """A stored node payload with an unknown field fails every load with SchemaVersionError."""
    sid = new_session(store)
    commit_chain(store, take_lease(store, sid), "n1", "n2")
    payload = {"schema_version": 1, "role": "user", "text": "hi", "from_the_future": True}
    _corrupt(
        store,
        "UPDATE lash_graph_nodes SET payload = :p WHERE session_id = :s AND node_id = 'n1'",
        p=json.dumps(payload),
        s=sid,
    )
    with pytest.raises(SchemaVersionError):
        store.sessions.load(sid, FullGraph())
    with pytest.raises(SchemaVersionError):
        store.sessions.load(sid, ActivePath())
    with pytest.raises(SchemaVersionError):
        store.sessions.load_node(sid, "n1")
    assert store.sessions.load_node(sid, "n2") is not None


def test_unknown_schema_version_of_a_persisted_node_is_refused(store: Store) -> None:
    """A stored node payload of another schema_version raises SchemaVersionError on load."""
    sid = new_session(store)
    commit_chain(store, take_lease(store, sid), "n1")
    payload = {"schema_version": 2, "role": "user", "text": "hi"}
    _corrupt(
        store,
        "UPDATE lash_graph_nodes SET payload = :p WHERE session_id = :s",
        p=json.dumps(payload),
        s=sid,
    )
    with pytest.raises(SchemaVersionError):
        store.sessions.load_node(sid, "n1")


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda c: c.update(unknown_top_level=1), id="top-level-field"),
        pytest.param(lambda c: c["model"].update(unknown_model_field=1), id="model-field"),
        pytest.param(lambda c: c.update(schema_version=99), id="schema-version"),
    ],
)
def test_unknown_fields_in_a_persisted_config_raise_schema_version_error(
    store: Store, mutate: object
) -> None:
    """A stored session config with unknown fields raises SchemaVersionError on load."""
    sid = new_session(store)
    config = POLICY.model_dump(mode="json")
    mutate(config)  # type: ignore[operator]
    _corrupt(
        store,
        "UPDATE lash_sessions SET config = :c WHERE session_id = :s",
        c=json.dumps(config),
        s=sid,
    )
    with pytest.raises(SchemaVersionError):
        store.sessions.load(sid)
    with pytest.raises(SchemaVersionError):
        store.sessions.record(sid)
