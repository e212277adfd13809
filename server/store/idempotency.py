"""Idempotency keys: a repeated publication returns the event it made the first time.

A key belongs to a project (`(project, key)`), and is written in the same
transaction as the event it made, so a repeat can never see a key without
its event, nor an event whose key was lost. The table lives beside the log
in the same file; it is not part of the log (the chain does not cover it)
and a pruned key only means a repeat makes a new event.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite

from server.core.events import StoredEvent

Key = tuple[str, str]  # (project, Idempotency-Key)
EVENT_COLUMNS = "e.seq, e.project, e.category, e.agency, e.region, e.stage, e.doc"


async def earlier_keys(
    conn: aiosqlite.Connection, keys: Sequence[Key]
) -> dict[Key, tuple[str, StoredEvent]]:
    """Those of `keys` used before: each with its request's fingerprint and its event."""
    if not keys:
        return {}
    values = ",".join("(?,?)" for _ in keys)
    rows = await conn.execute_fetchall(
        f"SELECT i.project, i.key, i.fingerprint, {EVENT_COLUMNS} FROM idempotency i"
        f" JOIN events e ON e.seq = i.seq WHERE (i.project, i.key) IN (VALUES {values})",
        [part for key in keys for part in key],
    )
    return {
        (r[0], r[1]): (r[2], StoredEvent(r[3], r[4], r[5], r[6], r[7], r[8], bytes(r[9])))
        for r in rows
    }


async def record_keys(
    conn: aiosqlite.Connection, rows: Sequence[tuple[str, str, str, int]]
) -> None:
    """(project, key, fingerprint, seq) of the events just appended, in their transaction."""
    if rows:
        await conn.executemany("INSERT INTO idempotency VALUES (?,?,?,?)", rows)
