"""The `projects` table: the fold of the log (projects/fold.py), kept in SQLite.

It is written with the log: the store hands each batch of new events to
`write` inside the transaction that appends them, so a project, its events
and the table's cursor (the last seq folded in) are committed together, and
a read right after a 201 sees the project as it now is. At open, a table
whose cursor is behind the log (after a migration, or after `rebuild`
emptied it) catches up from the log.

`check` and `rebuild` make it a `DerivedRecord` for `sunbid verify` and
`sunbid rebuild`.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import aiosqlite
import orjson

from server.core.events import StoredEvent
from server.core.numbers import MAX_SEQ, whole_number
from server.core.projection import LogReader
from server.core.topics import CODE
from server.projects.fold import (
    AMENDED,
    NAME,
    PUBLIC_FIELDS,
    REGISTERED,
    ProjectFold,
    ProjectRecord,
    apply_events,
    epoch_us,
)
from server.store.sqlite import SQLiteStore

log = logging.getLogger("sunbid.projects")

COLUMNS = (*PUBLIC_FIELDS, "activity_us")
SELECT = f"SELECT {', '.join(COLUMNS)} FROM projects"
UPSERT = (
    f"INSERT INTO projects ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
    f" ON CONFLICT(id) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in COLUMNS[1:])}"
)
PAGE = 2000
RECORD_STAGES = frozenset({REGISTERED, AMENDED})  # the stages that need the fold in full


class ProjectTable:
    """Projects as the API reads them, and the seam that keeps them with the log."""

    name = NAME

    def __init__(self, store: SQLiteStore, lifecycle: Collection[str]) -> None:
        self.store = store
        self.lifecycle = frozenset(lifecycle)
        store.write_with_log(self)

    # --- written with the log (called by the store) ------------------------

    async def open(self, conn: aiosqlite.Connection, head: int) -> None:
        """Bring a table from an older file up to the log; catch up if behind."""
        columns = {row[1] for row in await conn.execute_fetchall("PRAGMA table_info(projects)")}
        if "must_tender" not in columns:  # a file from before registration was an event
            await conn.execute("ALTER TABLE projects ADD COLUMN must_tender INTEGER")
        cursor = await _cursor(conn)
        if cursor is None:
            # A table from before it had a cursor was kept with the log in
            # every append: it is as far as the log. An empty one starts at 0.
            rows = await conn.execute_fetchall("SELECT COUNT(*) FROM projects")
            cursor = head if next(iter(rows))[0] else 0
            await conn.execute("INSERT INTO cursors (name, seq) VALUES (?, ?)", (NAME, cursor))
        if cursor < head:
            log.info("projects: catching up from seq %d to %d", cursor, head)
            await self._catch_up(conn, cursor)

    async def write(self, conn: aiosqlite.Connection, events: Sequence[StoredEvent]) -> None:
        """Fold a batch into the table, inside the transaction that appends it
        (before the events' rows: each references its project's)."""
        if not any(e.stage in RECORD_STAGES for e in events):
            await self._write_activity(conn, events)
            return
        ids = list(dict.fromkeys(e.project for e in events))
        records = await _load(conn, ids)
        for project_id in ids:
            first = next(e for e in events if e.project == project_id)
            if project_id not in records and first.stage != REGISTERED:
                # Events before the registration (a project registered by the
                # migration): fold what the log holds of it first.
                await _fold_history(conn, records, project_id, self.lifecycle)
        changed = apply_events(records, events, self.lifecycle)
        await _store(conn, (records[i] for i in changed), events[-1].seq)

    async def _write_activity(
        self, conn: aiosqlite.Connection, events: Sequence[StoredEvent]
    ) -> None:
        """The common case, publications of registered projects: what
        `apply_events` does for an event that is not `registered`/`amended`,
        in one statement per event and no read (every append pays for this;
        `check` compares the rows with the fold itself, and the tests too)."""
        rows = []
        for event in events:
            moment = orjson.loads(event.json)["published_at"]
            activity = epoch_us(moment)
            rows.append(
                (
                    event.category,
                    event.agency,
                    event.region,
                    event.stage in self.lifecycle,
                    event.stage,
                    activity,
                    moment,
                    activity,
                    event.seq,
                    event.project,
                )
            )
        # SQLite computes every SET from the row as it was: `updated_at` is
        # compared with the old `activity_us`.
        await conn.executemany(
            "UPDATE projects SET category = ?, agency = ?, region = ?,"
            " stage = CASE WHEN ? THEN ? ELSE stage END,"
            " updated_at = CASE WHEN ? >= activity_us THEN ? ELSE updated_at END,"
            " activity_us = MAX(activity_us, ?), last_seq = MAX(last_seq, ?) WHERE id = ?",
            rows,
        )
        await conn.execute("UPDATE cursors SET seq = ? WHERE name = ?", (events[-1].seq, NAME))

    # --- reads ---------------------------------------------------------------

    async def get(self, project_id: str) -> dict[str, Any] | None:
        rows = await self.store.read(f"{SELECT} WHERE id = ?", (project_id,))
        return _record(rows[0]).public() if rows else None

    async def list(
        self, filters: Mapping[str, str], query: str | None, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest activity first; `cursor` continues a list where a page ended."""
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("category", "agency", "region", "stage"):
            if column in filters:
                clauses.append(f"{column} = ?")
                params.append(filters[column])
        if query:
            like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append("(title LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\')")
            params += [like, like]
        if cursor is not None:
            activity, project_id = _decode_cursor(cursor)
            clauses.append("(activity_us, id) < (?, ?)")
            params += [activity, project_id]
        where = " AND ".join(clauses) or "1"
        rows = await self.store.read(
            f"{SELECT} WHERE {where} ORDER BY activity_us DESC, id DESC LIMIT ?",
            (*params, limit + 1),
            long=query is not None,  # a search reads every project
        )
        records = [_record(row) for row in rows]
        next_cursor = None
        if len(records) > limit:
            last = records[limit - 1]
            next_cursor = _encode_cursor(last.activity_us, last.id)
        return [r.public() for r in records[:limit]], next_cursor

    async def count(self) -> int:
        rows = await self.store.read("SELECT COUNT(*) FROM projects")
        return int(rows[0][0])

    # --- DerivedRecord -------------------------------------------------------

    async def check(self, log_reader: LogReader) -> str | None:
        """The first project whose row is not what the log yields, by id."""
        cursor, rows = await self.store.read_together(
            ["SELECT seq FROM cursors WHERE name = 'projects'", f"{SELECT} ORDER BY id"]
        )
        stored = {r.id: r for r in map(_record, rows)}
        upto = cursor[0][0] if cursor else 0
        if upto > log_reader.head:
            return f"projects: cursor {upto} is past the log's head {log_reader.head}"
        fold = ProjectFold(self.lifecycle)
        while fold.cursor < upto:
            page = min(PAGE, upto - fold.cursor)
            if not (events := await log_reader.events_since(fold.cursor, None, page)):
                break
            fold.apply(events)
        expected = {r.id: r for r in fold.registered()}
        for project_id in sorted(stored.keys() | expected.keys()):
            if project_id not in stored:
                return f"projects: {project_id} is missing (the log registers it)"
            if project_id not in expected:
                return f"projects: {project_id} is not a project the log registers"
            have, want = stored[project_id].as_row(), expected[project_id].as_row()
            for field, value in have.items():
                if value != want[field]:
                    return f"projects: {project_id} {field} {value!r} != {want[field]!r} (log)"
        return None

    async def rebuild(self, log_reader: LogReader) -> None:
        """Recompute every row from the log, in one transaction."""
        fold = ProjectFold(self.lifecycle)
        async with self.store.exclusive() as conn:
            while events := await log_reader.events_since(fold.cursor, None, PAGE):
                fold.apply(events)
            records = fold.registered()
            await conn.execute(
                "DELETE FROM projects WHERE id NOT IN (SELECT DISTINCT project FROM events)"
            )
            await _store(conn, records, fold.cursor)

    async def _catch_up(self, conn: aiosqlite.Connection, cursor: int) -> None:
        records = await _load(conn, None)
        changed: set[str] = set()
        while rows := await conn.execute_fetchall(
            "SELECT seq, project, category, agency, region, stage, doc FROM events"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (cursor, PAGE),
        ):
            events = [_event(row) for row in rows]
            changed |= apply_events(records, events, self.lifecycle)
            cursor = events[-1].seq
        await _store(conn, (records[i] for i in changed), cursor)


async def _cursor(conn: aiosqlite.Connection) -> int | None:
    rows = list(await conn.execute_fetchall("SELECT seq FROM cursors WHERE name = ?", (NAME,)))
    return int(rows[0][0]) if rows else None


async def _load(conn: aiosqlite.Connection, ids: Sequence[str] | None) -> dict[str, ProjectRecord]:
    """Rows of `ids` (every row if None) as records."""
    if ids is None:
        rows = await conn.execute_fetchall(SELECT)
    else:
        rows = await conn.execute_fetchall(
            f"{SELECT} WHERE id IN ({','.join('?' for _ in ids)})", ids
        )
    return {record.id: record for record in map(_record, rows)}


async def _fold_history(
    conn: aiosqlite.Connection,
    records: dict[str, ProjectRecord],
    project_id: str,
    lifecycle: Collection[str],
) -> None:
    rows = await conn.execute_fetchall(
        "SELECT seq, project, category, agency, region, stage, doc FROM events"
        " WHERE project = ? ORDER BY seq",
        (project_id,),
    )
    apply_events(records, [_event(row) for row in rows], lifecycle)


async def _store(conn: aiosqlite.Connection, records: Iterable[ProjectRecord], cursor: int) -> None:
    """Write the registered ones of `records` and move the cursor."""
    rows = [tuple(_column(r, c) for c in COLUMNS) for r in records if r.registered]
    if rows:
        await conn.executemany(UPSERT, rows)
    await conn.execute("UPDATE cursors SET seq = ? WHERE name = ?", (cursor, NAME))


def _column(record: ProjectRecord, name: str) -> Any:
    value = getattr(record, name)
    return int(value) if isinstance(value, bool) else value


def _record(row: Sequence[Any]) -> ProjectRecord:
    values = dict(zip(COLUMNS, row, strict=True))
    if values["must_tender"] is not None:
        values["must_tender"] = bool(values["must_tender"])
    return ProjectRecord(**values)


def _event(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(row[0], row[1], row[2], row[3], row[4], row[5], bytes(row[6]))


def _encode_cursor(activity_us: int, project_id: str) -> str:
    return base64.urlsafe_b64encode(f"{activity_us}:{project_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    """ValueError unless `cursor` is one `_encode_cursor` could have written: a
    forged one must not reach SQLite with a number it cannot bind (≥ 2^63)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid cursor") from None
    text, _, project_id = raw.partition(":")
    activity = whole_number(text, 0, MAX_SEQ)
    if activity is None or not CODE.fullmatch(project_id):
        raise ValueError("invalid cursor")
    return activity, project_id
