"""The push queue as a record derived from the log, for `sunbid verify` and
`sunbid rebuild`.

What the log decides of push.db (or of the push tables in PostgreSQL): the
cursor (how far deliveries have been derived) cannot be ahead of the log's
head, and every delivery row is an (event, subscription) pair the
derivation yields: an event up to the cursor, whose topics and stage the
subscription follows. Only a
subscription never changed since it was made is held to the last rule: an
updated one followed other topics when its older rows were derived, and the
rows of a deleted one stay (as delivered, failed or gone) with nothing left
to compare them with. What happened to a delivery (delivered, failed) is
the push service's answer, not the log's: a rebuild cannot recompute it, so
it removes the rows the log does not yield and keeps the others.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from push.queue import PushQueue, State
from server.core.events import StoredEvent
from server.core.projection import LogReader
from server.core.topics import topics_of

PAGE = 1000
SELECT_ROWS = "SELECT seq, subscription_id, state FROM deliveries ORDER BY seq, subscription_id"
SELECT_SUBSCRIPTIONS = "SELECT id, topics, stages, created_at = updated_at FROM subscriptions"


@dataclass(frozen=True)
class _Follows:
    topics: frozenset[str]
    stages: frozenset[str] | None
    unchanged: bool  # never updated: its filter is the one every row was derived with


class PushRecord:
    name = "push"
    note: str | None = None

    def __init__(self, queue: PushQueue) -> None:
        self.queue = queue

    async def check(self, log_reader: LogReader) -> str | None:
        cursor, rows, follows = await self._read()
        if not await _in_log(log_reader, cursor):
            return f"push.db cursor: at seq {cursor}, ahead of the log's head {log_reader.head}"
        async for seq, sub_id, why in _scan(log_reader, cursor, rows, follows):
            return f"push.db delivery (seq {seq}, subscription {sub_id}): {why}"
        return None

    async def rebuild(self, log_reader: LogReader) -> None:
        """Bring the cursor back to the log's head if it is ahead; delete the
        rows the log does not yield. Deliveries are not derived again here:
        the worker does that from the cursor when it runs."""
        cursor, rows, follows = await self._read()
        if not await _in_log(log_reader, cursor):
            cursor = log_reader.head
        wrong = [(seq, sub_id) async for seq, sub_id, _ in _scan(log_reader, cursor, rows, follows)]
        async with self.queue.transaction():
            await self.queue.db.execute("UPDATE cursor SET seq = ? WHERE id = 1", (cursor,))
            await self.queue.db.executemany(
                "DELETE FROM deliveries WHERE seq = ? AND subscription_id = ?", wrong
            )

    async def _read(self) -> tuple[int, list[Any], dict[int, _Follows]]:
        """The cursor, the rows and the subscriptions as of one moment (one
        read transaction: the worker may go on deriving meanwhile)."""
        queue = self.queue
        if queue.postgres:
            # The cursor row share-locked: workers' derives (FOR UPDATE) wait
            # until these reads are done, so no row appears past the cursor read.
            async with queue.transaction():
                found = await queue.db.execute_fetchall(
                    "SELECT seq FROM cursor WHERE id = 1 FOR SHARE"
                )
                cursor = int(found[0][0]) if found else 0
                rows = await queue.db.execute_fetchall(SELECT_ROWS)
                subscriptions = await queue.db.execute_fetchall(SELECT_SUBSCRIPTIONS)
        else:
            db = queue.db
            await db.execute("BEGIN")
            try:
                cursor = await queue.cursor()
                rows = await queue.rows(SELECT_ROWS)
                subscriptions = await queue.rows(SELECT_SUBSCRIPTIONS)
            finally:
                await db.execute("COMMIT")
        follows = {
            int(sub_id): _Follows(
                frozenset(orjson.loads(topics)),
                None if stages is None else frozenset(stages.strip(",").split(",")),
                bool(unchanged),
            )
            for sub_id, topics, stages, unchanged in subscriptions
        }
        return cursor, rows, follows


async def _in_log(log_reader: LogReader, seq: int) -> bool:
    """Whether the log holds `seq` (0: nothing derived yet), asked of the log
    itself: a server beside `sunbid verify` may have published since it opened."""
    if seq <= log_reader.head:
        return True
    found = await log_reader.events_since(seq - 1, None, 1)
    return bool(found) and found[0].seq == seq


async def _scan(
    log_reader: LogReader, cursor: int, rows: list[Any], follows: dict[int, _Follows]
) -> AsyncIterator[tuple[int, int, str]]:
    """Every delivery row the log does not yield, in (seq, subscription) order."""
    states = {int(s) for s in State}
    events: dict[int, StoredEvent] = {}
    for seq, sub_id, state in rows:
        if state not in states:
            yield seq, sub_id, f"state {state} is none of {sorted(states)}"
            continue
        if seq < 1 or seq > cursor:
            yield seq, sub_id, f"event {seq} is not one the cursor ({cursor}) has passed"
            continue
        if seq not in events:
            page = await log_reader.events_since(seq - 1, None, PAGE)
            events = {e.seq: e for e in page}
        event = events.get(seq)
        if event is None:
            yield seq, sub_id, f"event {seq} is not in the log"
            continue
        sub = follows.get(sub_id)
        if sub is not None and sub.unchanged and not _matches(sub, event):
            yield (
                seq,
                sub_id,
                (
                    f"the subscription does not follow event {seq}"
                    f" ({event.stage} on project {event.project})"
                ),
            )


def _matches(sub: _Follows, event: StoredEvent) -> bool:
    if sub.stages is not None and event.stage not in sub.stages:
        return False
    return not sub.topics.isdisjoint(topics_of(event))
