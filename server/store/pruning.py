"""Forgetting idempotency keys once a retry can no longer come.

A key lets a client repeat a publication it is unsure of and get the first
answer back; after `SUNBID_IDEMPOTENCY_KEEP_HOURS` a repeat is a new request
(and makes a new event). The keys are kept beside the log. On SQLite this
takes a connection of its own to the log's file, so the pruning never waits
in the store's queue of appends; on PostgreSQL it borrows connections of the
store's pool, which the appends (on their own kept connection) never wait for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from server.core import pg
from server.store.postgres import PostgresStore
from server.store.sqlite import SQLiteStore

CHUNK = 2000  # keys per transaction: each holds the keys' locks only briefly

# Where the keys live: the SQLite log's file, or the PostgreSQL log's pool.
KeyHome = Path | pg.Database

# A key's age is its event's publication (keys have no time of their own).
# SQLite: julianday() reads RFC 3339 with its offset, so a changed
# SUNBID_TIMEZONE compares correctly; the CAST: the document is a BLOB.
OLDER = """
SELECT i.project, i.key, i.seq FROM idempotency i JOIN events e ON e.seq = i.seq
WHERE (julianday(json_extract(CAST(e.doc AS TEXT), '$.published_at')) - 2440587.5)
      * 86400.0 < ?
"""
# PostgreSQL: the same, timestamptz reading the offset likewise.
OLDER_PG = """
SELECT i.project, i.key, i.seq FROM idempotency i JOIN events e ON e.seq = i.seq
WHERE (convert_from(e.doc, 'UTF8')::json ->> 'published_at')::timestamptz < ?
"""
DELETE = "DELETE FROM idempotency WHERE project = ? AND key = ? AND seq = ?"


def key_home(store: object) -> KeyHome | None:
    """Where `store` keeps its keys (an open store); None for a store without them."""
    if isinstance(store, SQLiteStore):
        return store.path
    if isinstance(store, PostgresStore):
        return store.db
    return None


async def prune_keys(home: KeyHome, before: datetime) -> int:
    """Delete the keys of events published before `before`; how many."""
    if isinstance(home, Path):
        async with aiosqlite.connect(home, isolation_level=None) as conn:
            await conn.execute("PRAGMA busy_timeout=5000")  # the writer goes first
            return await prune_idempotency(conn, before)
    due = await home.rows(OLDER_PG, (before,))
    for start in range(0, len(due), CHUNK):
        async with home.connection() as pooled, pooled.transaction():
            await pooled.executemany(DELETE, [tuple(row) for row in due[start : start + CHUNK]])
    return len(due)


async def prune_idempotency(conn: aiosqlite.Connection, before: datetime) -> int:
    """Delete the keys of events published before `before` from the SQLite log; how many.

    The keys are found by a read (which never blocks the log's writer, WAL),
    then deleted by primary key a chunk per transaction: publishers wait at
    most one short chunk, however many keys there are. A key is never written
    again while it exists, so one found is still the same when deleted (a
    key pruned and then used again has a new seq: the DELETE names the old).
    """
    due: Sequence[Any] = list(await conn.execute_fetchall(OLDER, (before.timestamp(),)))
    for start in range(0, len(due), CHUNK):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await conn.executemany(DELETE, due[start : start + CHUNK])
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
    return len(due)
