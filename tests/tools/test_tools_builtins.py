from __future__ import annotations

import json
import time

import pytest

from lash_tasks.machine.messages import ToolCall
from lash_tasks.tools.builtins import MAX_REPEAT_BYTES, BuiltinTools
from lash_tasks.tools.contract import AttachmentSink, ToolContext, ToolResult
from lash_tasks.tools.registry import ToolRegistry


class FakeAttachments:
    def __init__(self) -> None:
        self.stored: list[tuple[bytes, str]] = []

    def put(self, data: bytes, media_type: str) -> str:
        self.stored.append((data, media_type))
        return f"att_{len(self.stored)}"


def run(tool: str, attachments: AttachmentSink | None = None, **arguments: object) -> ToolResult:
    registry = ToolRegistry([BuiltinTools(sleep=lambda seconds: None)])
    context = ToolContext("s1", "t1", "c1", attachments=attachments)
    return registry.execute(ToolCall("c1", tool, json.dumps(arguments)), context)


def calc(expression: str) -> ToolResult:
    return run("calculator", expression=expression)


def test_fake_attachments_satisfy_the_protocol() -> None:
    assert isinstance(FakeAttachments(), AttachmentSink)


def test_builtin_tool_names() -> None:
    names = [m.name for m in BuiltinTools().manifests()]
    assert names == ["calculator", "write_file", "repeat_text", "sleep_ms"]


# --- calculator -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "answer"),
    [
        ("1 + 2", "3"),
        ("(2 + 3) * 4 ** 2", "80"),
        ("7 // 2", "3"),
        ("7 % 3", "1"),
        ("7 - 10", "-3"),
        ("-3 + +2", "-1"),
        ("1 / 4", "0.25"),
        ("2 ** -1", "0.5"),
        ("2 ** 0.5 * 2 ** 0.5 // 1", "2.0"),
        ("  1.5e3 ", "1500.0"),
        ("-(-(2))", "2"),
        ("2 ** 100", str(2**100)),
    ],
)
def test_calculator_arithmetic(expression: str, answer: str) -> None:
    assert calc(expression) == ToolResult(answer)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os')", "function calls are not allowed"),
        ("__import__('os').system('true')", "not allowed"),
        ("os", "names are not allowed: 'os'"),
        ("x + 1", "names are not allowed: 'x'"),
        ("abs(-1)", "function calls are not allowed"),
        ("().__class__", "not allowed"),
        ("'a' * 3", "only numbers are allowed"),
        ("True + 1", "only numbers are allowed"),
        ("1j * 2", "only numbers are allowed"),
        ("[1, 2]", "List is not allowed"),
        ("1 if 1 else 0", "IfExp is not allowed"),
        ("1 < 2", "Compare is not allowed"),
        ("2 << 3", "operator LShift is not supported"),
        ("~1", "operator Invert is not supported"),
        ("not 1", "operator Not is not supported"),
        ("lambda: 1", "Lambda is not allowed"),
        ("1 +", "not an arithmetic expression"),
        ("x = 1", "not an arithmetic expression"),
        ("", "not an arithmetic expression"),
    ],
)
def test_calculator_refuses_everything_but_arithmetic(expression: str, reason: str) -> None:
    result = calc(expression)
    assert result.is_error, result
    assert reason in result.text


@pytest.mark.parametrize("expression", ["1 / 0", "1 // 0", "1 % 0", "1.5 / 0.0", "0 ** -1"])
def test_calculator_division_by_zero(expression: str) -> None:
    assert calc(expression) == ToolResult("division by zero", is_error=True)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("9 ** 9 ** 9 ** 9", "result is too large"),
        ("2 ** 100000", "result is too large"),
        ("(2 ** 5000) * (2 ** 5000) * (2 ** 5000)", "result is too large"),
        ("10.0 ** 400", "result is too large"),
        ("1e308 * 10", "result is not a finite number"),
        ("(-8) ** 0.5 // 1", "result is not a real number"),
        ("(" * 300 + "1" + ")" * 300, "not an arithmetic expression"),
        ("1" + "+1" * 600, "longer than"),
    ],
)
def test_calculator_refuses_pathological_input_quickly(expression: str, reason: str) -> None:
    started = time.monotonic()
    result = calc(expression)
    assert time.monotonic() - started < 1.0
    assert result.is_error
    assert reason in result.text


def test_calculator_needs_an_expression() -> None:
    result = run("calculator")
    assert result.is_error and "expression: required" in result.text


# --- write_file -------------------------------------------------------------------------


def test_write_file_stores_bytes_through_the_attachment_store() -> None:
    store = FakeAttachments()
    result = run(
        "write_file", store, filename="notes.txt", content="héllo", media_type="text/markdown"
    )
    assert not result.is_error
    assert result.attachments == ("att_1",)
    assert "att_1" in result.text and "notes.txt" in result.text
    assert store.stored == [("héllo".encode(), "text/markdown")]


def test_write_file_guesses_media_type_from_the_label() -> None:
    store = FakeAttachments()
    run("write_file", store, filename="data.json", content="{}")
    run("write_file", store, filename="no-extension", content="x")
    assert [media for _, media in store.stored] == ["application/json", "text/plain"]


def test_write_file_filename_is_only_a_label() -> None:
    store = FakeAttachments()
    result = run("write_file", store, filename="../../etc/passwd", content="root:x:0:0")
    assert not result.is_error
    # The store is the only destination and it never sees the filename.
    assert store.stored == [(b"root:x:0:0", "text/plain")]


def test_write_file_without_attachment_store() -> None:
    result = run("write_file", None, filename="a.txt", content="x")
    assert result == ToolResult("no attachment store is configured", is_error=True)


def test_write_file_refuses_a_bad_media_type() -> None:
    store = FakeAttachments()
    result = run("write_file", store, filename="a", content="x", media_type="not a type")
    assert result.is_error and "media_type" in result.text
    assert store.stored == []


# --- repeat_text and sleep_ms -----------------------------------------------------------


def test_repeat_text() -> None:
    assert run("repeat_text", text="ab\n", times=3) == ToolResult("ab\nab\nab\n")
    assert run("repeat_text", text="x", times=0) == ToolResult("")


def test_repeat_text_large_output() -> None:
    result = run("repeat_text", text="line\n", times=100_000)
    assert not result.is_error
    assert len(result.text) == 500_000


def test_repeat_text_limits() -> None:
    too_many = run("repeat_text", text="x", times=100_001)
    assert too_many.is_error and "times: must be <= 100000" in too_many.text
    too_big = run("repeat_text", text="x" * 1000, times=MAX_REPEAT_BYTES // 1000 + 1)
    assert too_big.is_error and "limit" in too_big.text


def test_sleep_ms_uses_the_injected_sleep() -> None:
    slept: list[float] = []
    registry = ToolRegistry([BuiltinTools(sleep=slept.append)])
    result = registry.execute(ToolCall("c1", "sleep_ms", '{"ms": 250}'), ToolContext("s", "t", "c"))
    assert result == ToolResult("slept 250 ms")
    assert slept == [0.25]


def test_sleep_ms_really_sleeps_by_default() -> None:
    started = time.monotonic()
    result = BuiltinTools().execute("sleep_ms", {"ms": 20}, ToolContext("s", "t", "c"))
    assert result == ToolResult("slept 20 ms")
    assert time.monotonic() - started >= 0.02


def test_sleep_ms_limit() -> None:
    result = run("sleep_ms", ms=5001)
    assert result.is_error and "ms: must be <= 5000" in result.text


# --- direct use without the registry ----------------------------------------------------


def test_direct_calls_validate_and_never_raise() -> None:
    tools = BuiltinTools()
    context = ToolContext("s", "t", "c")
    assert tools.execute("nope", {}, context).is_error
    bad = tools.execute("calculator", {"expression": 1}, context)
    assert bad.is_error and "expression: expected string" in bad.text
    assert tools.execute("calculator", {"expression": "1/0"}, context).is_error
