"""The Follower around every projection: each event applied exactly once, in
order, whether the bus repeats events, skips some, or delivers while a gap is
being read from the log."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from server.core.events import StoredEvent
from server.core.projection import Follower
from tests.test_replay import event


class Seen:
    """A projection that records what it was given."""

    name = "seen"

    def __init__(self) -> None:
        self.cursor = 0
        self.seqs: list[int] = []

    def apply(self, events: Sequence[StoredEvent]) -> None:
        first = self.cursor + 1
        assert [e.seq for e in events] == list(range(first, first + len(events)))
        self.seqs += [e.seq for e in events]
        self.cursor = events[-1].seq


class SlowLog:
    """The log, whose reads take a turn of the loop (as a database thread's do)."""

    def __init__(self, count: int) -> None:
        self.events = [event(n) for n in range(1, count + 1)]
        self.head = count
        self.reads = 0

    async def events_since(self, since: int, topics: None, limit: int) -> list[StoredEvent]:
        self.reads += 1
        await asyncio.sleep(0)
        return [e for e in self.events if e.seq > since][:limit]

    def commit(self, count: int) -> list[StoredEvent]:
        new = [event(n) for n in range(self.head + 1, self.head + count + 1)]
        self.events += new
        self.head += count
        return new


async def test_catch_up_then_repeats_are_skipped_and_new_events_applied() -> None:
    log, seen = SlowLog(5), Seen()
    follower = Follower(seen, log)
    await follower.catch_up(page=2)
    assert seen.seqs == [1, 2, 3, 4, 5]
    follower.deliver(log.events[3:5])  # announced before the catch-up read them: again
    follower.deliver(log.commit(2))
    assert seen.seqs == [1, 2, 3, 4, 5, 6, 7]


async def test_a_gap_is_read_from_the_log_and_deliveries_during_it_are_not_lost() -> None:
    log, seen = SlowLog(3), Seen()
    follower = Follower(seen, log)
    await follower.catch_up()
    log.commit(2)  # 4 and 5: their announcement never arrived
    follower.deliver(log.commit(1))  # 6: a gap before it
    assert seen.seqs == [1, 2, 3]  # nothing applied out of order
    follower.deliver(log.commit(1))  # 7, while the gap is being read
    for _ in range(20):
        await asyncio.sleep(0)
    assert seen.seqs == [1, 2, 3, 4, 5, 6, 7]
    follower.deliver(log.commit(1))
    assert seen.seqs[-1] == 8
    await follower.close()
