"""The statistics' facts (stats/fold.py), kept beside the log as the projects
table is: written in the transaction that appends the events, with their
cursor (`cursors`, name `stats`), caught up from the log at open, checked
and rebuilt by `sunbid verify` and `sunbid rebuild`.

Two tables: `stats_projects` (one row per project: the facts the projects
table lacks) and `stats_months` (events published per month, category and
agency). Both are created at open, so a log from before them gets them at
its next start and is folded into them then (10–25 s for a million
events, once). The fold's version is kept in `fold_versions`, as the
projects table's is: a table written by an older fold is folded again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite
import orjson

from server.core.events import StoredEvent
from server.core.pg import PgConnection, is_postgres
from server.core.projection import LogReader
from server.stats.fold import (
    NAME,
    MonthKey,
    ProjectFacts,
    StatsFold,
    apply_one,
    matters,
    month_of,
)
from server.store.postgres import PostgresStore
from server.store.sqlite import SQLiteStore

log = logging.getLogger("sunbid.stats")

FOLD_VERSION = 1  # raise when what the fold stores changes: older tables are folded again
COLUMNS = (
    "id",
    "month",
    "noticed_us",
    "award_us",
    "award_seq",
    "award_amount",
    "bidders",
    "bidders_seq",
    "outcome",
    "last_seq",
)
SELECT = f"SELECT {', '.join(COLUMNS)} FROM stats_projects"
UPSERT = (
    f"INSERT INTO stats_projects ({', '.join(COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in COLUMNS)})"
    f" ON CONFLICT(id) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in COLUMNS[1:])}"
)
# A project's first event makes its row; later ones that change nothing leave it.
FIRST = (
    "INSERT INTO stats_projects (id, month, last_seq) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING"
)
COUNT = (
    "INSERT INTO stats_months (month, category, agency, events) VALUES (?, ?, ?, ?)"
    " ON CONFLICT(month, category, agency) DO UPDATE"
    " SET events = stats_months.events + excluded.events"
)
# BIGINT on PostgreSQL (its INTEGER is 32 bits); SQLite's INTEGER holds 64.
TABLES = """
CREATE TABLE IF NOT EXISTS stats_projects (
    id           TEXT PRIMARY KEY,
    month        INTEGER NOT NULL,
    noticed_us   {big},
    award_us     {big},
    award_seq    {big},
    award_amount {real},
    bidders      INTEGER,
    bidders_seq  {big},
    outcome      TEXT,
    last_seq     {big} NOT NULL
);
CREATE INDEX IF NOT EXISTS stats_projects_by_month ON stats_projects(month);
CREATE TABLE IF NOT EXISTS stats_months (
    month    INTEGER NOT NULL,
    category TEXT NOT NULL,
    agency   TEXT NOT NULL,
    events   {big} NOT NULL,
    PRIMARY KEY (month, category, agency)
);
CREATE TABLE IF NOT EXISTS fold_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL);
"""
TYPES = {
    False: {"big": "INTEGER", "real": "REAL"},
    True: {"big": "BIGINT", "real": "DOUBLE PRECISION"},
}
PAGE = 2000


class StatsTable:
    """The facts the statistics read, and the seam that keeps them with the log."""

    name = NAME
    note: str | None = None

    def __init__(self, store: SQLiteStore | PostgresStore) -> None:
        self.store = store
        store.write_with_log(self)

    # --- written with the log (called by the store) ------------------------

    async def open(self, conn: aiosqlite.Connection | PgConnection, head: int) -> None:
        """Create the tables if new; fold the log into them if behind (or
        written by an older fold)."""
        cursor = await _create(conn)
        found = list(
            await conn.execute_fetchall("SELECT version FROM fold_versions WHERE name = ?", (NAME,))
        )
        if not found or found[0][0] != FOLD_VERSION:
            if cursor > 0:
                log.info("stats: folding the log again (fold version %d)", FOLD_VERSION)
                await conn.execute("DELETE FROM stats_projects")
                await conn.execute("DELETE FROM stats_months")
                cursor = 0
            await _mark_version(conn)
        if cursor < head:
            log.info("stats: folding the log from seq %d to %d", cursor, head)
            await self._catch_up(conn, cursor)

    async def write(
        self, conn: aiosqlite.Connection | PgConnection, events: Sequence[StoredEvent]
    ) -> None:
        """Fold a batch in, inside the transaction that appends it. Most
        events change no fact: they cost one counted month and an insert
        that does nothing; the row is read only for those that may."""
        months: Counter[MonthKey] = Counter()
        firsts: list[tuple[str, int, int]] = []
        folded: list[tuple[StoredEvent, dict[str, Any]]] = []
        docs = [orjson.loads(event.json) for event in events]
        # A project with an event that may change its facts has all of its
        # events of the batch folded, in order, as the fold does.
        relevant = {
            e.project for e, d in zip(events, docs, strict=True) if matters(e.stage, d["data"])
        }
        for event, doc in zip(events, docs, strict=True):
            months[(month_of(doc["published_at"]), event.category, event.agency)] += 1
            if event.project in relevant:
                folded.append((event, doc))
            else:
                firsts.append((event.project, month_of(doc["occurred_at"]), event.seq))
        if folded:
            ids = list(dict.fromkeys(event.project for event, _ in folded))
            records = await _load(conn, ids)
            changed = {event.project for event, doc in folded if apply_one(records, event, doc)}
            await _store(conn, (records[i] for i in changed))
        if firsts:
            await conn.executemany(FIRST, firsts)
        await _count(conn, months)
        await conn.execute("UPDATE cursors SET seq = ? WHERE name = ?", (events[-1].seq, NAME))

    # --- DerivedRecord -------------------------------------------------------

    async def check(self, log_reader: LogReader) -> str | None:
        """The first project (by id) or month whose row is not what the log yields."""
        self.note = None
        made = await self.store.read("SELECT seq FROM cursors WHERE name = ?", (NAME,))
        if not made:  # a log no server with statistics has opened yet
            self.note = "not made yet (made at the server's next start, or by `sunbid rebuild`)"
            return None
        cursor, rows, months = await self.store.read_together(
            [
                f"SELECT seq FROM cursors WHERE name = '{NAME}'",
                f"{SELECT} ORDER BY id",
                "SELECT month, category, agency, events FROM stats_months",
            ]
        )
        upto = int(cursor[0][0]) if cursor else 0
        if upto > log_reader.head:
            return f"stats: cursor {upto} is past the log's head {log_reader.head}"
        fold = StatsFold()
        while fold.cursor < upto:
            page = min(PAGE, upto - fold.cursor)
            if not (events := await log_reader.events_since(fold.cursor, None, page)):
                break
            fold.apply(events)
        stored = {r.id: r for r in map(_record, rows)}
        for project_id in sorted(stored.keys() | fold.records.keys()):
            if project_id not in stored:
                return f"stats: {project_id} is missing (the log has its events)"
            if project_id not in fold.records:
                return f"stats: {project_id} has no event in the log"
            have, want = stored[project_id].as_row(), fold.records[project_id].as_row()
            for field, value in have.items():
                if value != want[field]:
                    return f"stats: {project_id} {field} {value!r} != {want[field]!r} (log)"
        counted = {(int(m), c, a): int(n) for m, c, a, n in months}
        for key in sorted(counted.keys() | fold.months.keys()):
            if counted.get(key, 0) != fold.months.get(key, 0):
                month, category, agency = key
                return (
                    f"stats: {month} {category} {agency}: {counted.get(key, 0)} events"
                    f" != {fold.months.get(key, 0)} (log)"
                )
        return None

    async def rebuild(self, log_reader: LogReader) -> None:
        """Recompute both tables from the log, in one transaction."""
        fold = StatsFold()
        async with self.store.exclusive() as conn:
            await _create(conn)
            await _mark_version(conn)
            while events := await log_reader.events_since(fold.cursor, None, PAGE):
                fold.apply(events)
            await conn.execute("DELETE FROM stats_projects")
            await conn.execute("DELETE FROM stats_months")
            await _store(conn, fold.records.values())
            await _count(conn, fold.months)
            await conn.execute("UPDATE cursors SET seq = ? WHERE name = ?", (fold.cursor, NAME))

    async def _catch_up(self, conn: aiosqlite.Connection | PgConnection, cursor: int) -> None:
        """Fold the log after `cursor` into the rows: in memory, then written once."""
        fold = StatsFold()
        fold.records = await _load(conn, None)
        fold.cursor = cursor
        while rows := await conn.execute_fetchall(
            "SELECT seq, project, category, agency, region, stage, doc FROM events"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (fold.cursor, PAGE * 5),
        ):
            fold.apply([_event(row) for row in rows])
        await _store(conn, fold.records.values())
        await _count(conn, fold.months)
        await conn.execute("UPDATE cursors SET seq = ? WHERE name = ?", (fold.cursor, NAME))


async def _create(conn: aiosqlite.Connection | PgConnection) -> int:
    """The tables, made if missing; the cursor (0 for new tables)."""
    for statement in TABLES.format(**TYPES[is_postgres(conn)]).split(";"):
        if statement.strip():
            await conn.execute(statement)
    rows = list(await conn.execute_fetchall("SELECT seq FROM cursors WHERE name = ?", (NAME,)))
    if rows:
        return int(rows[0][0])
    await conn.execute("INSERT INTO cursors (name, seq) VALUES (?, 0)", (NAME,))
    return 0


async def _mark_version(conn: aiosqlite.Connection | PgConnection) -> None:
    await conn.execute(
        "INSERT INTO fold_versions (name, version) VALUES (?, ?)"
        " ON CONFLICT(name) DO UPDATE SET version = excluded.version",
        (NAME, FOLD_VERSION),
    )


async def _load(
    conn: aiosqlite.Connection | PgConnection, ids: Sequence[str] | None
) -> dict[str, ProjectFacts]:
    if ids is None:
        rows = await conn.execute_fetchall(SELECT)
        return {r.id: r for r in map(_record, rows)}
    found: dict[str, ProjectFacts] = {}
    for start in range(0, len(ids), 500):  # SQLite's limit on parameters
        chunk = ids[start : start + 500]
        rows = await conn.execute_fetchall(
            f"{SELECT} WHERE id IN ({','.join('?' for _ in chunk)})", chunk
        )
        found.update((r.id, r) for r in map(_record, rows))
    return found


async def _store(
    conn: aiosqlite.Connection | PgConnection, records: Iterable[ProjectFacts]
) -> None:
    rows = [tuple(getattr(r, c) for c in COLUMNS) for r in records]
    if rows:
        await conn.executemany(UPSERT, rows)


async def _count(conn: aiosqlite.Connection | PgConnection, months: Counter[MonthKey]) -> None:
    """Add the counted events to their months."""
    rows = [(*key, count) for key, count in sorted(months.items())]
    if rows:
        await conn.executemany(COUNT, rows)


def _record(row: Sequence[Any]) -> ProjectFacts:
    values = dict(zip(COLUMNS, row, strict=True))
    if values["award_amount"] is not None:
        values["award_amount"] = float(values["award_amount"])
    return ProjectFacts(**values)


def _event(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(row[0], row[1], row[2], row[3], row[4], row[5], bytes(row[6]))
