"""Server-sent events framing, shared by the streaming wire formats (OpenAI, Anthropic)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def iter_sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The `data` payload of each server-sent event, per the SSE framing rules.

    Multi-line data fields are joined with newlines, comment lines (`: keep-alive`, which
    OpenRouter sends) and other fields (`event:`, which Anthropic sends beside a `type` in
    the data) are skipped. An event left unterminated when the input ends is still yielded:
    whether the stream was complete is judged on its content instead.
    """
    buffer: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            buffer.append(value[1:] if value.startswith(" ") else value)
    if buffer:
        yield "\n".join(buffer)
