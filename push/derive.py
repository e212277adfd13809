"""Deliveries derived from the log: the push queue's projection.

Which deliveries an event makes is a pure function of the event, the stage
policy and the subscriptions. `DeliveryDerivation.apply` turns a run of
events into `Pending` rows: the event's topics and stage (what selects the
subscriptions) and when a push of it stops being worth sending (published +
the stage's TTL). `matches` is the rule that pairs a row with a subscription.

The runner (`PushWorker._derive_page`) reads a page of the log after the
queue's cursor, applies it, and hands the rows to the queue, which writes one
delivery per matching subscription and moves the cursor in the same
transaction. The pairing runs inside SQLite through the topic index, one
statement per event (100,000 subscribers of one event: 0.13 s,
docs/benchmarks.md; the same join in Python is three times slower), so the
statement is a second spelling of `matches`: tests/test_push_derive.py runs
both over the same subscriptions and events and requires the same pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from server.core.events import StoredEvent
from server.core.topics import topics_of


@dataclass(frozen=True)
class Pending:
    """An event to derive deliveries for."""

    seq: int
    topics: tuple[str, ...]
    stage: str
    expires_at: float  # epoch seconds: published + the stage's TTL


def matches(pending: Pending, topics: Collection[str], stages: Collection[str] | None) -> bool:
    """Whether a subscription to `topics` (only `stages`; None or empty: every
    stage) gets a delivery of `pending`. One delivery however many of its
    topics match: the caller pairs each subscription with a row once."""
    return (not stages or pending.stage in stages) and not set(topics).isdisjoint(pending.topics)


class DeliveryDerivation:
    """The pure part: events in, `Pending` rows out, and the cursor they cover."""

    name = "push"

    def __init__(self, ttl_of: Callable[[str], int], cursor: int = 0) -> None:
        self.ttl_of = ttl_of  # seconds a push of a stage is worth sending
        self.cursor = cursor
        self._rows: list[Pending] = []

    def apply(self, events: Sequence[StoredEvent]) -> None:
        """Fold events in; one already applied (seq ≤ cursor) is skipped."""
        for event in events:
            if event.seq <= self.cursor:
                continue
            expires_at = published_at(event) + self.ttl_of(event.stage)
            self._rows.append(Pending(event.seq, topics_of(event), event.stage, expires_at))
            self.cursor = event.seq

    def take(self) -> list[Pending]:
        """The rows applied since the last take, for the queue to write."""
        rows, self._rows = self._rows, []
        return rows


def published_at(event: StoredEvent) -> float:
    published = orjson.loads(event.json)["published_at"]
    return datetime.fromisoformat(published).timestamp()
