"""Graph writes inside a commit's transaction: new nodes, and tombstones cleared where a
path comes back into use."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    BigInteger,
    Connection,
    String,
    cast,
    delete,
    func,
    insert,
    null,
    select,
    union_all,
    update,
)

from lash_tasks.errors import NodeExists, UnknownParentNode
from lash_tasks.machine import CommitDraft, GraphAppend, GraphReplaceFull, GraphUnchanged, Node
from lash_tasks.store import schema as t
from lash_tasks.store.rows import encode_node_payload
from lash_tasks.store.sessions import ancestry


def write_graph(conn: Connection, draft: CommitDraft, stored_leaf: str | None, now: int) -> bool:
    """Write the draft's graph change under the session's stored leaf; True if nodes moved."""
    graph = draft.graph
    if isinstance(graph, GraphUnchanged):
        revive_paths(conn, draft.session_id, {graph.leaf_node_id} - {stored_leaf})
        return False
    if isinstance(graph, GraphReplaceFull):
        conn.execute(delete(t.graph_nodes).where(t.graph_nodes.c.session_id == draft.session_id))
    seq = check_node_ids(conn, draft.session_id, graph.nodes)
    rows = [
        {
            "session_id": draft.session_id,
            "node_id": node.node_id,
            "parent_node_id": node.parent_node_id,
            "seq": seq + offset,
            "kind": node.kind,
            "payload": encode_node_payload(node),
            "created_at": node.created_at,
            "created_ms": now,
        }
        for offset, node in enumerate(graph.nodes)
    ]
    if rows:
        conn.execute(insert(t.graph_nodes), rows)
    if isinstance(graph, GraphAppend):
        # The stored active path is never tombstoned, so an append under the old leaf
        # needs nothing; one under any other node (a branch) may hang off tombstoned
        # history, which must live again or vacuum would cut the new active path.
        batch = {n.node_id for n in graph.nodes}
        anchors = {n.parent_node_id for n in graph.nodes} | {graph.leaf_node_id}
        revive_paths(conn, draft.session_id, anchors - batch - {stored_leaf})
    return isinstance(graph, (GraphAppend, GraphReplaceFull))


def revive_paths(conn: Connection, session_id: str, anchors: set[str | None]) -> None:
    """Clear the tombstone of every node from each anchor up to its root (lash's append
    un-tombstones too): a node back on the active path is history again, not garbage."""
    if not anchors - {None}:
        return
    n = t.graph_nodes
    path = ancestry(session_id, anchors)
    conn.execute(
        update(n)
        .where(
            n.c.session_id == session_id,
            n.c.tombstoned_at.is_not(None),
            n.c.node_id.in_(select(path.c.node_id)),
        )
        .values(tombstoned_at=None)
    )


def check_node_ids(conn: Connection, session_id: str, nodes: Sequence[Node]) -> int:
    """New ids must be free (even among tombstoned rows) and parents must exist. Returns
    the session's next node sequence number, read in the same statement."""
    if not nodes:
        return next_node_seq(conn, session_id)
    batch_ids = {n.node_id for n in nodes}
    wanted = {n.parent_node_id for n in nodes if n.parent_node_id is not None} - batch_ids
    g = t.graph_nodes
    present = select(g.c.node_id, cast(null(), BigInteger).label("top_seq")).where(
        g.c.session_id == session_id, g.c.node_id.in_(sorted(batch_ids | wanted))
    )
    top = select(cast(null(), String).label("node_id"), func.coalesce(func.max(g.c.seq), 0)).where(
        g.c.session_id == session_id
    )
    found: set[str] = set()
    next_seq = 1
    for row in conn.execute(union_all(present, top)):
        if row.node_id is None:
            next_seq = int(row.top_seq) + 1
        else:
            found.add(row.node_id)
    taken = sorted(batch_ids & found)
    if taken:
        raise NodeExists(
            f"node ids already exist in session {session_id!r}: {taken}",
            session_id=session_id,
            node_ids=taken,
        )
    missing = sorted(wanted - found)
    if missing:
        raise UnknownParentNode(
            f"nodes name parents that do not exist in session {session_id!r}: {missing}",
            session_id=session_id,
        )
    return next_seq


def next_node_seq(conn: Connection, session_id: str) -> int:
    value = conn.execute(
        select(func.coalesce(func.max(t.graph_nodes.c.seq), 0)).where(
            t.graph_nodes.c.session_id == session_id
        )
    ).scalar_one()
    return int(value) + 1
