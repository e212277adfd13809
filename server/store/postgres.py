"""The event log on PostgreSQL, shared by any number of processes.

`seq` is not a serial or identity column. A sequence hands out numbers at
INSERT time, not at commit: with two writers, the one holding 8 may commit
before the one holding 7, and a reader following `WHERE seq > 6` would see
8, move its cursor past 7, and never see 7 when it commits. Here every
append transaction first locks the one row of `log_head` (`SELECT … FOR
UPDATE`), reads the last seq and hash from it, appends after them, writes
the new tip back and commits. The lock is held until the commit is visible
to others (PostgreSQL marks a transaction committed before it releases its
locks), so the next writer, in this process or another, reads a tip that
includes it: seqs are assigned in commit order, with no gap and one chain.

Within a process the batches of group commit (groupcommit.py) share that
transaction: the row lock is taken once per batch, not per event. Across
processes the batches take turns on the lock.

A commit whose answer is lost (the connection drops after COMMIT was sent)
is reported as unavailable although it may have committed: a publisher that
retries with its `Idempotency-Key` gets the event back, never a second one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from server.core import pg, versions
from server.core.clock import Clock
from server.core.events import StoredEvent
from server.store import StoreUnavailable, TopicStages, VerifyReport, idempotency
from server.store.groupcommit import (
    EVENT_COLUMNS,
    CheckedRecord,
    GroupCommitLog,
    Pending,
    hash_of,
)
from server.store.queries import event_of, events_query, newest_query
from server.store.verify import verify_rows, with_missing_tail

log = logging.getLogger("sunbid.store")
SCHEMA = (Path(__file__).parent / "schema.pg.sql").read_text("utf-8")
TIP = "SELECT seq, hash FROM log_head WHERE id = 1 FOR UPDATE"
APPEND = (
    "WITH appended AS (INSERT INTO events (seq, project, category, agency, region, stage, doc)"
    " SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],"
    " $6::text[], $7::bytea[])) UPDATE log_head SET seq = $8, hash = $9 WHERE id = 1"
)


class PostgresStore(GroupCommitLog):
    postgres = True
    # Not MAX(seq): on a table not yet analysed PostgreSQL may aggregate every
    # row of the index rather than read its last one.
    LATEST = "(SELECT seq FROM events WHERE {where} ORDER BY seq DESC LIMIT 1)"

    def __init__(
        self, url: str, clock: Clock, *, schema: str = "public", readonly: bool = False
    ) -> None:
        super().__init__(clock)
        self.url = url
        self.schema = pg.check_schema_name(schema)
        self.readonly = readonly
        self._db: pg.Database | None = None
        self._writer: asyncpg.pool.PoolConnectionProxy | None = None

    # --- life cycle -------------------------------------------------------

    async def open(self) -> None:
        try:
            self._db = await pg.pool_for(self.url, self.schema)
        except pg.UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL is unreachable: {exc}") from exc
        async with self.db.connection() as conn:
            if not self.readonly:
                await pg.create_schema(conn, "events", SCHEMA, versions.EVENTS)
                for record in self._with_log:  # caught up before the first append
                    async with conn.transaction():
                        rows = await conn.execute_fetchall(TIP)
                        await record.open(conn, int(rows[0][0]))
            rows = await conn.execute_fetchall("SELECT seq FROM log_head WHERE id = 1")
        self.head = int(rows[0][0]) if rows else 0
        if not self.readonly:
            self._start_writer()

    async def close(self) -> None:
        await self._stop_writer()
        await self._drop_writer()
        if self._db is not None:
            await pg.release(self._db)
            self._db = None

    @property
    def db(self) -> pg.Database:
        assert self._db is not None, "store is not open"
        return self._db

    # --- for the records kept beside the log --------------------------------

    async def read(self, sql: str, params: Sequence[Any] = (), *, long: bool = False) -> list[Any]:
        return await self.db.rows(sql, params)

    async def read_together(self, queries: Sequence[str]) -> list[list[Any]]:
        """The rows of several queries, all from one snapshot."""
        async with (
            self.db.connection() as conn,
            conn.raw.transaction(isolation="repeatable_read", readonly=True),
        ):
            return [await conn.execute_fetchall(sql) for sql in queries]

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[pg.PgConnection]:
        """A connection holding one snapshot: for reads whose later queries
        depend on the rows of earlier ones."""
        async with (
            self.db.connection() as conn,
            conn.raw.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield conn

    async def write(self, sql: str, params: Sequence[Any]) -> pg.Result:
        """One statement outside the log (tokens): any connection will do."""
        async with self.db.connection() as conn:
            return await conn.execute(sql, params)

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[pg.PgConnection]:
        """A transaction holding the log's tip: no append, here or elsewhere, meanwhile."""
        async with self._write_lock, self.db.connection() as conn, conn.transaction():
            await conn.execute_fetchall(TIP)
            yield conn

    # --- the log ------------------------------------------------------------

    async def _writer_connection(self) -> pg.PgConnection:
        if self._writer is None or self._writer.is_closed():
            self._writer = await self.db.pool.acquire(timeout=pg.CONNECT_SECONDS)
        return pg.PgConnection(self._writer)

    async def _drop_writer(self) -> None:
        if self._writer is not None and self._db is not None:
            writer, self._writer = self._writer, None
            with contextlib.suppress(Exception):
                await self.db.pool.release(writer, timeout=1)

    async def _after_failure(self) -> None:
        await self._drop_writer()

    async def _commit(self, batch: list[Pending]) -> None:
        try:
            conn = await self._writer_connection()
            async with conn.transaction():
                tip = await conn.execute_fetchall(TIP)
                # While another process held the tip, more publishers queued
                # here: they join this transaction rather than wait for the next.
                self._gather(batch)
                head, last_hash = int(tip[0][0]), str(tip[0][1])
                outcomes, created, keys = await self._assign(conn, batch, head, last_hash)
                await self._write_batch(conn, created, keys)
        except Exception as exc:  # nothing of the batch stays: the transaction rolled back
            expected = isinstance(exc, (*pg.UNAVAILABLE, asyncpg.PostgresError))
            log.error(
                "appending a batch of %d events failed: %s",
                len(batch),
                exc,
                exc_info=None if expected else exc,
            )
            await self._drop_writer()
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(StoreUnavailable(str(exc) or type(exc).__name__))
            return
        self.commits += 1
        self._answer(batch, outcomes, created)

    async def _write_batch(
        self, conn: Any, created: list[StoredEvent], keys: list[tuple[str, str, str, int]]
    ) -> None:
        """As groupcommit's, with the events and the new tip in one statement:
        every round trip here is time the tip's lock is held."""
        if not created:
            return
        for record in self._with_log:  # first: an event row references its project's
            await record.write(conn, created)
        columns = list(
            zip(
                *(
                    (e.seq, e.project, e.category, e.agency, e.region, e.stage, e.json)
                    for e in created
                ),
                strict=True,
            )
        )
        await conn.raw.execute(APPEND, *columns, created[-1].seq, hash_of(created[-1]))
        await idempotency.record_keys(conn, keys)

    async def _checked_rows(
        self, conn: Any, project_id: str, parts: list[str], params: list[Any]
    ) -> tuple[list[Any], CheckedRecord | None]:
        """As groupcommit's, in one round trip (it is made holding the tip):
        the record and the events stating its key dates are joined in the query."""
        # The key dates' seqs are the project's own events (its fold wrote them).
        union = " UNION ".join(
            [
                *parts,
                "SELECT (date ->> 'seq')::bigint"
                " FROM record, json_array_elements(record.k) AS date",
            ]
        )
        # `= ANY (ARRAY(…))`: the few seqs are found first, then each row by the
        # primary key (with `IN (…)` the planner may scan every event instead).
        rows = await conn.execute_fetchall(
            "WITH record AS (SELECT key_dates::json AS k, region FROM projects WHERE id = ?)"
            " SELECT seq, stage, d -> 'data', d ->> 'occurred_at',"
            " (SELECT k FROM record), (SELECT region FROM record)"
            " FROM (SELECT seq, stage, convert_from(doc, 'UTF8')::json AS d FROM events"
            f" WHERE seq = ANY (ARRAY({union}))) AS checked ORDER BY seq",
            [project_id, *params],
        )
        if not rows or rows[0][4] is None:  # no record (key_dates is never NULL in one)
            return [row[:4] for row in rows], None
        return [row[:4] for row in rows], CheckedRecord(orjson.loads(rows[0][4]), rows[0][5])

    async def get_event(self, seq: int) -> StoredEvent | None:
        rows = await self.db.rows(f"SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?", (seq,))
        return event_of(rows[0]) if rows else None

    async def events_since(
        self, since: int, topics: TopicStages | None, limit: int
    ) -> list[StoredEvent]:
        sql, params = events_query(since, topics, limit, postgres=True)
        return [event_of(row) for row in await self.db.rows(sql, params)]

    async def newest(self, topics: TopicStages | None, limit: int) -> list[StoredEvent]:
        sql, params = newest_query(topics, limit, postgres=True)
        return [event_of(row) for row in await self.db.rows(sql, params)]

    async def timeline(self, project_id: str) -> list[StoredEvent]:
        rows = await self.db.rows(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE project = ? ORDER BY seq", (project_id,)
        )
        return [event_of(row) for row in rows]

    async def verify(self) -> VerifyReport:
        # One snapshot, read through a cursor: the whole log is never in memory.
        async with (
            self.db.connection() as conn,
            conn.raw.transaction(isolation="repeatable_read", readonly=True),
        ):
            report = await verify_rows(
                aiter(conn.raw.cursor(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq"))
            )
            tip = await conn.execute_fetchall("SELECT seq FROM log_head WHERE id = 1")
            rows = await conn.execute_fetchall("SELECT MAX(seq) FROM cursors")
        return with_missing_tail(report, max(int(tip[0][0]) if tip else 0, rows[0][0] or 0))
