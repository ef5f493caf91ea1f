"""Build the tool registry from `LASH_TOOLS`, so deployments add tools without code changes."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any

from lash_tasks.errors import ConfigurationError, InvalidEnvironment
from lash_tasks.tools.builtins import BuiltinTools
from lash_tasks.tools.contract import ToolProvider
from lash_tasks.tools.registry import ToolRegistry

ENV_VAR = "LASH_TOOLS"

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def load_tool_providers(spec: str) -> list[ToolProvider]:
    """Providers named by a comma-separated list of `pkg.module:attr` entries.

    `attr` may be a dotted path inside the module and may name a provider instance, a
    provider class (instantiated without arguments) or a zero-argument factory.
    Empty entries are skipped so a trailing comma is harmless.
    """
    return [_load_entry(entry) for entry in (e.strip() for e in spec.split(",")) if entry]


def registry_from_env(env: Mapping[str, str]) -> ToolRegistry:
    """The builtin tools plus whatever `LASH_TOOLS` names."""
    providers: list[ToolProvider] = [BuiltinTools()]
    providers.extend(load_tool_providers(env.get(ENV_VAR, "")))
    try:
        return ToolRegistry(providers)
    except ConfigurationError as exc:
        # Duplicate names come from the variable, so point the operator at it.
        raise InvalidEnvironment(f"{ENV_VAR}: {exc.message}", **exc.details) from exc


def _load_entry(entry: str) -> ToolProvider:
    module_name, sep, attr_path = entry.partition(":")
    if not sep or not _DOTTED.match(module_name) or not _DOTTED.match(attr_path):
        raise _bad(entry, "expected 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise _bad(entry, f"module {missing!r} not found") from exc
        # The module exists but one of its own imports is missing.
        raise _bad(entry, f"importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise _bad(entry, f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc

    target: Any = module
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise _bad(entry, f"{module_name!r} has no attribute {attr_path!r}")
        target = getattr(target, part)

    provider = _instantiate(entry, target)
    if not isinstance(provider, ToolProvider) or not _is_provider(provider):
        raise _bad(
            entry,
            f"{type(provider).__name__} is not a tool provider "
            "(needs a non-empty 'name', 'manifests()' and 'execute()')",
        )
    return provider


def _instantiate(entry: str, target: Any) -> Any:
    # A class satisfies the protocol's attribute check itself, so classes are decided first.
    if isinstance(target, type) or (callable(target) and not _is_provider(target)):
        try:
            return target()
        except Exception as exc:
            raise _bad(entry, f"calling it failed: {type(exc).__name__}: {exc}") from exc
    return target


def _is_provider(obj: Any) -> bool:
    return (
        not isinstance(obj, type)
        and isinstance(obj, ToolProvider)
        and isinstance(getattr(obj, "name", None), str)
        and bool(obj.name)
    )


def _bad(entry: str, reason: str) -> InvalidEnvironment:
    return InvalidEnvironment(f"{ENV_VAR} entry {entry!r}: {reason}", variable=ENV_VAR, entry=entry)
