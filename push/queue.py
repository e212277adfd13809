"""The durable push queue: subscriptions, a cursor over the log, pending deliveries.

Deliveries are derived from the event log, never handed over in memory: the
cursor says how far the log has been turned into delivery rows, and it moves
in the same transaction as the rows it covers. A crash at any moment loses
nothing: on restart the cursor resumes, and queued rows are sent again.

It lives in its own SQLite file (see schema.sql for why) with
`synchronous=NORMAL`: a process crash loses no committed transaction, and a
power cut could at worst re-send what the log still holds — never lose it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import orjson

from push.derive import Pending
from server.core import versions
from server.core.sidefile import SideFile

QUEUE_FILE = "push.db"  # in the data directory
SCHEMA = (Path(__file__).parent / "schema.sql").read_text("utf-8")


class State(IntEnum):
    QUEUED = 0
    DELIVERED = 1
    FAILED = 2
    GONE = 3


@dataclass(frozen=True)
class Subscription:
    id: int
    endpoint: str
    p256dh: bytes
    auth: bytes
    topics: list[str]
    stages: list[str] | None


@dataclass(frozen=True)
class Due:
    """A delivery to attempt now."""

    seq: int
    subscription_id: int
    endpoint: str
    p256dh: bytes
    auth: bytes
    attempts: int
    expires_at: float


@dataclass(frozen=True)
class Outcome:
    seq: int
    subscription_id: int
    state: State
    status: int | None
    next_at: float = 0.0  # for a retry (state QUEUED)


class PushQueue(SideFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path, SCHEMA, versions.PUSH)

    # --- subscriptions ---------------------------------------------------------

    async def upsert(
        self,
        endpoint: str,
        p256dh: bytes,
        auth: bytes,
        topics: list[str],
        stages: list[str] | None,
        now: str,
    ) -> tuple[int, bool]:
        """Create or replace the subscription for this endpoint; (id, created)."""
        stage_list = None if not stages else "," + ",".join(sorted(set(stages))) + ","
        async with self.transaction():
            rows = await self.rows("SELECT id FROM subscriptions WHERE endpoint = ?", (endpoint,))
            if rows:
                sub_id, created = int(rows[0][0]), False
                await self.db.execute(
                    "UPDATE subscriptions SET p256dh=?, auth=?, topics=?, stages=?, updated_at=?"
                    " WHERE id=?",
                    (p256dh, auth, orjson.dumps(topics).decode(), stage_list, now, sub_id),
                )
                await self.db.execute(
                    "DELETE FROM subscription_topics WHERE subscription_id = ?", (sub_id,)
                )
            else:
                cursor = await self.db.execute(
                    "INSERT INTO subscriptions (endpoint, p256dh, auth, topics, stages,"
                    " created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                    (endpoint, p256dh, auth, orjson.dumps(topics).decode(), stage_list, now, now),
                )
                sub_id, created = int(cursor.lastrowid or 0), True
            await self.db.executemany(
                "INSERT OR IGNORE INTO subscription_topics VALUES (?, ?)",
                [(topic, sub_id) for topic in topics],
            )
        return sub_id, created

    async def delete(self, endpoint: str) -> bool:
        rows = await self.rows("SELECT id FROM subscriptions WHERE endpoint = ?", (endpoint,))
        if not rows:
            return False
        await self._forget(int(rows[0][0]))
        return True

    async def _forget(self, sub_id: int) -> None:
        """Remove a subscription and give up its queued deliveries (as gone)."""
        async with self.transaction():
            await self.db.execute("DELETE FROM subscriptions WHERE id = ?", (sub_id,))
            await self.db.execute(
                "DELETE FROM subscription_topics WHERE subscription_id = ?", (sub_id,)
            )
            await self.db.execute(
                "UPDATE deliveries SET state = ? WHERE subscription_id = ? AND state = ?",
                (State.GONE, sub_id, State.QUEUED),
            )

    async def count(self) -> int:
        rows = await self.rows("SELECT COUNT(*) FROM subscriptions")
        return int(rows[0][0])

    async def get(self, endpoint: str) -> Subscription | None:
        rows = await self.rows(
            "SELECT id, endpoint, p256dh, auth, topics, stages FROM subscriptions"
            " WHERE endpoint = ?",
            (endpoint,),
        )
        if not rows:
            return None
        sub_id, url, p256dh, auth, topics, stages = rows[0]
        return Subscription(
            sub_id,
            url,
            bytes(p256dh),
            bytes(auth),
            orjson.loads(topics),
            None if stages is None else stages.strip(",").split(","),
        )

    # --- deriving deliveries from the log -----------------------------------------

    async def cursor(self) -> int:
        rows = await self.rows("SELECT seq FROM cursor WHERE id = 1")
        return int(rows[0][0]) if rows else 0

    async def enqueue(self, events: Iterable[Pending], up_to: int, now: float) -> int:
        """Queue a delivery per matching subscription; move the cursor to `up_to`.

        One statement per event selects the subscribers through the topic
        index, in SQLite, so 100,000 rows cost one round trip, not 100,000.
        It spells push.derive.matches in SQL (tests/test_push_derive.py
        holds the two to the same answers).
        """
        added = 0
        async with self.transaction():
            for event in events:
                marks = ",".join("?" for _ in event.topics)
                cursor = await self.db.execute(
                    "INSERT OR IGNORE INTO deliveries (seq, subscription_id, next_at, expires_at)"
                    " SELECT DISTINCT ?, t.subscription_id, ?, ? FROM subscription_topics t"
                    " JOIN subscriptions s ON s.id = t.subscription_id"
                    f" WHERE t.topic IN ({marks})"
                    " AND (s.stages IS NULL OR instr(s.stages, ?) > 0)",
                    (event.seq, now, event.expires_at, *event.topics, f",{event.stage},"),
                )
                added += max(cursor.rowcount, 0)
            await self.db.execute(
                "INSERT INTO cursor (id, seq) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
                (up_to,),
            )
        return added

    # --- sending --------------------------------------------------------------------

    async def due(self, now: float, limit: int) -> list[Due]:
        rows = await self.rows(
            "SELECT d.seq, d.subscription_id, s.endpoint, s.p256dh, s.auth, d.attempts,"
            " d.expires_at FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id"
            " WHERE d.state = 0 AND d.next_at <= ? ORDER BY d.next_at, d.seq LIMIT ?",
            (now, limit),
        )
        return [Due(r[0], r[1], r[2], bytes(r[3]), bytes(r[4]), r[5], r[6]) for r in rows]

    async def next_due_at(self) -> float | None:
        rows = await self.rows("SELECT MIN(next_at) FROM deliveries WHERE state = 0")
        return None if rows[0][0] is None else float(rows[0][0])

    async def depth(self) -> int:
        """Deliveries waiting to be sent or retried (read through the due index)."""
        rows = await self.rows("SELECT COUNT(*) FROM deliveries WHERE state = 0")
        return int(rows[0][0])

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        """Store what happened to a batch of attempts, in one transaction."""
        gone = {o.subscription_id for o in outcomes if o.state is State.GONE}
        async with self.transaction():
            await self.db.executemany(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_status = ?,"
                " next_at = CASE WHEN ? > 0 THEN ? ELSE next_at END"
                " WHERE seq = ? AND subscription_id = ?",
                [
                    (o.state, o.status, o.next_at, o.next_at, o.seq, o.subscription_id)
                    for o in outcomes
                ],
            )
        for sub_id in gone:
            await self._forget(sub_id)

    async def prune_finished(self, before: float, chunk: int = 5000) -> int:
        """Delete finished rows (delivered, failed, gone) whose last attempt was
        before `before` (epoch seconds); how many. `next_at` is the time of the
        last attempt once a row is finished (only a retry moves it on).
        Several short transactions: the worker's writes go between them."""
        deleted = 0
        while True:
            async with self.transaction():
                cursor = await self.db.execute(
                    "DELETE FROM deliveries WHERE (seq, subscription_id) IN"
                    " (SELECT seq, subscription_id FROM deliveries"
                    "  WHERE state != 0 AND next_at < ? LIMIT ?)",
                    (before, chunk),
                )
            removed = int(cursor.rowcount)
            deleted += max(removed, 0)
            if removed < chunk:
                return deleted

    async def counts(self, seq: int) -> dict[str, int]:
        rows = await self.rows(
            "SELECT state, COUNT(*) FROM deliveries WHERE seq = ? GROUP BY state", (seq,)
        )
        by_state = {State(state): int(n) for state, n in rows}
        return {state.name.lower(): by_state.get(state, 0) for state in State}
