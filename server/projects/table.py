"""The `projects` table: the fold of the log (projects/fold.py), kept beside the log
(in its SQLite file, or its PostgreSQL schema).

It is written with the log: the store hands each batch of new events to
`write` inside the transaction that appends them, so a project, its events
and the table's cursor (the last seq folded in) are committed together, and
a read right after a 201 sees the project as it now is. At open, a table
whose cursor is behind the log (after a migration, or after `rebuild`
emptied it) catches up from the log.

`check` and `rebuild` make it a `DerivedRecord` for `sunbid verify` and
`sunbid rebuild`.

The table carries the version of the fold that wrote it (`FOLD_VERSION`, in
the `fold_versions` table): a table written by an older fold
gets the columns it lacks and is folded again from the whole log at open.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiosqlite
import orjson

from server.core.events import StoredEvent
from server.core.numbers import MAX_SEQ, whole_number
from server.core.pg import PgConnection, is_postgres
from server.core.projection import LogReader
from server.core.topics import CODE
from server.projects.fold import (
    AMENDED,
    NAME,
    PUBLIC_FIELDS,
    REGISTERED,
    FoldRules,
    ProjectFold,
    ProjectRecord,
    apply_events,
    epoch_us,
)
from server.store.fold_versions import mark_version, stored_version
from server.store.postgres import PostgresStore
from server.store.sqlite import SQLiteStore

log = logging.getLogger("sunbid.projects")

COLUMNS = (*PUBLIC_FIELDS, "activity_us", "closes_us", "concluded")
SELECT = f"SELECT {', '.join(COLUMNS)} FROM projects"
# A word of `q` is in the project's id or title, or in the title or body of
# one of its events, as the log holds them (LIKE ignores ASCII case).
WORD = {
    False: "(title LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM events"
    " WHERE events.project = projects.id AND (json_extract(CAST(doc AS TEXT), '$.title')"
    " || char(10) || json_extract(CAST(doc AS TEXT), '$.body')) LIKE ? ESCAPE '\\'))",
    # PostgreSQL: ILIKE, since its LIKE minds case; the document is BYTEA there.
    True: "(title ILIKE ? ESCAPE '\\' OR id ILIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM events"
    " WHERE events.project = projects.id AND ((convert_from(doc, 'UTF8')::json ->> 'title')"
    " || chr(10) || (convert_from(doc, 'UTF8')::json ->> 'body')) ILIKE ? ESCAPE '\\'))",
}
FOLD_VERSION = 2  # raise when what the fold stores changes: older tables are refolded
# Columns added since the first table, and their definitions (schema.sql has them all).
ADDED_COLUMNS = {
    "must_tender": "INTEGER",
    "key_dates": "TEXT NOT NULL DEFAULT '[]'",
    "closes_at": "TEXT",
    "closes_us": "INTEGER",
    "concluded": "INTEGER NOT NULL DEFAULT 0",
}
SIGNED = re.compile(r"-?[0-9]{1,19}")
CLOSING_WINDOW_US = 72 * 3600 * 1_000_000  # `status=closing`: open and closing within 72 hours
UPSERT = (
    f"INSERT INTO projects ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
    f" ON CONFLICT(id) DO UPDATE SET {', '.join(f'{c}=excluded.{c}' for c in COLUMNS[1:])}"
)
PAGE = 2000
ACTIVITY = {
    postgres: "UPDATE projects SET category = ?, agency = ?, region = ?,"
    " stage = CASE WHEN ? THEN ? ELSE stage END,"
    " updated_at = CASE WHEN ? >= activity_us THEN ? ELSE updated_at END,"
    f" activity_us = {greatest}(activity_us, ?), last_seq = {greatest}(last_seq, ?) WHERE id = ?"
    for postgres, greatest in ((False, "MAX"), (True, "GREATEST"))
}
RECORD_STAGES = frozenset({REGISTERED, AMENDED})  # the stages that need the fold in full
IDENTITIES_KEPT = 10_000  # projects whose identity() is kept in memory


class ProjectTable:
    """Projects as the API reads them, and the seam that keeps them with the log."""

    name = NAME
    note: str | None = None

    def __init__(self, store: SQLiteStore | PostgresStore, rules: FoldRules) -> None:
        self.store = store
        self.rules = rules
        self._identities: dict[str, dict[str, str]] = {}  # see identity()
        store.write_with_log(self)

    # --- written with the log (called by the store) ------------------------

    async def open(self, conn: aiosqlite.Connection, head: int) -> None:
        """Bring a table from an older file up to the log; catch up if behind."""
        if not is_postgres(conn):  # PostgreSQL tables were created with every column
            columns = {row[1] for row in await conn.execute_fetchall("PRAGMA table_info(projects)")}
            for column, definition in ADDED_COLUMNS.items():
                if column not in columns:  # a file from before the column
                    await conn.execute(f"ALTER TABLE projects ADD COLUMN {column} {definition}")
        await conn.execute(
            "CREATE INDEX IF NOT EXISTS projects_by_closing ON projects(closes_us, id)"
        )
        cursor = await _cursor(conn)
        if cursor is None:
            # A table from before it had a cursor was kept with the log in
            # every append: it is as far as the log. An empty one starts at 0.
            rows = await conn.execute_fetchall("SELECT COUNT(*) FROM projects")
            cursor = head if next(iter(rows))[0] else 0
            await conn.execute("INSERT INTO cursors (name, seq) VALUES (?, ?)", (NAME, cursor))
        if await stored_version(conn, NAME) != FOLD_VERSION:
            if cursor > 0:  # rows an older fold wrote: fold the whole log again
                log.info("projects: folding the log again (fold version %d)", FOLD_VERSION)
                await self._catch_up(conn, 0, fresh=True)
                cursor = head
            await mark_version(conn, NAME, FOLD_VERSION)
        if cursor < head:
            log.info("projects: catching up from seq %d to %d", cursor, head)
            await self._catch_up(conn, cursor)

    async def write(self, conn: aiosqlite.Connection, events: Sequence[StoredEvent]) -> None:
        """Fold a batch into the table, inside the transaction that appends it
        (before the events' rows: each references its project's)."""
        docs = [orjson.loads(e.json) for e in events]
        if not any(self._needs_fold(e, doc) for e, doc in zip(events, docs, strict=True)):
            await self._write_activity(conn, events, docs)
            return
        ids = list(dict.fromkeys(e.project for e in events))
        records = await _load(conn, ids)
        for project_id in ids:
            first = next(e for e in events if e.project == project_id)
            if project_id not in records and first.stage != REGISTERED:
                # Events before the registration (a project registered by the
                # migration): fold what the log holds of it first.
                await _fold_history(conn, records, project_id, self.rules)
        changed = apply_events(records, events, self.rules)
        await _store(conn, (records[i] for i in changed), events[-1].seq)

    def _needs_fold(self, event: StoredEvent, doc: dict[str, Any]) -> bool:
        """Whether the event changes more than activity and stage."""
        return (
            event.stage in RECORD_STAGES
            or event.stage in self.rules.concluding
            or bool(self.rules.dates_in(event.stage, doc["data"]))
        )

    async def _write_activity(
        self,
        conn: aiosqlite.Connection,
        events: Sequence[StoredEvent],
        docs: Sequence[dict[str, Any]],
    ) -> None:
        """The common case, publications of registered projects: what
        `apply_events` does for an event that is not `registered`/`amended`,
        concludes nothing and carries no key date, in one statement per event
        and no read (every append pays for this; `check` compares the rows
        with the fold itself, and the tests too)."""
        rows = []
        for event, doc in zip(events, docs, strict=True):
            moment = doc["published_at"]
            activity = epoch_us(moment)
            rows.append(
                (
                    event.category,
                    event.agency,
                    event.region,
                    event.stage in self.rules.lifecycle,
                    event.stage,
                    activity,
                    moment,
                    activity,
                    event.seq,
                    event.project,
                )
            )
        # Every SET is computed from the row as it was: `updated_at` is
        # compared with the old `activity_us`.
        await conn.executemany(ACTIVITY[is_postgres(conn)], rows)
        await conn.execute("UPDATE cursors SET seq = ? WHERE name = ?", (events[-1].seq, NAME))

    # --- reads ---------------------------------------------------------------

    async def get(self, project_id: str) -> dict[str, Any] | None:
        rows = await self.store.read(f"{SELECT} WHERE id = ?", (project_id,))
        return _served(_record(rows[0]), self.store.clock.now_us()) if rows else None

    async def identity(self, project_id: str) -> dict[str, str] | None:
        """A registered project's id, category and agency: what a publication
        to it is checked against before the store decides it. No amendment
        changes them (PROJECT_FIELDS), so they are kept once read: publishing
        reads no row per request. The store reads the rest (the region the
        event is routed by, the earlier events) in its own transaction."""
        known = self._identities.get(project_id)
        if known is not None:
            return known
        rows = await self.store.read(
            "SELECT id, category, agency FROM projects WHERE id = ?", (project_id,)
        )
        if not rows:
            return None
        if len(self._identities) >= IDENTITIES_KEPT:  # the oldest read goes first
            del self._identities[next(iter(self._identities))]
        known = self._identities[project_id] = {
            "id": rows[0][0],
            "category": rows[0][1],
            "agency": rows[0][2],
        }
        return known

    async def list(
        self,
        filters: Mapping[str, str],
        words: Sequence[str] | None,
        cursor: str | None,
        limit: int,
        *,
        status: str | None = None,
        sort: str = "activity",
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of projects; `cursor` continues a list where a page ended.

        `sort`: "activity" (newest activity first) or "closes" (soonest
        closing first, projects without closes_at last, by id). `status`:
        "open" (closes later than now, not concluded) or "closing" (open
        and closing within 72 hours). `words`: each must be in the id, the
        title or some event's title or body (case-insensitive).
        """
        now_us = self.store.clock.now_us()
        words = words or ()
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("category", "agency", "region", "stage"):
            if column in filters:
                clauses.append(f"{column} = ?")
                params.append(filters[column])
        for word in words:
            like = "%" + _escape_like(word.lower()) + "%"
            clauses.append(WORD[self.store.postgres])
            params += [like, like, like]
        if status is not None:
            clauses.append("concluded = 0 AND closes_us > ?")
            params.append(now_us)
            if status == "closing":
                clauses.append("closes_us <= ?")
                params.append(now_us + CLOSING_WINDOW_US)
        if sort == "closes":
            order = "closes_us IS NULL, closes_us, id"
            if cursor is not None:
                closes, project_id = _decode_closes_cursor(cursor)
                if closes is None:
                    clauses.append("(closes_us IS NULL AND id > ?)")
                    params.append(project_id)
                else:
                    clauses.append("(closes_us IS NULL OR (closes_us, id) > (?, ?))")
                    params += [closes, project_id]
        else:
            order = "activity_us DESC, id DESC"
            if cursor is not None:
                activity, project_id = _decode_cursor(cursor)
                clauses.append("(activity_us, id) < (?, ?)")
                params += [activity, project_id]
        where = " AND ".join(clauses) or "TRUE"
        rows = await self.store.read(
            f"{SELECT} WHERE {where} ORDER BY {order} LIMIT ?",
            (*params, limit + 1),
            long=bool(words) or sort != "activity",  # a search reads every project
        )
        records = [_record(row) for row in rows]
        next_cursor = None
        if len(records) > limit:
            last = records[limit - 1]
            if sort == "closes":
                next_cursor = _encode_closes_cursor(last.closes_us, last.id)
            else:
                next_cursor = _encode_cursor(last.activity_us, last.id)
        return [_served(r, now_us) for r in records[:limit]], next_cursor

    async def titles(self, ids: Iterable[str]) -> dict[str, str]:
        """The titles of the projects among `ids` (unknown ones are left out)."""
        wanted = sorted(set(ids))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 500):  # SQLite's limit on parameters
            chunk = wanted[start : start + 500]
            rows = await self.store.read(
                f"SELECT id, title FROM projects WHERE id IN ({','.join('?' for _ in chunk)})",
                tuple(chunk),
            )
            found.update((row[0], row[1]) for row in rows)
        return found

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
        fold = ProjectFold(self.rules)
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
        fold = ProjectFold(self.rules)
        async with self.store.exclusive() as conn:
            while events := await log_reader.events_since(fold.cursor, None, PAGE):
                fold.apply(events)
            records = fold.registered()
            await conn.execute(
                "DELETE FROM projects WHERE id NOT IN (SELECT DISTINCT project FROM events)"
            )
            await _store(conn, records, fold.cursor)

    async def _catch_up(
        self, conn: aiosqlite.Connection, cursor: int, *, fresh: bool = False
    ) -> None:
        """Fold the log after `cursor` into the rows (into none if `fresh`:
        every row is then written anew from the log)."""
        records = {} if fresh else await _load(conn, None)
        changed: set[str] = set()
        while rows := await conn.execute_fetchall(
            "SELECT seq, project, category, agency, region, stage, doc FROM events"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (cursor, PAGE),
        ):
            events = [_event(row) for row in rows]
            changed |= apply_events(records, events, self.rules)
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
    rules: FoldRules,
) -> None:
    rows = await conn.execute_fetchall(
        "SELECT seq, project, category, agency, region, stage, doc FROM events"
        " WHERE project = ? ORDER BY seq",
        (project_id,),
    )
    apply_events(records, [_event(row) for row in rows], rules)


async def _store(
    conn: aiosqlite.Connection | PgConnection, records: Iterable[ProjectRecord], cursor: int
) -> None:
    """Write the registered ones of `records` and move the cursor."""
    rows = [tuple(_column(r, c) for c in COLUMNS) for r in records if r.registered]
    if rows:
        await conn.executemany(UPSERT, rows)
    await conn.execute("UPDATE cursors SET seq = ? WHERE name = ?", (cursor, NAME))


def _column(record: ProjectRecord, name: str) -> Any:
    value = getattr(record, name)
    if name == "key_dates":
        return orjson.dumps(value).decode()
    return int(value) if isinstance(value, bool) else value


def _record(row: Sequence[Any]) -> ProjectRecord:
    values = dict(zip(COLUMNS, row, strict=True))
    if values["must_tender"] is not None:
        values["must_tender"] = bool(values["must_tender"])
    values["concluded"] = bool(values["concluded"])
    values["key_dates"] = orjson.loads(values["key_dates"])
    return ProjectRecord(**values)


def _event(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(row[0], row[1], row[2], row[3], row[4], row[5], bytes(row[6]))


def _served(record: ProjectRecord, now_us: int) -> dict[str, Any]:
    """A project as the API serves it: its record, and whether it is open now."""
    return {**record.public(), "open": record.is_open(now_us)}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _encode_closes_cursor(closes_us: int | None, project_id: str) -> str:
    """A `sort=closes` cursor: `c`, then the closing moment (`-` for none)."""
    closes = "-" if closes_us is None else str(closes_us)
    return base64.urlsafe_b64encode(f"c{closes}:{project_id}".encode()).decode().rstrip("=")


def _decode_closes_cursor(cursor: str) -> tuple[int | None, str]:
    """ValueError unless `_encode_closes_cursor` could have written `cursor`
    (an activity cursor is not one: the two orders do not mix)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid cursor") from None
    text, _, project_id = raw.partition(":")
    if not text.startswith("c") or not CODE.fullmatch(project_id):
        raise ValueError("invalid cursor")
    if text == "c-":
        return None, project_id
    if not SIGNED.fullmatch(text[1:]) or not -MAX_SEQ <= int(text[1:]) <= MAX_SEQ:
        raise ValueError("invalid cursor")
    return int(text[1:]), project_id


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
