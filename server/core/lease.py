"""A lease in the database: which one of several processes does a job alone.

Some background work must run in exactly one process of a deployment (the
compliance watchdog's writes). The processes share only the database, so the
turn is a row there: `leases(name, holder, expires_at)`. A candidate takes
the row when it is free or expired, the holder extends it, both in one
statement whose `RETURNING` says who holds it now. Time is the database's
`now()`, never a process clock: two machines whose clocks disagree still
agree on who holds the lease.

The holder renews every `renew` seconds, well inside `ttl`; a candidate
tries every `retry` seconds. A holder that dies stops renewing, and a
candidate takes over at most `ttl + retry` seconds later. A holder that
cannot renew (the database is unreachable, the process stalled) counts
itself out as soon as the last renewal it saw succeed is `ttl - margin` old,
by its own monotonic clock, started before that renewal was sent: by then
nobody else can have taken the row yet, so two holders never overlap.
Writers that must never overlap also check the row inside their own
transaction (`FENCE`), which holds it for them until they commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

from server.core import pg

log = logging.getLogger("sunbid.lease")

SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,      -- "<host>:<pid>"
    expires_at TIMESTAMPTZ NOT NULL -- by the database's clock
);
"""
SCHEMA_VERSION = 1
TAKE = """
INSERT INTO leases (name, holder, expires_at)
VALUES (?, ?, now() + make_interval(secs => ?))
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leases.holder = excluded.holder OR leases.expires_at < now()
RETURNING holder
"""
RELEASE = "DELETE FROM leases WHERE name = ? AND holder = ?"
HOLDER = "SELECT holder FROM leases WHERE name = ? AND expires_at >= now()"
# Inside a writer's transaction: the row is still ours, and stays so until the
# commit (a taker's UPDATE waits for the share lock).
FENCE = "SELECT 1 FROM leases WHERE name = ? AND holder = ? AND expires_at > now() FOR SHARE"

TTL = 10.0
RENEW = 3.0
RETRY = 2.0
MARGIN = 1.0  # counted out this long before the row would expire


class LeaseLost(Exception):
    """A write fenced by the lease found it held by another (or expired)."""


def node_name() -> str:
    """This process as a lease holder (and /healthz's `node`): host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Lease:
    """One named lease, taken and renewed in the background.

    `on_change(active)` is called (on the event loop) whenever this process
    starts or stops holding it; `active` says whether it holds it now.
    """

    def __init__(
        self,
        url: str,
        schema: str,
        name: str,
        *,
        holder: str | None = None,
        ttl: float = TTL,
        renew: float = RENEW,
        retry: float = RETRY,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        if not 0 < renew < ttl - MARGIN or retry <= 0:
            raise ValueError("a lease is renewed more often than it expires")
        self.url = url
        self.schema = schema
        self.name = name
        self.holder = holder or node_name()
        self.ttl = ttl
        self.renew = renew
        self.retry = retry
        self.on_change = on_change
        self._database: pg.Database | None = None
        self._valid_until = 0.0  # loop time: ours until then, if it was renewed
        self._held = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def active(self) -> bool:
        return self._held and asyncio.get_running_loop().time() < self._valid_until

    async def open(self) -> None:
        """Create the table, try once (so a lone process is active at once),
        then keep trying or renewing in the background."""
        self._database = await pg.pool_for(self.url, self.schema)
        try:
            async with self._database.connection() as conn:
                await pg.create_schema(conn, "leases", SCHEMA, SCHEMA_VERSION)
        except BaseException:
            await self._release_pool()
            raise
        await self._attempt()
        self._task = asyncio.create_task(self._run(), name=f"lease-{self.name}")

    async def close(self) -> None:
        """Stop renewing and give the lease up, so another takes over at once."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        was_held = self._held
        self._set(False)
        if was_held and self._database is not None:
            with contextlib.suppress(Exception):
                async with self._database.connection() as conn:
                    await conn.execute(RELEASE, (self.name, self.holder))
        await self._release_pool()

    def abandon(self) -> None:
        """Stop renewing without giving the lease up: as if the process died
        (it expires after `ttl`). For tests of a takeover."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
        self._set(False)

    async def current_holder(self) -> str | None:
        assert self._database is not None, "lease is not open"
        rows = await self._database.rows(HOLDER, (self.name,))
        return str(rows[0][0]) if rows else None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            pause = self.renew if self._held else self.retry
            if self._held:
                # Renew in time even if the last renewal was late.
                left = self._valid_until - asyncio.get_running_loop().time() - MARGIN
                pause = max(0.0, min(pause, left - self.renew / 2))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)
            if self._stopping.is_set():
                break
            await self._attempt()

    async def _attempt(self) -> None:
        assert self._database is not None
        loop = asyncio.get_running_loop()
        sent = loop.time()
        try:
            async with self._database.connection() as conn:
                rows = await asyncio.wait_for(
                    conn.execute_fetchall(TAKE, (self.name, self.holder, self.ttl)),
                    max(0.5, self.ttl - MARGIN - self.renew),
                )
        except Exception as exc:
            if self._held and loop.time() >= self._valid_until:
                log.warning("lease %s: could not be renewed (%s); not active", self.name, exc)
            elif not self._held:
                log.debug("lease %s: could not be tried: %s", self.name, exc)
            self._set(self._held and loop.time() < self._valid_until)
            return
        if rows:
            self._valid_until = sent + self.ttl - MARGIN
            self._set(True)
        else:
            if self._held:
                log.warning("lease %s: taken by another process; not active", self.name)
            self._set(False)

    def _set(self, held: bool) -> None:
        if held == self._held:
            return
        self._held = held
        if not held:
            self._valid_until = 0.0
        log.info("lease %s: %s %s", self.name, self.holder, "active" if held else "standing by")
        if self.on_change is not None:
            self.on_change(held)

    async def _release_pool(self) -> None:
        if self._database is not None:
            database, self._database = self._database, None
            await pg.release(database)
