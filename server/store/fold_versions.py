"""Which version of its fold wrote a record kept with the log (`fold_versions`,
in the log's file or schema): a record whose fold has changed since is
written anew from the log (server/projects/table.py, server/stats/table.py)."""

from __future__ import annotations

import aiosqlite

from server.core.pg import PgConnection

Connection = aiosqlite.Connection | PgConnection


async def stored_version(conn: Connection, name: str) -> int | None:
    """The fold version that wrote record `name`, or None for a new record."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS fold_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    found = list(
        await conn.execute_fetchall("SELECT version FROM fold_versions WHERE name = ?", (name,))
    )
    return int(found[0][0]) if found else None


async def mark_version(conn: Connection, name: str, version: int) -> None:
    await conn.execute(
        "INSERT INTO fold_versions (name, version) VALUES (?, ?)"
        " ON CONFLICT(name) DO UPDATE SET version = excluded.version",
        (name, version),
    )
