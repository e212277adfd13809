"""respond.db's rows into PostgreSQL beside the log, for `sunbid copy-to`.

The public's cases are a source of their own, not derived from the log: a
move that dropped them would lose every open question and request, and
their due-time warnings. They come along row for row — the sealed documents
as they are (the same `contacts.key` opens them), the history, the warnings
with their numbers and the timer's progress — inside the copy's
transaction, so a copy that fails leaves none of them behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite

from server.core import pg, versions
from server.respond.cases import CASE_FIELDS, PG_SCHEMA

TABLES = {
    "cases": CASE_FIELDS,
    "case_history": ("case_id", "at_us", "what", "actor", "detail"),
    "case_warnings": (
        "id", "case_id", "agency", "project", "category", "level", "created_at",
        "resolved_at", "doc", "n",
    ),
    "case_progress": ("id", "fired_until"),
}  # fmt: skip
BYTES = {"private", "doc"}  # BLOB in SQLite, BYTEA here
PAGE = 5000


async def copy_case_rows(source: Path, conn: Any) -> str:
    """Copy respond.db at `source` (if there is one) through `conn`, a
    PgConnection in a transaction on the target schema; say what was copied."""
    await pg.create_schema(conn, "respond", PG_SCHEMA, versions.RESPOND)
    held = await conn.execute_fetchall("SELECT COUNT(*) FROM cases")
    if held[0][0]:
        raise ValueError(f"the target schema holds {held[0][0]} cases already")
    if not source.exists():
        return "no cases (there was no respond.db)"
    copied = 0
    async with aiosqlite.connect(f"file:{source}?mode=ro", uri=True) as db:
        for table, columns in TABLES.items():
            binary = [i for i, name in enumerate(columns) if name in BYTES]
            insert = (
                f"INSERT INTO {table} ({', '.join(columns)})"
                f" VALUES ({', '.join('?' * len(columns))})"
            )
            async with db.execute(f"SELECT {', '.join(columns)} FROM {table}") as rows:
                while page := [list(row) for row in await rows.fetchmany(PAGE)]:
                    for row in page:
                        for i in binary:
                            row[i] = None if row[i] is None else bytes(row[i])
                    await conn.executemany(insert, page)
                    if table == "cases":
                        copied += len(page)
    return f"{copied} cases"
