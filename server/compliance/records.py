"""The watchdog's records on disk (`compliance.db` in the data directory):
its warnings, how far in the log they go, and the latest snapshot of its state.

The watchdog can always recompute its warnings from the log; they are stored
so that supervisors have a record that does not shift when a rule is edited
later, and so that the list can be filtered and paged with SQL. Ids are made
of what caused a warning, so writing one twice (a rebuild after a restart)
changes nothing, and a resolution only ever fills `resolved_at` in.

`progress` keeps the cursor (the last seq whose warnings are stored) and
the moment up to which timers fired, written in the same transaction as the
warnings they cover: `sunbid verify` rebuilds exactly that far to compare.
`snapshot` holds one state (snapshot.py) with its cursor and fingerprint.

With a PostgreSQL log the same tables live in its schema (`PG_SCHEMA`),
shared by every process, and only the one holding the compliance lease
writes them (service.py): each write first checks, inside its transaction,
that the lease is still this process's (`fence`), so a process that lost it
without noticing yet cannot write after another has taken over.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from server.compliance.watchdog import Alert
from server.core import lease, versions
from server.core.sidefile import SideFile

WARNINGS_FILE = "compliance.db"
SCHEMA = """
CREATE TABLE IF NOT EXISTS warnings (
    id          TEXT PRIMARY KEY,   -- rule/project/cause/level: the same on every rebuild
    project     TEXT NOT NULL,
    agency      TEXT NOT NULL,
    category    TEXT NOT NULL,
    level       TEXT NOT NULL,
    created_at  TEXT NOT NULL,      -- RFC 3339 with +08:00: sorts as text
    resolved_at TEXT,
    doc         BLOB NOT NULL       -- the warning JSON as served
);
CREATE INDEX IF NOT EXISTS warnings_by_time ON warnings(created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS warnings_by_agency ON warnings(agency, created_at DESC);
CREATE TABLE IF NOT EXISTS progress (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    cursor      INTEGER NOT NULL,   -- the last seq applied when the warnings were written
    fired_until TEXT NOT NULL       -- timers due by this moment had fired (RFC 3339)
);
CREATE TABLE IF NOT EXISTS snapshot (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    cursor      INTEGER NOT NULL,   -- the last seq folded into `state`
    fingerprint TEXT NOT NULL,      -- snapshot.fingerprint of what made it
    chain       TEXT NOT NULL,      -- the hash of event `cursor`: of this log, not another
    taken_at    TEXT NOT NULL,
    state       BLOB NOT NULL
);
"""
PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS warnings (
    id          TEXT PRIMARY KEY,
    project     TEXT NOT NULL,
    agency      TEXT NOT NULL,
    category    TEXT NOT NULL,
    level       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    resolved_at TEXT,
    doc         BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS warnings_by_time ON warnings(created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS warnings_by_agency ON warnings(agency, created_at DESC);
CREATE TABLE IF NOT EXISTS progress (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    cursor      BIGINT NOT NULL,
    fired_until TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshot (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    cursor      BIGINT NOT NULL,
    fingerprint TEXT NOT NULL,
    chain       TEXT NOT NULL,
    taken_at    TEXT NOT NULL,
    state       BYTEA NOT NULL
);
"""
PROGRESS = """
INSERT INTO progress (id, cursor, fired_until) VALUES (1, ?, ?)
ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor, fired_until = excluded.fired_until
"""
SNAPSHOT = """
INSERT INTO snapshot (id, cursor, fingerprint, chain, taken_at, state) VALUES (1, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor, fingerprint = excluded.fingerprint,
    chain = excluded.chain, taken_at = excluded.taken_at, state = excluded.state
"""
UPSERT = """
INSERT INTO warnings (id, project, agency, category, level, created_at, resolved_at, doc)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET resolved_at = excluded.resolved_at, doc = excluded.doc
WHERE warnings.resolved_at IS NULL AND excluded.resolved_at IS NOT NULL
"""
FILTERS = ("agency", "category", "level", "project")


@dataclass(frozen=True)
class Progress:
    cursor: int
    fired_until: datetime


@dataclass(frozen=True)
class Snapshot:
    cursor: int
    fingerprint: str
    chain: str
    state: bytes


class WarningStore(SideFile):
    def __init__(
        self, path: Path, *, database_url: str = "", database_schema: str = "public"
    ) -> None:
        super().__init__(
            path,
            SCHEMA,
            versions.COMPLIANCE,
            name="compliance",
            postgres_schema=PG_SCHEMA,
            database_url=database_url,
            database_schema=database_schema,
        )
        # PostgreSQL: (lease name, holder) every write must still hold; None: unfenced.
        self.fence: tuple[str, str] | None = None

    async def _check_fence(self) -> None:
        """Inside a transaction: refuse to write unless the lease is still ours
        (and keep it ours until the commit)."""
        if self.fence is None or not self.postgres:
            return
        if not await self.db.execute_fetchall(lease.FENCE, self.fence):
            raise lease.LeaseLost(f"the lease {self.fence[0]!r} is not held by {self.fence[1]}")

    async def save(
        self,
        warnings: Iterable[Alert],
        progress: Progress | None = None,
        snapshot: Snapshot | None = None,
        *,
        replace: bool = False,
    ) -> None:
        """Insert new warnings and fill in resolutions, with the progress (and
        snapshot) they go with, in one transaction; `replace`: instead of
        everything stored before (a rebuild from the whole log)."""
        rows = [_row(w) for w in warnings]
        if not rows and progress is None and snapshot is None and not replace:
            return
        async with self.transaction():
            await self._check_fence()
            if replace:
                for table in ("warnings", "progress", "snapshot"):
                    await self.db.execute(f"DELETE FROM {table}")
            await self.db.executemany(UPSERT, rows)
            if progress is not None:
                await self.db.execute(PROGRESS, (progress.cursor, progress.fired_until.isoformat()))
            if snapshot is not None:
                taken_at = (progress.fired_until if progress else datetime.now(UTC)).isoformat()
                await self.db.execute(
                    SNAPSHOT,
                    (
                        snapshot.cursor,
                        snapshot.fingerprint,
                        snapshot.chain,
                        taken_at,
                        snapshot.state,
                    ),
                )

    async def progress(self) -> Progress | None:
        rows = await self.rows("SELECT cursor, fired_until FROM progress")
        if not rows:
            return None
        return Progress(int(rows[0][0]), datetime.fromisoformat(rows[0][1]))

    async def snapshot(self) -> Snapshot | None:
        rows = await self.rows("SELECT cursor, fingerprint, chain, state FROM snapshot")
        if not rows:
            return None
        cursor, fingerprint, chain, state = rows[0]
        return Snapshot(int(cursor), str(fingerprint), str(chain), bytes(state))

    async def clear(self) -> None:
        """Forget everything (a rebuild from the log starts from nothing)."""
        async with self.transaction():
            await self._check_fence()
            for table in ("warnings", "progress", "snapshot"):
                await self.db.execute(f"DELETE FROM {table}")

    async def all_facts(self) -> list[tuple[str, str, str, str, str | None, bool]]:
        """(id, rule, project, level, due, resolved) of every warning, by id."""
        rows = await self.rows(
            "SELECT id, project, level, resolved_at IS NOT NULL, doc FROM warnings ORDER BY id"
        )
        facts = []
        for warning_id, project, level, resolved, doc in rows:
            parsed = orjson.loads(doc)
            facts.append(
                (warning_id, parsed["rule"], project, level, parsed["due"], bool(resolved))
            )
        return facts

    async def list(
        self, filters: Mapping[str, str], state: str | None, cursor: str | None, limit: int
    ) -> tuple[list[bytes], str | None]:
        """Newest first; `state` is open, resolved or None (both). ValueError for a bad cursor."""
        where: list[str] = []
        params: list[Any] = []
        for name in FILTERS:
            if name in filters:
                where.append(f"{name} = ?")
                params.append(filters[name])
        if state == "open":
            where.append("resolved_at IS NULL")
        elif state == "resolved":
            where.append("resolved_at IS NOT NULL")
        if cursor is not None:
            created_at, warning_id = decode_cursor(cursor)
            where.append("(created_at, id) < (?, ?)")
            params += [created_at, warning_id]
        sql = "SELECT created_at, id, doc FROM warnings"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        rows = await self.rows(sql, [*params, limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1][0], rows[-1][1]) if more else None
        return [bytes(row[2]) for row in rows], next_cursor

    async def count(self) -> int:
        rows = await self.rows("SELECT COUNT(*) FROM warnings")
        return int(rows[0][0])

    async def open_by_level(self) -> dict[str, int]:
        """Warnings not resolved yet, by level (the levels with none are absent)."""
        rows = await self.rows(
            "SELECT level, COUNT(*) FROM warnings WHERE resolved_at IS NULL GROUP BY level"
        )
        return {str(level): int(n) for level, n in rows}


def _row(warning: Alert) -> tuple[Any, ...]:
    doc = warning.to_json()
    return (
        warning.id,
        warning.project,
        warning.agency,
        warning.category,
        str(warning.level),
        doc["created_at"],
        doc["resolved_at"],
        orjson.dumps(doc),
    )


def encode_cursor(created_at: str, warning_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, warning_id])).decode("ascii")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        created_at, warning_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, TypeError, UnicodeError, orjson.JSONDecodeError):
        raise ValueError("not a cursor") from None
    if not isinstance(created_at, str) or not isinstance(warning_id, str):
        raise ValueError("not a cursor")
    return created_at, warning_id
