"""The public's cases on disk (`respond.db` in the data directory, or the
log's PostgreSQL schema): enquiries and disclosure requests, their history,
and the warnings their due times raised.

Cases are private records beside the log, like tokens: the log holds only
what was published (an `enquiry_answer` event). What a person wrote and how
to reach them — the question as asked, a request's subject and description,
the contact, a decline's reason, a reply, a rating's comment — is one JSON
document sealed with AES-GCM (the data directory's `contacts.key`, as the
channels' addresses), in `private`. It is erased (set to NULL, the file
running with `secure_delete` and its WAL truncated after) a configurable
time after the case closes. Everything else — agency, project, times,
status, outcome, score — is what the public scorecard counts, and stays.

Times are epoch microseconds: compared and ordered as numbers on both engines.

`case_warnings` are derived from the cases (server/respond/deadlines.py): a
case's `alert_us` is the next moment one of its warnings becomes true; the
timer (service.py) fires those due, in a transaction that first moves
`alert_us` on only if it is still the value it read, so each warning is
stored once whichever process's timer gets there. Every write to a warning
(made, resolved) takes the next number `n`, in commit order (on PostgreSQL
under a transaction-scoped advisory lock), and every process tails them by
`n` to hand them to its own supervisors.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from server.core import versions
from server.core.sidefile import SideFile
from server.respond.deadlines import CaseAlert, from_us

CASES_FILE = "respond.db"
_COLUMNS = """
    id            TEXT PRIMARY KEY,   -- q… (enquiry) or r… (disclosure request): random
    kind          TEXT NOT NULL,      -- enquiry | disclosure_request
    agency        TEXT NOT NULL,
    project       TEXT,               -- the enquiry's project
    category      TEXT,               -- the enquiry's project's category
    rule          TEXT NOT NULL,      -- the response rule its due time follows
    status        TEXT NOT NULL,      -- open answered declined | received extended replied
    received_us   {big} NOT NULL,
    first_due_us  {big} NOT NULL,     -- the due time it was received with
    due_us        {big} NOT NULL,     -- now: the first, or the extended one
    due_estimated INTEGER NOT NULL DEFAULT 0,  -- counted over days the calendar does not cover
    extended_us   {big},
    closed_us     {big},
    alert_us      {big},              -- the next moment a warning of it becomes true
    answering_us  {big},              -- an answer is being appended (see service.py)
    answer_seq    {big},              -- the enquiry_answer event that answers it
    linked        INTEGER NOT NULL DEFAULT 0,  -- answered by an earlier answer
    outcome       TEXT,               -- a reply's outcome
    score         INTEGER,            -- the asker's rating, 1-5
    rated_us      {big},
    ticket_digest TEXT NOT NULL,      -- SHA-256 of the ticket the asker keeps
    private       {blob},             -- sealed JSON: what the person wrote; NULL once erased
    erased_us     {big},
    retry_digest  TEXT,               -- SHA-256 of the filing's Idempotency-Key
    retry_fingerprint TEXT            -- SHA-256 of what was filed with it
"""
_REST = """
CREATE INDEX IF NOT EXISTS cases_inbox ON cases(kind, agency, status, due_us, id);
CREATE INDEX IF NOT EXISTS cases_by_status ON cases(kind, status, due_us, id);
CREATE INDEX IF NOT EXISTS cases_by_project ON cases(project, due_us, id) WHERE project IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS cases_retry ON cases(retry_digest)
    WHERE retry_digest IS NOT NULL;
CREATE INDEX IF NOT EXISTS cases_alerts ON cases(alert_us) WHERE alert_us IS NOT NULL;
CREATE INDEX IF NOT EXISTS cases_answering ON cases(answering_us) WHERE answering_us IS NOT NULL;
CREATE INDEX IF NOT EXISTS cases_to_erase ON cases(closed_us)
    WHERE private IS NOT NULL AND closed_us IS NOT NULL;
CREATE TABLE IF NOT EXISTS case_history (
    case_id TEXT NOT NULL,
    at_us   {big} NOT NULL,
    what    TEXT NOT NULL,  -- filed answered linked declined extended replied rated erased
    actor   TEXT,                         -- the staff token's name; NULL for the public
    detail  TEXT                          -- JSON without anything private (seq, outcome, score)
);
CREATE INDEX IF NOT EXISTS case_history_by_case ON case_history(case_id, at_us);
CREATE TABLE IF NOT EXISTS case_warnings (
    id          TEXT PRIMARY KEY,         -- rule/case/period/level: the same on every rebuild
    case_id     TEXT NOT NULL,
    agency      TEXT NOT NULL,
    project     TEXT,
    category    TEXT,
    level       TEXT NOT NULL,
    created_at  TEXT NOT NULL,            -- RFC 3339, Beijing time: sorts as text
    resolved_at TEXT,
    doc         {blob} NOT NULL,          -- the warning JSON as served
    n           {big} NOT NULL            -- the order of writes, for every process to tail
);
CREATE INDEX IF NOT EXISTS case_warnings_by_time ON case_warnings(created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS case_warnings_by_n ON case_warnings(n);
CREATE INDEX IF NOT EXISTS case_warnings_open ON case_warnings(case_id) WHERE resolved_at IS NULL;
CREATE TABLE IF NOT EXISTS case_progress (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    fired_until {big} NOT NULL            -- every warning true by then is stored
);
"""
# SQLite: a filing is one statement, its history written by the database.
FILED_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS case_filed AFTER INSERT ON cases BEGIN
    INSERT INTO case_history (case_id, at_us, what) VALUES (NEW.id, NEW.received_us, 'filed');
END;
"""
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS cases ({_COLUMNS.format(big='INTEGER', blob='BLOB')});\n"
    + _REST.format(big="INTEGER", blob="BLOB")
    + FILED_TRIGGER
)
PG_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS cases ({_COLUMNS.format(big='BIGINT', blob='BYTEA')});\n"
    + _REST.format(big="BIGINT", blob="BYTEA")
)
CASE_FIELDS = (
    "id", "kind", "agency", "project", "category", "rule", "status", "received_us",
    "first_due_us", "due_us", "due_estimated", "extended_us", "closed_us", "alert_us",
    "answering_us", "answer_seq", "linked", "outcome", "score", "rated_us", "ticket_digest",
    "private", "erased_us", "retry_digest", "retry_fingerprint",
)  # fmt: skip
SELECT_CASE = f"SELECT {', '.join(CASE_FIELDS)} FROM cases"
LINKED = CASE_FIELDS.index("linked")
INSERT_CASE = (
    f"INSERT INTO cases ({', '.join(CASE_FIELDS)}) VALUES ({', '.join('?' * len(CASE_FIELDS))})"
    " ON CONFLICT DO NOTHING"  # the id, or the Idempotency-Key, is taken
)
# PostgreSQL: the same as one statement with its history, on any pool connection.
FILE_CASE_PG = (
    f"WITH filed AS ({INSERT_CASE} RETURNING id, received_us)"
    " INSERT INTO case_history (case_id, at_us, what)"
    " SELECT id, received_us, 'filed' FROM filed RETURNING case_id"
)
WARNING_FILTERS = ("agency", "category", "level", "project")
INSERT_WARNING = (
    "INSERT INTO case_warnings (id, case_id, agency, project, category, level, created_at,"
    " resolved_at, doc, n) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
LOCK_WARNINGS = "SELECT pg_advisory_xact_lock(hashtext('sunbid-case-warnings'))"


@dataclass(frozen=True)
class CaseRow:
    id: str
    kind: str
    agency: str
    project: str | None
    category: str | None
    rule: str
    status: str
    received_us: int
    first_due_us: int
    due_us: int
    due_estimated: int  # 1: a day the calendar does not know was counted as Monday–Friday
    extended_us: int | None
    closed_us: int | None
    alert_us: int | None
    answering_us: int | None
    answer_seq: int | None
    linked: bool
    outcome: str | None
    score: int | None
    rated_us: int | None
    ticket_digest: str
    private: bytes | None
    erased_us: int | None
    retry_digest: str | None = None
    retry_fingerprint: str | None = None

    @classmethod
    def of(cls, row: Sequence[Any]) -> CaseRow:
        """A row of SELECT_CASE (positional: a rebuild reads every case)."""
        return cls(*(*row[:LINKED], bool(row[LINKED]), *row[LINKED + 1 :]))


@dataclass(frozen=True)
class Tally:
    """One agency's cases of one kind, as the scorecard counts them."""

    agency: str
    kind: str
    outcome: str | None  # answered, declined, a reply's outcome; None while open
    received: int
    on_time: int
    late: int
    open: int
    scores: int
    score_sum: int


class CaseStore(SideFile):
    def __init__(
        self, path: Path, *, database_url: str = "", database_schema: str = "public"
    ) -> None:
        super().__init__(
            path,
            SCHEMA,
            versions.RESPOND,
            name="respond",
            postgres_schema=PG_SCHEMA,
            database_url=database_url,
            database_schema=database_schema,
        )
        self.truncate_pending = False  # erased text may still be in the WAL (SQLite)

    async def open(self) -> None:
        # Erased text may still be in the WAL (SQLite): looked at once after a start.
        self.truncate_pending = not self.postgres
        await super().open()
        if not self.postgres:
            # Erased text must not linger in freed pages of the file.
            await self.db.execute("PRAGMA secure_delete=ON")

    # --- cases -----------------------------------------------------------------------

    async def insert(self, case: CaseRow) -> bool:
        """Store a new case with its `filed` history, in one statement (a
        filing is the busiest write here); False if its id (or its
        Idempotency-Key) is taken."""
        values = [getattr(case, name) for name in CASE_FIELDS]
        if self.postgres:  # autocommit on the pool: filings do not queue on one connection
            return bool(await self.rows(FILE_CASE_PG, values))
        async with self._lock:  # never inside another task's transaction on the connection
            cursor = await self.db.execute(INSERT_CASE, values)
        return int(cursor.rowcount) == 1

    async def get(self, case_id: str) -> CaseRow | None:
        rows = await self.rows(SELECT_CASE + " WHERE id = ?", (case_id,))
        return CaseRow.of(rows[0]) if rows else None

    async def by_retry(self, retry_digest: str) -> CaseRow | None:
        rows = await self.rows(SELECT_CASE + " WHERE retry_digest = ?", (retry_digest,))
        return CaseRow.of(rows[0]) if rows else None

    async def inbox(
        self,
        kind: str,
        filters: Mapping[str, str],
        statuses: Sequence[str],
        cursor: str | None,
        limit: int,
    ) -> tuple[list[CaseRow], str | None]:
        """Oldest due first. ValueError for a cursor this never gave out."""
        where: list[str] = ["kind = ?"]
        params: list[Any] = [kind]
        for name in ("agency", "project"):
            if name in filters:
                where.append(f"{name} = ?")
                params.append(filters[name])
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params += statuses
        if cursor is not None:
            due_us, case_id = _decode_cursor(cursor)
            # A row value, so that the index is searched from the cursor on (an OR
            # of the two conditions walks it from the start: a page costs its depth).
            where.append("(due_us, id) > (?, ?)")
            params += [due_us, case_id]
        rows = await self.rows(
            SELECT_CASE + f" WHERE {' AND '.join(where)} ORDER BY due_us, id LIMIT ?",
            [*params, limit + 1],
        )
        found = [CaseRow.of(row) for row in rows]
        more = len(found) > limit
        found = found[:limit]
        next_cursor = _encode_cursor([found[-1].due_us, found[-1].id]) if more else None
        return found, next_cursor

    async def begin_answer(self, case_id: str, at_us: int, stale_us: int) -> bool:
        """Mark an open enquiry as being answered (the event is appended next),
        unless another answer is under way (a mark older than `stale_us` is
        taken over: its append ended long ago, and the log refuses a second)."""
        async with self.transaction():
            cursor = await self.db.execute(
                "UPDATE cases SET answering_us = ? WHERE id = ? AND status = 'open'"
                " AND (answering_us IS NULL OR answering_us < ?)",
                (at_us, case_id, stale_us),
            )
        return int(cursor.rowcount) == 1

    async def half_answered(self, before_us: int) -> list[CaseRow]:
        """Cases marked as being answered since before `before_us`."""
        rows = await self.rows(
            SELECT_CASE + " WHERE answering_us IS NOT NULL AND answering_us < ?", (before_us,)
        )
        return [CaseRow.of(row) for row in rows]

    async def forget_answering(self, case_id: str, at_us: int) -> None:
        async with self.transaction():
            await self.db.execute(
                "UPDATE cases SET answering_us = NULL WHERE id = ? AND answering_us = ?",
                (case_id, at_us),
            )

    async def close_case(
        self,
        case_id: str,
        *,
        expect: str,
        status: str,
        closed_us: int,
        private: bytes | None,
        due: Iterable[CaseAlert],
        history: tuple[str, str | None, dict[str, Any] | None],
        answer_seq: int | None = None,
        linked: bool = False,
        outcome: str | None = None,
        unmarked: bool = False,
    ) -> bool:
        """Close a case whose status is `expect`; False if it is not (or, with
        `unmarked`, if an answer is being appended to it). The warnings due by
        the closing are stored first, then every open one is resolved: all in
        one transaction."""
        mark = " AND answering_us IS NULL" if unmarked else ""
        async with self.transaction():
            cursor = await self.db.execute(
                "UPDATE cases SET status = ?, closed_us = ?, alert_us = NULL,"
                " answering_us = NULL, answer_seq = ?, linked = ?, outcome = ?,"
                " private = COALESCE(?, private)"
                f" WHERE id = ? AND status = ?{mark}",
                (status, closed_us, answer_seq, int(linked), outcome, private, case_id, expect),
            )
            if int(cursor.rowcount) != 1:
                return False
            await self._store_alerts(due)
            await self._resolve(case_id, closed_us)
            what, actor, detail = history
            await self._history(case_id, closed_us, what, actor, detail)
        return True

    async def extend_case(
        self,
        case_id: str,
        *,
        extended_us: int,
        due_us: int,
        due_estimated: bool,
        alert_us: int | None,
        private: bytes | None,
        due: Iterable[CaseAlert],
        actor: str,
    ) -> bool:
        async with self.transaction():
            cursor = await self.db.execute(
                "UPDATE cases SET status = 'extended', extended_us = ?, due_us = ?,"
                " due_estimated = ?, alert_us = ?, private = COALESCE(?, private)"
                " WHERE id = ? AND status = 'received'",
                (extended_us, due_us, int(due_estimated), alert_us, private, case_id),
            )
            if int(cursor.rowcount) != 1:
                return False
            await self._store_alerts(due)
            await self._resolve(case_id, extended_us)
            await self._history(case_id, extended_us, "extended", actor, {"due_us": due_us})
        return True

    async def estimated_open(self) -> list[CaseRow]:
        """Open cases whose due time counted days the calendar did not know,
        and that have warned nobody yet."""
        rows = await self.rows(
            SELECT_CASE + " WHERE due_estimated = 1 AND closed_us IS NULL AND NOT EXISTS"
            " (SELECT 1 FROM case_warnings w WHERE w.case_id = cases.id)"
        )
        return [CaseRow.of(row) for row in rows]

    async def redate(self, case: CaseRow, fixed: CaseRow) -> bool:
        """Store `fixed`'s due times if the case is still as read."""
        async with self.transaction():
            cursor = await self.db.execute(
                "UPDATE cases SET first_due_us = ?, due_us = ?, due_estimated = ?, alert_us = ?"
                " WHERE id = ? AND due_us = ? AND closed_us IS NULL",
                (
                    fixed.first_due_us,
                    fixed.due_us,
                    fixed.due_estimated,
                    fixed.alert_us,
                    case.id,
                    case.due_us,
                ),
            )
        return int(cursor.rowcount) == 1

    async def rate(self, case_id: str, score: int, private: bytes | None, at_us: int) -> bool:
        async with self.transaction():
            cursor = await self.db.execute(
                "UPDATE cases SET score = ?, rated_us = ?, private = COALESCE(?, private)"
                " WHERE id = ? AND status = 'answered' AND score IS NULL",
                (score, at_us, private, case_id),
            )
            if int(cursor.rowcount) != 1:
                return False
            await self._history(case_id, at_us, "rated", None, {"score": score})
        return True

    async def erase_closed(self, before_us: int, at_us: int, limit: int = 500) -> int:
        """Erase what people wrote in cases closed before `before_us`."""
        async with self.transaction():
            rows = await self.db.execute_fetchall(
                "SELECT id FROM cases WHERE private IS NOT NULL AND closed_us IS NOT NULL"
                " AND closed_us < ? ORDER BY closed_us LIMIT ?",
                (before_us, limit),
            )
            ids = [row[0] for row in rows]
            for case_id in ids:
                await self.db.execute(
                    "UPDATE cases SET private = NULL, erased_us = ? WHERE id = ?", (at_us, case_id)
                )
                await self._history(case_id, at_us, "erased", None, None)
        if ids:
            self.truncate_pending = not self.postgres
        if self.truncate_pending:
            await self.truncate_wal()
        return len(ids)

    async def truncate_wal(self) -> None:
        """The erased text's old pages are in the WAL until a checkpoint: write
        them back and empty it. A reader open at the time (a backup, another
        process) keeps the checkpoint from finishing: tried again next time."""
        async with self._lock:  # not between another task's statements
            rows = await self.db.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
        busy = bool(rows and rows[0][0])
        self.truncate_pending = busy

    async def history(self, case_id: str) -> list[dict[str, Any]]:
        rows = await self.rows(
            "SELECT at_us, what, actor, detail FROM case_history WHERE case_id = ? ORDER BY at_us",
            (case_id,),
        )
        return [
            {
                "at_us": int(at),
                "what": what,
                "actor": actor,
                "detail": orjson.loads(detail) if detail else None,
            }
            for at, what, actor, detail in rows
        ]

    async def answered_seqs(self) -> dict[int, str]:
        """seq → enquiry id for every enquiry answered by an event of its own."""
        rows = await self.rows(
            "SELECT answer_seq, id FROM cases WHERE answer_seq IS NOT NULL AND linked = 0"
        )
        return {int(seq): case_id for seq, case_id in rows}

    async def all_cases(self) -> list[CaseRow]:
        return [CaseRow.of(row) for row in await self.rows(SELECT_CASE + " ORDER BY id")]

    # --- the scorecard --------------------------------------------------------------

    async def tallies(
        self, now_us: int, agency: str | None, category: str | None, month: tuple[int, int] | None
    ) -> tuple[list[Tally], dict[tuple[str, str], list[int]]]:
        """Per (agency, kind): the counts, and how long each closed case took (µs)."""
        where, params = _scorecard_filters(agency, category, month)
        rows = await self.rows(
            "SELECT agency, kind, outcome, COUNT(*),"
            " SUM(CASE WHEN closed_us IS NOT NULL AND closed_us <= due_us THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN (closed_us IS NOT NULL AND closed_us > due_us)"
            "  OR (closed_us IS NULL AND due_us < ?) THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN closed_us IS NULL THEN 1 ELSE 0 END),"
            " COUNT(score), COALESCE(SUM(score), 0)"
            f" FROM cases{where} GROUP BY agency, kind, outcome",
            [now_us, *params],
        )
        tallies = [
            Tally(str(a), str(k), o, *(int(v or 0) for v in rest)) for a, k, o, *rest in rows
        ]
        taken: dict[tuple[str, str], list[int]] = {}
        closed_where = where + (" AND" if where else " WHERE") + " closed_us IS NOT NULL"
        for agency_code, kind, took in await self.rows(
            f"SELECT agency, kind, closed_us - received_us FROM cases{closed_where}", params
        ):
            taken.setdefault((agency_code, kind), []).append(int(took))
        return tallies, taken

    # --- warnings -------------------------------------------------------------------

    async def due_alerts(self, now_us: int, limit: int) -> list[CaseRow]:
        rows = await self.rows(
            SELECT_CASE + " WHERE alert_us IS NOT NULL AND alert_us <= ? ORDER BY alert_us LIMIT ?",
            (now_us, limit),
        )
        return [CaseRow.of(row) for row in rows]

    async def fire(
        self, batch: Iterable[tuple[CaseRow, int | None, list[CaseAlert]]], fired_until_us: int
    ) -> None:
        """For each (case as read, its next alert moment, its warnings by now):
        store the warnings and move `alert_us` on, if no one did meanwhile."""
        async with self.transaction():
            for case, next_us, due in batch:
                cursor = await self.db.execute(
                    "UPDATE cases SET alert_us = ? WHERE id = ? AND alert_us = ?",
                    (next_us, case.id, case.alert_us),
                )
                if int(cursor.rowcount) == 1:
                    await self._store_alerts(due)
            await self._progress(fired_until_us)

    async def mark_progress(self, fired_until_us: int) -> None:
        async with self.transaction():
            await self._progress(fired_until_us)

    async def fired_until(self) -> int | None:
        rows = await self.rows("SELECT fired_until FROM case_progress")
        return int(rows[0][0]) if rows else None

    async def warnings_after(self, n: int, limit: int = 500) -> list[tuple[int, bytes]]:
        rows = await self.rows(
            "SELECT n, doc FROM case_warnings WHERE n > ? ORDER BY n LIMIT ?", (n, limit)
        )
        return [(int(number), bytes(doc)) for number, doc in rows]

    async def last_warning_number(self) -> int:
        rows = await self.rows("SELECT COALESCE(MAX(n), 0) FROM case_warnings")
        return int(rows[0][0])

    async def list_warnings(
        self,
        filters: Mapping[str, str],
        state: str | None,
        cursor: tuple[str, str] | None,
        limit: int,
    ) -> list[tuple[str, str, bytes]]:
        """(created_at, id, doc), newest first, before `cursor` (created_at, id)."""
        where: list[str] = []
        params: list[Any] = []
        for name in WARNING_FILTERS:
            if name in filters:
                where.append(f"{name} = ?")
                params.append(filters[name])
        if state == "open":
            where.append("resolved_at IS NULL")
        elif state == "resolved":
            where.append("resolved_at IS NOT NULL")
        if cursor is not None:
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [cursor[0], cursor[0], cursor[1]]
        sql = "SELECT created_at, id, doc FROM case_warnings"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self.rows(sql + " ORDER BY created_at DESC, id DESC LIMIT ?", [*params, limit])
        return [(str(c), str(i), bytes(d)) for c, i, d in rows]

    async def open_by_level(self) -> dict[str, int]:
        rows = await self.rows(
            "SELECT level, COUNT(*) FROM case_warnings WHERE resolved_at IS NULL GROUP BY level"
        )
        return {str(level): int(n) for level, n in rows}

    async def all_warnings(self) -> dict[str, dict[str, Any]]:
        rows = await self.rows("SELECT id, doc FROM case_warnings")
        return {str(i): orjson.loads(d) for i, d in rows}

    async def replace_warnings(
        self, alerts: Iterable[CaseAlert], next_alerts: Mapping[str, int | None], now_us: int
    ) -> None:
        """`sunbid rebuild`: every warning as the cases yield them now."""
        async with self.transaction():
            await self.db.execute("DELETE FROM case_warnings")
            n = await self._next_number()
            # One statement per table, not per row: a rebuild may write 100,000s.
            await self.db.executemany(
                INSERT_WARNING, [_warning_row(a, n + i) for i, a in enumerate(alerts)]
            )
            await self.db.executemany(
                "UPDATE cases SET alert_us = ? WHERE id = ?",
                [(next_us, case_id) for case_id, next_us in next_alerts.items()],
            )  # (only those whose moment moved: the caller leaves the rest out)
            await self._progress(now_us)

    # --- inside a transaction ---------------------------------------------------------

    async def _next_number(self) -> int:
        if self.postgres:
            await self.db.execute(LOCK_WARNINGS)  # numbers in commit order, across processes
        rows = await self.db.execute_fetchall("SELECT COALESCE(MAX(n), 0) FROM case_warnings")
        return int(rows[0][0]) + 1

    async def _store_alerts(self, alerts: Iterable[CaseAlert]) -> None:
        alerts = list(alerts)
        if not alerts:
            return
        n = await self._next_number()
        for alert in alerts:
            cursor = await self.db.execute(
                INSERT_WARNING + " ON CONFLICT (id) DO NOTHING", _warning_row(alert, n)
            )
            n += max(cursor.rowcount, 0)

    async def _resolve(self, case_id: str, at_us: int) -> None:
        rows = await self.db.execute_fetchall(
            "SELECT id, doc FROM case_warnings WHERE case_id = ? AND resolved_at IS NULL",
            (case_id,),
        )
        if not rows:
            return
        n = await self._next_number()
        resolved_at = _iso_us(at_us)
        for warning_id, doc in rows:
            parsed = orjson.loads(doc)
            parsed["resolved_at"] = resolved_at
            await self.db.execute(
                "UPDATE case_warnings SET resolved_at = ?, doc = ?, n = ? WHERE id = ?",
                (resolved_at, orjson.dumps(parsed), n, warning_id),
            )
            n += 1

    async def _history(
        self, case_id: str, at_us: int, what: str, actor: str | None, detail: dict[str, Any] | None
    ) -> None:
        await self.db.execute(
            "INSERT INTO case_history (case_id, at_us, what, actor, detail) VALUES (?, ?, ?, ?, ?)",
            (case_id, at_us, what, actor, orjson.dumps(detail).decode() if detail else None),
        )

    async def _progress(self, fired_until_us: int) -> None:
        await self.db.execute(
            "INSERT INTO case_progress (id, fired_until) VALUES (1, ?) ON CONFLICT (id)"
            " DO UPDATE SET fired_until = excluded.fired_until"
            " WHERE excluded.fired_until > case_progress.fired_until",
            (fired_until_us,),
        )


def _warning_row(alert: CaseAlert, n: int) -> tuple[Any, ...]:
    doc = alert.to_json()
    case = alert.case
    return (
        alert.id,
        case.id,
        case.agency,
        case.project,
        case.category,
        alert.level,
        doc["created_at"],
        doc["resolved_at"],
        orjson.dumps(doc),
        n,
    )


def _scorecard_filters(
    agency: str | None, category: str | None, month: tuple[int, int] | None
) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if agency is not None:
        where.append("agency = ?")
        params.append(agency)
    if category is not None:
        where.append("category = ?")
        params.append(category)
    if month is not None:
        where.append("received_us >= ? AND received_us < ?")
        params += list(month)
    return (" WHERE " + " AND ".join(where)) if where else "", params


def _iso_us(at_us: int) -> str:
    return from_us(at_us).isoformat(timespec="milliseconds")


def _encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode("ascii")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        due_us, case_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, TypeError, UnicodeError, orjson.JSONDecodeError):
        raise ValueError("not a cursor") from None
    if type(due_us) is not int or not 0 <= due_us < 2**63 or not isinstance(case_id, str):
        raise ValueError("not a cursor")  # (a database integer has 64 bits)
    return due_us, case_id
