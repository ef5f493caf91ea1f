"""How much of a tool's output the model sees. Pure: no I/O, stdlib only.

A huge output would crowd the rest of the conversation out of the context window, so the
model gets the head and the tail with a note in between. The caller decides whether to
store the full text first (typically only when `fits` is false) and passes the id along.
"""

from __future__ import annotations

from dataclasses import dataclass

from lash_tasks.errors import ConfigurationError

# Smallest budget that still leaves room for the note plus some output on each side.
MIN_BYTES = 256
MIN_LINES = 3


@dataclass(frozen=True)
class BudgetedOutput:
    model_text: str
    truncated: bool
    original_bytes: int
    original_lines: int


@dataclass(frozen=True)
class ToolOutputBudget:
    """Byte and line limits for one tool result as the model sees it.

    A truncated `model_text` stays within both limits (unless an unusually long attachment
    id makes the note alone exceed them).
    """

    max_bytes: int = 16384
    max_lines: int = 400

    def __post_init__(self) -> None:
        if self.max_bytes < MIN_BYTES or self.max_lines < MIN_LINES:
            raise ConfigurationError(
                f"tool output budget needs max_bytes >= {MIN_BYTES} and max_lines >= {MIN_LINES}",
                max_bytes=self.max_bytes,
                max_lines=self.max_lines,
            )

    def fits(self, text: str) -> bool:
        """True when `apply` would return `text` unchanged."""
        data = text.encode("utf-8")
        return len(data) <= self.max_bytes and count_lines(data) <= self.max_lines

    def apply(self, text: str, attachment_id: str | None = None) -> BudgetedOutput:
        data = text.encode("utf-8")
        total_bytes, total_lines = len(data), count_lines(data)
        if total_bytes <= self.max_bytes and total_lines <= self.max_lines:
            return BudgetedOutput(text, False, total_bytes, total_lines)

        # The omitted counts are not known until the cut is made, but they can have no more
        # digits than the totals, so a note built from the totals is an upper bound.
        reserve = len(_note(total_lines, total_bytes, attachment_id).encode("utf-8")) + 2
        room_bytes = max(0, self.max_bytes - reserve)
        room_lines = self.max_lines - 1
        head_end = _head_end(data, (room_bytes + 1) // 2, (room_lines + 1) // 2)
        tail_start = max(head_end, _tail_start(data, room_bytes // 2, room_lines // 2))

        omitted = data[head_end:tail_start]
        note = _note(omitted.count(b"\n"), len(omitted), attachment_id)
        head = data[:head_end].decode("utf-8")
        tail = data[tail_start:].decode("utf-8")
        parts = [head]
        if head and not head.endswith("\n"):
            parts.append("\n")
        parts.append(note)
        if tail:
            parts.extend(["\n", tail])
        return BudgetedOutput("".join(parts), True, total_bytes, total_lines)


def count_lines(data: bytes) -> int:
    """Lines as an editor counts them: a final line without a newline still counts."""
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def _note(lines: int, size: int, attachment_id: str | None) -> str:
    stored = f"; full output stored as attachment {attachment_id}" if attachment_id else ""
    return f"[... {lines} lines / {size} bytes omitted{stored} ...]"


def _head_end(data: bytes, max_bytes: int, max_lines: int) -> int:
    """Where the head stops: after at most `max_lines` lines and `max_bytes` bytes."""
    end = min(max_bytes, len(data))
    newline = -1
    for _ in range(max_lines):
        newline = data.find(b"\n", newline + 1, end)
        if newline < 0:
            break
    else:
        end = newline + 1 if max_lines else 0
    if end == 0 or end == len(data) or data[end - 1] == ord("\n"):
        return end
    if data[end] == ord("\n"):
        # Keeping the newline costs the same byte as the separator it saves.
        return end + 1
    # Prefer a line boundary unless that would throw away more than half the head.
    last = data.rfind(b"\n", 0, end)
    if last >= 0 and last + 1 >= end // 2:
        return last + 1
    while end > 0 and _is_continuation(data[end]):
        end -= 1
    return end


def _tail_start(data: bytes, max_bytes: int, max_lines: int) -> int:
    """Where the tail starts: at most `max_lines` lines and `max_bytes` bytes before the end."""
    start = max(0, len(data) - max_bytes)
    # A final newline ends the last line rather than starting an empty one.
    search_end = len(data) - 1 if data.endswith(b"\n") else len(data)
    line_start = len(data)
    for _ in range(max_lines):
        newline = data.rfind(b"\n", 0, search_end)
        if newline < 0:
            line_start = 0
            break
        line_start = newline + 1
        search_end = newline
    start = max(start, line_start)
    if start == 0 or start == len(data) or data[start - 1] == ord("\n"):
        return start
    first = data.find(b"\n", start)
    if first >= 0 and len(data) - (first + 1) >= (len(data) - start) // 2:
        return first + 1
    while start < len(data) and _is_continuation(data[start]):
        start += 1
    return start


def _is_continuation(byte: int) -> bool:
    # UTF-8 continuation bytes are 10xxxxxx; cutting before one would split a character.
    return byte & 0xC0 == 0x80
