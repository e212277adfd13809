"""The store's reader connections: a few, so one kind of read cannot starve the rest.

With one reader connection every read queued behind the one before it: eight
clients looping on a filtered event list made a project page wait 150 ms for
a 1 ms query. WAL lets several connections read at once, each in its own
aiosqlite thread (SQLite releases the interpreter lock while it works). Long
reads (replay pages, event lists, project searches) may hold all connections
but one, so a short read (a project, a timeline, a token) finds a free
connection within one short query's time, however many long ones wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite

# Five threads with the writer's, on a machine with two cores: enough to keep
# the cores busy with reads while a long one waits on the disk.
READERS = 4


class Readers:
    def __init__(self, connections: list[aiosqlite.Connection]) -> None:
        self._all = connections
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        for conn in connections:
            self._idle.put_nowait(conn)
        self._long = asyncio.Semaphore(max(1, len(connections) - 1))

    @classmethod
    async def open(cls, path: Path, count: int = READERS) -> Readers:
        connections = []
        try:
            for _ in range(count):
                conn = await aiosqlite.connect(path, isolation_level=None)
                connections.append(conn)
                await conn.execute("PRAGMA busy_timeout=5000")
                await conn.execute("PRAGMA query_only=1")
        except BaseException:
            for conn in connections:
                await conn.close()
            raise
        return cls(connections)

    @contextlib.asynccontextmanager
    async def connection(self, *, long: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        async with self._long if long else contextlib.nullcontext():
            conn = await self._idle.get()
            try:
                yield conn
            finally:
                # Also when cancelled mid-query: the connection's own thread
                # finishes the query before it runs the next one.
                self._idle.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
        self._all = []
