"""PostgreSQL connections shaped like the aiosqlite ones the records use.

The records kept beside the log (projects, tokens, idempotency keys, push
and compliance tables) are written with a handful of aiosqlite calls:
`execute`, `execute_fetchall`, `executemany`, with `?` placeholders.
`PgConnection` offers the same calls on an asyncpg connection, so one SQL
text serves both engines wherever the two agree (most of it: upserts with
`ON CONFLICT`, `RETURNING`, row values, `LIMIT`), and a module branches on
`is_postgres(conn)` only where they do not (JSON functions, catalogue
queries, DDL).

One pool per (URL, schema) and process, shared by the store and the side
records: `pool_for` opens it on first use, `release` closes it with its last
user. Every connection has `search_path` set to the deployment's schema
(`SUNBID_DATABASE_SCHEMA`), so SQL never names the schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import asyncpg

# A driver's or server's refusal to work: the database is down, restarting or
# unreachable. Callers turn these into "store unavailable", never a 500.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)
# What an API handler may meet when the database goes away under a read:
# answered 503 `store_unavailable` (server/app.py), not as an internal error.
CONNECTION_LOST: tuple[type[Exception], ...] = (
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)
CONNECT_SECONDS = 5.0
# Connections per process: every API read takes one for a round trip, the
# log's writer and each side record keep one. Sixteen keep sixteen publishers
# from queueing for a connection; mind PostgreSQL's max_connections (100 by
# default) when running many processes.
POOL_SIZE = 16
COMMAND_SECONDS = 30.0  # a statement slower than this is a stuck server, not a busy one
_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2 …` (those in string literals kept)."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(0) != "?":
            return match.group(0)
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, sql)


def check_schema_name(schema: str) -> str:
    """A schema name safe to put in SQL as it is (lower case, digits, `_`)."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(
            f"SUNBID_DATABASE_SCHEMA: {schema!r} is not a plain lower-case name"
            " (letters, digits and _, at most 63)"
        )
    return schema


@dataclass(frozen=True)
class Result:
    """What an aiosqlite cursor tells after a write: how many rows it touched."""

    rowcount: int


class PgConnection:
    """An asyncpg connection with aiosqlite's calls (one statement at a time)."""

    dialect = "postgresql"

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        status = await self.raw.execute(numbered(sql), *params, timeout=COMMAND_SECONDS)
        tail = status.rsplit(" ", 1)[-1]
        return Result(int(tail) if tail.isdigit() else -1)

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self.raw.fetch(numbered(sql), *params, timeout=COMMAND_SECONDS))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            await self.raw.executemany(numbered(sql), rows, timeout=COMMAND_SECONDS)

    async def executescript(self, script: str) -> None:
        await self.raw.execute(script, timeout=COMMAND_SECONDS)

    @contextlib.asynccontextmanager
    async def transaction(self, isolation: str = "read_committed") -> AsyncIterator[None]:
        async with self.raw.transaction(isolation=isolation):
            yield


def is_postgres(conn: object) -> bool:
    return isinstance(conn, PgConnection)


class Database:
    """A pool of connections to one schema of one PostgreSQL database."""

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = check_schema_name(schema)
        self._pool: asyncpg.Pool | None = None
        self.users = 0  # the store and side records sharing it (pool_for)

    async def open(self, max_size: int = POOL_SIZE) -> None:
        # The schema first, on a connection of its own: the pool's connections
        # name it in their search_path, which must exist for CREATE TABLE.
        conn = await asyncpg.connect(self.url, timeout=CONNECT_SECONDS)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        except asyncpg.UniqueViolationError:  # another process created it meanwhile
            pass
        finally:
            await conn.close()
        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=1,
            max_size=max_size,
            timeout=CONNECT_SECONDS,
            command_timeout=COMMAND_SECONDS,
            server_settings={"search_path": self.schema, "application_name": "sunbid"},
            reset=_reset,
        )

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "database is not open"
        return self._pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[PgConnection]:
        async with self.pool.acquire(timeout=CONNECT_SECONDS) as raw:
            yield PgConnection(raw)

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self.connection() as conn:
            return await conn.execute_fetchall(sql, params)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


# Pools by (event loop, url, schema): a pool belongs to the loop that opened it.
async def _reset(conn: asyncpg.Connection) -> None:
    """Ready a connection for its next user. asyncpg's default resets every
    session setting (a round trip per release: a tenth of a publication's
    server time); nothing here changes one, so only an open transaction (a
    task cancelled inside one) needs ending."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


_open: dict[tuple[int, str, str], Database] = {}
_opening: dict[int, asyncio.Lock] = {}


async def pool_for(url: str, schema: str) -> Database:
    """This process's pool for (url, schema), opened on first use."""
    loop = id(asyncio.get_running_loop())
    async with _opening.setdefault(loop, asyncio.Lock()):
        database = _open.get((loop, url, schema))
        if database is None:
            database = Database(url, schema)
            await database.open()
            _open[(loop, url, schema)] = database
        database.users += 1
        return database


async def release(database: Database) -> None:
    """One user done with `database`; the last one closes the pool."""
    loop = id(asyncio.get_running_loop())
    async with _opening.setdefault(loop, asyncio.Lock()):
        database.users -= 1
        if database.users <= 0:
            _open.pop((loop, database.url, database.schema), None)
            if not any(key[0] == loop for key in _open):
                _opening.pop(loop, None)
            await database.close()


async def schema_version(conn: PgConnection, name: str) -> int | None:
    """The version stamped on record set `name`, None if it was never created."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions"
        " (name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    rows = await conn.execute_fetchall(
        "SELECT version FROM schema_versions WHERE name = ?", (name,)
    )
    return int(rows[0][0]) if rows else None


async def create_schema(conn: PgConnection, name: str, script: str, version: int) -> None:
    """Run `script` (CREATE … IF NOT EXISTS) and stamp a new record set with `version`.

    Serialized across processes by an advisory lock: two processes starting at
    once would otherwise race on CREATE TABLE IF NOT EXISTS (which is not
    atomic in PostgreSQL: the loser gets a unique violation on the catalogue)."""
    async with conn.transaction():
        await conn.raw.execute("SELECT pg_advisory_xact_lock(hashtext('sunbid-schema'))")
        stamped = await schema_version(conn, name)
        await conn.executescript(script)
        if stamped is None:
            await conn.execute(
                "INSERT INTO schema_versions (name, version) VALUES (?, ?)"
                " ON CONFLICT (name) DO NOTHING",
                (name, version),
            )
        elif stamped < version:
            # Only a set whose script upgrades it in place gets here (the
            # versions are checked before anything opens: server/migrations/
            # postgres.py UPGRADED_BY_SCRIPT); the script has just done so.
            await conn.execute(
                "UPDATE schema_versions SET version = ? WHERE name = ?", (version, name)
            )
