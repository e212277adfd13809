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

CHUNK = 2000  # keys per transaction: each holds the file's write lock only briefly

# A key's age is its event's publication (keys have no time of their own);
# julianday() reads RFC 3339 with its offset, so a changed SUNBID_TIMEZONE
# compares correctly. The CAST: the document is stored as a BLOB.
OLDER = """
SELECT i.project, i.key, i.seq FROM idempotency i JOIN events e ON e.seq = i.seq
WHERE (julianday(json_extract(CAST(e.doc AS TEXT), '$.published_at')) - 2440587.5)
      * 86400.0 < ?
"""


async def prune_idempotency(conn: aiosqlite.Connection, before: datetime) -> int:
    """Delete the keys of events published before `before`; how many.

    The keys are found by a read (which never blocks the log's writer, WAL),
    then deleted by primary key a chunk per transaction: publishers wait at
    most one short chunk, however many keys there are. A key is never written
    again while it exists, so one found is still the same when deleted.
    """
    due = list(await conn.execute_fetchall(OLDER, (before.timestamp(),)))
    for start in range(0, len(due), CHUNK):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await conn.executemany(
                "DELETE FROM idempotency WHERE project = ? AND key = ? AND seq = ?",
                due[start : start + CHUNK],
            )
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
    return len(due)
