"""The tool surface a session sees, and the one place tool calls are executed."""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lash_tasks.errors import (
    ConfigurationError,
    SchemaVersionError,
    StaleToolSurface,
    ToolError,
    ValidationError,
)
from lash_tasks.machine.messages import ToolCall, ToolManifest
from lash_tasks.tools.contract import (
    BACKGROUND_DISPOSITIONS,
    BackgroundDisposition,
    ToolContext,
    ToolProvider,
    ToolResult,
)
from lash_tasks.tools.schema import check_schema, json_type_name, validate

SNAPSHOT_VERSION = 1

# The strictest common rule of the LLM wire formats; refusing other names at registration
# beats a provider 400 on every turn.
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry:
    provider: ToolProvider
    manifest: ToolManifest
    background: BackgroundDisposition | None = None


class ToolRegistry:
    """Providers plus the active tool surface, versioned by `generation`.

    The surface is every registered tool unless a snapshot was restored or applied, in
    which case it is the snapshot's tools. Manifests are read once, at registration, so
    the surface only changes through the operations that bump `generation`.
    Providers given to the constructor form generation 0.
    """

    def __init__(
        self,
        providers: Iterable[ToolProvider] = (),
        *,
        reraise: tuple[type[BaseException], ...] = (),
    ) -> None:
        """`reraise`: exception types a tool may raise that must reach the worker instead of
        becoming a tool result (time limits, lost leases)."""
        self._lock = threading.RLock()
        self._providers: dict[str, ToolProvider] = {}
        self._entries: dict[str, _Entry] = {}
        self._enabled: set[str] | None = None
        self._generation = 0
        self._reraise = reraise
        for provider in providers:
            self._register(provider)

    @property
    def generation(self) -> int:
        with self._lock:
            return self._generation

    @property
    def providers(self) -> tuple[ToolProvider, ...]:
        with self._lock:
            return tuple(self._providers.values())

    def add_provider(self, provider: ToolProvider) -> int:
        """Register `provider` and return the new generation. Its tools become active."""
        with self._lock:
            self._register(provider)
            self._generation += 1
            return self._generation

    def remove_provider(self, name: str) -> int:
        """Unregister the provider called `name` and return the new generation."""
        with self._lock:
            if name not in self._providers:
                raise ConfigurationError(f"no tool provider named {name!r}", provider=name)
            del self._providers[name]
            for tool in [t for t, e in self._entries.items() if e.provider.name == name]:
                del self._entries[tool]
                if self._enabled is not None:
                    self._enabled.discard(tool)
            self._generation += 1
            return self._generation

    def manifests(self) -> list[ToolManifest]:
        """What the model is told about the active tools, in registration order."""
        with self._lock:
            return [e.manifest for name, e in self._entries.items() if self._is_active(name)]

    def tool_names(self) -> list[str]:
        return [m.name for m in self.manifests()]

    def snapshot(self) -> dict[str, Any]:
        """The active surface as JSON, for persisting with the session."""
        with self._lock:
            return {
                "version": SNAPSHOT_VERSION,
                "generation": self._generation,
                "tools": [
                    {"provider": e.provider.name, "manifest": copy.deepcopy(e.manifest.to_json())}
                    for name, e in self._entries.items()
                    if self._is_active(name)
                ],
            }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Adopt a persisted surface and its generation, e.g. when a worker resumes a session.

        Tools the snapshot names that no provider here offers are tolerated: calling them
        yields an "unknown tool" result rather than failing the resume.
        """
        generation, names = _parse_snapshot(snapshot)
        with self._lock:
            self._enabled = set(names)
            self._generation = generation

    def limit_to(self, names: Iterable[str]) -> None:
        """The session's own selection of tools, before it has a persisted surface (its
        first commit persists this one). Names no provider here offers are tolerated, as
        in `restore`."""
        with self._lock:
            self._enabled = set(names)

    def apply(self, snapshot: Mapping[str, Any], expected_generation: int) -> int:
        """Make the snapshot's tools the surface, if nobody changed it since
        `expected_generation`; return the new generation. The snapshot's own generation is
        ignored: `expected_generation` is the compare-and-set."""
        _, names = _parse_snapshot(snapshot)
        with self._lock:
            if expected_generation != self._generation:
                raise StaleToolSurface(
                    f"tool surface is at generation {self._generation}, not {expected_generation}",
                    expected=expected_generation,
                    current=self._generation,
                )
            missing = sorted(set(names) - self._entries.keys())
            if missing:
                raise ValidationError(
                    f"no registered provider offers tool(s): {', '.join(missing)}",
                    missing=missing,
                )
            self._enabled = set(names)
            self._generation += 1
            return self._generation

    def background(self, name: str) -> BackgroundDisposition | None:
        """The disposition of an active tool that runs in the background, else None."""
        with self._lock:
            entry = self._entries.get(name) if self._is_active(name) else None
            return None if entry is None else entry.background

    def check(self, call: ToolCall) -> ToolResult | None:
        """The error result the model gets for this call (unknown tool, bad arguments), or
        None when it may run."""
        checked = self._checked(call)
        return checked if isinstance(checked, ToolResult) else None

    def execute(self, call: ToolCall, context: ToolContext) -> ToolResult:
        """Run one tool call (a background tool too: this is its run). Bad model input and
        tool failures come back as error results the model can read; only exceptions
        listed in `reraise` propagate."""
        checked = self._checked(call)
        if isinstance(checked, ToolResult):
            return checked
        entry, arguments = checked
        try:
            result = entry.provider.execute(call.name, arguments, context)
        except self._reraise:
            raise
        except ToolError as exc:
            return ToolResult(exc.message, is_error=True)
        except Exception as exc:
            log.warning("tool %r raised", call.name, exc_info=True)
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return ToolResult(f"tool {call.name!r} failed: {detail}", is_error=True)
        if not isinstance(result, ToolResult):
            return ToolResult(
                f"tool {call.name!r} returned {type(result).__name__}, not a ToolResult",
                is_error=True,
            )
        return result

    def _checked(self, call: ToolCall) -> tuple[_Entry, dict[str, Any]] | ToolResult:
        with self._lock:
            entry = self._entries.get(call.name) if self._is_active(call.name) else None
            known = [name for name in self._entries if self._is_active(name)]
        if entry is None:
            return ToolResult(
                f"unknown tool {call.name!r}; known tools: {', '.join(known) or '(none)'}",
                is_error=True,
            )
        arguments = _parse_arguments(call)
        if isinstance(arguments, ToolResult):
            return arguments
        problems = validate(entry.manifest.parameters, arguments)
        if problems:
            return ToolResult(
                f"invalid arguments for tool {call.name!r}: " + "; ".join(problems),
                is_error=True,
            )
        return entry, arguments

    def _is_active(self, name: str) -> bool:
        return name in self._entries and (self._enabled is None or name in self._enabled)

    def _register(self, provider: ToolProvider) -> None:
        name = getattr(provider, "name", None)
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"tool provider {provider!r} has no name")
        if name in self._providers:
            raise ConfigurationError(f"tool provider {name!r} is already registered", provider=name)
        manifests = provider.manifests()
        background = _background_tools(name, provider, {m.name for m in manifests})
        new: dict[str, _Entry] = {}
        for manifest in manifests:
            if not isinstance(manifest, ToolManifest):
                raise ConfigurationError(
                    f"tool provider {name!r} returned {type(manifest).__name__}, not a ToolManifest"
                )
            _check_manifest(name, manifest)
            clash = self._entries.get(manifest.name)
            if clash is not None or manifest.name in new:
                owner = clash.provider.name if clash is not None else name
                raise ConfigurationError(
                    f"tool {manifest.name!r} from provider {name!r} is already provided "
                    f"by {owner!r}",
                    tool=manifest.name,
                    provider=name,
                    existing_provider=owner,
                )
            new[manifest.name] = _Entry(provider, manifest, background.get(manifest.name))
        self._providers[name] = provider
        self._entries.update(new)
        if self._enabled is not None:
            self._enabled.update(new)


def _background_tools(
    provider: str, instance: ToolProvider, tools: set[str]
) -> dict[str, BackgroundDisposition]:
    """The provider's background declaration, checked: its own tools, known dispositions."""
    declared = getattr(instance, "background_tools", None)
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        raise ConfigurationError(f"tool provider {provider!r}: background_tools must be a mapping")
    checked: dict[str, BackgroundDisposition] = {}
    for tool, disposition in declared.items():
        if tool not in tools:
            raise ConfigurationError(
                f"tool provider {provider!r} declares {tool!r} background but offers no such tool",
                tool=tool,
            )
        if disposition not in BACKGROUND_DISPOSITIONS:
            raise ConfigurationError(
                f"background tool {tool!r} of provider {provider!r}: disposition must be one "
                f"of {', '.join(BACKGROUND_DISPOSITIONS)}, got {disposition!r}",
                tool=tool,
            )
        checked[tool] = disposition
    return checked


def _check_manifest(provider: str, manifest: ToolManifest) -> None:
    if not _TOOL_NAME.match(manifest.name):
        raise ConfigurationError(
            f"tool name {manifest.name!r} from provider {provider!r} must match "
            f"{_TOOL_NAME.pattern}",
            tool=manifest.name,
        )
    problems = check_schema(manifest.parameters)
    if not problems and manifest.parameters.get("type") != "object":
        problems.append("arguments: parameters must be a schema of type 'object'")
    if problems:
        raise ConfigurationError(
            f"tool {manifest.name!r} from provider {provider!r} has a bad parameters schema: "
            + "; ".join(problems),
            tool=manifest.name,
            problems=problems,
        )


def _parse_arguments(call: ToolCall) -> dict[str, Any] | ToolResult:
    raw: object = call.arguments
    if isinstance(raw, dict):
        # Some wire formats hand over arguments already decoded.
        return raw
    if not isinstance(raw, str):
        return ToolResult(
            f"arguments for tool {call.name!r} must be JSON text, got {type(raw).__name__}",
            is_error=True,
        )
    if not raw.strip():
        # Models often send nothing at all for a tool without parameters.
        return {}
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return ToolResult(
            f"arguments for tool {call.name!r} are not valid JSON: {exc}", is_error=True
        )
    if not isinstance(parsed, dict):
        return ToolResult(
            f"arguments for tool {call.name!r} must be a JSON object, got {json_type_name(parsed)}",
            is_error=True,
        )
    return parsed


def _parse_snapshot(snapshot: Mapping[str, Any]) -> tuple[int, list[str]]:
    if not isinstance(snapshot, Mapping) or snapshot.get("version") != SNAPSHOT_VERSION:
        raise SchemaVersionError(f"tool surface snapshot must have version {SNAPSHOT_VERSION}")
    generation = snapshot.get("generation")
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise SchemaVersionError("tool surface snapshot needs a non-negative integer generation")
    tools = snapshot.get("tools")
    if not isinstance(tools, list):
        raise SchemaVersionError("tool surface snapshot needs a 'tools' list")
    names: list[str] = []
    for tool in tools:
        manifest = tool.get("manifest") if isinstance(tool, Mapping) else None
        name = manifest.get("name") if isinstance(manifest, Mapping) else None
        if not isinstance(name, str):
            raise SchemaVersionError("each snapshot tool needs a 'manifest' with a string 'name'")
        names.append(name)
    return generation, names
