"""A deterministic, offline provider for the demo, tests, benchmarks and fleet tests.

Its answer is a pure function of the request, so replaying a session reproduces it exactly;
the only state is the deliberate failure counter (`fail_first`) and the call counter.

Without rules it echoes: `"echo: <last user text>"`, or, when the conversation ends in tool
results, `"done: <tool result texts joined by '; '>"`. Rules (`ScriptRule`) override that for
user messages containing their `match` text. A rule can also wait for something to arrive in
the conversation (`until`) and answer with what arrived (`gather`), which is how a scripted
turn waits for its background processes' results.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lash_tasks.errors import InvalidEnvironment, ProviderError, ValidationError
from lash_tasks.machine.messages import LlmRequest, LlmResponse, Message, ToolCall, Usage
from lash_tasks.providers.http_send import is_retryable_status
from lash_tasks.providers.interrupt import Interrupt

RULES_ENV = "LASH_SCRIPTED_RULES"
CALL_LOG_ENV = "LASH_SCRIPTED_CALL_LOG"
TOOL_RESULT_SEPARATOR = "; "

_RULE_KEYS = frozenset(
    {
        "match",
        "tool_calls",
        "text",
        "delay_ms",
        "fail_first",
        "fail_status",
        "repeat_tool",
        "until",
        "gather",
    }
)


@dataclass(frozen=True)
class ScriptedToolCall:
    """A tool call a rule makes; `arguments` is serialised with sorted keys for stable output."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def arguments_json(self) -> str:
        return json.dumps(self.arguments, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class ScriptRule:
    """One scripted behaviour, chosen when `match` occurs in the last user text.

    A rule applies only while the conversation ends in a user message, so after its tool
    calls come back the default "done:" answer ends the turn. `repeat_tool` rules also apply
    after tool results and so call tools forever (for max-turn tests). `fail_first` makes the
    first N applicable calls on a provider instance fail with HTTP `fail_status`. A rule with
    neither `text` nor `tool_calls` gives the default answer (useful with `delay_ms` or
    `fail_first` alone). With `until_text`, the rule applies only while fewer than
    `until_count` messages contain that text. With `gather`, the answer is
    `"gathered: <every user or tool message containing it, joined by '; '>"`.
    """

    match: str = ""
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    text: str | None = None
    delay_ms: int = 0
    fail_first: int = 0
    fail_status: int = 503
    repeat_tool: bool = False
    until_text: str | None = None
    until_count: int = 1
    gather: str | None = None

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.fail_first < 0:
            raise ValidationError("scripted rule delay_ms and fail_first must not be negative")
        if self.until_count < 1:
            raise ValidationError("scripted rule until count must be at least 1")
        if self.gather == "" or self.until_text == "":
            raise ValidationError("scripted rule gather and until text must not be empty")
        if not 400 <= self.fail_status <= 599:
            raise ValidationError("scripted rule fail_status must be an HTTP error status")

    @classmethod
    def from_json(cls, data: Any) -> ScriptRule:
        if not isinstance(data, dict):
            raise ValidationError("a scripted rule must be a JSON object")
        unknown = sorted(set(data) - _RULE_KEYS)
        if unknown:
            raise ValidationError(f"unknown scripted rule keys: {', '.join(unknown)}")
        calls = data.get("tool_calls") or []
        if not isinstance(calls, list):
            raise ValidationError("scripted rule tool_calls must be a list")
        until = data.get("until")
        if until is not None and (
            not isinstance(until, dict) or set(until) - {"text", "count"} or "text" not in until
        ):
            raise ValidationError('scripted rule until must be {"text": ..., "count": ...}')
        return cls(
            match=_field(data, "match", str, ""),
            tool_calls=tuple(_tool_call_from_json(call) for call in calls),
            text=_field(data, "text", str, None),
            delay_ms=_field(data, "delay_ms", int, 0),
            fail_first=_field(data, "fail_first", int, 0),
            fail_status=_field(data, "fail_status", int, 503),
            repeat_tool=_field(data, "repeat_tool", bool, False),
            until_text=_field(until, "text", str, None) if until else None,
            until_count=_field(until, "count", int, 1) if until else 1,
            gather=_field(data, "gather", str, None),
        )


def _field(data: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = data.get(key)
    if value is None:
        return default
    # bool is an int subclass; `"delay_ms": true` is a mistake, not 1 ms.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValidationError(f"scripted rule {key} must be a {kind.__name__}")
    return value


def _tool_call_from_json(data: Any) -> ScriptedToolCall:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ValidationError("a scripted tool call needs a string name")
    arguments = data.get("arguments", {})
    if not isinstance(arguments, dict):
        raise ValidationError("scripted tool call arguments must be an object")
    return ScriptedToolCall(name=data["name"], arguments=arguments)


def load_rules(text: str) -> tuple[ScriptRule, ...]:
    """Rules from a JSON list of rule objects."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"scripted rules are not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise ValidationError("scripted rules must be a JSON list")
    return tuple(ScriptRule.from_json(item) for item in data)


def request_hash(request: LlmRequest) -> str:
    """A stable digest of everything in the request."""
    canonical = json.dumps(
        request.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def last_user_text(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.text
    return ""


def trailing_tool_results(messages: Sequence[Message]) -> list[Message]:
    results: list[Message] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.append(message)
    results.reverse()
    return results


def _containing(messages: Sequence[Message], text: str) -> int:
    return sum(1 for m in messages if m.role != "assistant" and text in m.text)


def _word_count(text: str) -> int:
    return len(text.split())


class ScriptedProvider:
    """Deterministic offline provider; see the module docstring for its answers.

    `call_count` counts every `complete` call on this instance. With `call_log_path`, each call
    also appends `{"pid", "request_hash", "last_user_text"}` as one JSON line; the file is
    opened with O_APPEND and written with a single write per line, so worker processes can
    share one log without interleaving.
    """

    name = "scripted"

    def __init__(
        self,
        rules: Iterable[ScriptRule] = (),
        *,
        call_log_path: str | os.PathLike[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rules = tuple(rules)
        self.call_log_path = Path(call_log_path) if call_log_path is not None else None
        self.call_count = 0
        self._failures: dict[int, int] = {}
        self._sleep = sleep
        self._lock = threading.Lock()

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], *, sleep: Callable[[float], None] = time.sleep
    ) -> ScriptedProvider:
        """Rules from LASH_SCRIPTED_RULES (a JSON list), call log from LASH_SCRIPTED_CALL_LOG."""
        raw = env.get(RULES_ENV, "").strip()
        try:
            rules = load_rules(raw) if raw else ()
        except ValidationError as exc:
            raise InvalidEnvironment(f"{RULES_ENV}: {exc.message}", variable=RULES_ENV) from exc
        return cls(rules, call_log_path=env.get(CALL_LOG_ENV) or None, sleep=sleep)

    def __repr__(self) -> str:
        return f"ScriptedProvider(rules={len(self.rules)}, call_log_path={self.call_log_path!r})"

    def close(self) -> None:
        pass

    def complete(
        self,
        request: LlmRequest,
        on_text_delta: Callable[[str], None] | None = None,
        interrupt: Interrupt | None = None,
    ) -> LlmResponse:
        if interrupt is not None:
            interrupt.check()
        user_text = last_user_text(request.messages)
        index, rule = self._select_rule(request.messages, user_text)
        # The digest serialises the whole prompt: only worth it where it is used (tool call
        # ids, the call log), or this stand-in for a model would cost O(history) per call.
        wanted = self.call_log_path is not None or (rule is not None and bool(rule.tool_calls))
        digest = request_hash(request) if wanted else ""
        with self._lock:
            self.call_count += 1
        if self.call_log_path is not None:
            self._log_call(digest, user_text)

        if rule is not None and rule.delay_ms > 0:
            self._pause(rule.delay_ms / 1000.0, interrupt)
        if rule is not None and self._should_fail(index, rule):
            raise ProviderError(
                f"scripted: deliberate failure with HTTP {rule.fail_status}",
                status=rule.fail_status,
                body_excerpt=f"scripted failure for rule {index}",
                retryable=is_retryable_status(rule.fail_status),
            )

        answer = _answer(request, digest, user_text, rule)
        if on_text_delta is not None:
            # Several pieces, so consumers of the callback see something stream-like.
            for piece in re.findall(r"\s*\S+|\s+", answer.text):
                on_text_delta(piece)
        return answer

    def _select_rule(
        self, messages: Sequence[Message], user_text: str
    ) -> tuple[int, ScriptRule | None]:
        if not messages or messages[-1].role not in ("user", "tool"):
            return -1, None
        after_tools = messages[-1].role == "tool"
        for index, rule in enumerate(self.rules):
            if rule.match in user_text and (rule.repeat_tool or not after_tools):
                if rule.until_text is not None and (
                    _containing(messages, rule.until_text) >= rule.until_count
                ):
                    continue
                return index, rule
        return -1, None

    def _pause(self, seconds: float, interrupt: Interrupt | None) -> None:
        """The scripted "thinking" time; an interrupt ends it like it cuts a real call."""
        if interrupt is None:
            self._sleep(seconds)
            return
        interrupt.wait(seconds)
        interrupt.check()

    def _should_fail(self, index: int, rule: ScriptRule) -> bool:
        with self._lock:
            failed = self._failures.get(index, 0)
            if failed >= rule.fail_first:
                return False
            self._failures[index] = failed + 1
            return True

    def _log_call(self, digest: str, user_text: str) -> None:
        assert self.call_log_path is not None
        line = json.dumps(
            {"pid": os.getpid(), "request_hash": digest, "last_user_text": user_text},
            ensure_ascii=False,
        )
        fd = os.open(self.call_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
        finally:
            os.close(fd)


def _answer(
    request: LlmRequest, digest: str, user_text: str, rule: ScriptRule | None
) -> LlmResponse:
    calls: tuple[ToolCall, ...] = ()
    if rule is not None and rule.gather is not None:
        found = [
            m.text for m in request.messages if m.role != "assistant" and rule.gather in m.text
        ]
        text = "gathered: " + TOOL_RESULT_SEPARATOR.join(found)
    elif rule is not None and (rule.tool_calls or rule.text is not None):
        text = rule.text or ""
        calls = tuple(
            ToolCall(
                call_id=f"call_{digest[:12]}_{position}",
                name=call.name,
                arguments=call.arguments_json(),
            )
            for position, call in enumerate(rule.tool_calls)
        )
    elif request.messages and request.messages[-1].role == "tool":
        results = trailing_tool_results(request.messages)
        text = "done: " + TOOL_RESULT_SEPARATOR.join(m.text for m in results)
    else:
        text = "echo: " + user_text
    input_tokens = _word_count(request.system or "") + sum(
        _word_count(m.text) for m in request.messages
    )
    output_tokens = _word_count(text) + sum(_word_count(c.arguments) + 1 for c in calls)
    return LlmResponse(
        text=text,
        tool_calls=calls,
        usage=Usage(input_tokens, output_tokens),
        finish_reason="tool_calls" if calls else "stop",
        model=request.model,
    )


def read_call_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every entry of a call log, in file order; a missing log reads as empty."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]
