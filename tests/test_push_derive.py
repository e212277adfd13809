"""Deriving push deliveries from the log (push/derive.py): the pure projection
without I/O, then the queue's SQL join, on SQLite and on PostgreSQL, held to
the same matching rule."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path

import pytest

from push.derive import DeliveryDerivation, Pending, matches
from push.queue import PushQueue
from server.core.events import StoredEvent
from tests.services import postgres_schema

TTL = {"notice": 86_400, "award": 604_800, "bid_opening": 3_600}
PUBLISHED = "2026-12-01T09:30:00+08:00"
PUBLISHED_EPOCH = datetime.fromisoformat(PUBLISHED).timestamp()


def event(
    seq: int,
    project: str = "P-1",
    stage: str = "notice",
    region: str | None = "330782",
    published: str = PUBLISHED,
) -> StoredEvent:
    return StoredEvent.from_dict(
        {
            "seq": seq,
            "project": project,
            "category": "construction",
            "agency": "AG-1",
            "region": region,
            "stage": stage,
            "title": "t",
            "body": "",
            "data": {},
            "occurred_at": published,
            "published_at": published,
            "hash": "0" * 64,
        }
    )


def derivation(cursor: int = 0) -> DeliveryDerivation:
    return DeliveryDerivation(TTL.__getitem__, cursor)


# --- the projection, without I/O ----------------------------------------------------------


def test_each_event_becomes_one_row_with_its_topics_stage_and_expiry() -> None:
    derive = derivation()
    derive.apply([event(1), event(2, "P-2", "award", region=None)])
    assert derive.cursor == 2
    assert derive.take() == [
        Pending(
            1,
            ("all", "project:P-1", "category:construction", "agency:AG-1", "region:330782"),
            "notice",
            PUBLISHED_EPOCH + TTL["notice"],
        ),
        Pending(
            2,
            ("all", "project:P-2", "category:construction", "agency:AG-1"),
            "award",
            PUBLISHED_EPOCH + TTL["award"],
        ),
    ]
    assert derive.take() == []  # taken once


def test_expiry_counts_from_publication_in_any_offset() -> None:
    derive = derivation()
    derive.apply([event(1, published="2026-12-01T01:30:00+00:00")])
    (row,) = derive.take()
    assert row.expires_at == PUBLISHED_EPOCH + TTL["notice"]  # the same instant as 09:30+08:00


def test_events_already_applied_are_skipped_and_the_cursor_only_moves_on() -> None:
    derive = derivation(cursor=5)
    derive.apply([event(4), event(5), event(6), event(6), event(7)])
    assert [row.seq for row in derive.take()] == [6, 7]
    assert derive.cursor == 7
    derive.apply([event(3)])  # an old page read again: nothing, cursor stays
    assert derive.take() == [] and derive.cursor == 7


def row(stage: str = "notice") -> Pending:
    return Pending(1, ("all", "project:P-1", "category:construction"), stage, 0.0)


def test_matching_by_topic() -> None:
    assert matches(row(), ["project:P-1"], None)
    assert matches(row(), ["project:P-9", "category:construction"], None)
    assert not matches(row(), ["project:P-9", "region:1"], None)
    assert not matches(row(), [], None)


def test_matching_by_stage() -> None:
    assert matches(row("award"), ["all"], ["award"])
    assert not matches(row("notice"), ["all"], ["award", "bid_opening"])
    assert matches(row("notice"), ["all"], [])  # no stages given: every stage
    assert not matches(row("notice"), ["project:P-9"], ["notice"])  # stage alone is not enough


# --- the queue's SQL against the rule -------------------------------------------------------

TOPIC_CHOICES = [["all"], ["project:P-1"], ["project:P-2"], ["region:330782"], ["agency:AG-1"]]
STAGE_CHOICES: list[list[str] | None] = [None, ["notice"], ["award"], ["notice", "award"]]


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
async def test_the_queue_pairs_exactly_what_matches_accepts(tmp_path: Path, engine: str) -> None:
    if engine == "sqlite":
        await _pairs_what_matches_accepts(PushQueue(tmp_path / "push.db"))
        return
    with postgres_schema() as (url, schema):
        await _pairs_what_matches_accepts(
            PushQueue(tmp_path / "unused.db", database_url=url, database_schema=schema)
        )


async def _pairs_what_matches_accepts(queue: PushQueue) -> None:
    await queue.open()
    try:
        subscriptions: dict[int, tuple[list[str], list[str] | None]] = {}
        combos = itertools.product(
            [[*a, *b] for a, b in itertools.combinations(TOPIC_CHOICES, 2)] + TOPIC_CHOICES,
            STAGE_CHOICES,
        )
        for n, (topics, stages) in enumerate(combos):
            sub_id, _ = await queue.upsert(
                f"https://push.example/{n}", b"k" * 65, b"a" * 16, topics, stages, "now"
            )
            subscriptions[sub_id] = (topics, stages)
        derive = derivation()
        derive.apply(
            [
                event(1),
                event(2, "P-2", "award"),
                event(3, "P-3", "notice", region=None),
                event(4, "P-1", "bid_opening"),
            ]
        )
        rows = derive.take()
        await queue.enqueue(rows, up_to=derive.cursor, now=0.0)
        assert await queue.cursor() == 4
        stored = {
            (int(seq), int(sub))
            for seq, sub in await queue.rows("SELECT seq, subscription_id FROM deliveries")
        }
        expected = {
            (r.seq, sub_id)
            for r in rows
            for sub_id, (topics, stages) in subscriptions.items()
            if matches(r, topics, stages)
        }
        assert stored == expected
        assert len(expected) > 50  # the grid pairs plenty, and leaves plenty out
        assert len(expected) < len(rows) * len(subscriptions)
    finally:
        await queue.close()
