"""Pure tests of SessionGraph: append, branch and fork, orphans, heal and trim."""

from __future__ import annotations

import pytest

from lash_tasks.errors import NodeNotFound, UnknownParentNode, ValidationError
from lash_tasks.machine import Message, Node, NodeDraft, SessionGraph

T0 = "2025-01-01T00:00:00Z"


def _draft(node_id: str, text: str = "", role: str = "user") -> NodeDraft:
    return NodeDraft.for_message(node_id, Message(role=role, text=text or node_id), T0)  # type: ignore[arg-type]


def _event(node_id: str) -> NodeDraft:
    return NodeDraft(node_id, "event", {"type": "note"}, T0)


def _chain(*ids: str) -> SessionGraph:
    graph = SessionGraph()
    for node_id in ids:
        graph.append(_draft(node_id))
    return graph


def _path(graph: SessionGraph) -> list[str]:
    return [n.node_id for n in graph.active_path()]


def test_append_places_each_node_under_the_leaf_and_moves_the_leaf() -> None:
    """append links the new node to the current leaf and makes it the leaf."""
    graph = SessionGraph()
    root = graph.append(_draft("n1"))
    assert root.parent_node_id is None and graph.leaf_node_id == "n1"
    second = graph.append(_draft("n2", role="assistant"))
    assert second.parent_node_id == "n1" and graph.leaf_node_id == "n2"
    assert _path(graph) == ["n1", "n2"]
    assert [m.text for m in graph.active_messages()] == ["n1", "n2"]
    assert len(graph) == 2
    assert graph.orphaned_node_ids() == []


def test_append_refuses_a_duplicate_node_id() -> None:
    """Appending a node id that already exists fails and leaves the graph as it was."""
    graph = _chain("n1", "n2")
    with pytest.raises(ValidationError):
        graph.append(_draft("n1"))
    assert graph.leaf_node_id == "n2" and len(graph) == 2


def test_branch_then_append_forks_and_orphans_the_old_branch() -> None:
    """branch_to moves the leaf back; the next append forks; the old branch becomes orphaned."""
    graph = _chain("n1", "n2", "n3")
    graph.branch_to("n1")
    assert _path(graph) == ["n1"]
    assert graph.orphaned_node_ids() == ["n2", "n3"]
    fork = graph.append(_draft("n4"))
    assert fork.parent_node_id == "n1"
    assert _path(graph) == ["n1", "n4"]
    assert graph.orphaned_node_ids() == ["n2", "n3"]
    assert len(graph) == 4  # nothing is deleted by branching

    graph.branch_to("n3")  # back to the old branch: now the fork is the orphan
    assert _path(graph) == ["n1", "n2", "n3"]
    assert graph.orphaned_node_ids() == ["n4"]


def test_branch_to_an_unknown_node_is_refused() -> None:
    """branch_to a node id that is not in the graph raises NodeNotFound; the leaf stays."""
    graph = _chain("n1")
    with pytest.raises(NodeNotFound):
        graph.branch_to("ghost")
    assert graph.leaf_node_id == "n1"


def test_insert_requires_an_existing_parent() -> None:
    """insert of a stored node whose parent is missing raises UnknownParentNode."""
    graph = _chain("n1")
    graph.insert(Node("n2", "n1", "message", {"role": "user", "text": "x"}, T0))
    with pytest.raises(UnknownParentNode):
        graph.insert(Node("n3", "ghost", "message", {"role": "user", "text": "x"}, T0))
    assert "n3" not in graph.nodes


def test_active_path_terminates_on_a_parent_cycle() -> None:
    """A corrupt parent cycle does not hang active_path; each node appears at most once."""
    a = Node("a", "b", "message", {"role": "user", "text": "a"}, T0)
    b = Node("b", "a", "message", {"role": "user", "text": "b"}, T0)
    graph = SessionGraph.from_nodes([a, b], "a")
    assert sorted(_path(graph)) == ["a", "b"]


def test_heal_moves_an_orphaned_leaf_to_the_last_message_node() -> None:
    """A leaf naming a missing node is healed to the last message node (not an event); True."""
    graph = _chain("n1", "n2")
    graph.append(_event("e1"))
    graph.leaf_node_id = "trimmed-away"
    assert graph.leaf_is_orphaned()
    with pytest.raises(UnknownParentNode):
        graph.append(_draft("n3"))
    assert graph.heal_orphaned_leaf() is True
    assert graph.leaf_node_id == "n2"
    assert not graph.leaf_is_orphaned()
    assert graph.heal_orphaned_leaf() is False
    assert graph.append(_draft("n3")).parent_node_id == "n2"


def test_heal_is_a_noop_for_a_healthy_or_empty_graph() -> None:
    """heal returns False and changes nothing when the leaf exists or there is no leaf."""
    graph = _chain("n1")
    assert graph.heal_orphaned_leaf() is False and graph.leaf_node_id == "n1"
    empty = SessionGraph()
    assert empty.heal_orphaned_leaf() is False and empty.leaf_node_id is None


def test_heal_without_any_message_clears_the_leaf() -> None:
    """With only event nodes left, healing an orphaned leaf leaves no leaf."""
    graph = SessionGraph()
    graph.append(_event("e1"))
    graph.leaf_node_id = "gone"
    assert graph.heal_orphaned_leaf() is True
    assert graph.leaf_node_id is None


def test_trim_after_heal_keeps_exactly_the_active_path() -> None:
    """trimmed_to_active_path after a heal holds leaf -> root only, with the healed leaf."""
    graph = _chain("n1", "n2", "n3")
    graph.branch_to("n1")
    graph.append(_draft("n4"))
    graph.append(_draft("n5"))
    graph.leaf_node_id = "missing"
    assert graph.trimmed_to_active_path().nodes == {}  # why heal must come first
    assert graph.heal_orphaned_leaf() is True
    assert graph.leaf_node_id == "n5"
    trimmed = graph.trimmed_to_active_path()
    assert list(trimmed.nodes) == ["n1", "n4", "n5"]
    assert trimmed.leaf_node_id == "n5"
    assert trimmed.orphaned_node_ids() == []
    assert len(graph) == 5  # the original is untouched


def test_the_remembered_active_path_follows_appends_branches_and_copies() -> None:
    """The active path read after each change is the walk from the leaf: the remembered
    path is extended on append, dropped on a branch, and a copy goes its own way."""
    graph = _chain("a", "b", "c")
    assert _path(graph) == ["a", "b", "c"]
    graph.append(_draft("d"))
    assert _path(graph) == ["a", "b", "c", "d"]
    graph.branch_to("b")
    assert _path(graph) == ["a", "b"]
    graph.append(_draft("e"))
    assert _path(graph) == ["a", "b", "e"]
    assert [m.text for m in graph.active_messages()] == ["a", "b", "e"]
    twin = graph.copy()
    twin.append(_draft("f"))
    assert _path(twin) == ["a", "b", "e", "f"] and _path(graph) == ["a", "b", "e"]
    graph.insert(Node("g", "d", "message", Message(role="user", text="g").to_json(), T0))
    graph.branch_to("g")
    assert _path(graph) == ["a", "b", "c", "d", "g"]
