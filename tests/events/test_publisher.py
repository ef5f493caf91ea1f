"""The Redis publisher: bounded streams, trimming by age, and never a cost to the turn."""

from __future__ import annotations

import logging
import time

import pytest
import redis

from lash_tasks.events.cursors import StreamId
from lash_tasks.events.publisher import RedisEventPublisher, stream_key
from lash_tasks.events.redis_source import RedisEventSource
from lash_tasks.events.sources import read
from lash_tasks.events.vocabulary import TextDelta
from tests.events.conftest import fake_view
from tests.events.private_redis import PrivateRedis

pytestmark = pytest.mark.redis


def delta(session_id: str, text: str) -> TextDelta:
    return TextDelta(session_id=session_id, turn_id="t1", step=0, attempt="a1", at_ms=0, text=text)


def node_size(client: redis.Redis) -> int:
    """Entries per stream node: approximate trimming removes whole nodes only."""
    return int(client.config_get("stream-node-max-entries")["stream-node-max-entries"])


def test_stream_length_stays_near_maxlen(redis_url: str, session_id: str) -> None:
    """After many more events than maxlen, the stream holds maxlen to maxlen + one node,
    and the newest event is kept."""
    client = redis.Redis.from_url(redis_url)
    pub = RedisEventPublisher(redis_url, maxlen=200)
    try:
        for i in range(2000):
            pub.publish(delta(session_id, f"d{i}"))
        assert pub.flush(10)
        length = client.xlen(stream_key(session_id))
        assert 200 <= length <= 200 + node_size(client)
        last = next(iter(read(RedisEventSource(redis_url, fake_view), session_id, None, 0.5)))
        assert last.type == "text_delta"
        newest = client.xrevrange(stream_key(session_id), count=1)[0][1]
        assert b'"text":"d1999"' in newest[b"event"]
    finally:
        pub.close()
        client.close()


def test_entries_older_than_max_age_are_trimmed_and_the_stream_expires(
    redis_url: str, session_id: str
) -> None:
    """Publishing trims entries older than max_age_s (whole nodes) and sets the stream to
    expire after max_age_s, so an idle session's stream vanishes by itself."""
    client = redis.Redis.from_url(redis_url)
    key = stream_key(session_id)
    # Given: entries from long ago (explicit ids), more than a few nodes' worth.
    for i in range(350):
        client.xadd(key, {"event": "{}"}, id=f"{1000 + i}-0")
    pub = RedisEventPublisher(redis_url, max_age_s=900)
    try:
        # When: one event is published now.
        pub.publish(delta(session_id, "now"))
        assert pub.flush(5)
        # Then: at most one node of the old entries is left, and the key expires.
        old = client.xrange(key, min="-", max=f"{1000 + 349}-0")
        assert len(old) <= node_size(client)
        assert client.xlen(key) <= node_size(client) + 1
        assert 0 < client.ttl(key) <= 900
    finally:
        pub.close()
        client.close()


def test_publish_is_a_fast_no_op_while_redis_is_down(
    own_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """With Redis stopped, publish never raises and never waits on Redis: the one failed
    send starts a back-off window in which nothing tries Redis again, flush is bounded, and
    the failure is logged once, not once per event."""
    own_redis.stop()
    pub = RedisEventPublisher(own_redis.url, retry_after_s=60)
    try:
        with caplog.at_level(logging.WARNING, logger="lash_tasks.events.publisher"):
            started = time.perf_counter()
            for i in range(2000):
                pub.publish(delta("s-down", f"d{i}"))
            published_in = time.perf_counter() - started
            assert pub.flush(5)
            # Then: the mechanism, whatever the machine's load: one round trip was tried
            # (and failed); every later batch was dropped inside the back-off window.
            assert pub.send_attempts == 1
        # A publish that waited on a socket would cost its 250 ms timeout: 2000 of them
        # would take minutes. The bound is generous, for a loaded machine.
        assert published_in < 2.0, f"2000 publishes took {published_in:.2f} s"
        warnings = [r for r in caplog.records if "not published" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    finally:
        pub.close()


def test_publishing_resumes_after_an_outage_with_a_gap_marker(own_redis: PrivateRedis) -> None:
    """Events dropped while Redis was down are announced by a `gap` marker before the next
    event once it is back; a reader sees the gap with the session view, then the event."""
    pub = RedisEventPublisher(own_redis.url, retry_after_s=0.05)
    try:
        pub.publish(delta("s-out", "before"))
        assert pub.flush(5)
        own_redis.stop()
        pub.publish(delta("s-out", "lost"))
        assert pub.flush(5)
        own_redis.start()  # same port, empty (no persistence)
        time.sleep(0.1)  # past retry_after_s: the publisher tries Redis again
        pub.publish(delta("s-out", "after"))
        assert pub.flush(5)
        source = RedisEventSource(own_redis.url, fake_view)
        events = list(read(source, "s-out", None, timeout=0.3))
        source.close()
    finally:
        pub.close()
    assert [e.type for e in events] == ["gap", "text_delta"]
    assert events[0].type == "gap" and events[0].reason == "dropped"
    assert events[0].view == fake_view("s-out")
    assert events[1].type == "text_delta" and events[1].text == "after"


@pytest.mark.timeout(60)
def test_a_stalled_redis_costs_publish_nothing(own_redis: PrivateRedis) -> None:
    """With Redis paused (SIGSTOP), publishing still takes microseconds and flush gives up
    at its timeout; once Redis runs again, later events arrive."""
    pub = RedisEventPublisher(own_redis.url, retry_after_s=0.05)
    client = redis.Redis.from_url(own_redis.url)
    try:
        pub.publish(delta("s-stall", "warm"))
        assert pub.flush(5)
        own_redis.pause()
        started = time.perf_counter()
        for i in range(500):
            pub.publish(delta("s-stall", f"d{i}"))
        spent = time.perf_counter() - started
        flush_started = time.perf_counter()
        assert pub.flush(0.05) is False
        assert time.perf_counter() - flush_started < 0.5
        # Waiting on the paused socket would cost 250 ms per publish (two minutes in all); the
        # bound is generous, for a loaded machine.
        assert spent < 2.0, f"500 publishes took {spent * 1000:.0f} ms against a stalled Redis"
        own_redis.resume()
        assert pub.flush(10)
        time.sleep(0.1)
        pub.publish(delta("s-stall", "later"))
        assert pub.flush(5)
        ids = [StreamId.parse(i) for i, _ in client.xrange(stream_key("s-stall"))]
        assert ids == sorted(ids)
        newest = client.xrevrange(stream_key("s-stall"), count=1)[0][1][b"event"]
        assert b'"text":"later"' in newest
    finally:
        own_redis.resume()
        pub.close()
        client.close()
