"""The session graph: an append-only tree of nodes with a movable leaf.

Appending puts the new node under the leaf and moves the leaf to it. Branching
moves the leaf to any existing node; the next append forks there, and the old
branch becomes orphaned (still stored, no longer on the active path).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from lash_tasks.errors import NodeExists, NodeNotFound, UnknownParentNode
from lash_tasks.machine.messages import Message

NodeKind = Literal["message", "event"]


@dataclass(frozen=True)
class Node:
    """One stored node. `payload` is JSON; message nodes hold `Message.to_json()`."""

    node_id: str
    parent_node_id: str | None
    kind: NodeKind
    payload: Mapping[str, Any]
    created_at: str

    def message(self) -> Message | None:
        return self._message

    @cached_property
    def _message(self) -> Message | None:
        # Parsed once per node: a cached graph is read for every step of a long session.
        return Message.from_json(dict(self.payload)) if self.kind == "message" else None

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "parent_node_id": self.parent_node_id,
            "kind": self.kind,
            "payload": dict(self.payload),
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class NodeDraft:
    """A node before it is placed in the graph: the graph assigns its parent."""

    node_id: str
    kind: NodeKind
    payload: Mapping[str, Any]
    created_at: str

    @classmethod
    def for_message(cls, node_id: str, message: Message, created_at: str) -> NodeDraft:
        return cls(node_id, "message", message.to_json(), created_at)


@dataclass
class SessionGraph:
    """Nodes by id in insertion order, plus the leaf. Mutated only through its methods."""

    nodes: dict[str, Node] = field(default_factory=dict)
    leaf_node_id: str | None = None
    # The last active path and its messages, with the (leaf, node count) they were read at:
    # nodes are only ever added, so while both hold the path has not changed. A worker's
    # cached graph is read every step of a long session; this keeps that O(1) between steps.
    _path_memo: tuple[tuple[str | None, int], tuple[Node, ...], tuple[Message, ...]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def from_nodes(cls, nodes: Iterable[Node], leaf_node_id: str | None) -> SessionGraph:
        return cls({n.node_id: n for n in nodes}, leaf_node_id)

    def __len__(self) -> int:
        return len(self.nodes)

    def copy(self) -> SessionGraph:
        """An independent graph with the same nodes and leaf (nodes are immutable)."""
        twin = SessionGraph(dict(self.nodes), self.leaf_node_id)
        twin._path_memo = self._path_memo
        return twin

    def append(self, draft: NodeDraft) -> Node:
        """Place `draft` under the leaf and make it the new leaf."""
        if draft.node_id in self.nodes:
            raise NodeExists(f"node id {draft.node_id!r} already exists in the graph")
        if self.leaf_node_id is not None and self.leaf_node_id not in self.nodes:
            raise UnknownParentNode(
                f"leaf {self.leaf_node_id!r} is not in the graph; heal the graph before appending"
            )
        node = Node(draft.node_id, self.leaf_node_id, draft.kind, draft.payload, draft.created_at)
        self.nodes[node.node_id] = node
        self.leaf_node_id = node.node_id
        return node

    def insert(self, node: Node) -> None:
        """Add a fully formed node (replay from storage); its parent must already exist."""
        if node.parent_node_id is not None and node.parent_node_id not in self.nodes:
            raise UnknownParentNode(
                f"node {node.node_id!r} names parent {node.parent_node_id!r}, which does not exist"
            )
        self.nodes[node.node_id] = node

    def branch_to(self, node_id: str) -> None:
        """Move the leaf to `node_id`; the next append forks from there."""
        if node_id not in self.nodes:
            raise NodeNotFound(f"cannot branch to unknown node {node_id!r}")
        self.leaf_node_id = node_id

    def active_path(self) -> list[Node]:
        """Nodes from the root to the leaf."""
        return list(self._memo()[1])

    def active_messages(self) -> list[Message]:
        return list(self._memo()[2])

    def _memo(self) -> tuple[tuple[str | None, int], tuple[Node, ...], tuple[Message, ...]]:
        key = (self.leaf_node_id, len(self.nodes))
        memo = self._path_memo
        if memo is not None and memo[0] == key:
            return memo
        # Walk up from the leaf; meeting the last path's leaf (the usual case: a step
        # appended a few nodes) means only the new nodes need reading.
        known_leaf = memo[1][-1].node_id if memo is not None and memo[1] else None
        fresh: list[Node] = []
        seen: set[str] = set()
        current = self.leaf_node_id
        while current is not None and current in self.nodes and current not in seen:
            if current == known_leaf:
                break
            seen.add(current)
            node = self.nodes[current]
            fresh.append(node)
            current = node.parent_node_id
        else:
            memo = None  # the path does not run through the last one: all of it is fresh
        fresh.reverse()
        new_messages = tuple(m for n in fresh if (m := n.message()) is not None)
        if memo is None:
            memo = (key, tuple(fresh), new_messages)
        else:
            memo = (key, memo[1] + tuple(fresh), memo[2] + new_messages)
        self._path_memo = memo
        return memo

    def orphaned_node_ids(self) -> list[str]:
        """Ids of stored nodes that are not on the active path, in insertion order."""
        on_path = {n.node_id for n in self.active_path()}
        return [node_id for node_id in self.nodes if node_id not in on_path]

    def leaf_is_orphaned(self) -> bool:
        return self.leaf_node_id is not None and self.leaf_node_id not in self.nodes

    def heal_orphaned_leaf(self) -> bool:
        """If the leaf names a missing node, move it to the last message node.

        Returns True when it healed; the caller must then write the whole graph
        on its next commit (`replace_full`), since the stored leaf is wrong.
        """
        if not self.leaf_is_orphaned():
            return False
        last_message = next(
            (n.node_id for n in reversed(self.nodes.values()) if n.kind == "message"), None
        )
        self.leaf_node_id = last_message
        return True

    def trimmed_to_active_path(self) -> SessionGraph:
        """A copy holding only the active path. Heal before trimming, or the path is lost."""
        memo = self._memo()
        if len(memo[1]) == len(self.nodes):
            return self.copy()  # nothing else to drop: the usual case for a cached graph
        trimmed = SessionGraph.from_nodes(memo[1], self.leaf_node_id)
        trimmed._path_memo = ((self.leaf_node_id, len(memo[1])), memo[1], memo[2])
        return trimmed
