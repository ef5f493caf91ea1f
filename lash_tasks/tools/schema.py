"""A validator for the small JSON-schema subset tool manifests use.

Supported: `type` (object, string, integer, number, boolean, array, null, or a list of
those), `properties`, `required`, `enum`, `additionalProperties` (bool or schema), `items`,
`minimum`/`maximum`. Other keywords (`description`, `default`, ...) are ignored, so a
manifest written for a full validator still works here, only less strictly.

Problems are phrased for the model, which reads them as a tool result and retries.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

ROOT = "arguments"

_TYPE_NAMES = ("object", "string", "integer", "number", "boolean", "array", "null")


def validate(schema: Mapping[str, Any], value: Any, path: str = ROOT) -> list[str]:
    """Every way `value` fails `schema`, each naming the field (`"count: expected integer"`)."""
    problems: list[str] = []
    _check(schema, value, path, problems)
    return problems


def check_schema(schema: Any, path: str = ROOT) -> list[str]:
    """Problems with a schema itself, so a bad manifest is refused at registration
    instead of confusing the model at call time."""
    problems: list[str] = []
    _check_schema(schema, path, problems)
    return problems


def _check(schema: Mapping[str, Any], value: Any, path: str, problems: list[str]) -> None:
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not any(_is_type(value, name) for name in names):
            problems.append(f"{path}: expected {' or '.join(names)}, got {json_type_name(value)}")
            # Further checks would only restate the type mismatch.
            return

    if "enum" in schema and not any(_json_equal(value, option) for option in schema["enum"]):
        options = ", ".join(json.dumps(option) for option in schema["enum"])
        problems.append(f"{path}: must be one of {options}")

    if _is_number(value):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: must be <= {schema['maximum']}")

    if isinstance(value, dict):
        _check_object(schema, value, path, problems)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            _check(schema["items"], item, f"{path}[{index}]", problems)


def _check_object(
    schema: Mapping[str, Any], value: dict[str, Any], path: str, problems: list[str]
) -> None:
    properties: Mapping[str, Any] = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            problems.append(f"{_join(path, name)}: required")
    additional = schema.get("additionalProperties", True)
    for name, inner in value.items():
        if name in properties:
            _check(properties[name], inner, _join(path, name), problems)
        elif additional is False:
            problems.append(f"{_join(path, name)}: unexpected property")
        elif isinstance(additional, Mapping):
            _check(additional, inner, _join(path, name), problems)


def _join(path: str, name: str) -> str:
    # Top-level fields are named bare (`count`), which is how the model wrote them.
    return name if path == ROOT else f"{path}.{name}"


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "integer":
        # Strict: 3.0 is refused so tools never receive a float where they declared int.
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return _is_number(value)
    return False


def _is_number(value: Any) -> bool:
    # bool is an int subclass in Python but not a number in JSON; json.loads also
    # accepts NaN and Infinity, which no tool can use meaningfully.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


def _json_equal(left: Any, right: Any) -> bool:
    # Python says True == 1 and 1 == 1.0; JSON enums must not confuse a flag with a count.
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_json_equal, left, right))
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    return type(left) is type(right) and bool(left == right)


def json_type_name(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages the model reads."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number" if math.isfinite(value) else "non-finite number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _check_schema(schema: Any, path: str, problems: list[str]) -> None:
    if not isinstance(schema, Mapping):
        problems.append(f"{path}: schema must be an object")
        return
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else expected
        if not isinstance(names, list) or not names:
            problems.append(f"{path}: 'type' must be a type name or a list of them")
        else:
            for name in names:
                if name not in _TYPE_NAMES:
                    problems.append(f"{path}: unsupported type {name!r}")
    if "enum" in schema and not isinstance(schema["enum"], list):
        problems.append(f"{path}: 'enum' must be a list")
    for bound in ("minimum", "maximum"):
        if bound in schema and not _is_number(schema[bound]):
            problems.append(f"{path}: {bound!r} must be a number")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        problems.append(f"{path}: 'required' must be a list of strings")
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        problems.append(f"{path}: 'properties' must be an object")
    else:
        for name, inner in properties.items():
            _check_schema(inner, _join(path, str(name)), problems)
    additional = schema.get("additionalProperties", True)
    if isinstance(additional, Mapping):
        _check_schema(additional, f"{path}.*", problems)
    elif not isinstance(additional, bool):
        problems.append(f"{path}: 'additionalProperties' must be a boolean or a schema")
    if "items" in schema:
        _check_schema(schema["items"], f"{path}[]", problems)
