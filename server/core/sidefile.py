"""The records derived from the log that are kept beside it (push queue, compliance).

On one machine each is a SQLite file of the data directory (push.db,
compliance.db): one connection, WAL, and `synchronous=NORMAL`: a process
crash loses no committed transaction, and whatever a power cut could lose is
derived again from the log. Transactions go one at a time on the
connection, whichever task starts them.

With `SUNBID_DATABASE_URL=postgresql://…` the same tables live in the log's
schema, shared by every process: one connection of the process's pool is
kept for this record's transactions (taken one at a time, as with SQLite),
and reads go to the pool, so they never wait behind a transaction. The SQL
is the same wherever the engines agree (server/core/pg.py); a record names a
PostgreSQL script for its tables.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from server.core import pg
from server.core.versions import create_schema


class SideFile:
    def __init__(
        self,
        path: Path,
        schema: str,
        version: int,
        *,
        name: str = "",
        postgres_schema: str = "",
        database_url: str = "",
        database_schema: str = "public",
    ) -> None:
        self.path = path
        self._schema = schema
        self.version = version  # stamped on a new file (server/core/versions.py)
        self.name = name or path.stem  # its record set in PostgreSQL's schema_versions
        self._postgres_script = postgres_schema
        # PostgreSQL when the log is there: every process shares these records.
        self.postgres = database_url.startswith(("postgresql:", "postgres:"))
        self._database_url = database_url
        self._database_schema = database_schema
        self._db: aiosqlite.Connection | pg.PgConnection | None = None
        self._database: pg.Database | None = None
        self._held: Any = None  # PostgreSQL: the pool connection kept for transactions
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self.postgres:
            await self._open_postgres()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sqlite = await aiosqlite.connect(self.path, isolation_level=None)
        self._db = sqlite
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000"):
            await sqlite.execute(f"PRAGMA {pragma}")
        await create_schema(sqlite, self._schema, self.version)

    async def _open_postgres(self) -> None:
        assert self._postgres_script, f"{self.name} has no PostgreSQL schema"
        self._database = await pg.pool_for(self._database_url, self._database_schema)
        try:
            self._held = await self._database.pool.acquire(timeout=pg.CONNECT_SECONDS)
            self._db = pg.PgConnection(self._held)
            await pg.create_schema(self._db, self.name, self._postgres_script, self.version)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._database is not None:
            database, self._database = self._database, None
            if self._held is not None:
                with contextlib.suppress(Exception):
                    await database.pool.release(self._held, timeout=1)
                self._held = None
            self._db = None
            await pg.release(database)
        elif self._db is not None:
            assert isinstance(self._db, aiosqlite.Connection)
            await self._db.close()
        self._db = None

    @property
    def db(self) -> Any:
        """The connection transactions run on (aiosqlite, or PgConnection)."""
        assert self._db is not None, f"{self.path.name} is not open"
        return self._db

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._database is not None:
            return await self._database.rows(sql, params)
        return list(await self.db.execute_fetchall(sql, params))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        # Several tasks share the connection (the push worker's derive, send and
        # flush loops): a transaction must not begin while another is open on it.
        async with self._lock:
            if isinstance(self._db, pg.PgConnection):
                async with self._db.transaction():
                    yield
                return
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
