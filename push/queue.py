"""The durable push queue: subscriptions, a cursor over the log, pending deliveries.

Deliveries are derived from the event log, never handed over in memory: the
cursor says how far the log has been turned into delivery rows, and it moves
in the same transaction as the rows it covers. A crash at any moment loses
nothing: on restart the cursor resumes, and queued rows are sent again.

On one machine it lives in its own SQLite file (see schema.sql for why) with
`synchronous=NORMAL`: a process crash loses no committed transaction, and a
power cut could at worst re-send what the log still holds — never lose it.
One worker sends from it (the web server's, or `sunbid worker`).

With `SUNBID_DATABASE_URL=postgresql://…` the tables are in the log's schema
(schema.pg.sql) and any number of workers share them; each delivery is sent
by exactly one of them:

- deriving locks the cursor row (`SELECT … FOR UPDATE`) and reads it again
  inside the transaction that writes the rows and moves it: a second worker
  deriving the same page waits, then finds the cursor past those events;
- sending claims due rows with one `UPDATE … WHERE (seq, subscription_id) IN
  (SELECT … FOR UPDATE SKIP LOCKED) RETURNING …`, which sets `claimed_by`
  (this worker) and `claimed_until` (now + the lease); another worker skips
  rows locked by a concurrent claim and rows whose claim still holds;
- an outcome is stored only where the row is still claimed by this worker.

The lease (SUNBID_PUSH_CLAIM_SECONDS, 60 s; three send timeouts if
longer) outlasts any attempt (cut at two: push/worker.py `attempt_timeout`),
and a worker claims no more rows than it has free sending slots
(push/worker.py), so a live worker's rows are never taken from it. A worker
killed mid-send leaves its claims to expire: another sends those rows after the
lease, so the attempt that was in flight when it died may reach the push
service twice (at least once, as for a crash with SQLite; the `Topic` header
lets the service collapse the repeat). Workers compare the lease with their
own clocks: they must agree to well within the lease (NTP does).

Why plain SKIP LOCKED and not a job queue library (pgqueuer, procrastinate):
this queue is a projection of the log. Its rows must be written in the same
transaction that moves the cursor, and `sunbid verify`/`rebuild` hold them to
the log (push/record.py). A library's own job table would be a second copy of
these rows, written outside that transaction, with its own retry rules beside
the push service's (429, Retry-After, TTL); a claim column and one statement
are all the coordination several senders need.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import orjson

from push.derive import Pending
from server.core import versions
from server.core.lease import node_name
from server.core.sidefile import SideFile

QUEUE_FILE = "push.db"  # in the data directory
SCHEMA = (Path(__file__).parent / "schema.sql").read_text("utf-8")
PG_SCHEMA = (Path(__file__).parent / "schema.pg.sql").read_text("utf-8")
CLAIM_SECONDS = 60.0  # PostgreSQL: how long a worker's claim on a row holds, by default
CODES_KEPT_SECONDS = 86_400.0
# Messages a channel's provider accepted on a local day (kind, day, how many).
ADD_USAGE = (
    "INSERT INTO channel_usage (kind, day, sent) VALUES (?, ?, ?)"
    " ON CONFLICT (kind, day) DO UPDATE SET sent = channel_usage.sent + excluded.sent"
)
CHANNEL_PREFIX = "channel:"  # a channel's `endpoint`: "channel:<id>" (never its address)
# A due row's channel: its kind, and its sealed address (NULL for Web Push).
DUE_CHANNEL = ", ".join(
    ["s.kind"]
    + [
        f"(SELECT c.{column} FROM contacts c WHERE c.subscription_id = d.subscription_id)"
        for column in ("address", "sent_day", "sent_count")
    ]
)


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
    kind: str = "push"  # or a channel's (push/channels/): sms, email, wechat
    address: bytes | None = None  # a channel's sealed address (push/channels/contacts.py)
    sent_day: str | None = None  # a channel's messages counted on this local day…
    sent_count: int = 0  # …so many (stored ones: those being sent are the worker's)

    def sent_on(self, day: str) -> int:
        """Messages stored as sent to this channel on local day `day`."""
        return self.sent_count if self.sent_day == day else 0


@dataclass(frozen=True)
class NewChannel:
    """A channel beside Web Push as it is asked for (push/channels/service.py)."""

    kind: str
    address: bytes  # sealed
    address_digest: str
    hint: str
    manage_digest: str
    code_digest: str | None  # None: confirmed by the provider's own consent (WeChat)
    code_expires_at: float | None


@dataclass(frozen=True)
class Channel:
    """A stored channel: its subscription row and its contact row."""

    subscription_id: int
    channel_id: str
    kind: str
    topics: list[str]
    stages: list[str] | None
    hint: str
    manage_digest: str
    code_digest: str | None
    code_expires_at: float | None
    confirmed: bool


@dataclass(frozen=True)
class Outcome:
    seq: int
    subscription_id: int
    state: State
    status: int | None
    next_at: float = 0.0  # for a retry (state QUEUED)
    # A channel's message handed to its provider: its kind and local day, for
    # the daily cap and the usage (stored with the outcome, in its batch).
    sent: tuple[str, str] | None = None
    attempted: bool = True  # False: held back (quiet hours), not an attempt


class PushQueue(SideFile):
    def __init__(
        self,
        path: Path,
        *,
        database_url: str = "",
        database_schema: str = "public",
        lease: float = CLAIM_SECONDS,
    ) -> None:
        """`path`: the SQLite file; with a postgresql `database_url` the tables
        are in that database's `database_schema` instead (shared by workers)."""
        super().__init__(
            path,
            SCHEMA,
            versions.PUSH,
            name="push",
            postgres_schema=PG_SCHEMA,
            database_url=database_url,
            database_schema=database_schema,
        )
        self.lease = max(lease, 1.0)
        # Names this worker's claims: unique even for a pid reused on another host.
        self.worker_id = f"{node_name()}:{secrets.token_hex(4)}"

    async def open(self) -> None:
        await super().open()
        if not self.postgres:
            # A cancelled channel's row is overwritten, not left in a free page
            # of the file (its address is sealed, but erased means erased).
            await self.db.execute("PRAGMA secure_delete = ON")

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
        stage_list = _stage_list(stages)
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
                inserted = await self.db.execute_fetchall(
                    "INSERT INTO subscriptions (endpoint, p256dh, auth, topics, stages,"
                    " created_at, updated_at) VALUES (?,?,?,?,?,?,?) RETURNING id",
                    (endpoint, p256dh, auth, orjson.dumps(topics).decode(), stage_list, now, now),
                )
                sub_id, created = int(next(iter(inserted))[0]), True
            await self._follow(sub_id, topics)
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
            # A channel's address goes with it (gone at the provider, or cancelled).
            await self.db.execute("DELETE FROM contacts WHERE subscription_id = ?", (sub_id,))
            await self.db.execute(
                "DELETE FROM subscription_topics WHERE subscription_id = ?", (sub_id,)
            )
            await self.db.execute(
                "UPDATE deliveries SET state = ? WHERE subscription_id = ? AND state = ?",
                (State.GONE, sub_id, State.QUEUED),
            )

    async def count(self) -> int:
        """Web Push subscriptions (those the VAPID key was given to)."""
        rows = await self.rows("SELECT COUNT(*) FROM subscriptions WHERE kind = 'push'")
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
        index, in SQLite, so 100,000 rows cost one round trip, not 100,000;
        on PostgreSQL, where each statement is a round trip to the server,
        one statement does the whole page. Both spell push.derive.matches in
        SQL (tests/test_push_derive.py holds them to the same answers).
        """
        async with self.transaction():
            if self.postgres:
                # Another worker may have derived these events meanwhile: wait
                # for its transaction, then skip what its cursor covers.
                rows = await self.db.execute_fetchall(
                    "SELECT seq FROM cursor WHERE id = 1 FOR UPDATE"
                )
                done = int(rows[0][0]) if rows else 0
                if up_to <= done:
                    return 0
                events = [event for event in events if event.seq > done]
                added = await self._enqueue_page(events, now) if events else 0
            else:
                added = await self._enqueue_each(events, now)
            await self.db.execute(
                "INSERT INTO cursor (id, seq) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
                (up_to,),
            )
        return added

    async def _enqueue_each(self, events: Iterable[Pending], now: float) -> int:
        """SQLite: the deliveries of each event, one statement per event."""
        added = 0
        for event in events:
            marks = ",".join("?" for _ in event.topics)
            cursor = await self.db.execute(
                "INSERT INTO deliveries (seq, subscription_id, next_at, expires_at)"
                " SELECT DISTINCT CAST(? AS BIGINT), t.subscription_id,"
                " CAST(? AS DOUBLE PRECISION), CAST(? AS DOUBLE PRECISION)"
                " FROM subscription_topics t"
                " JOIN subscriptions s ON s.id = t.subscription_id"
                f" WHERE t.topic IN ({marks})"
                " AND (s.stages IS NULL OR instr(s.stages, ?) > 0)"
                " ON CONFLICT DO NOTHING",
                (event.seq, now, event.expires_at, *event.topics, f",{event.stage},"),
            )
            added += max(cursor.rowcount, 0)
        return added

    async def _enqueue_page(self, events: Sequence[Pending], now: float) -> int:
        """PostgreSQL: the deliveries of a page of events in one statement (the
        events and their (seq, topic) pairs as arrays)."""
        pairs = [(event.seq, topic) for event in events for topic in event.topics]
        cursor = await self.db.execute(
            "INSERT INTO deliveries (seq, subscription_id, next_at, expires_at)"
            " SELECT DISTINCT e.seq, t.subscription_id, CAST(? AS DOUBLE PRECISION), e.expires_at"
            " FROM unnest(CAST(? AS BIGINT[]), CAST(? AS TEXT[]), CAST(? AS DOUBLE PRECISION[]))"
            " AS e(seq, stage, expires_at)"
            " JOIN unnest(CAST(? AS BIGINT[]), CAST(? AS TEXT[])) AS p(seq, topic) ON p.seq = e.seq"
            " JOIN subscription_topics t ON t.topic = p.topic"
            " JOIN subscriptions s ON s.id = t.subscription_id"
            " WHERE s.stages IS NULL OR strpos(s.stages, ',' || e.stage || ',') > 0"
            " ON CONFLICT DO NOTHING",
            (
                now,
                [event.seq for event in events],
                [event.stage for event in events],
                [event.expires_at for event in events],
                [seq for seq, _ in pairs],
                [topic for _, topic in pairs],
            ),
        )
        return max(int(cursor.rowcount), 0)

    # --- sending --------------------------------------------------------------------

    async def due(self, now: float, limit: int) -> list[Due]:
        """Deliveries to attempt now; on PostgreSQL, claimed for this worker
        (for `lease` seconds) so that no other worker attempts them meanwhile."""
        if self.postgres:
            return await self._claim(now, limit)
        rows = await self.rows(
            "SELECT d.seq, d.subscription_id, s.endpoint, s.p256dh, s.auth, d.attempts,"
            f" d.expires_at, d.next_at, {DUE_CHANNEL} FROM deliveries d"
            " JOIN subscriptions s ON s.id = d.subscription_id"
            " WHERE d.state = 0 AND d.next_at <= ? ORDER BY d.next_at, d.seq LIMIT ?",
            (now, limit),
        )
        return [_due(row) for row in rows]

    async def _claim(self, now: float, limit: int) -> list[Due]:
        # One statement, so no transaction to hold: rows another worker is
        # claiming at this moment are skipped (SKIP LOCKED), rows it holds are
        # left until its claim expires.
        rows = await self.rows(
            "UPDATE deliveries d SET claimed_by = ?, claimed_until = ?"
            " FROM subscriptions s WHERE s.id = d.subscription_id"
            " AND (d.seq, d.subscription_id) IN"
            " (SELECT seq, subscription_id FROM deliveries"
            "  WHERE state = 0 AND next_at <= ? AND (claimed_until IS NULL OR claimed_until < ?)"
            "  ORDER BY next_at, seq LIMIT ? FOR UPDATE SKIP LOCKED)"
            " RETURNING d.seq, d.subscription_id, s.endpoint, s.p256dh, s.auth, d.attempts,"
            f" d.expires_at, d.next_at, {DUE_CHANNEL}",
            (self.worker_id, now + self.lease, now, now, limit),
        )
        rows = sorted(rows, key=lambda r: (r[7], r[0]))
        return [_due(row) for row in rows]

    async def next_due_at(self) -> float | None:
        """When a row is next due; on PostgreSQL a row claimed by a worker is
        due again when the claim runs out (if that worker died)."""
        if self.postgres:
            rows = await self.rows(
                "SELECT LEAST("
                " (SELECT MIN(next_at) FROM deliveries WHERE state = 0 AND claimed_until IS NULL),"
                " (SELECT MIN(GREATEST(next_at, claimed_until)) FROM deliveries"
                "  WHERE state = 0 AND claimed_until IS NOT NULL))"
            )
        else:
            rows = await self.rows("SELECT MIN(next_at) FROM deliveries WHERE state = 0")
        return None if rows[0][0] is None else float(rows[0][0])

    async def depth(self) -> int:
        """Deliveries waiting to be sent or retried (read through the due index)."""
        rows = await self.rows("SELECT COUNT(*) FROM deliveries WHERE state = 0")
        return int(rows[0][0])

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        """Store what happened to a batch of attempts, in one transaction."""
        gone = {o.subscription_id for o in outcomes if o.state is State.GONE}
        update = (
            "UPDATE deliveries SET state = ?, attempts = attempts + ?, last_status = ?,"
            " next_at = CASE WHEN CAST(? AS DOUBLE PRECISION) > 0 THEN ? ELSE next_at END"
        )
        rows = [
            (o.state, int(o.attempted), o.status, o.next_at, o.next_at, o.seq, o.subscription_id)
            for o in outcomes
        ]
        async with self.transaction():
            if self.postgres:
                # Only rows this worker still holds: had its claim run out (it
                # stalled past the lease), another worker owns the row now.
                held = (
                    update + ", claimed_by = NULL, claimed_until = NULL"
                    " WHERE seq = ? AND subscription_id = ? AND claimed_by = ?"
                )
                mine = [(*row, self.worker_id) for row in rows]
                await self.db.executemany(held, [row for row in mine if row[0] is not State.GONE])
                # A gone subscription is forgotten only on an outcome stored
                # (few: one statement each, to learn which were).
                gone = set()
                for row in mine:
                    if row[0] is State.GONE:
                        stored = await self.db.execute_fetchall(
                            held + " RETURNING subscription_id", row
                        )
                        gone.update(int(r[0]) for r in stored)
            else:
                await self.db.executemany(update + " WHERE seq = ? AND subscription_id = ?", rows)
            await self._count_sent(outcomes)
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
        """The Web Push deliveries of event `seq`, by state."""
        none = {state.name.lower(): 0 for state in State}
        return (await self.counts_by_kind(seq)).get("push", none)

    async def counts_by_kind(self, seq: int) -> dict[str, dict[str, int]]:
        """The deliveries of event `seq` by kind (push, sms…), then by state. The
        rows of a subscription since deleted count as push (its kind went with it)."""
        rows = await self.rows(
            "SELECT COALESCE(s.kind, 'push'), d.state, COUNT(*) FROM deliveries d"
            " LEFT JOIN subscriptions s ON s.id = d.subscription_id"
            " WHERE d.seq = ? GROUP BY 1, 2",
            (seq,),
        )
        by_kind: dict[str, dict[State, int]] = {}
        for kind, state, n in rows:
            by_kind.setdefault(str(kind), {})[State(state)] = int(n)
        return {
            kind: {state.name.lower(): states.get(state, 0) for state in State}
            for kind, states in by_kind.items()
        }

    # --- channels beside Web Push (push/channels/) ------------------------------

    async def add_channel(
        self, new: NewChannel, topics: list[str], stages: list[str] | None, now: str
    ) -> str:
        """Store a channel; its id. It follows nothing (no row in
        subscription_topics, so no delivery is derived for it) until confirmed."""
        channel_id = secrets.token_hex(8)
        stage_list = _stage_list(stages)
        async with self.transaction():
            inserted = await self.db.execute_fetchall(
                "INSERT INTO subscriptions (endpoint, p256dh, auth, topics, stages, kind,"
                " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
                (
                    CHANNEL_PREFIX + channel_id,
                    b"",
                    b"",
                    orjson.dumps(topics).decode(),
                    stage_list,
                    new.kind,
                    now,
                    now,
                ),
            )
            sub_id = int(next(iter(inserted))[0])
            await self.db.execute(
                "INSERT INTO contacts (subscription_id, kind, address, address_digest, hint,"
                " manage_digest, code_digest, code_expires_at, created_at, confirmed_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    sub_id,
                    new.kind,
                    new.address,
                    new.address_digest,
                    new.hint,
                    new.manage_digest,
                    new.code_digest,
                    new.code_expires_at,
                    now,
                    now if new.code_digest is None else None,  # confirmed by consent
                ),
            )
            if new.code_digest is None:
                await self._follow(sub_id, topics)
        return channel_id

    async def channel(self, channel_id: str) -> Channel | None:
        rows = await self.rows(
            "SELECT s.id, s.kind, s.topics, s.stages, c.hint, c.manage_digest, c.code_digest,"
            " c.code_expires_at, c.confirmed_at FROM subscriptions s"
            " JOIN contacts c ON c.subscription_id = s.id WHERE s.endpoint = ?",
            (CHANNEL_PREFIX + channel_id,),
        )
        if not rows:
            return None
        sub_id, kind, topics, stages, hint, manage, code, expires, confirmed = rows[0]
        return Channel(
            int(sub_id),
            channel_id,
            str(kind),
            orjson.loads(topics),
            None if stages is None else stages.strip(",").split(","),
            str(hint),
            str(manage),
            code,
            None if expires is None else float(expires),
            confirmed is not None,
        )

    async def codes_sent(self, address_digest: str, since: float) -> int:
        """Confirmation codes sent to one address since `since` (epoch seconds)."""
        rows = await self.rows(
            "SELECT COUNT(*) FROM code_sends WHERE address_digest = ? AND sent_at >= ?",
            (address_digest, since),
        )
        return int(rows[0][0])

    async def note_code(self, address_digest: str, at: float) -> None:
        async with self.transaction():
            await self.db.execute(
                "INSERT INTO code_sends (address_digest, sent_at) VALUES (?, ?)",
                (address_digest, at),
            )

    async def channels_of_address(self, address_digest: str) -> int:
        """How many channels (pending or confirmed) one address has."""
        rows = await self.rows(
            "SELECT COUNT(*) FROM contacts WHERE address_digest = ?", (address_digest,)
        )
        return int(rows[0][0])

    async def use_try(self, channel: Channel, most: int) -> bool:
        """Spend one of a pending channel's `most` tries at its code, before
        the code is compared: of guesses made at once, no more than `most` are."""
        async with self.transaction():
            rows = await self.db.execute_fetchall(
                "UPDATE contacts SET tries = tries + 1 WHERE subscription_id = ?"
                " AND tries < ? AND confirmed_at IS NULL RETURNING tries",
                (channel.subscription_id, most),
            )
        return bool(list(rows))

    async def confirm_channel(
        self,
        channel: Channel,
        now: str,
        *,
        address: tuple[bytes, str, str, str] | None = None,
    ) -> bool:
        """The code was right (or WeChat's consent came, with the `address`:
        sealed, digest, hint, manage digest): it follows its topics from now
        on. False if it was confirmed or cancelled meanwhile (nothing changed)."""
        async with self.transaction():
            confirmed = await self.db.execute(
                "UPDATE contacts SET code_digest = NULL, code_expires_at = NULL,"
                " confirmed_at = ? WHERE subscription_id = ? AND confirmed_at IS NULL",
                (now, channel.subscription_id),
            )
            if confirmed.rowcount != 1:  # confirmed meanwhile, or cancelled
                return False
            if address is not None:
                await self.db.execute(
                    "UPDATE contacts SET address = ?, address_digest = ?, hint = ?,"
                    " manage_digest = ? WHERE subscription_id = ?",
                    (*address, channel.subscription_id),
                )
            await self._follow(channel.subscription_id, channel.topics)
        return True

    async def _follow(self, sub_id: int, topics: list[str]) -> None:
        """What a subscription follows, in the index deliveries are derived through."""
        await self.db.executemany(
            "INSERT INTO subscription_topics VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(topic, sub_id) for topic in topics],
        )

    async def delete_channel(self, channel: Channel) -> None:
        """Cancel a channel and erase its address (the contact row goes)."""
        await self._forget(channel.subscription_id)

    async def prune_unconfirmed(self, before: float) -> int:
        """Erase channels whose code (or WeChat authorization) expired before
        `before` (epoch seconds) unconfirmed; how many."""
        rows = await self.rows(
            "SELECT subscription_id FROM contacts"
            " WHERE confirmed_at IS NULL AND code_expires_at < ?",
            (before,),
        )
        for row in rows:
            await self._forget(int(row[0]))
        async with self.transaction():  # the record of codes sent is kept a day
            await self.db.execute(
                "DELETE FROM code_sends WHERE sent_at < ?", (before - CODES_KEPT_SECONDS,)
            )
        return len(rows)

    async def _count_sent(self, outcomes: Sequence[Outcome]) -> None:
        """In record()'s transaction: each channel's messages of the batch, per
        local day, for its daily cap and its kind's usage."""
        per_channel: Counter[tuple[int, str]] = Counter()
        per_kind: Counter[tuple[str, str]] = Counter()
        for outcome in outcomes:
            if outcome.sent is not None:
                kind, day = outcome.sent
                per_channel[(outcome.subscription_id, day)] += 1
                per_kind[(kind, day)] += 1
        await self.db.executemany(
            "UPDATE contacts SET sent_day = ?,"
            " sent_count = CASE WHEN sent_day = ? THEN sent_count + ? ELSE ? END"
            " WHERE subscription_id = ?",
            [(day, day, n, n, sub_id) for (sub_id, day), n in per_channel.items()],
        )
        await self.db.executemany(
            ADD_USAGE, [(kind, day, n) for (kind, day), n in per_kind.items()]
        )

    async def count_code(self, kind: str, day: str) -> None:
        """A confirmation code the provider accepted: it costs like a message."""
        async with self.transaction():
            await self.db.execute(ADD_USAGE, (kind, day, 1))

    async def usage(self, first_day: str, last_day: str) -> dict[str, int]:
        """Messages handed to each kind's provider from `first_day` to `last_day`."""
        rows = await self.rows(
            "SELECT kind, SUM(sent) FROM channel_usage WHERE day >= ? AND day <= ? GROUP BY kind",
            (first_day, last_day),
        )
        return {str(kind): int(sent) for kind, sent in rows}

    async def channel_counts(self) -> dict[str, dict[str, int]]:
        """Channels of each kind, confirmed and pending."""
        rows = await self.rows(
            "SELECT kind, confirmed_at IS NOT NULL, COUNT(*) FROM contacts GROUP BY 1, 2"
        )
        counts: dict[str, dict[str, int]] = {}
        for kind, confirmed, n in rows:
            state = "active" if confirmed else "pending"
            counts.setdefault(str(kind), {"active": 0, "pending": 0})[state] = int(n)
        return counts


def _stage_list(stages: Sequence[str] | None) -> str | None:
    """How `subscriptions.stages` keeps a filter: ",notice,award,"; None: every stage."""
    return None if not stages else "," + ",".join(sorted(set(stages))) + ","


def _due(row: Sequence[Any]) -> Due:
    address = None if row[9] is None else bytes(row[9])
    endpoint, p256dh, auth = row[2], bytes(row[3]), bytes(row[4])
    kind, sent_day, sent_count = row[8], row[10], int(row[11] or 0)
    return Due(
        row[0], row[1], endpoint, p256dh, auth, row[5], row[6], kind, address, sent_day, sent_count
    )
