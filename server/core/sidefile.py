"""A SQLite file beside the log, for records derived from it (push.db, compliance.db).

One connection, WAL, and `synchronous=NORMAL`: a process crash loses no
committed transaction, and whatever a power cut could lose is derived again
from the log. Transactions go one at a time on the connection, whichever
task starts them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from server.core.versions import create_schema


class SideFile:
    def __init__(self, path: Path, schema: str, version: int) -> None:
        self.path = path
        self._schema = schema
        self.version = version  # stamped on a new file (server/core/versions.py)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000"):
            await self._db.execute(f"PRAGMA {pragma}")
        await create_schema(self._db, self._schema, self.version)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        assert self._db is not None, f"{self.path.name} is not open"
        return self._db

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self.db.execute_fetchall(sql, params))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        # Several tasks share the connection (the push worker's derive, send and
        # flush loops): a transaction must not begin while another is open on it.
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
                await self.db.execute("COMMIT")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
