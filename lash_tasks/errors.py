"""Every error lash-tasks raises, in one tree.

LashError                               (retryable: bool attribute on every error)
├── ConfigurationError                  developer misuse, found before anything runs
│   ├── MissingModelSpec
│   ├── MissingDependency               effect host / attachment store / process-env store ...
│   ├── ResidencyRequiresStore          active_path_only without a persistent store
│   ├── DurabilityMismatch              a durable store wired to an inline peer
│   ├── InvalidEnvironment              a bad LASH_* variable
│   ├── SchemaMissing                   the database was never migrated
│   │   └── SchemaOutdated              ... or not up to this build's revision
│   └── WorkerIdentityInUse             a live process already runs under this worker name
├── ValidationError                     bad input at an interface; nothing was written
│   ├── InvalidModelSpec
│   ├── InvalidSessionId
│   ├── UnknownParentNode
│   ├── NodeExists                      a new node's id is already taken in its session
│   ├── SchemaVersionError              persisted JSON of an unknown shape or version
│   ├── StaleToolSurface                tool-surface generation mismatch
│   ├── UnknownAttachment               an input names an attachment its session does not hold
│   ├── UnknownBranchPoint              an input's branch_from names a node its session lacks
│   ├── UnknownLlmProvider              a session names an LLM provider no one configured
│   ├── UnknownTool                     a session selects a tool no provider registers
│   └── InvalidCursor                   an event cursor that is malformed or from the future
├── NotFound
│   ├── SessionNotFound
│   ├── NodeNotFound
│   ├── AttachmentNotFound
│   └── ProcessNotFound
├── ConflictError                       the world changed under the caller
│   ├── SessionExists
│   ├── HeadRevisionConflict            (retryable) lost a head_revision compare-and-set
│   ├── TurnCommitConflict              same turn committed with a different hash
│   ├── SourceKeyConflict               same source key, different content
│   ├── InputIdConflict                 input id already names another input of the session
│   ├── StaleClaim                      claim completion whose claim id / token no longer holds
│   ├── UnsettledClaim                  commit carries claimed content but does not settle it
│   ├── RegistrationConflict            same process id, different registration
│   ├── ProcessEventConflict            same process event key, different event
│   └── ProcessFinished                 the process is terminal already (another way)
├── LeaseError
│   ├── LeaseBusy                       (retryable) another live owner holds the lease
│   └── LeaseLost                       (retryable) fence no longer valid: expired or taken over
├── EffectError
│   ├── EffectBusy                      (retryable) another live executor holds the effect
│   └── ReplayMismatch                  recorded envelope differs: terminal, never retried
├── RecordedFailure                     a journaled effect failed before; its replay raises
│                                       the same failure (`retryable` as recorded)
├── ProviderError                       an LLM provider failed; `retryable` set per status
├── ToolError                           a tool failed; surfaced to the model as a tool result
├── MessageRejected                     a task message that can never succeed (bad payload,
│                                       unknown session): the task FAILS, never retried
├── Interrupted                         the turn was interrupted on request; its call was cut
├── StepAttemptsExhausted               a turn step kept failing; the turn ends stopped
├── StoreUnavailable                    (retryable) transient database / blob-store failure
├── EventsUnavailable                   (retryable) the live event stream cannot be read
└── WaitTimeout                         (retryable) an input did not end within the wait
"""

from __future__ import annotations

from typing import Any


class LashError(Exception):
    """Root of every error raised by lash-tasks."""

    retryable: bool = False
    code: str = "lash_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description, for task results and recorded outcomes."""
        return {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
            "details": {k: _json_safe(v) for k, v in self.details.items()},
        }


def _json_safe(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)


class ConfigurationError(LashError):
    code = "configuration_error"


class MissingModelSpec(ConfigurationError):
    code = "missing_model_spec"


class MissingDependency(ConfigurationError):
    code = "missing_dependency"


class ResidencyRequiresStore(ConfigurationError):
    code = "residency_requires_store"


class DurabilityMismatch(ConfigurationError):
    code = "durability_mismatch"


class InvalidEnvironment(ConfigurationError):
    code = "invalid_environment"


class SchemaMissing(ConfigurationError):
    code = "schema_missing"


class SchemaOutdated(SchemaMissing):
    code = "schema_outdated"


class WorkerIdentityInUse(ConfigurationError):
    code = "worker_identity_in_use"


class ValidationError(LashError):
    code = "validation_error"


class InvalidModelSpec(ValidationError):
    code = "invalid_model_spec"


class InvalidSessionId(ValidationError):
    code = "invalid_session_id"


class UnknownParentNode(ValidationError):
    code = "unknown_parent_node"


class NodeExists(ValidationError):
    code = "node_exists"


class SchemaVersionError(ValidationError):
    code = "schema_version_error"


class StaleToolSurface(ValidationError):
    code = "stale_tool_surface"


class UnknownAttachment(ValidationError):
    code = "unknown_attachment"


class UnknownBranchPoint(ValidationError):
    code = "unknown_branch_point"


class UnknownLlmProvider(ValidationError):
    code = "unknown_llm_provider"


class UnknownTool(ValidationError):
    code = "unknown_tool"


class InvalidCursor(ValidationError):
    code = "invalid_cursor"


class NotFound(LashError):
    code = "not_found"


class SessionNotFound(NotFound):
    code = "session_not_found"


class NodeNotFound(NotFound):
    code = "node_not_found"


class AttachmentNotFound(NotFound):
    code = "attachment_not_found"


class ProcessNotFound(NotFound):
    code = "process_not_found"


class ConflictError(LashError):
    code = "conflict"


class SessionExists(ConflictError):
    code = "session_exists"


class HeadRevisionConflict(ConflictError):
    code = "head_revision_conflict"
    retryable = True


class TurnCommitConflict(ConflictError):
    code = "turn_commit_conflict"


class SourceKeyConflict(ConflictError):
    code = "source_key_conflict"


class InputIdConflict(ConflictError):
    code = "input_id_conflict"


class StaleClaim(ConflictError):
    code = "stale_claim"
    retryable = True


class UnsettledClaim(ConflictError):
    code = "unsettled_claim"


class RegistrationConflict(ConflictError):
    code = "registration_conflict"


class ProcessEventConflict(ConflictError):
    code = "process_event_conflict"


class ProcessFinished(ConflictError):
    code = "process_finished"


class LeaseError(LashError):
    code = "lease_error"


class LeaseBusy(LeaseError):
    code = "lease_busy"
    retryable = True


class LeaseLost(LeaseError):
    code = "lease_lost"
    retryable = True


class EffectError(LashError):
    code = "effect_error"


class EffectBusy(EffectError):
    code = "effect_busy"
    retryable = True


class ReplayMismatch(EffectError):
    code = "replay_mismatch"


class RecordedFailure(LashError):
    """A journaled effect failed before; replaying it yields the same failure."""

    code = "recorded_failure"

    def __init__(self, error: dict[str, Any]) -> None:
        # `message` is the positional argument; the rest of the record travels as details.
        details = {k: v for k, v in error.items() if k != "message"}
        super().__init__(str(error.get("message", "effect failed")), **details)
        self.error = error
        self.retryable = bool(error.get("retryable", False))


class ProviderError(LashError):
    """An LLM provider call failed. `status` is the HTTP status when there was one."""

    code = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body_excerpt: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, status=status, body_excerpt=body_excerpt, **details)
        self.status = status
        self.body_excerpt = body_excerpt
        self.retryable = retryable
        self.retry_after = retry_after


class ToolError(LashError):
    code = "tool_error"


class MessageRejected(LashError):
    """A Celery task message no retry can fix. Raised so the task ends in state FAILURE.

    Its only argument is the readable reason, so Celery's JSON result backend stores it and
    rebuilds it as the same type (`exc_type`, `exc_message`).
    """

    code = "message_rejected"

    @classmethod
    def because(cls, what: str, cause: LashError) -> MessageRejected:
        return cls(f"{what} rejected ({cause.code}): {cause.message}", cause=cause.code)


class Interrupted(LashError):
    """An interrupt cut a running LLM call. Journaled as the call's outcome, so a re-run of
    the step replays the interruption instead of calling the model again."""

    code = "interrupted"


class StepAttemptsExhausted(LashError):
    """A turn step was started `LASH_STEP_MAX_ATTEMPTS` times without committing."""

    code = "step_attempts_exhausted"


class StoreUnavailable(LashError):
    code = "store_unavailable"
    retryable = True


class EventsUnavailable(LashError):
    code = "events_unavailable"
    retryable = True


class WaitTimeout(LashError):
    code = "wait_timeout"
    retryable = True
