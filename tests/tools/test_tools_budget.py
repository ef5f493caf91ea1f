from __future__ import annotations

import random
import re
import subprocess
import sys
import textwrap

import pytest

from lash_tasks.errors import ConfigurationError
from lash_tasks.machine.tool_budget import BudgetedOutput, ToolOutputBudget, count_lines

NOTE = re.compile(r"\[\.\.\. (\d+) lines / (\d+) bytes omitted(; [^\]]*)? \.\.\.\]")


def split(output: BudgetedOutput) -> tuple[str, str, str]:
    """(head, note, tail) of a truncated output."""
    match = NOTE.search(output.model_text)
    assert match, output.model_text
    head = output.model_text[: match.start()]
    tail = output.model_text[match.end() :]
    return head, match.group(0), tail.removeprefix("\n")


def check_invariants(text: str, budget: ToolOutputBudget, output: BudgetedOutput) -> None:
    shown = output.model_text.encode("utf-8")
    assert len(shown) <= budget.max_bytes
    assert count_lines(shown) <= budget.max_lines
    head, note, tail = split(output)
    # A head cut mid-line gets a separating newline that is not part of the text.
    verbatim_head = head if text.startswith(head) else head.removesuffix("\n")
    # The head and tail are verbatim pieces: nothing re-encoded, no character split.
    assert text.startswith(verbatim_head)
    assert text.endswith(tail)
    match = NOTE.search(note)
    assert match
    data = text.encode()
    omitted = data[len(verbatim_head.encode()) : len(data) - len(tail.encode())]
    assert (int(match.group(1)), int(match.group(2))) == (omitted.count(b"\n"), len(omitted))


def test_within_budget_is_unchanged() -> None:
    text = "hello\nworld\n"
    output = ToolOutputBudget().apply(text, attachment_id="att_1")
    assert output == BudgetedOutput(text, False, 12, 2)
    assert output.model_text is text


def test_exactly_at_budget_is_unchanged() -> None:
    budget = ToolOutputBudget(max_bytes=300, max_lines=3)
    text = "a" * 99 + "\n" + "b" * 99 + "\n" + "c" * 100
    assert len(text.encode()) == 300 and count_lines(text.encode()) == 3
    assert budget.fits(text)
    assert budget.apply(text).model_text == text


def test_empty_text() -> None:
    assert ToolOutputBudget().apply("") == BudgetedOutput("", False, 0, 0)


@pytest.mark.parametrize(
    ("text", "lines"), [("", 0), ("a", 1), ("a\n", 1), ("a\nb", 2), ("\n\n", 2), ("a\n\nb\n", 3)]
)
def test_count_lines(text: str, lines: int) -> None:
    assert count_lines(text.encode()) == lines


def test_over_lines_keeps_head_and_tail_lines() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    budget = ToolOutputBudget(max_bytes=16384, max_lines=11)
    output = budget.apply(text)
    assert output.truncated
    assert (output.original_lines, output.original_bytes) == (1000, len(text))
    head, note, tail = split(output)
    assert head == "".join(f"line {i}\n" for i in range(5))
    assert tail == "".join(f"line {i}\n" for i in range(995, 1000))
    omitted = "".join(f"line {i}\n" for i in range(5, 995))
    assert note == f"[... 990 lines / {len(omitted)} bytes omitted ...]"
    assert count_lines(output.model_text.encode()) == 11
    check_invariants(text, budget, output)


def test_over_bytes_cuts_on_line_boundaries() -> None:
    text = "".join(f"{i:04d} " + "x" * 94 + "\n" for i in range(100))  # 100 lines of 100 bytes
    budget = ToolOutputBudget(max_bytes=1000, max_lines=400)
    output = budget.apply(text)
    assert output.truncated
    assert len(output.model_text.encode()) <= 1000
    head, _, tail = split(output)
    assert head.startswith("0000 ") and head.endswith("\n")
    assert tail.endswith("0099 " + "x" * 94 + "\n")
    # Whole lines only, roughly half the room on each side.
    assert all(len(line) == 99 for line in head.splitlines() + tail.splitlines())
    assert abs(len(head) - len(tail)) <= 100
    check_invariants(text, budget, output)


def test_one_huge_line_is_cut_mid_line() -> None:
    text = "y" * 100_000
    budget = ToolOutputBudget(max_bytes=1000, max_lines=10)
    output = budget.apply(text)
    head, note, tail = split(output)
    assert head == "y" * len(head.removesuffix("\n")) + "\n"
    assert len(head) > 300 and len(tail) > 300
    assert "0 lines" in note
    check_invariants(text, budget, output)


@pytest.mark.parametrize("char", ["é", "€", "😀", "a€😀é"])
@pytest.mark.parametrize("max_bytes", range(256, 264))
def test_multibyte_characters_are_never_split(char: str, max_bytes: int) -> None:
    text = char * 5000
    budget = ToolOutputBudget(max_bytes=max_bytes, max_lines=10)
    output = budget.apply(text, attachment_id="att_9")
    head, _, tail = split(output)
    head = head.removesuffix("\n")
    assert text.startswith(head) and text.endswith(tail)
    assert "\ufffd" not in output.model_text
    assert len(output.model_text.encode()) <= max_bytes


def test_note_mentions_the_attachment_id() -> None:
    text = "z\n" * 1000
    output = ToolOutputBudget(max_lines=5).apply(text, attachment_id="att_42")
    _, note, _ = split(output)
    assert "full output stored as attachment att_42" in note
    assert "attachment" not in ToolOutputBudget(max_lines=5).apply(text).model_text


def test_default_budget() -> None:
    budget = ToolOutputBudget()
    assert (budget.max_bytes, budget.max_lines) == (16384, 400)
    text = "".join(f"row {i} " + "data " * 20 + "\n" for i in range(10_000))
    output = budget.apply(text, attachment_id="att_1")
    assert output.truncated
    check_invariants(text, budget, output)


def test_fits_matches_apply() -> None:
    budget = ToolOutputBudget(max_bytes=300, max_lines=5)
    assert budget.fits("a\nb\n")
    assert not budget.fits("a\n" * 6)
    assert not budget.fits("a" * 301)


@pytest.mark.parametrize(("max_bytes", "max_lines"), [(255, 10), (1000, 2), (0, 0)])
def test_budget_too_small_is_refused(max_bytes: int, max_lines: int) -> None:
    with pytest.raises(ConfigurationError):
        ToolOutputBudget(max_bytes=max_bytes, max_lines=max_lines)


def test_random_texts_keep_the_invariants() -> None:
    rng = random.Random(1234)
    alphabet = ["a", "b", " ", "\n", "\n", "é", "€", "😀", "\r\n"]
    for _ in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3000)))
        if rng.random() < 0.3:
            text += "w" * rng.randint(0, 2000)
        budget = ToolOutputBudget(max_bytes=rng.randint(256, 1500), max_lines=rng.randint(3, 60))
        attachment = rng.choice([None, "att_1", "attachment-" + "x" * 20])
        output = budget.apply(text, attachment_id=attachment)
        assert output.original_bytes == len(text.encode())
        if budget.fits(text):
            assert output == BudgetedOutput(text, False, len(text.encode()), output.original_lines)
        else:
            assert output.truncated
            check_invariants(text, budget, output)


FORBIDDEN = ("sqlalchemy", "httpx", "celery", "kombu", "redis")


def test_tool_budget_imports_no_infrastructure() -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import lash_tasks.machine.tool_budget
        loaded = sorted(
            name for name in sys.modules if name.split(".")[0] in {FORBIDDEN!r}
        )
        if loaded:
            sys.exit("loaded: " + ", ".join(loaded))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr or completed.stdout
