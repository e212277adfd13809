"""The watchdog's own read of the log: only the moments and data times its
rules need, page by page, for catching up at start and for `sunbid verify`.

With an SQLite log this reads the file itself, on a read-only connection of
its own: SQLite extracts the few fields with `json_extract` in its thread
while the interpreter checks the previous page, so a start over a million
events neither parses whole documents nor builds an event object each. The
query is shaped for the watchdog alone, so it lives here and not in the
store's interface.

With a PostgreSQL log the same rows come from the server through the
store's pool: the document (BYTEA) is cast to `jsonb` once per row in a
subquery and the fields taken with `#>`/`->>`, so again only the few fields
travel and nothing is parsed whole in Python. (`jsonb`, not `json`: a
`json` value is parsed again by every operator on it; with the sixteen data
fields the rules read, jsonb pages 80,000 events in 1 s where json took 6.6.)
Any other log is read through the store's `events_since`, each event parsed.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import aiosqlite
import orjson

from server.compliance.watchdog import Alert, Fact, Watchdog
from server.core import pg
from server.core.projection import LogReader

log = logging.getLogger("sunbid.compliance")

PAGE = 10_000


@runtime_checkable
class LogFile(Protocol):
    """A log kept in one SQLite file (the SQLite store)."""

    path: Path


@runtime_checkable
class LogDatabase(Protocol):
    """A log kept in PostgreSQL (the PostgreSQL store): its pool."""

    postgres: bool

    @property
    def db(self) -> pg.Database: ...


class Rows:
    """The events after a seq, in pages, from one log, each with how to make
    its Fact (made while checking, so a bad event is caught with its seq)."""

    def __init__(self, watchdog: Watchdog, log: LogReader) -> None:
        self.watchdog = watchdog
        self.log = log
        self._db: aiosqlite.Connection | None = None
        self._pg: pg.Database | None = None

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[Rows]:
        if isinstance(self.log, LogDatabase) and self.log.postgres:
            self._pg = self.log.db
        elif isinstance(self.log, LogFile):
            uri = f"file:{Path(self.log.path).resolve()}?mode=ro"
            self._db = await aiosqlite.connect(uri, uri=True)
        try:
            yield self
        finally:
            if self._db is not None:
                await self._db.close()
                self._db = None
            self._pg = None

    async def page(self, since: int, until: int | None, limit: int = PAGE) -> list[Any]:
        """Up to `limit` events with since < seq (≤ until): rows or StoredEvents,
        each with its seq first (`seq_of`) and read by `fact_of`."""
        if self._pg is not None:
            return await self._pg_page(self._pg, since, until, limit)
        if self._db is None:
            events = await self.log.events_since(since, None, limit)
            return [e for e in events if until is None or e.seq <= until]
        # Each json_extract parses the whole document again (SQLite 3.40 keeps
        # no parse), so the data fields come in one call with every path: a
        # JSON array, `[null,…]` for most events. Then an amendment's changes
        # (the project facts it states), as JSON text.
        paths = [f"$.data.{key}" for key in self.watchdog.data_keys] or ["$.data"]
        if len(paths) == 1:
            paths *= 2  # one path would answer the bare value, not an array
        extracts = "json_extract(d, ?), json_extract(d, ?), json_extract(d"
        extracts += ", ?" * len(paths) + ")"
        extracts += ", CASE WHEN stage = 'amended' THEN json_extract(d, '$.data.changes') END"
        bound = "" if until is None else " AND seq <= ?"
        sql = (
            f"SELECT seq, project, category, agency, stage, {extracts} FROM"
            " (SELECT seq, project, category, agency, stage, CAST(doc AS TEXT) AS d"
            f"  FROM events WHERE seq > ?{bound} ORDER BY seq LIMIT ?)"
        )
        params: list[Any] = ["$.published_at", "$.occurred_at", *paths, since]
        params += [*([] if until is None else [until]), limit]
        return list(await self._db.execute_fetchall(sql, params))

    async def _pg_page(
        self, database: pg.Database, since: int, until: int | None, limit: int
    ) -> list[Any]:
        """The same columns as the SQLite page, from PostgreSQL. The data values
        as one JSON array, or the watchdog's all-null text when the event
        carries none of them (so that most rows need no parse, as with SQLite)."""
        keys = self.watchdog.data_keys
        values = ", ".join("d #> ?::text[]" for _ in keys)
        params: list[Any] = [["data", key] for key in keys] * 2
        nothing = self.watchdog.no_values
        extracts = (
            f"CASE WHEN num_nonnulls({values or 'NULL'}) = 0 THEN ?"
            f" ELSE json_build_array({values})::text END"
            if keys
            else "?"
        )
        bound = "" if until is None else " AND seq <= ?"
        sql = (
            f"SELECT seq, project, category, agency, stage, d ->> 'published_at',"
            f" d ->> 'occurred_at', {extracts},"
            " CASE WHEN stage = 'amended' THEN (d #> '{data,changes}')::text END FROM"
            " (SELECT seq, project, category, agency, stage, convert_from(doc, 'UTF8')::jsonb AS d"
            f"  FROM events WHERE seq > ?{bound} ORDER BY seq LIMIT ?) AS page"
        )
        params = [*params[: len(keys)], nothing, *params[len(keys) :]] if keys else [nothing]
        params += [since, *([] if until is None else [until]), limit]
        return await database.rows(sql, params)

    @property
    def direct(self) -> bool:
        """Reading the log's rows itself, not through the store (events)."""
        return self._db is not None or self._pg is not None

    @property
    def fact_of(self) -> Callable[[Any], Fact]:
        return self.watchdog.fact_of_row if self.direct else self.watchdog.fact

    def seq_of(self, item: Any) -> int:
        return int(item[0] if self.direct else item.seq)


async def replay(watchdog: Watchdog, log: LogReader, until: int | None = None) -> list[Alert]:
    """Observe every event after `watchdog.head` (up to `until`); return the
    warnings made or changed."""
    changes: list[Alert] = []
    async with Rows(watchdog, log).opened() as rows:
        fact_of, seq_of = rows.fact_of, rows.seq_of
        # Read the next page (in the database's thread) while checking this one.
        following = asyncio.ensure_future(rows.page(watchdog.head, until))
        # Replay only adds long-lived objects: collecting garbage while it
        # runs would rescan them again and again (seconds for a million events).
        gc.disable()
        try:
            while page := await following:
                following = asyncio.ensure_future(rows.page(seq_of(page[-1]), until))
                changes += _observe_page(watchdog, page, fact_of, seq_of)
        finally:
            gc.enable()
            following.cancel()  # a failed replay leaves no read behind
            await asyncio.gather(following, return_exceptions=True)
    return changes


async def chain_at(log: LogReader, seq: int) -> str:
    """The hash of event `seq` ("" for 0 or an event the log does not hold):
    ties a snapshot to the log it was made from."""
    if seq <= 0:
        return ""
    events = await log.events_since(seq - 1, None, 1)
    if not events or events[0].seq != seq:
        return ""
    return str(orjson.loads(events[0].json).get("hash", ""))


def _observe_page(
    watchdog: Watchdog,
    page: list[Any],
    fact_of: Callable[[Any], Fact],
    seq_of: Callable[[Any], int],
) -> list[Alert]:
    """`check` each event of a page: one that fails is logged and skipped, and
    the page goes on after it. (One `try` for the whole page measured no faster
    once the watchdog stopped leaving reference cycles behind; see
    `Watchdog._close`.)"""
    changes: list[Alert] = []
    for item in page:
        changes += check(watchdog, seq_of(item), functools.partial(fact_of, item))
    return changes


def check(watchdog: Watchdog, seq: int, fact: Callable[[], Fact]) -> list[Alert]:
    """`watchdog.observe(fact())`. A bug in one rule must not stop the log, the
    others, or a restart: it is logged, and the event skipped."""
    try:
        return watchdog.observe(fact())
    except Exception:
        log.exception("compliance: checking event %d failed; it is skipped", seq)
        watchdog.head = seq
        return []
