from __future__ import annotations

import math
from typing import Any

import pytest

from lash_tasks.tools.schema import check_schema, validate

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "expression": {"type": "string"},
        "count": {"type": "integer", "minimum": 0, "maximum": 10},
        "ratio": {"type": "number"},
        "flag": {"type": "boolean"},
        "mode": {"type": "string", "enum": ["fast", "slow"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "options": {
            "type": "object",
            "properties": {"level": {"type": "integer"}},
            "required": ["level"],
            "additionalProperties": False,
        },
        "maybe": {"type": ["string", "null"]},
    },
    "required": ["expression"],
    "additionalProperties": False,
}


def test_valid_arguments_have_no_problems() -> None:
    args = {
        "expression": "1 + 1",
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "mode": "fast",
        "tags": ["a", "b"],
        "options": {"level": 2},
        "maybe": None,
    }
    assert validate(SCHEMA, args) == []


def test_missing_required_field_is_named() -> None:
    assert validate(SCHEMA, {}) == ["expression: required"]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"count": "3"}, "count: expected integer, got string"),
        ({"count": 3.0}, "count: expected integer, got number"),
        ({"count": True}, "count: expected integer, got boolean"),
        ({"ratio": "1"}, "ratio: expected number, got string"),
        ({"ratio": False}, "ratio: expected number, got boolean"),
        ({"ratio": math.nan}, "ratio: expected number, got non-finite number"),
        ({"flag": 1}, "flag: expected boolean, got integer"),
        ({"tags": "a"}, "tags: expected array, got string"),
        ({"options": []}, "options: expected object, got array"),
        ({"maybe": 1}, "maybe: expected string or null, got integer"),
    ],
)
def test_wrong_types_are_named(args: dict[str, Any], problem: str) -> None:
    assert validate(SCHEMA, {"expression": "x", **args}) == [problem]


def test_integer_is_a_number() -> None:
    assert validate(SCHEMA, {"expression": "x", "ratio": 2}) == []


def test_enum() -> None:
    assert validate(SCHEMA, {"expression": "x", "mode": "medium"}) == [
        'mode: must be one of "fast", "slow"'
    ]


def test_enum_does_not_confuse_booleans_with_numbers() -> None:
    schema = {"enum": [1, 2]}
    assert validate(schema, True) != []
    assert validate(schema, 1) == []
    assert validate(schema, 1.0) == []
    assert validate({"enum": [True]}, 1) != []


def test_bounds() -> None:
    assert validate(SCHEMA, {"expression": "x", "count": -1}) == ["count: must be >= 0"]
    assert validate(SCHEMA, {"expression": "x", "count": 11}) == ["count: must be <= 10"]


def test_unexpected_property() -> None:
    assert validate(SCHEMA, {"expression": "x", "extra": 1}) == ["extra: unexpected property"]


def test_additional_properties_allowed_by_default() -> None:
    assert validate({"type": "object", "properties": {}}, {"anything": 1}) == []


def test_additional_properties_schema() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert validate(schema, {"a": 1, "b": "x"}) == ["b: expected integer, got string"]


def test_nested_paths() -> None:
    problems = validate(
        SCHEMA, {"expression": "x", "tags": ["a", 2], "options": {"level": "hi", "x": 1}}
    )
    assert problems == [
        "tags[1]: expected string, got integer",
        "options.level: expected integer, got string",
        "options.x: unexpected property",
    ]
    assert validate(SCHEMA, {"expression": "x", "options": {}}) == ["options.level: required"]


def test_every_problem_is_reported() -> None:
    problems = validate(SCHEMA, {"count": "x", "flag": "y"})
    assert sorted(problems) == [
        "count: expected integer, got string",
        "expression: required",
        "flag: expected boolean, got string",
    ]


def test_root_type_mismatch() -> None:
    assert validate(SCHEMA, [1]) == ["arguments: expected object, got array"]


def test_unknown_keywords_are_ignored() -> None:
    assert validate({"type": "string", "format": "email", "description": "d"}, "x") == []


def test_check_schema_accepts_the_subset() -> None:
    assert check_schema(SCHEMA) == []


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ("object", "schema must be an object"),
        ({"type": "tuple"}, "unsupported type 'tuple'"),
        ({"type": []}, "'type' must be"),
        ({"type": "object", "required": "a"}, "'required' must be a list of strings"),
        ({"type": "object", "properties": []}, "'properties' must be an object"),
        ({"type": "object", "properties": {"a": {"type": "int"}}}, "a: unsupported type 'int'"),
        ({"type": "object", "additionalProperties": "no"}, "'additionalProperties'"),
        ({"type": "string", "enum": "a"}, "'enum' must be a list"),
        ({"type": "integer", "minimum": "0"}, "'minimum' must be a number"),
        ({"type": "array", "items": {"type": "bogus"}}, "unsupported type 'bogus'"),
    ],
)
def test_check_schema_reports_bad_schemas(schema: Any, fragment: str) -> None:
    problems = check_schema(schema)
    assert problems, schema
    assert any(fragment in p for p in problems), problems
