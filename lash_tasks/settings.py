"""Settings from the environment. Unset → the embedded default (no servers needed).

Embedded: a SQLite file, the filesystem kombu transport, a local attachment folder
and the scripted LLM provider, all under LASH_HOME (default ./.lash).
Production: LASH_DATABASE_URL=postgresql+psycopg2://… and LASH_BROKER_URL=redis://….
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from lash_tasks.errors import InvalidEnvironment


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidEnvironment(f"{name} must be an integer, got {raw!r}", variable=name) from None
    if value < minimum:
        raise InvalidEnvironment(f"{name} must be at least {minimum}", variable=name)
    return value


def _port(env: Mapping[str, str], name: str) -> int | None:
    if not env.get(name):
        return None
    port = _int(env, name, 0, 1)
    if port > 65535:
        raise InvalidEnvironment(f"{name} must be a port number (1-65535)", variable=name)
    return port


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or choices[0]
    if value not in choices:
        raise InvalidEnvironment(
            f"{name} must be one of {', '.join(choices)}, got {value!r}", variable=name
        )
    return value


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE or raw in _FALSE:
        return raw in _TRUE
    raise InvalidEnvironment(
        f"{name} must be one of {', '.join(_TRUE + _FALSE)}, got {raw[:20]!r}", variable=name
    )


LlmKind = Literal["scripted", "openai", "anthropic"]
LLM_KINDS: tuple[LlmKind, ...] = ("scripted", "openai", "anthropic")
# A named endpoint is declared by LASH_PROVIDER_<NAME>_KIND (with _BASE_URL and _API_KEY).
_ENDPOINT_VARIABLE = re.compile(r"^LASH_PROVIDER_([A-Z][A-Z0-9_]*?)_(KIND|BASE_URL|API_KEY)$")
PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class LlmEndpoint:
    """One LLM provider a session may name: a built-in one (`scripted`, `openai` from
    OPENAI_*, `anthropic` from ANTHROPIC_*) or a named endpoint of an OpenAI-compatible or
    Anthropic kind. `base_url` None is the vendor's own endpoint; the key is never shown."""

    name: str
    kind: LlmKind
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    url_variable: str | None = None
    key_variable: str | None = None


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    broker_url: str
    result_backend: str | None
    redis_url: str | None
    attachments_url: str
    provider: str
    model: str
    lease_ttl_ms: int = 30_000
    lease_renew_ms: int = 10_000
    # Maintenance job intervals (seconds). Beat fires by them and workers derive a firing's
    # slot from them, so every beat and worker of a fleet must share them.
    sweep_interval_s: int = 15
    tombstone_orphans_interval_s: int = 300
    vacuum_interval_s: int = 3600
    reclaim_attachments_interval_s: int = 3600
    prune_processes_interval_s: int = 3600
    orphan_retention_s: int = 3600
    attachment_grace_s: int = 3600
    input_retention_s: int = 24 * 3600
    process_retention_s: int = 7 * 24 * 3600
    step_time_limit_s: int = 600
    heartbeat_ms: int = 1_000
    # Live events: the Redis Stream per session keeps about this many, for at most this long.
    events_maxlen: int = 4096
    events_max_age_s: int = 900
    # The database event log (no Redis): rows older than this go, but never a session's last
    # `events_db_keep`, so a cursor can always be told apart from one of the future.
    events_db_retention_s: int = 24 * 3600
    events_db_keep: int = 100
    # Whether HTTP LLM providers ask for a streamed answer. Streaming only pays when someone
    # can see the deltas, so it is on exactly when live events are (Redis configured).
    llm_stream: bool = False
    step_max_attempts: int = 5
    steps_per_delivery: int = 8
    # A worker's own metrics endpoint (off unless a port is given), and the log format.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    log_format: str = "text"
    llm_endpoints: tuple[LlmEndpoint, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def provider_names(self) -> tuple[str, ...]:
        """The LLM provider names a session may choose here (a worker serves those it has
        credentials for)."""
        return tuple(e.name for e in self.llm_endpoints)

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        home = Path(env.get("LASH_HOME") or ".lash").absolute()
        ttl = _int(env, "LASH_LEASE_TTL_MS", 30_000, 100)
        renew = _int(env, "LASH_LEASE_RENEW_MS", max(1, ttl // 3), 1)
        if ttl < 3 * renew:
            raise InvalidEnvironment(
                "LASH_LEASE_TTL_MS must be at least 3 x LASH_LEASE_RENEW_MS",
                variable="LASH_LEASE_TTL_MS",
            )
        broker = env.get("LASH_BROKER_URL") or "filesystem://"
        default_backend = (
            f"db+sqlite:///{home / 'results.db'}" if broker == "filesystem://" else None
        )
        redis_url = env.get("LASH_REDIS_URL") or (broker if broker.startswith("redis") else None)
        return cls(
            home=home,
            database_url=env.get("LASH_DATABASE_URL") or f"sqlite:///{home / 'lash.db'}",
            broker_url=broker,
            result_backend=env.get("LASH_RESULT_BACKEND") or default_backend,
            redis_url=redis_url,
            attachments_url=env.get("LASH_ATTACHMENTS_URL") or (home / "attachments").as_uri(),
            provider=env.get("LASH_PROVIDER", "").strip().lower() or "scripted",
            model=env.get("LASH_MODEL") or "scripted-echo",
            lease_ttl_ms=ttl,
            lease_renew_ms=renew,
            sweep_interval_s=_int(env, "LASH_SWEEP_INTERVAL_S", 15, 1),
            tombstone_orphans_interval_s=_int(env, "LASH_TOMBSTONE_ORPHANS_INTERVAL_S", 300, 1),
            vacuum_interval_s=_int(env, "LASH_VACUUM_INTERVAL_S", 3600, 1),
            reclaim_attachments_interval_s=_int(
                env, "LASH_RECLAIM_ATTACHMENTS_INTERVAL_S", 3600, 1
            ),
            prune_processes_interval_s=_int(env, "LASH_PRUNE_PROCESSES_INTERVAL_S", 3600, 1),
            orphan_retention_s=_int(env, "LASH_ORPHAN_RETENTION_S", 3600),
            attachment_grace_s=_int(env, "LASH_ATTACHMENT_GRACE_S", 3600),
            input_retention_s=_int(env, "LASH_INPUT_RETENTION_S", 24 * 3600),
            process_retention_s=_int(env, "LASH_PROCESS_RETENTION_S", 7 * 24 * 3600),
            step_time_limit_s=_int(env, "LASH_STEP_TIME_LIMIT_S", 600, 10),
            heartbeat_ms=_int(env, "LASH_HEARTBEAT_MS", 1_000, 50),
            events_maxlen=_int(env, "LASH_EVENTS_MAXLEN", 4096, 1),
            events_max_age_s=_int(env, "LASH_EVENTS_MAX_AGE_S", 900, 1),
            events_db_retention_s=_int(env, "LASH_EVENTS_DB_RETENTION_S", 24 * 3600),
            events_db_keep=_int(env, "LASH_EVENTS_DB_KEEP", 100, 1),
            llm_stream=_bool(env, "LASH_LLM_STREAM", redis_url is not None),
            step_max_attempts=_int(env, "LASH_STEP_MAX_ATTEMPTS", 5, 1),
            steps_per_delivery=_int(env, "LASH_STEPS_PER_DELIVERY", 8, 1),
            metrics_port=_port(env, "LASH_METRICS_PORT"),
            metrics_host=env.get("LASH_METRICS_HOST") or "127.0.0.1",
            log_format=_choice(env, "LASH_LOG_FORMAT", ("text", "json")),
            llm_endpoints=llm_endpoints_from_env(env),
            env=env,
        )

    def broker_transport_options(self) -> dict[str, Any]:
        # Redelivery after a lost worker waits for this, so keep it far above a step's limit
        # but the sweeper recovers lost work long before it matters.
        options: dict[str, Any] = {"visibility_timeout": self.visibility_timeout_s}
        if self.embedded_broker:
            folder = str(self.home / "broker")
            options.update(
                {
                    "data_folder_in": folder,
                    "data_folder_out": folder,
                    "processed_folder": str(self.home / "broker-processed"),
                    "store_processed": False,
                    "control_folder": str(self.home / "broker-control"),
                    # The folder is polled; the default second would dominate a turn's latency.
                    "polling_interval": 0.05,
                }
            )
        return options

    @property
    def visibility_timeout_s(self) -> int:
        return max(3600, self.step_time_limit_s * 6)

    def ensure_local_dirs(self) -> None:
        """Create the folders the embedded default writes to."""
        if self.embedded_broker or self.database_url.startswith("sqlite:///"):
            self.home.mkdir(parents=True, exist_ok=True)
        if self.embedded_broker:
            (self.home / "broker").mkdir(parents=True, exist_ok=True)
            (self.home / "broker-processed").mkdir(parents=True, exist_ok=True)


def llm_endpoints_from_env(env: Mapping[str, str]) -> tuple[LlmEndpoint, ...]:
    """The built-in LLM providers, then every endpoint named by LASH_PROVIDER_<NAME>_KIND.

    Only names and kinds are checked here (every process that creates sessions needs them);
    URLs and keys are checked by the worker that serves them.
    """
    endpoints = [
        LlmEndpoint("scripted", "scripted"),
        _builtin(env, "openai", "OPENAI_BASE_URL", "OPENAI_API_KEY"),
        _builtin(env, "anthropic", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"),
    ]
    named: dict[str, set[str]] = {}
    for variable in sorted(env):
        match = _ENDPOINT_VARIABLE.match(variable)
        if match and env[variable].strip():
            named.setdefault(match.group(1), set()).add(match.group(2))
    for upper, parts in named.items():
        name = upper.lower()
        prefix = f"LASH_PROVIDER_{upper}"
        if "KIND" not in parts:
            raise InvalidEnvironment(
                f"{prefix}_{sorted(parts)[0]} is set but {prefix}_KIND is not "
                f"(one of: openai, anthropic)",
                variable=f"{prefix}_KIND",
            )
        kind = env[f"{prefix}_KIND"].strip().lower()
        if kind not in ("openai", "anthropic"):
            raise InvalidEnvironment(
                f"{prefix}_KIND must be one of: openai, anthropic", variable=f"{prefix}_KIND"
            )
        if name in LLM_KINDS or not PROVIDER_NAME.match(name):
            raise InvalidEnvironment(
                f"{prefix}_KIND: {name!r} is a built-in provider name or not a valid one "
                f"(lower-case letters, digits, underscores)",
                variable=f"{prefix}_KIND",
            )
        endpoints.append(
            LlmEndpoint(
                name,
                cast(LlmKind, kind),
                base_url=env.get(f"{prefix}_BASE_URL", "").strip() or None,
                api_key=env.get(f"{prefix}_API_KEY", "").strip() or None,
                url_variable=f"{prefix}_BASE_URL",
                key_variable=f"{prefix}_API_KEY",
            )
        )
    return tuple(endpoints)


def _builtin(env: Mapping[str, str], kind: LlmKind, url: str, key: str) -> LlmEndpoint:
    return LlmEndpoint(
        kind,
        kind,
        base_url=env.get(url, "").strip() or None,
        api_key=env.get(key, "").strip() or None,
        url_variable=url,
        key_variable=key,
    )
