"""Per-address limits counted in Redis, so they hold across processes.

With `SUNBID_BUS_URL=redis://…` several processes serve one deployment, and
a limit counted in each process alone would give a client N times its
allowance. Here the streams open per address and the subscription token
buckets live in Redis instead:

- Open streams: a hash per address, one field per process (`node`) holding
  that process's count. Each process refreshes a short-lived key of its own
  (`…:node:<id>`); a process that crashed stops refreshing, and the next
  acquire for that address drops its field, so its slots come back within
  NODE_TTL_SECONDS. The hashes expire too, as a last safety net.
- Token buckets: one small Lua script, timed by Redis's own clock so that
  processes on different machines agree.

Redis must never make a limit the reason a client is refused or a request
waits: every call has a short timeout, and while Redis cannot be reached
the local limiters (server/stream/limits.py, server/ratelimit.py) count
instead: per process, as before (fail open, locally).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from server.core.lease import node_name
from server.ratelimit import RateLimiter
from server.stream.limits import ConnectionLimiter

log = logging.getLogger("sunbid.limits")

TIMEOUT_SECONDS = 0.25  # a limit check that takes longer is not worth the wait
RETRY_SECONDS = 5.0  # after a failure, the local limiters count for this long
NODE_TTL_SECONDS = 30  # a crashed process's slots are freed this long after
HEARTBEAT_SECONDS = 10.0
HASH_TTL_SECONDS = 24 * 3600  # safety net: a counter nobody touched for a day is dropped

ACQUIRE = """
-- KEYS[1]: the address's hash, field per process; ARGV: cap, this process,
-- the prefix of the processes' liveness keys, the hash's time to live.
local held = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #held, 2 do
  local node = held[i]
  if node ~= ARGV[2] and redis.call('EXISTS', ARGV[3] .. node) == 0 then
    redis.call('HDEL', KEYS[1], node)
  else
    total = total + tonumber(held[i + 1])
  end
end
if total >= tonumber(ARGV[1]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

RELEASE = """
-- KEYS[1]: the address's hash; ARGV: this process, slots to give back.
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2]))
if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return left
"""

TAKE = """
-- KEYS[1]: the address's bucket; ARGV: burst, refill seconds. Returns the
-- seconds to wait as a string (Lua numbers come back truncated to integers).
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local burst, refill = tonumber(ARGV[1]), tonumber(ARGV[2])
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(saved[1]) or burst
local stamp = tonumber(saved[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) / refill)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) * refill end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst * refill) + 1)
return tostring(wait)
"""


class SharedLimits:
    """The Redis connection both limiters use, this process's liveness key,
    and when Redis last failed (then the local limiters count for a while)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.redis = Redis.from_url(
            url,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
            # Once, at once, on a dropped connection (a pooled one that a Redis
            # restart closed): not on a timeout, which would double the wait.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self.prefix = f"{prefix}:limits"
        self.node = f"{node_name()}:{secrets.token_hex(4)}"
        self.acquire_script = self.redis.register_script(ACQUIRE)
        self.release_script = self.redis.register_script(RELEASE)
        self.take_script = self.redis.register_script(TAKE)
        self._down_until = 0.0
        self._outage = False
        self._heartbeat: asyncio.Task[None] | None = None
        # The limiters counting here (set as they are made: they refer to this).
        self.streams: SharedConnectionLimiter | None = None
        self.subscriptions: SharedRateLimiter | None = None

    @property
    def node_key(self) -> str:
        return f"{self.prefix}:node:{self.node}"

    def usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, exc: BaseException) -> None:
        if not self._outage:  # once per outage, not once per retry
            log.warning(
                "Redis unreachable for per-address limits (%s); each process counts"
                " its own until it is back",
                exc,
            )
        self._outage = True
        self._down_until = time.monotonic() + RETRY_SECONDS

    async def start(self) -> None:
        await self.beat()
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat_forever())

    async def beat(self) -> None:
        """Say this process lives; give back slots a failed release still owes."""
        try:
            was = await self.redis.set(self.node_key, "1", ex=NODE_TTL_SECONDS, get=True)
            self._down_until = 0.0  # reachable again: count there from now on
            if self._outage:
                log.info("Redis reachable again: per-address limits count across processes")
                self._outage = False
            if self.streams is not None:
                if was is None:
                    # Our liveness key was gone (Redis restarted empty, or we
                    # could not refresh it for NODE_TTL_SECONDS and others
                    # dropped our fields): count again what we still hold.
                    self.streams.recount()
                await self.streams.settle()
        except Exception as exc:  # Redis down: the next beat tries again
            self.failed(exc)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self.beat()

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        with contextlib.suppress(Exception):
            await self.redis.delete(self.node_key)  # our slots free at once
        await self.redis.aclose()


class SharedConnectionLimiter:
    """ConnectionLimiter's interface, counted across processes."""

    def __init__(self, per_address: int, shared: SharedLimits) -> None:
        self.per_address = per_address
        self.shared = shared
        shared.streams = self
        self.local = ConnectionLimiter(per_address)
        # Slots this process holds in Redis, per address: a release goes back
        # where its acquire was counted (Redis, or locally while it was down).
        self._held: Counter[str] = Counter()
        self._owed: Counter[str] = Counter()  # releases Redis has not heard yet
        # Addresses whose acquire timed out: Redis may have counted it or not,
        # so the heartbeat sets this process's field to what it really holds.
        self._unsure: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def key(self, address: str) -> str:
        return f"{self.shared.prefix}:streams:{address}"

    async def acquire(self, address: str) -> bool:
        shared = self.shared
        if shared.usable():
            try:
                allowed = await shared.acquire_script(
                    keys=[self.key(address)],
                    args=[
                        self.per_address,
                        shared.node,
                        f"{shared.prefix}:node:",
                        HASH_TTL_SECONDS,
                    ],
                )
            except asyncio.CancelledError:
                self._unsure.add(address)  # the script may have run: settle() checks
                raise
            except Exception as exc:
                self._unsure.add(address)
                shared.failed(exc)
            else:
                if allowed:
                    self._held[address] += 1
                return bool(allowed)
        return await self.local.acquire(address)

    def release(self, address: str) -> None:
        """Synchronous, as callers release in `finally`: Redis hears it from a task."""
        if self._held[address] <= 0:
            del self._held[address]
            self.local.release(address)
            return
        self._held[address] -= 1
        if self._held[address] <= 0:
            del self._held[address]
        self._owed[address] += 1
        task = asyncio.get_running_loop().create_task(self._give_back(address))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _give_back(self, address: str) -> None:
        count = self._owed.pop(address, 0)
        if count <= 0:
            return
        try:
            await self.shared.release_script(
                keys=[self.key(address)], args=[self.shared.node, count]
            )
        except Exception as exc:
            self._owed[address] += count  # the heartbeat tries again
            self.shared.failed(exc)

    def owed(self, address: str) -> int:
        """Releases of `address` that Redis has not heard yet."""
        return self._owed.get(address, 0)

    def recount(self) -> None:
        """Redis may have lost this process's counts: settle() writes them again."""
        self._unsure.update(self._held)
        self._unsure.update(self._owed)

    async def settle(self) -> None:
        """Bring Redis in line with this process: owed releases, unsure counts."""
        for address in list(self._owed):
            await self._give_back(address)
        node = self.shared.node
        for address in list(self._unsure):
            held = self._held.get(address, 0) + self._owed.get(address, 0)
            if held:
                await self.shared.redis.hset(self.key(address), node, held)
                await self.shared.redis.expire(self.key(address), HASH_TTL_SECONDS)
            else:
                await self.shared.redis.hdel(self.key(address), node)
            self._unsure.discard(address)


class SharedRateLimiter:
    """RateLimiter's `check`, with the buckets in Redis."""

    def __init__(
        self, burst: int, refill_seconds: float, shared: SharedLimits, name: str = "subscribe"
    ) -> None:
        self.burst, self.refill_seconds = burst, refill_seconds
        self.shared = shared
        self.name = name  # what is counted: the keys are <prefix>:<name>:<address>
        self.local = RateLimiter(burst, refill_seconds)

    async def check(self, address: str) -> float:
        shared = self.shared
        if shared.usable():
            try:
                wait = await shared.take_script(
                    keys=[f"{shared.prefix}:{self.name}:{address}"],
                    args=[self.burst, self.refill_seconds],
                )
            except Exception as exc:
                shared.failed(exc)
            else:
                return float(wait)
        return self.local.take(address)


def open_shared_limits(
    bus_url: str, prefix: str, per_address: int, burst: int, refill_seconds: float
) -> SharedLimits | None:
    """The Redis-counted limiters (`.streams`, `.subscriptions`) when the bus
    is Redis, so several processes may serve; None for the one-process memory
    bus, which keeps the local limiters and their speed."""
    if bus_url.partition(":")[0] not in ("redis", "rediss"):
        return None
    shared = SharedLimits(bus_url, prefix)
    SharedConnectionLimiter(per_address, shared)
    shared.subscriptions = SharedRateLimiter(burst, refill_seconds, shared)
    return shared
