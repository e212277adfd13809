"""The schema version each SQLite file of a data directory carries.

A file's version is SQLite's `PRAGMA user_version` (a number in the file's
header, written inside the transaction that changes the schema, so the two
never disagree). Files written before versions existed read 0. A new file is
stamped with the current version when its schema is first created: it needs
none of the steps that bring an older file up to date. `server/migrations/`
holds those steps, one list per file; its tests check that each list ends at
the number here.

A PostgreSQL log (the scale-out backend) has no file header: it will keep its
version in a one-row `schema_version` table instead.
"""

from __future__ import annotations

import aiosqlite

# The current schema of each file; raise it together with a new step in server/migrations/.
EVENTS = 1  # sunbid.db (the log, and the records still beside it)
PUSH = 2  # push.db
COMPLIANCE = 1  # compliance.db
RESPOND = 1  # respond.db (the public's cases)
WEBHOOKS = 1  # webhooks.db


async def schema_version(conn: aiosqlite.Connection) -> int:
    rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    return int(rows[0][0])


async def is_empty(conn: aiosqlite.Connection) -> bool:
    """No table yet: a file just created (or one that held nothing)."""
    rows = list(
        await conn.execute_fetchall("SELECT COUNT(*) FROM sqlite_schema WHERE type='table'")
    )
    return int(rows[0][0]) == 0


async def create_schema(conn: aiosqlite.Connection, schema: str, version: int) -> None:
    """Run `schema` (CREATE … IF NOT EXISTS); stamp a new file with `version`.

    An existing file keeps its version, old or current: only `sunbid migrate`
    moves it, so a file with a version below the current one was not made by
    this code and is upgraded by its steps, not assumed up to date.
    """
    new = await is_empty(conn)
    await conn.executescript(schema)
    if new:
        await conn.execute(f"PRAGMA user_version = {int(version)}")
