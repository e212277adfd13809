"""Forgetting idempotency keys once a retry can no longer come.

A key lets a client repeat a publication it is unsure of and get the first
answer back; after `SUNBID_IDEMPOTENCY_KEEP_HOURS` a repeat is a new request
(and makes a new event). The keys are kept beside the log, on its file: this
function takes a connection of its own to that file, so the pruning never
waits in the store's queue of appends, and moves as one piece when the keys
get a home of their own.
"""

from __future__ import annotations

from datetime import datetime

import aiosqlite

CHUNK = 5000  # rows per statement: each holds the file's write lock only briefly

# A key's age is its event's publication (keys have no time of their own);
# julianday() reads RFC 3339 with its offset, so a changed SUNBID_TIMEZONE
# compares correctly. The CAST: the document is stored as a BLOB.
DELETE_OLDER = """
DELETE FROM idempotency WHERE (project, key) IN (
    SELECT i.project, i.key FROM idempotency i JOIN events e ON e.seq = i.seq
    WHERE (julianday(json_extract(CAST(e.doc AS TEXT), '$.published_at')) - 2440587.5)
          * 86400.0 < ?
    LIMIT ?)
"""


async def prune_idempotency(conn: aiosqlite.Connection, before: datetime) -> int:
    """Delete the keys of events published before `before`; how many."""
    cutoff, deleted = before.timestamp(), 0
    while True:
        cursor = await conn.execute(DELETE_OLDER, (cutoff, CHUNK))
        deleted += max(cursor.rowcount, 0)
        if cursor.rowcount < CHUNK:
            return deleted
