"""Tools every worker has: small, safe, and useful for exercising the runtime itself."""

from __future__ import annotations

import ast
import math
import mimetypes
import operator
import re
import time
from collections.abc import Callable
from typing import Any

from lash_tasks.errors import ToolError
from lash_tasks.machine.messages import ToolManifest
from lash_tasks.tools.contract import ToolContext, ToolResult
from lash_tasks.tools.schema import validate

MAX_EXPRESSION_CHARS = 1000
# Far beyond any useful arithmetic, and below CPython's int-to-str digit limit (4300).
MAX_INT_BITS = 10_000
MAX_REPEAT_TIMES = 100_000
# `times` alone does not bound memory: a long text repeated 100000 times could be gigabytes.
MAX_REPEAT_BYTES = 10 * 1024 * 1024
MAX_SLEEP_MS = 5000

_MEDIA_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+(\s*;.*)?$")

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}

_MANIFESTS = (
    ToolManifest(
        name="calculator",
        description=(
            "Evaluate an arithmetic expression. Supports numbers, + - * / // % **, unary "
            "minus and parentheses; no names or functions."
        ),
        parameters={
            "type": "object",
            "properties": {
                "expression": {"type": "string", "description": "for example (2 + 3) * 4 ** 2"}
            },
            "required": ["expression"],
            "additionalProperties": False,
        },
    ),
    ToolManifest(
        name="write_file",
        description=(
            "Save text as a file attachment the user can download. Returns the attachment id."
        ),
        parameters={
            "type": "object",
            "properties": {
                "filename": {"type": "string", "description": "a label for the file"},
                "content": {"type": "string"},
                "media_type": {
                    "type": "string",
                    "description": "for example text/markdown; guessed from filename if omitted",
                },
            },
            "required": ["filename", "content"],
            "additionalProperties": False,
        },
    ),
    ToolManifest(
        name="repeat_text",
        description="Return `text` repeated `times` times.",
        parameters={
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "times": {"type": "integer", "minimum": 0, "maximum": MAX_REPEAT_TIMES},
            },
            "required": ["text", "times"],
            "additionalProperties": False,
        },
    ),
    ToolManifest(
        name="sleep_ms",
        description="Wait for the given number of milliseconds, then say so.",
        parameters={
            "type": "object",
            "properties": {"ms": {"type": "integer", "minimum": 0, "maximum": MAX_SLEEP_MS}},
            "required": ["ms"],
            "additionalProperties": False,
        },
    ),
)


class BuiltinTools:
    """calculator, write_file, repeat_text and sleep_ms."""

    name = "builtin"

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._sleep = sleep
        self._handlers: dict[str, Callable[[dict[str, Any], ToolContext], ToolResult]] = {
            "calculator": self._calculator,
            "write_file": self._write_file,
            "repeat_text": self._repeat_text,
            "sleep_ms": self._sleep_ms,
        }

    def manifests(self) -> list[ToolManifest]:
        return list(_MANIFESTS)

    def execute(
        self, tool_name: str, arguments: dict[str, Any], context: ToolContext
    ) -> ToolResult:
        handler = self._handlers.get(tool_name)
        if handler is None:
            return ToolResult(f"{self.name} has no tool {tool_name!r}", is_error=True)
        # The registry validates too; repeating it keeps direct callers from reaching
        # handlers with arguments of the wrong type.
        manifest = next(m for m in _MANIFESTS if m.name == tool_name)
        problems = validate(manifest.parameters, arguments)
        if problems:
            return ToolResult(f"invalid arguments: {'; '.join(problems)}", is_error=True)
        try:
            return handler(arguments, context)
        except ToolError as exc:
            return ToolResult(exc.message, is_error=True)

    def _calculator(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        return ToolResult(format_number(evaluate(arguments["expression"])))

    def _write_file(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        if context.attachments is None:
            raise ToolError("no attachment store is configured")
        filename: str = arguments["filename"]
        media_type = arguments.get("media_type") or _guess_media_type(filename)
        if not _MEDIA_TYPE.match(media_type):
            raise ToolError(f"media_type: {media_type!r} is not a media type like text/plain")
        data = arguments["content"].encode("utf-8")
        # The filename is only echoed back as a label; it never touches a filesystem.
        attachment_id = context.attachments.put(data, media_type)
        return ToolResult(
            f"stored {filename!r} ({len(data)} bytes, {media_type}) as attachment {attachment_id}",
            attachments=(attachment_id,),
        )

    def _repeat_text(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        text: str = arguments["text"]
        times: int = arguments["times"]
        size = len(text.encode("utf-8")) * times
        if size > MAX_REPEAT_BYTES:
            raise ToolError(f"output would be {size} bytes; the limit is {MAX_REPEAT_BYTES}")
        return ToolResult(text * times)

    def _sleep_ms(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        ms: int = arguments["ms"]
        self._sleep(ms / 1000)
        return ToolResult(f"slept {ms} ms")


def _guess_media_type(filename: str) -> str:
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or "text/plain"


def evaluate(expression: str) -> int | float:
    """Evaluate plain arithmetic; anything else raises `ToolError` with a reason."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not an arithmetic expression: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ToolError(f"not an arithmetic expression: {exc}") from None
    # Vet the whole tree before evaluating anything, so a refused expression has no effects.
    for node in ast.walk(tree):
        _vet(node)
    try:
        value = _eval(tree.body)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except OverflowError:
        raise ToolError("result is too large") from None
    except RecursionError:
        raise ToolError("expression is too deeply nested") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("result is not a finite number")
    result: int | float = value
    return result


def format_number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


def _vet(node: ast.AST) -> None:
    if isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp)):
        return
    if isinstance(node, ast.operator):
        if type(node) not in _BINARY:
            raise ToolError(f"operator {type(node).__name__} is not supported")
        return
    if isinstance(node, ast.unaryop):
        if type(node) not in _UNARY:
            raise ToolError(f"operator {type(node).__name__} is not supported")
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ToolError(f"only numbers are allowed, not {node.value!r}")
        return
    if isinstance(node, ast.Name):
        raise ToolError(f"names are not allowed: {node.id!r}")
    if isinstance(node, ast.Call):
        raise ToolError("function calls are not allowed")
    raise ToolError(f"{type(node).__name__} is not allowed in an arithmetic expression")


def _eval(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _bounded(_BINARY[type(node.op)](left, right))
    raise ToolError(f"{type(node).__name__} is not allowed in an arithmetic expression")


def _check_power(base: Any, exponent: Any) -> None:
    # Refuse before computing: 9**9**9 would hang the worker, not raise.
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and abs(base) > 1
        and base.bit_length() * exponent > MAX_INT_BITS
    ):
        raise ToolError("result is too large")


def _bounded(value: Any) -> Any:
    # A negative base to a fractional power yields a complex number; stop there rather
    # than fail obscurely at the next operator.
    if isinstance(value, complex):
        raise ToolError("result is not a real number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolError("result is too large")
    return value
