from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lash_tasks.errors import InvalidEnvironment, ProviderError, ValidationError
from lash_tasks.machine.messages import LlmRequest, Message, ToolCall
from lash_tasks.providers import (
    LlmProvider,
    ScriptedProvider,
    ScriptedToolCall,
    ScriptRule,
    load_rules,
    read_call_log,
)
from lash_tasks.providers.scripted import request_hash

REPO_ROOT = Path(__file__).resolve().parents[2]


def _user(text: str, model: str = "scripted-1") -> LlmRequest:
    return LlmRequest(model=model, messages=(Message("user", text),))


def _after_tools(first: LlmRequest, calls: tuple[ToolCall, ...], results: list[str]) -> LlmRequest:
    return LlmRequest(
        model=first.model,
        messages=(
            *first.messages,
            Message("assistant", tool_calls=calls),
            *(
                Message("tool", text, tool_call_id=call.call_id, name=call.name)
                for call, text in zip(calls, results, strict=True)
            ),
        ),
    )


WEATHER_RULE = ScriptRule(
    match="weather",
    tool_calls=(
        ScriptedToolCall("get_weather", {"unit": "c", "city": "Paris"}),
        ScriptedToolCall("get_time"),
    ),
)


def test_echo_and_usage() -> None:
    provider = ScriptedProvider()
    assert isinstance(provider, LlmProvider)
    deltas: list[str] = []
    answer = provider.complete(_user("hello  there "), deltas.append)
    assert answer.text == "echo: hello  there "
    assert "".join(deltas) == answer.text
    assert len(deltas) > 1
    assert answer.tool_calls == ()
    assert answer.finish_reason == "stop"
    assert answer.model == "scripted-1"
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (2, 3)


def test_echo_uses_the_last_user_message() -> None:
    request = LlmRequest(
        model="m",
        messages=(Message("user", "first"), Message("assistant", "x"), Message("user", "second")),
    )
    assert ScriptedProvider().complete(request).text == "echo: second"


def test_tool_call_rule_then_done() -> None:
    provider = ScriptedProvider([WEATHER_RULE])
    first = _user("what's the weather?")
    answer = provider.complete(first)
    assert answer.text == ""
    assert answer.finish_reason == "tool_calls"
    digest = request_hash(first)
    assert answer.tool_calls == (
        ToolCall(f"call_{digest[:12]}_0", "get_weather", '{"city":"Paris","unit":"c"}'),
        ToolCall(f"call_{digest[:12]}_1", "get_time", "{}"),
    )

    second = _after_tools(first, answer.tool_calls, ["18C", "noon"])
    final = provider.complete(second)
    assert final.text == "done: 18C; noon"
    assert final.tool_calls == ()
    assert provider.call_count == 2


def test_rule_text_and_first_match_wins() -> None:
    provider = ScriptedProvider(
        [ScriptRule(match="hi", text="Hello!"), ScriptRule(match="", text="fallback")]
    )
    assert provider.complete(_user("hi")).text == "Hello!"
    assert provider.complete(_user("other")).text == "fallback"


def test_same_request_same_answer_across_instances() -> None:
    request = _user("weather please")
    one = ScriptedProvider([WEATHER_RULE]).complete(request)
    two = ScriptedProvider([WEATHER_RULE]).complete(request)
    assert one == two
    other = ScriptedProvider([WEATHER_RULE]).complete(_user("weather please!"))
    assert other.tool_calls[0].call_id != one.tool_calls[0].call_id


def test_repeat_tool_keeps_calling() -> None:
    provider = ScriptedProvider(
        [ScriptRule(match="loop", tool_calls=(ScriptedToolCall("t"),), repeat_tool=True)]
    )
    request = _user("loop forever")
    ids = set()
    for turn in range(5):
        answer = provider.complete(request)
        assert [c.name for c in answer.tool_calls] == ["t"], turn
        ids.add(answer.tool_calls[0].call_id)
        request = _after_tools(request, answer.tool_calls, [f"r{turn}"])
    assert len(ids) == 5


def test_until_waits_for_results_and_gather_answers_with_them() -> None:
    """An `until` rule applies while fewer than `count` messages hold its text; the next
    rule then gathers every message holding it into the answer."""
    rules = load_rules(
        json.dumps(
            [
                {
                    "match": "",
                    "repeat_tool": True,
                    "until": {"text": "answer", "count": 2},
                    "tool_calls": [{"name": "sleep_ms", "arguments": {"ms": 1}}],
                },
                {"match": "", "repeat_tool": True, "gather": "answer"},
            ]
        )
    )
    provider = ScriptedProvider(rules)
    request = _user("wait for two")
    waiting = provider.complete(request)
    assert [c.name for c in waiting.tool_calls] == ["sleep_ms"]
    request = _after_tools(request, waiting.tool_calls, ["slept"])
    request = LlmRequest(request.model, (*request.messages, Message("user", "answer one")))
    assert provider.complete(request).tool_calls  # one of two: still waiting
    request = LlmRequest(request.model, (*request.messages, Message("user", "answer two")))
    final = provider.complete(request)
    assert final.tool_calls == ()
    assert final.text == "gathered: answer one; answer two"


def test_fail_first_retryable_then_answers() -> None:
    provider = ScriptedProvider([ScriptRule(match="flaky", fail_first=2, fail_status=503)])
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            provider.complete(_user("flaky"))
        assert caught.value.status == 503
        assert caught.value.retryable
    assert provider.complete(_user("flaky")).text == "echo: flaky"
    assert provider.call_count == 3
    # Counted per instance: a fresh provider fails again.
    with pytest.raises(ProviderError):
        ScriptedProvider(provider.rules).complete(_user("flaky"))


def test_fail_401_is_not_retryable() -> None:
    provider = ScriptedProvider([ScriptRule(fail_first=1, fail_status=401)])
    with pytest.raises(ProviderError) as caught:
        provider.complete(_user("x"))
    assert caught.value.status == 401
    assert not caught.value.retryable


def test_delay_sleeps_through_the_injected_sleep() -> None:
    sleeps: list[float] = []
    provider = ScriptedProvider([ScriptRule(match="slow", delay_ms=250)], sleep=sleeps.append)
    assert provider.complete(_user("slow one")).text == "echo: slow one"
    provider.complete(_user("fast one"))
    assert sleeps == [0.25]


def test_rules_from_json_and_env(tmp_path: Path) -> None:
    rules_json = json.dumps(
        [
            {"match": "weather", "tool_calls": [{"name": "get_weather", "arguments": {"c": 1}}]},
            {"match": "slow", "delay_ms": 5, "text": "zzz"},
            {"match": "boom", "fail_first": 1, "fail_status": 401},
            {"match": "loop", "repeat_tool": True, "tool_calls": [{"name": "t"}]},
        ]
    )
    rules = load_rules(rules_json)
    assert rules[0] == ScriptRule(
        match="weather", tool_calls=(ScriptedToolCall("get_weather", {"c": 1}),)
    )
    assert rules[1] == ScriptRule(match="slow", delay_ms=5, text="zzz")
    assert rules[2].fail_status == 401
    assert rules[3].repeat_tool
    log = tmp_path / "calls.jsonl"
    provider = ScriptedProvider.from_env(
        {"LASH_SCRIPTED_RULES": rules_json, "LASH_SCRIPTED_CALL_LOG": str(log)}
    )
    assert provider.rules == rules
    assert provider.call_log_path == log
    assert ScriptedProvider.from_env({}).rules == ()


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"match": "x"}',
        '[{"match": 1}]',
        '[{"matc": "x"}]',
        '[{"delay_ms": true}]',
        '[{"fail_first": -1}]',
        '[{"fail_status": 200}]',
        '[{"tool_calls": [{"arguments": {}}]}]',
        '[{"tool_calls": [{"name": "t", "arguments": "[]"}]}]',
        '[{"until": "x"}]',
        '[{"until": {"count": 2}}]',
        '[{"until": {"text": "x", "count": 0}}]',
        '[{"until": {"text": "x", "counts": 2}}]',
        '[{"gather": ""}]',
    ],
)
def test_bad_rules(text: str) -> None:
    with pytest.raises(ValidationError):
        load_rules(text)
    with pytest.raises(InvalidEnvironment) as caught:
        ScriptedProvider.from_env({"LASH_SCRIPTED_RULES": text})
    assert caught.value.details["variable"] == "LASH_SCRIPTED_RULES"


def test_call_log_entries(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    provider = ScriptedProvider(call_log_path=log)
    assert read_call_log(log) == []
    provider.complete(_user("one"))
    provider.complete(_user("two"))
    entries = read_call_log(log)
    assert entries == [
        {"pid": os.getpid(), "request_hash": request_hash(_user("one")), "last_user_text": "one"},
        {"pid": os.getpid(), "request_hash": request_hash(_user("two")), "last_user_text": "two"},
    ]


_CHILD = """
import sys
from lash_tasks.machine.messages import LlmRequest, Message
from lash_tasks.providers import ScriptedProvider
provider = ScriptedProvider.from_env({"LASH_SCRIPTED_CALL_LOG": sys.argv[1]})
for i in range(int(sys.argv[2])):
    provider.complete(LlmRequest(model="m", messages=(Message("user", f"{sys.argv[3]} {i}"),)))
print(provider.call_count)
"""


def test_call_log_shared_by_two_processes(tmp_path: Path) -> None:
    log = tmp_path / "shared.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(log), "50", name],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    outputs = [child.communicate(timeout=60)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert [out.strip() for out in outputs] == ["50", "50"]

    entries = read_call_log(log)
    assert len(entries) == 100
    pids = {child.pid for child in children}
    assert {entry["pid"] for entry in entries} == pids
    for name in ("alpha", "beta"):
        texts = [e["last_user_text"] for e in entries if e["last_user_text"].startswith(name)]
        assert texts == [f"{name} {i}" for i in range(50)]


def test_repr_and_close() -> None:
    provider = ScriptedProvider([WEATHER_RULE])
    provider.close()
    assert repr(provider) == "ScriptedProvider(rules=1, call_log_path=None)"
