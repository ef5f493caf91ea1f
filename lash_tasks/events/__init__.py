"""Live session events: the vocabulary, publishing to Redis, reading back, waiting on them."""

from lash_tasks.events.emitter import StepEvents, StepEventsFactory, publisher_from_settings
from lash_tasks.events.publisher import (
    EventPublisher,
    NullEventPublisher,
    RedisEventPublisher,
    stream_key,
)
from lash_tasks.events.sources import EventSource, read
from lash_tasks.events.vocabulary import SessionEvent, event_json

__all__ = [
    "EventPublisher",
    "EventSource",
    "NullEventPublisher",
    "RedisEventPublisher",
    "SessionEvent",
    "StepEvents",
    "StepEventsFactory",
    "event_json",
    "publisher_from_settings",
    "read",
    "stream_key",
]
