"""In-process fan-out: which connected clients get which event.

Pure bookkeeping with no I/O, so it is tested without sockets. Subscribers
are indexed by topic; an event is routed by looking up its few topics (never
by scanning every subscriber), and each subscriber's `seen` mark makes sure a
client following several matching topics gets the event once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from server.events import StoredEvent
from server.stream.frames import Frames
from server.topics import TopicFilter, topics_of


class Subscriber(Protocol):
    seen: int  # highest seq handed to this subscriber
    filter: TopicFilter

    def deliver(self, frames: Frames) -> None: ...


class Hub:
    def __init__(self) -> None:
        self._by_topic: dict[str, set[Subscriber]] = {}

    def add(self, subscriber: Subscriber, topics: Iterable[str]) -> None:
        for topic in topics:
            self._by_topic.setdefault(topic, set()).add(subscriber)

    def remove(self, subscriber: Subscriber, topics: Iterable[str]) -> None:
        for topic in topics:
            followers = self._by_topic.get(topic)
            if followers is not None:
                followers.discard(subscriber)
                if not followers:
                    del self._by_topic[topic]

    def subscriber_count(self, topic: str) -> int:
        return len(self._by_topic.get(topic, ()))

    def dispatch(self, events: Sequence[StoredEvent]) -> None:
        """Hand committed events, in seq order, to every matching subscriber.

        Subscribers must not add or remove themselves synchronously from
        `deliver` (they schedule it), so the sets can be iterated in place.
        """
        for event in events:
            frames = Frames(event)
            seq, stage = event.seq, event.stage
            for topic in topics_of(event):
                followers = self._by_topic.get(topic)
                if not followers:
                    continue
                for subscriber in followers:
                    if subscriber.seen >= seq:
                        continue
                    stages = subscriber.filter.stages_by_topic.get(topic)
                    if stages is None or stage in stages:
                        subscriber.seen = seq
                        subscriber.deliver(frames)
