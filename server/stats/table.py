"""The statistics' facts (stats/fold.py) and their sums (stats/cells.py), kept
beside the log as the projects table is: written in the transaction that
appends the events, with their cursor (`cursors`, name `stats`), caught up
from the log at open, checked and rebuilt by `sunbid verify` and `sunbid
rebuild`.

Three tables:

- `stats_projects`, one row per project: its facts, and the two values a
  median is taken of that are not facts themselves (`budget_cny`,
  `days_us`), each with two covering indexes in value order (per category,
  and over all) where a median is looked up (stats/figures.py);
- `stats_cells`, the facts summed per month, category, agency and stage:
  every count and sum a figure shows;
- `stats_months`, the events published per month, category and agency.

All are created at open, so a log from before them gets them at its next
start and is folded into them then (seconds for a million events, once:
docs/benchmarks.md). The fold's version is kept in `fold_versions`, as the
projects table's is: tables written by an older fold are dropped, made
anew and folded again (they are derived: nothing is lost).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiosqlite
import orjson

from server.core.events import StoredEvent
from server.core.pg import PgConnection, is_postgres
from server.core.projection import LogReader
from server.stats.cells import FIELDS, CellKey, Cells, cells_of, contribution, same_value
from server.stats.fold import (
    FACTS,
    NAME,
    MonthKey,
    ProjectFacts,
    StatsFold,
    apply_one,
    month_of,
)
from server.store.fold_versions import mark_version, stored_version
from server.store.postgres import PostgresStore
from server.store.sqlite import SQLiteStore

log = logging.getLogger("sunbid.stats")

# Raise when what the tables hold changes: older tables are dropped and folded again.
# 2: the cells, and the projects' category, agency, stage and budget.
FOLD_VERSION = 2
COLUMNS = ("id", *FACTS, "last_seq")
DERIVED = ("budget_cny", "days_us")  # functions of the facts, stored to be indexed
SELECT = f"SELECT {', '.join(COLUMNS)} FROM stats_projects"
UPSERT = (
    f"INSERT INTO stats_projects ({', '.join(COLUMNS + DERIVED)})"
    f" VALUES ({', '.join('?' for _ in COLUMNS + DERIVED)})"
    " ON CONFLICT(id) DO UPDATE SET"
    f" {', '.join(f'{c}=excluded.{c}' for c in (COLUMNS + DERIVED)[1:])}"
)
CELL_KEY = ("month", "category", "agency", "stage")
CELL_SELECT = f"SELECT {', '.join(CELL_KEY + FIELDS)} FROM stats_cells"
# A change to a cell is added to it: rows of concurrent batches never race
# (one writer), and a delta needs no read of the cell.
ADD_TO_CELL = (
    f"INSERT INTO stats_cells ({', '.join(CELL_KEY + FIELDS)})"
    f" VALUES ({', '.join('?' for _ in CELL_KEY + FIELDS)})"
    f" ON CONFLICT({', '.join(CELL_KEY)}) DO UPDATE SET"
    f" {', '.join(f'{f} = stats_cells.{f} + excluded.{f}' for f in FIELDS)}"
)
# A cell no project counts in any more (its last one moved on to a later stage).
DROP_EMPTY = (
    "DELETE FROM stats_cells WHERE month = ? AND category = ? AND agency = ? AND stage = ?"
    " AND projects = 0"
)
COUNT = (
    "INSERT INTO stats_months (month, category, agency, events) VALUES (?, ?, ?, ?)"
    " ON CONFLICT(month, category, agency) DO UPDATE"
    " SET events = stats_months.events + excluded.events"
)
# The values medians are taken of: stats/figures.py looks a median up by its
# rank in one of these indexes (per category, or over all), reading the
# filter's columns from the index itself.
MEDIAN_OF = ("budget_cny", "award_amount", "days_us")
INDEXES = "".join(
    f"CREATE INDEX IF NOT EXISTS stats_{value}_by_category ON stats_projects"
    f"(category, {value}, month, agency) WHERE {value} IS NOT NULL;\n"
    f"CREATE INDEX IF NOT EXISTS stats_{value}_all ON stats_projects"
    f"({value}, month, agency) WHERE {value} IS NOT NULL;\n"
    for value in MEDIAN_OF
)
# BIGINT on PostgreSQL (its INTEGER is 32 bits); SQLite's INTEGER holds 64.
TABLES = (
    """
CREATE TABLE IF NOT EXISTS stats_projects (
    id           TEXT PRIMARY KEY,
    month        INTEGER NOT NULL,
    category     TEXT NOT NULL,
    agency       TEXT NOT NULL,
    stage        TEXT,
    budget       {real},
    currency     TEXT,
    noticed_us   {big},
    award_us     {big},
    award_seq    {big},
    award_amount {real},
    bidders      INTEGER,
    bidders_seq  {big},
    outcome      TEXT,
    last_seq     {big} NOT NULL,
    budget_cny   {real},
    days_us      {big}
);
CREATE TABLE IF NOT EXISTS stats_cells (
    month    INTEGER NOT NULL,
    category TEXT NOT NULL,
    agency   TEXT NOT NULL,
    stage    TEXT NOT NULL,
"""
    + "".join(f"    {f} {{real}} NOT NULL,\n" for f in FIELDS)
    + """    PRIMARY KEY (month, category, agency, stage)
);
CREATE TABLE IF NOT EXISTS stats_months (
    month    INTEGER NOT NULL,
    category TEXT NOT NULL,
    agency   TEXT NOT NULL,
    events   {big} NOT NULL,
    PRIMARY KEY (month, category, agency)
);
"""
    + INDEXES
)
OWN_TABLES = ("stats_projects", "stats_cells", "stats_months")
TYPES = {
    False: {"big": "INTEGER", "real": "REAL"},
    True: {"big": "BIGINT", "real": "DOUBLE PRECISION"},
}
PAGE = 2000


class StatsTable:
    """The facts and sums the statistics read, and the seam that keeps them with the log."""

    name = NAME
    note: str | None = None

    def __init__(self, store: SQLiteStore | PostgresStore, lifecycle: frozenset[str]) -> None:
        self.store = store
        self.lifecycle = lifecycle
        store.write_with_log(self)

    # --- written with the log (called by the store) ------------------------

    async def open(self, conn: aiosqlite.Connection | PgConnection, head: int) -> None:
        """Create the tables if new (anew if an older fold wrote them); fold
        the log into them if behind."""
        found = await stored_version(conn, NAME)
        if found != FOLD_VERSION:
            if found is not None:
                log.info("stats: folding the log again (fold version %d)", FOLD_VERSION)
            await _drop(conn)
            await mark_version(conn, NAME, FOLD_VERSION)
        cursor = await _create(conn)
        if cursor < head:
            log.info("stats: folding the log from seq %d to %d", cursor, head)
            await self._catch_up(conn, cursor)

    async def write(
        self, conn: aiosqlite.Connection | PgConnection, events: Sequence[StoredEvent]
    ) -> None:
        """Fold a batch in, inside the transaction that appends it: the
        batch's projects are read (one query), folded, and those whose facts
        changed written, their old contributions to the cells taken out and
        the new ones put in."""
        months: dict[MonthKey, int] = {}
        docs = [orjson.loads(event.json) for event in events]
        records = await _load(conn, list(dict.fromkeys(event.project for event in events)))
        before = {i: contribution(r) for i, r in records.items()}
        rows = {i: _row(r) for i, r in records.items()}
        changed: set[str] = set()
        for event, doc in zip(events, docs, strict=True):
            key = (month_of(doc["published_at"]), event.category, event.agency)
            months[key] = months.get(key, 0) + 1
            if apply_one(records, event, doc, self.lifecycle):
                changed.add(event.project)
        if changed:
            await _store(conn, [records[i] for i in changed if i not in rows])
            await _update(conn, [(rows[i], _row(records[i])) for i in changed if i in rows])
            cells = Cells()
            for project_id in changed:
                cells.move(before.get(project_id), contribution(records[project_id]))
            await _add_cells(conn, cells.changed())
        await _count(conn, months)
        await conn.execute("UPDATE cursors SET seq = ? WHERE name = ?", (events[-1].seq, NAME))

    # --- DerivedRecord -------------------------------------------------------

    async def check(self, log_reader: LogReader) -> str | None:
        """The first project (by id), cell or month whose row is not what the log yields."""
        self.note = None
        made = await self.store.read("SELECT seq FROM cursors WHERE name = ?", (NAME,))
        if not made:  # a log no server with statistics has opened yet
            self.note = "not made yet (made at the server's next start, or by `sunbid rebuild`)"
            return None
        cursor, rows, cells, months = await self.store.read_together(
            [
                f"SELECT seq FROM cursors WHERE name = '{NAME}'",
                f"SELECT {', '.join(COLUMNS + DERIVED)} FROM stats_projects ORDER BY id",
                CELL_SELECT,
                "SELECT month, category, agency, events FROM stats_months",
            ]
        )
        upto = int(cursor[0][0]) if cursor else 0
        if upto > log_reader.head:
            return f"stats: cursor {upto} is past the log's head {log_reader.head}"
        fold = StatsFold(self.lifecycle)
        while fold.cursor < upto:
            page = min(PAGE, upto - fold.cursor)
            if not (events := await log_reader.events_since(fold.cursor, None, page)):
                break
            fold.apply(events)
        return (
            _check_projects(rows, fold.records)
            or _check_cells(cells, fold.records.values())
            or _check_months(months, fold.months)
        )

    async def rebuild(self, log_reader: LogReader) -> None:
        """Recompute the tables from the log, in one transaction."""
        fold = StatsFold(self.lifecycle)
        async with self.store.exclusive() as conn:
            await _drop(conn)
            await mark_version(conn, NAME, FOLD_VERSION)
            await _create(conn)
            while events := await log_reader.events_since(fold.cursor, None, PAGE):
                fold.apply(events)
            await _write_all(conn, fold)

    async def _catch_up(self, conn: aiosqlite.Connection | PgConnection, cursor: int) -> None:
        """Fold the log after `cursor` into the rows: in memory, then written once."""
        fold = StatsFold(self.lifecycle)
        fold.records = await _load(conn, None)
        fold.cursor = cursor
        while rows := await conn.execute_fetchall(
            "SELECT seq, project, category, agency, region, stage, doc FROM events"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (fold.cursor, PAGE * 5),
        ):
            fold.apply([_event(row) for row in rows])
        await conn.execute("DELETE FROM stats_cells")  # made again whole from every project
        await _write_all(conn, fold)


async def _drop(conn: aiosqlite.Connection | PgConnection) -> None:
    for table in OWN_TABLES:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
    await conn.execute("DELETE FROM cursors WHERE name = ?", (NAME,))


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


async def _write_all(conn: aiosqlite.Connection | PgConnection, fold: StatsFold) -> None:
    """Every row of the fold (the months' counts added to the stored ones)."""
    await _store(conn, fold.records.values())
    await _add_cells(conn, cells_of(fold.records.values()))
    await _count(conn, fold.months)
    await conn.execute("UPDATE cursors SET seq = ? WHERE name = ?", (fold.cursor, NAME))


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


def _row(record: ProjectFacts) -> tuple[Any, ...]:
    return (*(getattr(record, c) for c in COLUMNS), record.budget_cny, record.days_us)


async def _store(
    conn: aiosqlite.Connection | PgConnection, records: Iterable[ProjectFacts]
) -> None:
    rows = [_row(r) for r in records]
    if rows:
        await conn.executemany(UPSERT, rows)


async def _update(
    conn: aiosqlite.Connection | PgConnection,
    changes: Sequence[tuple[tuple[Any, ...], tuple[Any, ...]]],
) -> None:
    """Rows changed, each written as an UPDATE of its changed columns only:
    most publications change the stage alone, and an UPDATE that sets no
    indexed column leaves the six indexes of the medians as they are."""
    by_columns: dict[tuple[int, ...], list[tuple[Any, ...]]] = {}
    for old, new in changes:
        columns = tuple(i for i in range(1, len(new)) if new[i] != old[i])
        by_columns.setdefault(columns, []).append((*(new[i] for i in columns), new[0]))
    names = COLUMNS + DERIVED
    for columns, params in by_columns.items():
        assignments = ", ".join(f"{names[i]} = ?" for i in columns)
        await conn.executemany(f"UPDATE stats_projects SET {assignments} WHERE id = ?", params)


async def _add_cells(
    conn: aiosqlite.Connection | PgConnection, cells: Mapping[CellKey, Sequence[float]]
) -> None:
    rows = [(*key, *cell) for key, cell in sorted(cells.items())]
    if rows:
        await conn.executemany(ADD_TO_CELL, rows)
        if left := [key for key, cell in cells.items() if cell[0] < 0]:  # a project left them
            await conn.executemany(DROP_EMPTY, left)


async def _count(conn: aiosqlite.Connection | PgConnection, months: Mapping[MonthKey, int]) -> None:
    """Add the counted events to their months."""
    rows = [(*key, count) for key, count in sorted(months.items())]
    if rows:
        await conn.executemany(COUNT, rows)


def _check_projects(
    rows: Sequence[Sequence[Any]], folded: Mapping[str, ProjectFacts]
) -> str | None:
    stored = {str(row[0]): row for row in rows}
    for project_id in sorted(stored.keys() | folded.keys()):
        if project_id not in stored:
            return f"stats: {project_id} is missing (the log has its events)"
        if project_id not in folded:
            return f"stats: {project_id} has no event in the log"
        have, want = _record(stored[project_id][: len(COLUMNS)]), folded[project_id]
        for field, value in have.as_row().items():
            if value != getattr(want, field):
                return f"stats: {project_id} {field} {value!r} != {getattr(want, field)!r} (log)"
        derived = dict(zip(DERIVED, stored[project_id][len(COLUMNS) :], strict=True))
        for field, value in derived.items():
            if value != getattr(want, field):
                return f"stats: {project_id} {field} {value!r} != {getattr(want, field)!r} (log)"
    return None


def _check_cells(rows: Sequence[Sequence[Any]], records: Iterable[ProjectFacts]) -> str | None:
    stored = {(int(r[0]), str(r[1]), str(r[2]), str(r[3])): [float(v) for v in r[4:]] for r in rows}
    wanted = cells_of(records)
    for key in sorted(stored.keys() | wanted.keys()):
        have, want = stored.get(key), wanted.get(key)
        if have is None or want is None:
            return f"stats: cell {key} is {have!r}, the log yields {want!r}"
        for field, a, b in zip(FIELDS, have, want, strict=True):
            if not same_value(a, b):
                return f"stats: cell {key} {field} {a!r} != {b!r} (log)"
    return None


def _check_months(rows: Sequence[Sequence[Any]], folded: Mapping[MonthKey, int]) -> str | None:
    counted = {(int(m), c, a): int(n) for m, c, a, n in rows}
    for key in sorted(counted.keys() | folded.keys()):
        if counted.get(key, 0) != folded.get(key, 0):
            month, category, agency = key
            return (
                f"stats: {month} {category} {agency}: {counted.get(key, 0)} events"
                f" != {folded.get(key, 0)} (log)"
            )
    return None


def _record(row: Sequence[Any]) -> ProjectFacts:
    values = dict(zip(COLUMNS, row, strict=True))
    for name in ("award_amount", "budget"):
        if values[name] is not None:
            values[name] = float(values[name])
    return ProjectFacts(**values)


def _event(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(row[0], row[1], row[2], row[3], row[4], row[5], bytes(row[6]))
