"""The durable push queue, in-process, on a real SQLite file and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from push.derive import Pending
from push.queue import Outcome, PushQueue, State
from tests.services import postgres_schema

NOW = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgresql"])
def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], PushQueue]]:
    """A new PushQueue (not yet open) on the test's store: each test runs on both engines."""
    path = tmp_path / "push.db"
    if request.param == "sqlite":
        yield lambda: PushQueue(path)
    else:
        with postgres_schema() as (url, schema):
            yield lambda: PushQueue(path, database_url=url, database_schema=schema)


@pytest.fixture
async def queue(make_queue: Callable[[], PushQueue]) -> AsyncIterator[PushQueue]:
    opened = make_queue()
    await opened.open()
    yield opened
    await opened.close()


def event(seq: int, project: str = "P1", stage: str = "notice") -> Pending:
    topics = ("all", f"project:{project}", "category:construction", "agency:YW-GGZY")
    return Pending(seq, topics, stage, expires_at=NOW + 3600)


async def subscribe(
    queue: PushQueue, n: int, topics: list[str], stages: list[str] | None = None
) -> int:
    sub_id, created = await queue.upsert(
        f"https://push.example/{n}",
        b"k" * 65,
        b"a" * 16,
        topics,
        stages,
        "2026-12-01T09:00:00+08:00",
    )
    assert created
    return sub_id


async def test_upsert_by_endpoint_replaces_topics(queue: PushQueue) -> None:
    sub_id = await subscribe(queue, 1, ["project:P1"])
    same, created = await queue.upsert(
        "https://push.example/1", b"x" * 65, b"b" * 16, ["project:P2"], None, "later"
    )
    assert (same, created) == (sub_id, False)
    assert await queue.enqueue([event(1, "P1")], up_to=1, now=NOW) == 0
    assert await queue.enqueue([event(2, "P2")], up_to=2, now=NOW) == 1
    assert await queue.count() == 1


async def test_enqueue_matches_topics_once_and_filters_stages(queue: PushQueue) -> None:
    both = await subscribe(queue, 1, ["project:P1", "category:construction"])
    awards_only = await subscribe(queue, 2, ["all"], stages=["award"])
    other = await subscribe(queue, 3, ["project:P9"])

    assert (
        await queue.enqueue([event(1, stage="notice"), event(2, stage="award")], up_to=2, now=NOW)
        == 3
    )
    due = {(d.seq, d.subscription_id) for d in await queue.due(NOW, 100)}
    assert due == {(1, both), (2, both), (2, awards_only)}
    assert other not in {s for _, s in due}
    assert await queue.cursor() == 2


async def test_outcomes_counts_retries_and_gone(queue: PushQueue) -> None:
    first = await subscribe(queue, 1, ["all"])
    second = await subscribe(queue, 2, ["all"])
    third = await subscribe(queue, 3, ["all"])
    await queue.enqueue([event(1), event(2)], up_to=2, now=NOW)

    # Taken to be sent (claimed, on PostgreSQL): event 1's three rows.
    assert {d.seq for d in await queue.due(NOW, 3)} == {1}
    await queue.record(
        [
            Outcome(1, first, State.DELIVERED, 201),
            Outcome(1, second, State.QUEUED, 429, next_at=NOW + 30),
            Outcome(1, third, State.GONE, 410),
        ]
    )
    assert await queue.counts(1) == {"queued": 1, "delivered": 1, "failed": 0, "gone": 1}
    # The gone subscription is removed, and so is its other queued delivery.
    assert await queue.counts(2) == {"queued": 2, "delivered": 0, "failed": 0, "gone": 1}
    assert await queue.count() == 2
    # The retry waits for its time.
    assert (1, second) not in {(d.seq, d.subscription_id) for d in await queue.due(NOW, 10)}
    assert (1, second) in {(d.seq, d.subscription_id) for d in await queue.due(NOW + 31, 10)}
    # Event 2's rows are due at NOW; on PostgreSQL the look above claimed
    # them, so they are due again (for another worker) when the claim runs out.
    assert await queue.next_due_at() == (NOW + queue.lease if queue.postgres else NOW)


async def test_queue_survives_reopening(make_queue: Callable[[], PushQueue]) -> None:
    first = make_queue()
    await first.open()
    sub_id = await subscribe(first, 1, ["all"])
    await first.enqueue([event(1)], up_to=7, now=NOW)
    await first.close()

    again = make_queue()
    await again.open()
    try:
        assert await again.cursor() == 7
        assert [(d.seq, d.subscription_id) for d in await again.due(NOW, 10)] == [(1, sub_id)]
        assert await again.delete("https://push.example/1")
        assert not await again.delete("https://push.example/1")
    finally:
        await again.close()


async def test_prune_removes_only_finished_rows_before_the_time(queue: PushQueue) -> None:
    sub = await subscribe(queue, 1, ["all"])
    await queue.enqueue([event(1), event(2), event(3)], up_to=3, now=NOW)
    assert [d.seq for d in await queue.due(NOW, 2)] == [1, 2]
    await queue.record([Outcome(1, sub, State.DELIVERED, 201), Outcome(2, sub, State.FAILED, 400)])
    assert await queue.prune_finished(NOW - 1) == 0
    assert await queue.prune_finished(NOW + 1, chunk=1) == 2
    assert [(d.seq, d.subscription_id) for d in await queue.due(NOW, 10)] == [(3, sub)]
    assert await queue.depth() == 1
    assert await queue.counts(1) == {"queued": 0, "delivered": 0, "failed": 0, "gone": 0}
