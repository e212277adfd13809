"""What `sunbid migrate` does to a PostgreSQL schema: check its versions.

Each record set in a PostgreSQL schema (the log and the records beside it,
and each side record that lives there) is stamped in `schema_versions`
(server/core/pg.py) when its tables are created. A set whose PostgreSQL
script brings an older version to the current one in place (every table,
column and index added since is made `IF NOT EXISTS`) is listed in
UPGRADED_BY_SCRIPT: the next open runs the script and stamps the set anew.
Otherwise migrate reports the versions, and refuses (naming them) a schema
written by a newer Sunbid or one behind with no way to upgrade it.
A deployment moved from SQLite is migrated there first (`sunbid migrate`
on the SQLite data directory), then copied (`sunbid copy-to`).
"""

from __future__ import annotations

import asyncpg

from server.core import pg
from server.migrations import MigrationError
from server.migrations.steps import LATEST

# Record set → the oldest version its current PostgreSQL script upgrades in place.
UPGRADED_BY_SCRIPT = {"push": 1}  # 2: the notification channels' column and tables


async def read_versions(url: str, schema: str) -> dict[str, int]:
    """Record set → its stamped version; empty for a schema Sunbid never opened.

    Reads only: never creates the schema or the table (a typo in
    SUNBID_DATABASE_SCHEMA must not leave an empty schema behind)."""
    conn = await asyncpg.connect(url, timeout=pg.CONNECT_SECONDS)
    try:
        exists = await conn.fetchval(
            "SELECT to_regclass(quote_ident($1) || '.schema_versions') IS NOT NULL",
            pg.check_schema_name(schema),
        )
        if not exists:
            return {}
        rows = await conn.fetch(f'SELECT name, version FROM "{schema}".schema_versions')
    finally:
        await conn.close()
    return {str(row["name"]): int(row["version"]) for row in rows}


def check_versions(found: dict[str, int], schema: str) -> list[str]:
    """One line per record set, each at this code's version; else MigrationError."""
    lines, problems = [], []
    for name, version in sorted(found.items()):
        latest = LATEST.get(name)
        if latest is None or version == latest:
            # A set this code does not version (a lease, a cache) is its module's.
            lines.append(f"PostgreSQL schema {schema}: {name} at version {version}, current")
        elif UPGRADED_BY_SCRIPT.get(name, latest) <= version < latest:
            lines.append(
                f"PostgreSQL schema {schema}: {name} at version {version}, brought to"
                f" {latest} when a server next opens it"
            )
        elif version > latest:
            problems.append(
                f"{name} is at version {version}, this code's is {latest}:"
                " it was written by a newer Sunbid, run that version"
            )
        else:
            problems.append(
                f"{name} is at version {version}, this code's is {latest},"
                " and no step upgrades a PostgreSQL schema from it"
            )
    if problems:
        raise MigrationError(f"PostgreSQL schema {schema}: " + "; ".join(problems))
    if not found:
        lines.append(
            f"PostgreSQL schema {schema}: no Sunbid tables yet (made at the current"
            " version when a server first opens it)"
        )
    return lines
