"""Reading a session's Redis Stream: order, resume, gaps, bad cursors, Redis unavailable."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis

from lash_tasks.errors import EventsUnavailable, InvalidCursor, InvalidSessionId
from lash_tasks.events.cursors import StreamId
from lash_tasks.events.publisher import RedisEventPublisher, stream_key
from lash_tasks.events.redis_source import RedisEventSource
from lash_tasks.events.sources import read
from lash_tasks.events.vocabulary import SessionEvent, TextDelta, event_record
from tests.events.conftest import fake_view
from tests.events.private_redis import PrivateRedis

pytestmark = pytest.mark.redis


def delta(session_id: str, text: str) -> TextDelta:
    return TextDelta(session_id=session_id, turn_id="t1", step=0, attempt="a1", at_ms=0, text=text)


def publish_all(pub: RedisEventPublisher, session_id: str, texts: list[str]) -> None:
    for text in texts:
        pub.publish(delta(session_id, text))
    assert pub.flush(5)


def texts(events: list[SessionEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


def test_events_come_in_publish_order_with_increasing_cursors(
    publisher: RedisEventPublisher, source: RedisEventSource, session_id: str
) -> None:
    """read(cursor=None) yields every kept event in publish order; cursors only grow."""
    publish_all(publisher, session_id, [f"d{i}" for i in range(600)])
    events = list(read(source, session_id, None, timeout=0.3))
    assert texts(events) == [f"d{i}" for i in range(600)]
    cursors = [StreamId.parse(e.cursor or "") for e in events]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)


@pytest.mark.timeout(60)
def test_a_reader_that_disconnects_and_resumes_misses_nothing(
    publisher: RedisEventPublisher, source: RedisEventSource, session_id: str
) -> None:
    """A reader that stops every 40 events and resumes from its last cursor, while events
    keep being published, ends with every event exactly once, in order."""
    wanted = [f"d{i}" for i in range(400)]

    def produce() -> None:
        for text in wanted:
            publisher.publish(delta(session_id, text))
            time.sleep(0.0005)

    producer = threading.Thread(target=produce)
    producer.start()
    seen: list[str] = []
    cursor = None
    deadline = time.monotonic() + 30
    while len(seen) < len(wanted) and time.monotonic() < deadline:
        for event in read(source, session_id, cursor, timeout=1.0):
            assert isinstance(event, TextDelta)
            seen.append(event.text)
            cursor = event.cursor
            if len(seen) % 40 == 0:
                break  # disconnect mid-stream
    producer.join()
    assert seen == wanted


def test_a_trimmed_cursor_yields_a_gap_with_the_view_then_the_oldest_kept(
    publisher: RedisEventPublisher, source: RedisEventSource, session_id: str, redis_url: str
) -> None:
    """A cursor older than the first kept entry yields `gap` (reason trimmed, the session
    view, a cursor just before the oldest kept), then the oldest kept events in order."""
    publish_all(publisher, session_id, ["old-0", "old-1", "old-2"])
    oldest, *_ = list(read(source, session_id, None, timeout=0.2))
    cursor = oldest.cursor
    publish_all(publisher, session_id, ["kept-0", "kept-1"])
    client = redis.Redis.from_url(redis_url)
    client.xtrim(stream_key(session_id), maxlen=2, approximate=False)
    client.close()

    events = list(read(source, session_id, cursor, timeout=0.3))
    assert events[0].type == "gap"
    assert events[0].reason == "trimmed" and events[0].view == fake_view(session_id)
    assert texts(events[1:]) == ["kept-0", "kept-1"]
    # Resuming from the gap's cursor starts at the oldest kept event, with no second gap.
    again = list(read(source, session_id, events[0].cursor, timeout=0.3))
    assert texts(again) == ["kept-0", "kept-1"] and again[0].type == "text_delta"


def test_only_a_cursor_right_before_the_oldest_kept_entry_is_no_gap(
    source: RedisEventSource, session_id: str, redis_url: str
) -> None:
    """Trimming entries up to the reader's cursor loses nothing for it (no gap); a cursor
    further back could have missed entries (gap)."""
    client = redis.Redis.from_url(redis_url)
    key = stream_key(session_id)
    for seq, text in enumerate(["a", "b", "c"]):
        record = json.dumps(event_record(delta(session_id, text)))
        client.xadd(key, {"event": record}, id=f"5000-{seq}")
    client.xtrim(key, maxlen=1, approximate=False)  # only 5000-2 ("c") is kept
    client.close()
    right_before = list(read(source, session_id, "5000-1", timeout=0.2))
    further_back = list(read(source, session_id, "5000-0", timeout=0.2))
    assert [e.type for e in right_before] == ["text_delta"] and texts(right_before) == ["c"]
    assert [e.type for e in further_back] == ["gap", "text_delta"]


def test_a_lost_or_emptied_stream_is_a_gap(
    publisher: RedisEventPublisher, source: RedisEventSource, session_id: str, redis_url: str
) -> None:
    """A cursor into a stream that expired (or was emptied by trimming) yields `gap`."""
    publish_all(publisher, session_id, ["a", "b"])
    oldest, *_ = list(read(source, session_id, None, timeout=0.2))
    first = oldest.cursor
    client = redis.Redis.from_url(redis_url)
    client.xtrim(stream_key(session_id), maxlen=0, approximate=False)
    emptied = list(read(source, session_id, first, timeout=0.2))
    client.delete(stream_key(session_id))
    lost = list(read(source, session_id, first, timeout=0.2))
    client.close()
    assert [(e.type, getattr(e, "reason", None)) for e in emptied] == [("gap", "trimmed")]
    assert [(e.type, getattr(e, "reason", None)) for e in lost] == [("gap", "lost")]


def test_bad_cursors_are_refused_before_anything_is_read(
    publisher: RedisEventPublisher, source: RedisEventSource, session_id: str
) -> None:
    """Malformed, database-form and future cursors raise InvalidCursor when read() is
    called, naming the problem; so does a bad session id (InvalidSessionId)."""
    with pytest.raises(InvalidCursor, match="ahead of the event stream"):
        read(source, session_id, f"{int(time.time() * 1000) + 3_600_000}-0")  # no stream yet
    publish_all(publisher, session_id, ["a"])
    last = source.tail(session_id)
    future = str(StreamId(StreamId.parse(last).ms, StreamId.parse(last).seq + 1))
    with pytest.raises(InvalidCursor, match="ahead of the event stream"):
        read(source, session_id, future)
    with pytest.raises(InvalidCursor, match="malformed"):
        read(source, session_id, "yesterday")
    with pytest.raises(InvalidCursor, match="database event log"):
        read(source, session_id, "db-4")
    with pytest.raises(InvalidSessionId):
        read(source, "no such/session")


def test_a_live_reader_sees_new_events_promptly_and_ticks_when_idle(
    publisher: RedisEventPublisher, source: RedisEventSource, session_id: str
) -> None:
    """follow() from the tail yields None ticks while nothing happens, and an event
    published later within a fraction of a second (woken by XREAD BLOCK, not a poll)."""
    ticks = source.follow(session_id, source.tail(session_id), timeout=5.0, idle_s=0.2)
    published_at: list[float] = []

    def publish_late() -> None:
        published_at.append(time.monotonic())
        publish_all(publisher, session_id, ["late"])

    timer = threading.Timer(0.6, publish_late)
    timer.start()
    got: list[SessionEvent | None] = []
    for item in ticks:
        got.append(item)
        if item is not None:
            break
    arrived = time.monotonic()
    timer.join()
    assert None in got[:-1]  # idle ticks came before the event
    last = got[-1]
    assert isinstance(last, TextDelta) and last.text == "late"
    assert arrived - published_at[0] < 0.15


def test_tail_reads_only_what_comes_after(
    publisher: RedisEventPublisher, source: RedisEventSource, session_id: str
) -> None:
    """Reading from tail() skips everything published before it."""
    assert source.tail(session_id) == "0-0"
    publish_all(publisher, session_id, ["before"])
    tail = source.tail(session_id)
    publish_all(publisher, session_id, ["after"])
    assert texts(list(read(source, session_id, tail, timeout=0.3))) == ["after"]


def test_the_reader_reports_an_unreachable_redis_clearly(own_redis: PrivateRedis) -> None:
    """With Redis down, read() raises EventsUnavailable naming where events are read from;
    a reader running when Redis goes away raises it on its next read."""
    source = RedisEventSource(own_redis.url, fake_view, block_s=0.1)
    ticks = source.follow("s-r", None, timeout=10, idle_s=0.1)
    assert next(ticks) is None
    own_redis.stop()
    with pytest.raises(EventsUnavailable, match=f"127.0.0.1:{own_redis.port}"):
        next(ticks)
    with pytest.raises(EventsUnavailable, match="unreachable"):
        read(source, "s-r", None)
    source.close()
