"""Per-address limits counted in Redis (server/shared_limits.py): two limiter
instances stand for two processes; each test uses a prefix of its own on the
shared Redis, and a redis-server of its own for the fault."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from server.shared_limits import (
    SharedConnectionLimiter,
    SharedLimits,
    SharedRateLimiter,
    open_shared_limits,
)
from tests.services import OwnRedis, redis_url, unique_name


@pytest.fixture
async def processes() -> AsyncIterator[list[SharedLimits]]:
    """Two 'processes' (SharedLimits with node ids of their own) on one prefix."""
    url, prefix = redis_url(), unique_name("sunbid_test")
    opened = [SharedLimits(url, prefix), SharedLimits(url, prefix)]
    for shared in opened:
        await shared.start()
    yield opened
    for shared in opened:
        await shared.close()
    cleanup = Redis.from_url(url)
    keys = [key async for key in cleanup.scan_iter(f"{prefix}:*")]
    if keys:
        await cleanup.delete(*keys)
    await cleanup.aclose()


async def settled() -> None:
    """Let the release tasks reach Redis."""
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_two_processes_share_one_cap_per_address(processes: list[SharedLimits]) -> None:
    one = SharedConnectionLimiter(3, processes[0])
    two = SharedConnectionLimiter(3, processes[1])
    assert await one.acquire("10.0.0.1")
    assert await two.acquire("10.0.0.1")
    assert await one.acquire("10.0.0.1")
    assert not await two.acquire("10.0.0.1"), "3 open across both processes: the cap"
    assert not await one.acquire("10.0.0.1")
    assert await two.acquire("10.0.0.2"), "another address has its own count"
    one.release("10.0.0.1")
    await settled()
    assert await two.acquire("10.0.0.1"), "a slot freed in one process serves the other"
    assert not await one.acquire("10.0.0.1")


async def test_a_crashed_process_frees_its_slots(processes: list[SharedLimits]) -> None:
    one = SharedConnectionLimiter(2, processes[0])
    two = SharedConnectionLimiter(2, processes[1])
    assert await one.acquire("10.0.0.1") and await one.acquire("10.0.0.1")
    assert not await two.acquire("10.0.0.1")
    # The process dies without releasing: its liveness key expires.
    await processes[0].redis.delete(processes[0].node_key)
    assert await two.acquire("10.0.0.1"), "the dead process's slots are no longer counted"


async def test_a_process_back_after_its_key_expired_counts_its_slots_again(
    processes: list[SharedLimits],
) -> None:
    """A live process that could not refresh its key for 30 s had its fields
    dropped by the others; its next heartbeat writes what it holds again."""
    one = SharedConnectionLimiter(2, processes[0])
    two = SharedConnectionLimiter(2, processes[1])
    assert await one.acquire("10.0.0.1") and await one.acquire("10.0.0.1")
    await processes[0].redis.delete(processes[0].node_key)
    assert await two.acquire("10.0.0.1"), "counted as dead meanwhile (fails open)"
    await processes[0].beat()
    assert await processes[0].redis.hget(one.key("10.0.0.1"), processes[0].node) == b"2"
    assert not await two.acquire("10.0.0.1"), "its two streams count again"
    one.release("10.0.0.1")
    one.release("10.0.0.1")
    two.release("10.0.0.1")
    await settled()
    assert await processes[0].redis.exists(one.key("10.0.0.1")) == 0, "all given back"


async def test_counts_survive_a_redis_restart_that_lost_them() -> None:
    own = OwnRedis().start()
    prefix = unique_name("sunbid_test")
    one, two = SharedLimits(own.url, prefix), SharedLimits(own.url, prefix)
    try:
        await one.start()
        await two.start()
        first = SharedConnectionLimiter(2, one)
        second = SharedConnectionLimiter(2, two)
        assert await first.acquire("10.0.0.1") and await first.acquire("10.0.0.1")
        own.stop()
        own.start()  # empty: every count and liveness key is gone
        await one.beat()
        await two.beat()
        assert not await second.acquire("10.0.0.1"), "the first's streams are counted again"
    finally:
        own.stop()
        await one.close()
        await two.close()


async def test_release_after_redis_lost_its_data_does_not_go_negative(
    processes: list[SharedLimits],
) -> None:
    one = SharedConnectionLimiter(1, processes[0])
    assert await one.acquire("10.0.0.1")
    await processes[0].redis.delete(one.key("10.0.0.1"))  # Redis restarted empty
    one.release("10.0.0.1")
    await settled()
    assert await one.acquire("10.0.0.1")
    assert not await one.acquire("10.0.0.1"), "the cap still holds"


async def test_token_bucket_is_shared(processes: list[SharedLimits]) -> None:
    one = SharedRateLimiter(2, 1000, processes[0])
    two = SharedRateLimiter(2, 1000, processes[1])
    assert await one.check("10.0.0.1") == 0
    assert await two.check("10.0.0.1") == 0
    wait = await one.check("10.0.0.1")
    assert 900 < wait <= 1000, "the burst of 2 is spent across both processes"
    assert await two.check("10.0.0.1") > 0
    assert await two.check("10.0.0.9") == 0


async def test_token_bucket_refills(processes: list[SharedLimits]) -> None:
    limiter = SharedRateLimiter(1, 0.2, processes[0])
    assert await limiter.check("10.0.0.1") == 0
    assert await limiter.check("10.0.0.1") > 0
    await asyncio.sleep(0.25)
    assert await limiter.check("10.0.0.1") == 0


async def test_redis_down_counts_locally_without_waiting() -> None:
    own = OwnRedis().start()
    shared = SharedLimits(own.url, unique_name("sunbid_test"))
    try:
        await shared.start()
        streams = SharedConnectionLimiter(2, shared)
        rate = SharedRateLimiter(1, 1000, shared)
        assert await streams.acquire("10.0.0.1")  # counted in Redis
        own.stop()
        began = time.monotonic()
        assert await streams.acquire("10.0.0.1"), "fails open: the local count is 0"
        assert await streams.acquire("10.0.0.1")
        assert not await streams.acquire("10.0.0.1"), "the local cap holds meanwhile"
        assert await rate.check("10.0.0.1") == 0
        assert await rate.check("10.0.0.1") > 0, "the local bucket holds meanwhile"
        assert time.monotonic() - began < 2, "Redis down never makes a client wait long"
        # Each release goes back where its slot was counted: the Redis one is
        # owed until Redis is back, the local ones free the local count.
        for _ in range(3):
            streams.release("10.0.0.1")
        await settled()
        assert streams.owed("10.0.0.1") == 1
        assert await streams.local.acquire("10.0.0.1")
        assert await streams.local.acquire("10.0.0.1")
    finally:
        own.stop()
        await shared.close()


async def test_a_hung_redis_costs_one_short_timeout_then_counts_locally() -> None:
    """A Redis that accepts but never answers (stopped with SIGSTOP): the
    first call waits out the 0.25 s timeout, the next ones count locally
    at once, and Redis is tried again once it answers."""
    own = OwnRedis().start()
    shared = SharedLimits(own.url, unique_name("sunbid_test"))
    try:
        await shared.start()
        streams = SharedConnectionLimiter(1, shared)
        rate = SharedRateLimiter(1, 1000, shared)
        assert own.process is not None
        own.process.send_signal(signal.SIGSTOP)
        began = time.monotonic()
        assert await streams.acquire("10.0.0.1"), "fails open to the local count"
        assert time.monotonic() - began < 0.6, "one short timeout, not a long wait"
        began = time.monotonic()
        assert not await streams.acquire("10.0.0.1"), "the local cap of 1 holds"
        assert await rate.check("10.0.0.1") == 0
        assert await rate.check("10.0.0.1") > 0
        assert time.monotonic() - began < 0.2, "no Redis round trip (0.25 s each) while it is down"
        own.process.send_signal(signal.SIGCONT)
        await shared.beat()
        assert shared.usable()
        assert await streams.acquire("10.0.0.2"), "counted in Redis again"
        assert await shared.redis.hget(streams.key("10.0.0.2"), shared.node) == b"1"
    finally:
        if own.process is not None:
            own.process.send_signal(signal.SIGCONT)
        own.stop()
        await shared.close()


async def test_owed_releases_reach_redis_when_it_is_back() -> None:
    own = OwnRedis().start()
    shared = SharedLimits(own.url, unique_name("sunbid_test"))
    try:
        await shared.start()
        streams = SharedConnectionLimiter(1, shared)
        assert await streams.acquire("10.0.0.1")
        own.stop()
        streams.release("10.0.0.1")
        await settled()
        assert streams.owed("10.0.0.1") == 1
        own.start()  # an empty Redis on the same port
        await shared.beat()  # what the heartbeat does every few seconds
        assert streams.owed("10.0.0.1") == 0
    finally:
        own.stop()
        await shared.close()


async def test_only_a_redis_bus_shares_limits() -> None:
    assert open_shared_limits("memory://", "sunbid", 4, 4, 1.0) is None
    shared = open_shared_limits("redis://127.0.0.1:1/0", "sunbid", 4, 5, 1.0)
    assert shared is not None and shared.streams is not None
    assert shared.subscriptions is not None
    assert shared.streams.per_address == 4 and shared.subscriptions.burst == 5
    await shared.redis.aclose()


async def test_a_count_left_unsure_by_a_failed_acquire_is_corrected() -> None:
    """An acquire that fails may still have been counted by Redis (a timeout
    after the script ran): the heartbeat sets this process's count to what it
    holds, so no slot leaks for as long as the process lives."""
    own = OwnRedis().start()
    shared = SharedLimits(own.url, unique_name("sunbid_test"))
    try:
        await shared.start()
        streams = SharedConnectionLimiter(2, shared)
        assert await streams.acquire("10.0.0.1")  # held in Redis
        own.stop()
        assert await streams.acquire("10.0.0.2")  # counted locally; Redis unsure
        own.start()
        await shared.redis.hset(streams.key("10.0.0.2"), shared.node, 5)  # as if counted
        await shared.beat()
        assert await shared.redis.hget(streams.key("10.0.0.2"), shared.node) is None
        other = SharedLimits(own.url, shared.prefix.removesuffix(":limits"))
        try:
            await other.start()
            rival = SharedConnectionLimiter(2, other)
            assert await rival.acquire("10.0.0.2") and await rival.acquire("10.0.0.2")
        finally:
            await other.close()
    finally:
        own.stop()
        await shared.close()
