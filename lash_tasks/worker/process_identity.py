"""Who a worker process is, and whether another process is provably gone.

The owner id is stable across restarts: the Celery node name (`-n`), plus the pool slot of
a prefork child. Each process start is a new incarnation (a fresh uuid). A restarted
process may declare its previous incarnation dead, and take over its leases at once, only
with proof that the previous process no longer exists.

The proof follows lash's local-process liveness, hardened against its footgun: a host name
is not unique (containers share or reuse them), so a process is named by the kernel boot
id and the inode of its PID namespace. Only inside the same namespace of the same boot is
"pid absent, or the pid now belongs to a process started at another time" a death proof.
Anything else is "unknown", and the heartbeat's expiry decides.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

Verdict = Literal["dead", "alive", "unknown"]
_PROC = Path("/proc")


def owner_id_for(node_name: str, slot: int | None = None) -> str:
    """`w1@host` for a worker's main process, `w1@host/2` for prefork child slot 2."""
    return node_name if slot is None else f"{node_name}/{slot}"


def local_evidence(pid: int | None = None) -> dict[str, Any] | None:
    """What lets a process on the same kernel tell later whether `pid` (default: this
    process) still runs. None where /proc does not say (not Linux)."""
    pid = os.getpid() if pid is None else pid
    try:
        boot_id = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink(_PROC / str(pid) / "ns/pid")
        started = _start_ticks(pid)
    except OSError:
        return None
    if started is None:
        return None
    return {"boot_id": boot_id, "pid_namespace": namespace, "pid": pid, "start_ticks": started}


def judge(evidence: Any, mine: dict[str, Any] | None = None) -> Verdict:
    """Is the process described by `evidence` (another incarnation's) dead, alive, or
    beyond what this process can see?"""
    mine = local_evidence() if mine is None else mine
    if not isinstance(evidence, dict) or mine is None:
        return "unknown"
    same_kernel_view = (
        evidence.get("boot_id") == mine["boot_id"]
        and evidence.get("pid_namespace") == mine["pid_namespace"]
    )
    pid = evidence.get("pid")
    if not same_kernel_view or not isinstance(pid, int) or isinstance(pid, bool):
        return "unknown"
    if pid == mine["pid"] and evidence.get("start_ticks") == mine["start_ticks"]:
        return "alive"
    try:
        started = _start_ticks(pid)
    except OSError:
        return "dead"  # no such pid in this namespace
    if started is None or started != evidence.get("start_ticks"):
        return "dead"  # a zombie, or the pid was reused by a later process
    return "alive"


def _start_ticks(pid: int) -> int | None:
    """The process start time (clock ticks since boot); None for a zombie."""
    stat = (_PROC / str(pid) / "stat").read_text()
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    fields = stat.rsplit(")", 1)[1].split()
    state, start = fields[0], fields[19]
    if state in ("Z", "X", "x"):
        return None
    return int(start)
