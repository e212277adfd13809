"""In-process fan-out: which connected clients get which event.

Pure bookkeeping with no I/O, so it is tested without sockets. Subscribers
are indexed by topic; an event is routed by looking up its few topics (never
by scanning every subscriber), and each subscriber's `seen` mark makes sure a
client following several matching topics gets the event once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from server.core.events import StoredEvent
from server.core.frames import Frames, Message
from server.core.topics import SUPERVISION, topics_of


class Subscriber(Protocol):
    seen: int  # highest seq handed to this subscriber

    def deliver(self, frames: Frames) -> None: ...
    def notice(self, message: Message) -> None: ...


Stages = frozenset[str] | None  # the stages wanted on a topic; None: all


class Hub:
    def __init__(self) -> None:
        # topic → subscriber → the stages it wants there. The hot loop reads
        # both from one dict, with no per-delivery lookups elsewhere.
        self._by_topic: dict[str, dict[Subscriber, Stages]] = {}

    def add(self, subscriber: Subscriber, topics: Mapping[str, Stages]) -> None:
        for topic, stages in topics.items():
            self._by_topic.setdefault(topic, {})[subscriber] = stages

    def remove(self, subscriber: Subscriber, topics: Iterable[str]) -> None:
        for topic in topics:
            followers = self._by_topic.get(topic)
            if followers is not None:
                followers.pop(subscriber, None)
                if not followers:
                    del self._by_topic[topic]

    def subscriber_count(self, topic: str) -> int:
        return len(self._by_topic.get(topic, ()))

    def warn(self, message: Message) -> None:
        """A compliance warning, to every connection following `supervision`.

        Warnings are not events: no seq, no stages, no replay (the list is at
        /api/supervision/warnings), so they skip all the event bookkeeping.
        """
        for subscriber in self._by_topic.get(SUPERVISION, ()):
            subscriber.notice(message)

    def dispatch(self, events: Sequence[StoredEvent]) -> None:
        """Hand committed events, in seq order, to every matching subscriber.

        Subscribers must not add or remove themselves synchronously from
        `deliver` (they schedule it), so the dicts can be iterated in place.
        """
        for event in events:
            frames = Frames(event)
            seq, stage = event.seq, event.stage
            for topic in topics_of(event):
                followers = self._by_topic.get(topic)
                if not followers:
                    continue
                for subscriber, stages in followers.items():
                    if subscriber.seen >= seq:
                        continue
                    if stages is None or stage in stages:
                        subscriber.seen = seq
                        subscriber.deliver(frames)
