"""The Redis bus and its sequencer: every event once, in order, across processes and outages.

Two `RedisBus` instances on one SQLite log stand for two processes: the first
is the store's (its commits are published through it), the second sees the
log through a view with a `head` of its own, as another process would.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import time
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import redis.asyncio as redis
from websockets.asyncio.client import connect

from server.bus import open_bus
from server.bus.memory import MemoryBus
from server.bus.redis import RedisBus, encode, last_seq, parse
from server.bus.sequencer import Sequencer
from server.core.clock import FrozenClock
from server.core.events import StoredEvent
from server.domain import Domain
from server.projects import open_projects
from server.projects.changes import registration
from server.settings import Settings, SettingsError
from server.store import AppendRequest, open_store
from tests.conftest import ServerProcess, Staff, with_facts
from tests.services import OwnRedis, redis_url, unique_name

TZ = ZoneInfo("Asia/Shanghai")
DOMAIN = Domain.load()
CLOCK = FrozenClock(TZ, datetime(2026, 12, 1, 9, 30, tzinfo=TZ))


def event(seq: int) -> StoredEvent:
    return StoredEvent.from_dict(
        {
            "seq": seq,
            "project": "P-1",
            "category": "construction",
            "agency": "YW-GGZY",
            "region": None,
            "stage": "notice",
        }
    )


class FakeLog:
    """A log of seqs 1..written; reads can be held to let batches arrive meanwhile."""

    def __init__(self, written: int = 0, head: int = 0) -> None:
        self.written = written
        self.head = head
        self.reads = 0
        self.hold: asyncio.Event | None = None
        self.fail = False

    async def events_since(self, since: int, topics: None, limit: int) -> list[StoredEvent]:
        self.reads += 1
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            raise OSError("the database is down")
        return [event(seq) for seq in range(since + 1, min(self.written, since + limit) + 1)]


class Recorder:
    def __init__(self, log: Any) -> None:
        self.log = log
        self.seqs: list[int] = []
        self.heads: list[int] = []
        self.documents: dict[int, bytes] = {}

    def __call__(self, events: Sequence[StoredEvent]) -> None:
        # `head` is set before the subscribers run, to the batch's last seq.
        self.heads.append(self.log.head)
        assert self.log.head == events[-1].seq
        self.seqs.extend(e.seq for e in events)
        self.documents.update((e.seq, e.json) for e in events)


# --- the sequencer ------------------------------------------------------------------------------


async def settle(sequencer: Sequencer) -> None:
    for _ in range(100):
        if not sequencer.filling:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the gap was never filled")


async def test_contiguous_batches_pass_straight_through_and_duplicates_are_dropped() -> None:
    log = FakeLog(written=6)
    seen = Recorder(log)
    sequencer = Sequencer(log, seen)
    sequencer.offer([event(1), event(2)])
    sequencer.offer([event(1), event(2)])  # from Redis, after the local commit
    sequencer.offer([event(2), event(3)])  # overlapping
    sequencer.offer([])
    assert seen.seqs == [1, 2, 3] and seen.heads == [2, 3]
    assert log.reads == 0, "no gap, no read"
    await sequencer.close()


async def test_a_gap_is_read_from_the_log_and_later_batches_wait_for_it() -> None:
    log = FakeLog(written=8)
    seen = Recorder(log)
    sequencer = Sequencer(log, seen, page=3)
    log.hold = asyncio.Event()
    sequencer.offer([event(4)])  # 1..3 missing
    sequencer.offer([event(7), event(8)])  # out of order, arrives during the read
    sequencer.offer([event(5)])
    assert seen.seqs == [], "nothing after a gap is delivered before the gap"
    log.hold.set()
    await settle(sequencer)
    assert seen.seqs == list(range(1, 9))
    assert sequencer.gap_fills == 1 and sequencer.filled_events == 8
    sequencer.offer([event(8), event(9)])  # 9 is not in the log yet: delivered as offered
    assert seen.seqs == list(range(1, 10))
    await sequencer.close()


async def test_a_gap_closed_over_redis_within_the_grace_is_not_read() -> None:
    log = FakeLog(written=3)
    seen = Recorder(log)
    sequencer = Sequencer(log, seen)
    sequencer.offer([event(2), event(3)])  # this process's commit, before the other's 1
    assert seen.seqs == []
    sequencer.offer([event(1)])  # the other's, over Redis a moment later
    assert seen.seqs == [1, 2, 3] and seen.heads == [3]
    await settle(sequencer)
    assert log.reads == 0 and sequencer.gap_fills == 0
    await sequencer.close()


async def test_it_starts_at_the_head_and_a_failed_read_is_retried_by_the_next_batch() -> None:
    log = FakeLog(written=5, head=2)
    seen = Recorder(log)
    sequencer = Sequencer(log, seen)
    sequencer.start()
    log.fail = True
    sequencer.offer([event(5)])
    await settle(sequencer)
    assert seen.seqs == []
    log.fail = False
    sequencer.offer([event(5)])
    await settle(sequencer)
    assert seen.seqs == [3, 4, 5], "events before the head were someone else's to deliver"
    await sequencer.close()


async def test_a_batch_with_a_hole_inside_is_read_from_the_log() -> None:
    log = FakeLog(written=4)
    seen = Recorder(log)
    sequencer = Sequencer(log, seen)
    sequencer.offer([event(1), event(3)])
    await settle(sequencer)
    assert seen.seqs == [1, 2, 3, 4]
    await sequencer.close()


async def test_close_cancels_a_fill_in_progress() -> None:
    log = FakeLog(written=3)
    log.hold = asyncio.Event()
    sequencer = Sequencer(log, Recorder(log))
    sequencer.offer([event(3)])
    assert sequencer.filling
    await sequencer.close()
    assert not sequencer.filling


# --- messages -----------------------------------------------------------------------------------


def test_a_message_round_trips_the_exact_documents() -> None:
    payload = encode([event(1), event(2)])
    assert payload.startswith(b"2\n[") and last_seq(payload) == 2
    parsed = parse(payload)
    assert [e.seq for e in parsed] == [1, 2]
    assert parsed[0] == event(1) and parsed[0].json == event(1).json


@pytest.mark.parametrize(
    "data",
    [
        None,
        123,
        b"",
        b"not json",
        b"{}",
        b"[1]",
        b'[{"seq": 1}]',
        b'[{"seq": "1", "project": "P", "category": "c", "agency": "a", "region": null, '
        b'"stage": "s"}]',
        b'[{"seq": true, "project": "P", "category": "c", "agency": "a", "region": null, '
        b'"stage": "s"}]',
        b'[{"seq": 1, "project": 5, "category": "c", "agency": "a", "region": null, "stage": "s"}]',
        b'[{"seq": 1, "project": "P", "category": "c", "agency": "a", "region": 7, "stage": "s"}]',
        b"1\n[]",
        b"5\n" + event(1).json.join([b"[", b"]"]),  # the seq in front is not the batch's last
        b"1\n" + encode([event(1)]),
        b"[" + event(1).json + b"]",  # no seq in front
    ],
)
def test_a_malformed_message_is_refused_with_a_value_or_type_error(data: Any) -> None:
    with pytest.raises((ValueError, TypeError, KeyError)):
        parse(data)


# --- choosing a bus, settings -------------------------------------------------------------------


async def test_open_bus_chooses_by_scheme_and_the_memory_bus_moves_head() -> None:
    log = FakeLog()
    memory = open_bus("memory://", log)
    assert isinstance(memory, MemoryBus) and memory.problems() == [] and memory.counters() == {}
    seen = Recorder(log)
    memory.subscribe(seen)
    await memory.start()
    memory.publish([event(1), event(2)])
    assert seen.seqs == [1, 2] and log.head == 2
    await memory.close()
    bus = open_bus("redis://127.0.0.1:1/0", log, prefix="x")
    assert isinstance(bus, RedisBus) and bus.channel == "x:events"
    with pytest.raises(ValueError, match="unsupported scheme"):
        open_bus("kafka://somewhere", log)


def test_the_bus_prefix_setting(tmp_path: Path) -> None:
    base = {"SUNBID_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(base).bus_prefix == "sunbid"
    assert Settings.from_env({**base, "SUNBID_BUS_PREFIX": "prod-1"}).bus_prefix == "prod-1"
    for bad in ("", "a b", "x" * 101, "a\nb"):
        with pytest.raises(SettingsError, match="SUNBID_BUS_PREFIX"):
            Settings.from_env({**base, "SUNBID_BUS_PREFIX": bad})
    for good in ("memory://", "redis://127.0.0.1", "redis://h:6380/2", "rediss://u:p@h/0"):
        assert Settings.from_env({**base, "SUNBID_BUS_URL": good}).bus_url == good
    for bad in ("kafka://h", "redis://", "redis://h:port/0", "redis://h:99999", "redis://h/x"):
        with pytest.raises(SettingsError, match="SUNBID_BUS_URL"):
            Settings.from_env({**base, "SUNBID_BUS_URL": bad})


# --- two processes over Redis -------------------------------------------------------------------


class View:
    """Another process's view of the log: the same events, a `head` of its own."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.head = store.head

    async def events_since(self, since: int, topics: None, limit: int) -> list[StoredEvent]:
        result: list[StoredEvent] = await self.store.events_since(since, topics, limit)
        return result


class Deployment:
    def __init__(self, store: Any, url: str, prefix: str) -> None:
        self.store = store
        self.drop = False  # publish to the store without announcing on the bus
        self.a = RedisBus(url, store, prefix)
        self.view = View(store)
        self.b = RedisBus(url, self.view, prefix)
        self.seen_a = Recorder(store)
        self.seen_b = Recorder(self.view)
        self.a.subscribe(self.seen_a)
        self.b.subscribe(self.seen_b)
        store.on_commit(self._publish)
        self.project: dict[str, object] = {}

    def _publish(self, events: Sequence[StoredEvent]) -> None:
        if self.drop:
            self.a.sequencer.offer(events)  # local subscribers still get them
        else:
            self.a.publish(events)

    async def start(self) -> None:
        await self.a.start()
        await self.b.start()
        await until(lambda: self.a.healthy and self.b.healthy, 5)
        project = DOMAIN.project_input(
            {
                "id": "P-1",
                "title": "项目",
                "category": "construction",
                "agency": "YW-GGZY",
                "region": "330782",
            }
        )
        await self.store.append(registration(project))
        self.project = project

    async def publish(self, count: int) -> None:
        body = with_facts("notice", title="公告")
        draft = DOMAIN.event_input(body, "construction", TZ)
        await asyncio.gather(
            *(
                self.store.append(AppendRequest(project=self.project, draft=draft))
                for _ in range(count)
            )
        )

    async def close(self) -> None:
        await self.b.close()
        await self.a.close()


async def until(condition: Callable[[], bool], seconds: float) -> float:
    """Wait for `condition`; the seconds it took."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > seconds:
            raise AssertionError(f"not within {seconds} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - began


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    url = redis_url()
    store = open_store(f"sqlite:///{tmp_path / 'log.db'}", CLOCK)
    open_projects(store, DOMAIN)  # the registration's record, written with the log
    await store.open()
    pair = Deployment(store, url, unique_name("sunbid_test"))
    try:
        await pair.start()
        yield pair
    finally:
        await pair.close()
        await store.close()


def assert_once_in_order(pair: Deployment) -> None:
    head = pair.store.head
    assert pair.seen_a.seqs == list(range(1, head + 1))
    assert pair.seen_b.seqs == list(range(1, head + 1))
    assert pair.seen_b.documents == pair.seen_a.documents, "the exact bytes the store wrote"
    assert pair.view.head == head


async def test_events_published_on_one_process_reach_the_other_once_in_order(
    deployment: Deployment,
) -> None:
    for _ in range(5):
        await deployment.publish(40)
    await until(lambda: len(deployment.seen_b.seqs) == 201, 5)
    await asyncio.sleep(0.1)  # and nothing more arrives
    assert_once_in_order(deployment)
    assert deployment.b.received > 0, "they came over Redis"
    assert deployment.b.sequencer.gap_fills == 0 and deployment.b.polls_found == 0


async def test_a_dropped_message_is_filled_from_the_log(deployment: Deployment) -> None:
    await until(lambda: deployment.seen_b.seqs == [1], 5)
    deployment.drop = True
    await deployment.publish(1)
    deployment.drop = False
    await deployment.publish(1)  # B sees seq 3 after 1: reads 2 from the log
    await until(lambda: len(deployment.seen_b.seqs) == 3, 1)
    assert deployment.b.sequencer.gap_fills == 1
    # The last message dropped: no later batch shows the gap, a poll finds it.
    deployment.drop = True
    await deployment.publish(1)
    took = await until(lambda: len(deployment.seen_b.seqs) == 4, 3)
    assert took < 2.5 and deployment.b.polls_found >= 1
    assert_once_in_order(deployment)
    counters = deployment.b.counters()
    assert counters["sunbid_bus_gap_fills"][1] == 1
    assert counters["sunbid_bus_polls_found"][1] == deployment.b.polls_found


async def test_a_malformed_message_is_ignored(deployment: Deployment) -> None:
    client = redis.from_url(redis_url())
    try:
        await client.publish(deployment.b.channel, b"garbage")
        await client.publish(deployment.b.channel, orjson.dumps([{"seq": 99}]))
        await until(lambda: deployment.b.bad_messages == 2, 3)
    finally:
        await client.aclose()
    await deployment.publish(3)
    await until(lambda: len(deployment.seen_b.seqs) == 4, 3)
    assert_once_in_order(deployment)


async def test_with_redis_down_delivery_goes_on_from_the_database(tmp_path: Path) -> None:
    own = OwnRedis().start()
    store = open_store(f"sqlite:///{tmp_path / 'log.db'}", CLOCK)
    open_projects(store, DOMAIN)  # the registration's record, written with the log
    await store.open()
    pair = Deployment(store, own.url, unique_name("sunbid_test"))
    try:
        await pair.start()
        await pair.publish(10)
        await until(lambda: len(pair.seen_b.seqs) == 11, 5)

        own.stop()
        await until(lambda: pair.b.problems() == ["bus_unreachable"], 5)
        await pair.publish(10)
        took = await until(lambda: len(pair.seen_b.seqs) == 21, 5)
        assert took < 5 and pair.b.polls_found >= 1
        await pair.publish(5)  # still down: the next ones come the same way
        await until(lambda: len(pair.seen_b.seqs) == 26, 5)

        own.start()  # the same port
        await until(lambda: pair.a.healthy and pair.b.healthy, 10)
        assert pair.b.problems() == [] and pair.a.problems() == []
        received = pair.b.received
        await pair.publish(10)
        await until(lambda: len(pair.seen_b.seqs) == 36, 5)
        assert pair.b.received > received, "Redis carries them again"
        assert_once_in_order(pair)
    finally:
        await pair.close()
        await store.close()
        own.stop()
    left = [t for t in asyncio.all_tasks() if t.get_name().startswith("sunbid-bus")]
    assert left == [], "close() leaves no task behind"


async def test_with_redis_hung_delivery_goes_on_from_the_database(tmp_path: Path) -> None:
    """A Redis that accepts nothing and answers nothing (stopped, or a network
    that drops packets): no error comes, only silence, and the polls carry on."""
    own = OwnRedis().start()
    store = open_store(f"sqlite:///{tmp_path / 'log.db'}", CLOCK)
    open_projects(store, DOMAIN)
    await store.open()
    pair = Deployment(store, own.url, unique_name("sunbid_test"))
    try:
        await pair.start()
        await until(lambda: len(pair.seen_b.seqs) == 1, 5)
        assert own.process is not None
        own.process.send_signal(signal.SIGSTOP)
        try:
            await pair.publish(5)
            took = await until(lambda: len(pair.seen_b.seqs) == 6, 5)
            assert took < 5
            await until(lambda: pair.a.problems() == ["bus_unreachable"], 5)  # its send timed out
            # B only listens: its ping goes unanswered (3 s of silence, 2 s to answer).
            await until(lambda: pair.b.problems() == ["bus_unreachable"], 10)
            await pair.publish(2)
            await until(lambda: len(pair.seen_b.seqs) == 8, 5)
        finally:
            own.process.send_signal(signal.SIGCONT)
        await until(lambda: pair.a.healthy and pair.b.healthy, 10)
        await pair.publish(5)
        await until(lambda: len(pair.seen_b.seqs) == 13, 5)
        assert_once_in_order(pair)
    finally:
        await pair.close()
        await store.close()
        own.stop()
        # A command cut off by the stopped server can leave redis-py a socket it
        # never closes; collected here, its warning is not blamed on a later test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


async def test_close_leaves_no_task_behind(deployment: Deployment) -> None:
    await deployment.publish(3)
    await deployment.close()
    await deployment.close()  # twice is harmless
    left = [t for t in asyncio.all_tasks() if t.get_name().startswith("sunbid-bus")]
    assert left == []
    deployment.a.publish(await deployment.store.events_since(0, None, 10))  # after close: ignored


# --- the server on a Redis bus ------------------------------------------------------------------


async def test_a_server_on_a_redis_bus_streams_on_and_reports_the_outage(tmp_path: Path) -> None:
    own = OwnRedis().start()
    server = ServerProcess(
        tmp_path / "data", SUNBID_BUS_URL=own.url, SUNBID_BUS_PREFIX=unique_name("bus")
    ).start()
    staff = Staff(server, server.token("admin-test"))
    try:
        staff.project("P-1")
        async with connect(server.ws_url + "?topics=all&since=0") as ws:

            async def next_seqs(count: int) -> list[int]:
                seqs: list[int] = []
                while len(seqs) < count:
                    message = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                    if message["op"] == "event":
                        seqs.append(message["event"]["seq"])
                return seqs

            assert await next_seqs(1) == [1]
            own.stop()
            began = time.monotonic()
            while staff.client.get("/readyz").json().get("degraded") != ["bus_unreachable"]:
                assert time.monotonic() - began < 5, "the outage is reported within 5 s"
                await asyncio.sleep(0.1)
            assert staff.client.get("/readyz").status_code == 200, "degraded, still serving"
            staff.publish("P-1")
            assert await next_seqs(1) == [2]
            own.start()
            began = time.monotonic()
            while "degraded" in staff.client.get("/readyz").json():
                assert time.monotonic() - began < 10, "Redis is used again"
                await asyncio.sleep(0.1)
            staff.publish("P-1")
            assert await next_seqs(1) == [3]
        metrics = staff.client.get("/metrics").text
        assert "\nsunbid_bus_messages_dropped_total 1.0\n" in metrics, "the one sent while down"
        assert "\nsunbid_bus_messages_received_total " in metrics
    finally:
        staff.client.close()
        server.stop()
        own.stop()
