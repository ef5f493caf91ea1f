"""Transitional: the old `SqlStore` names, forwarded to the parts of `Store`. Deleted once
every caller uses the parts."""

from __future__ import annotations

from typing import Any

from lash_tasks.store.store import Store

MOVED: dict[str, tuple[str, str]] = {
    # sessions
    "create_session": ("sessions", "create"),
    "fill_policy": ("sessions", "fill_policy"),
    "session_record": ("sessions", "record"),
    "session_exists": ("sessions", "exists"),
    "list_session_ids": ("sessions", "list_ids"),
    "load": ("sessions", "load"),
    "load_node": ("sessions", "load_node"),
    "delete_session": ("sessions", "delete"),
    "orphaned_node_ids": ("sessions", "orphaned_node_ids"),
    # inputs
    "enqueue_input": ("inputs", "enqueue"),
    "get_input": ("inputs", "get"),
    "list_inputs": ("inputs", "list_all"),
    "list_pending_inputs": ("inputs", "list_pending"),
    "cancel_input": ("inputs", "cancel"),
    "cancel_inputs": ("inputs", "cancel_many"),
    "cancel_input_suffix": ("inputs", "cancel_suffix"),
    "claim_next_turn_inputs": ("inputs", "claim_next_turn"),
    "accept_active_inputs": ("inputs", "accept_active"),
    "abandon_input_claim": ("inputs", "abandon_claim"),
    "accepted_turn_inputs": ("inputs", "accepted"),
    # queue
    "enqueue_queued_work": ("queue", "enqueue"),
    "list_queued_work": ("queue", "list_batches"),
    "claim_leading_command": ("queue", "claim_leading_command"),
    "claim_turn_work": ("queue", "claim_turn_work"),
    "cancel_queued_work": ("queue", "cancel"),
    # leases
    "try_claim_lease": ("leases", "try_claim"),
    "renew_lease": ("leases", "renew"),
    "release_lease": ("leases", "release"),
    "lease_state": ("leases", "state"),
    # heartbeats
    "live_incarnations": ("heartbeats", "live_incarnations"),
    "incarnation": ("heartbeats", "incarnation"),
    "register_incarnation": ("heartbeats", "register"),
    "beat": ("heartbeats", "beat"),
    "retire_incarnation": ("heartbeats", "retire"),
    "reap_dead_incarnations": ("heartbeats", "reap_dead"),
    # turns
    "active_turn": ("turns", "active"),
    "begin_turn": ("turns", "begin"),
    "restamp_turn_claims": ("turns", "restamp_claims"),
    "has_waiting_work": ("turns", "has_waiting_work"),
    "turn_result": ("turns", "result"),
    "record_step_failure": ("turns", "record_step_failure"),
    "forgive_step_attempt": ("turns", "forgive_step_attempt"),
    "step_attempts": ("turns", "step_attempts"),
    "request_cancel": ("turns", "request_cancel"),
    "cancel_requested": ("turns", "cancel_requested"),
    # commits
    "commit": ("commits", "commit"),
    # journal
    "journal_prepare": ("journal", "prepare"),
    "journal_renew": ("journal", "renew"),
    "journal_finalize": ("journal", "finalize"),
    "journal_has": ("journal", "has"),
    "journal_release": ("journal", "release"),
    "journal_entries": ("journal", "entries"),
    # manifest
    "record_intent": ("manifest", "record_intent"),
    "holds_ref": ("manifest", "holds_ref"),
    "manifest_row": ("manifest", "row"),
    "forget_ref": ("manifest", "forget_ref"),
    "manifest_rows": ("manifest", "rows"),
    "has_live_ref": ("manifest", "has_live_ref"),
    "live_attachment_ids": ("manifest", "live_attachment_ids"),
    "forget_dead_intents": ("manifest", "forget_dead_intents"),
    "manifest_now_ms": ("manifest", "now_ms"),
    # maintenance
    "tombstone_nodes": ("maintenance", "tombstone_nodes"),
    "tombstone_old_orphans": ("maintenance", "tombstone_old_orphans"),
    "changed_sessions_page": ("maintenance", "changed_sessions_page"),
    "vacuum": ("maintenance", "vacuum"),
    "runnable_sessions": ("maintenance", "runnable_sessions"),
    "count_rows": ("maintenance", "count_rows"),
    "claim_maintenance_slot": ("maintenance", "claim_slot"),
    "finish_maintenance": ("maintenance", "finish_slot"),
    "last_maintenance_start": ("maintenance", "last_start"),
    "maintenance_runs": ("maintenance", "runs"),
    "prune_terminal_processes": ("maintenance", "prune_terminal_processes"),
    # database
    "engine": ("database", "engine"),
    "dialect": ("database", "dialect"),
    "tx": ("database", "tx"),
    "now_ms": ("database", "now_ms"),
    "db_now_ms": ("database", "db_now_ms"),
}


class SqlStore(Store):
    @classmethod
    def from_url(cls, url: str) -> SqlStore:
        return cls(Store.from_url(url).database)

    def __getattr__(self, name: str) -> Any:
        if name not in MOVED:
            raise AttributeError(name)
        part, new = MOVED[name]
        return getattr(getattr(self, part), new)
