"""The store's reader connections: a few, so one kind of read cannot starve the rest.

With one reader connection every read queued behind the one before it: eight
clients looping on a filtered event list made a project page wait 150 ms for
a 1 ms query. WAL lets several connections read at once, each in its own
aiosqlite thread (SQLite releases the interpreter lock while it works).

Short reads (a project, a timeline, a token) all go to one connection of
their own, queued in its thread as before: none of them waits behind a long
read, and they keep to one thread (more threads taking turns at the
interpreter lock cost the publishing path a tenth of its throughput). Long
reads (replay pages, event lists, project searches) share the others.
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
        self.short = connections[0]  # for short reads: aiosqlite queues them in order
        # Last in, first out: one reader after another gets the connection whose
        # page cache is warm, rather than each in turn a cold one.
        self._idle: asyncio.LifoQueue[aiosqlite.Connection] = asyncio.LifoQueue()
        for conn in connections[1:] or connections:  # with one, it serves both kinds
            self._idle.put_nowait(conn)

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
    async def long(self) -> AsyncIterator[aiosqlite.Connection]:
        """A connection for a long read, held until the read is done."""
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
