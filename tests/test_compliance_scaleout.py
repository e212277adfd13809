"""The watchdog on PostgreSQL: its records on both engines, its replay of a
PostgreSQL log, and the lease that makes exactly one process store warnings
while every process keeps the watchdog in memory.

Two Compliance instances on one schema, each with its own store (and pool
user), stand for two processes; a shared in-memory bus stands for Redis.
The real-process version (SIGKILL of the active `sunbid serve`) needs the
Redis bus and skips without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from server.bus import Bus
from server.bus.memory import MemoryBus
from server.compliance import logread
from server.compliance.derived import ComplianceRecord
from server.compliance.records import Progress, Snapshot, WarningStore
from server.compliance.service import Compliance
from server.compliance.watchdog import Alert, Level
from server.core import lease as leases
from server.core.clock import FrozenClock
from server.projects import open_projects
from server.settings import Settings
from server.store import open_store
from tests.conftest import CLOSED, Staff
from tests.services import postgres_schema
from tests.test_compliance_service import DOMAIN, START, TZ, Server, wait_for

TAKEOVER_SECONDS = 15.0  # the contract: another process takes over within 15 s


# --- WarningStore: one contract, both engines ----------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def warning_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            store = WarningStore(tmp_path / "compliance.db")
        else:
            url, schema = stack.enter_context(postgres_schema())
            store = WarningStore(
                tmp_path / "compliance.db", database_url=url, database_schema=schema
            )
        await store.open()
        try:
            yield store
        finally:
            await store.close()


def alert(rule: Any, number: int, *, level: Level = Level.BREACH, **fields: Any) -> Alert:
    created = START + timedelta(hours=number)
    values: dict[str, Any] = {
        "id": f"{rule.id}/P-{number}/{number}/{level}",
        "rule": rule,
        "project": f"P-{number}",
        "agency": "YW-GGZY" if number % 2 else "JH-GGZY",
        "category": "construction",
        "level": level,
        "due": created,
        "message": "过期",
        "created_at": created,
        **fields,
    }
    return Alert(**values)


@pytest.fixture
def rule() -> Any:
    settings = Settings.from_env({"SUNBID_DATA_DIR": "/nonexistent"})
    compliance = Compliance.load(settings, DOMAIN, FrozenClock(TZ, START), lambda w: None)
    return next(iter(compliance.rules))


async def test_warning_store_upserts_resolves_once_lists_and_pages(
    warning_store: WarningStore, rule: Any
) -> None:
    assert await warning_store.progress() is None and await warning_store.snapshot() is None
    open_ones = [alert(rule, n) for n in range(1, 6)]
    await warning_store.save(open_ones, Progress(7, START))
    await warning_store.save(open_ones[:2], Progress(8, START))  # again: nothing doubles
    assert await warning_store.count() == 5
    assert await warning_store.progress() == Progress(8, START)

    resolved_at = START + timedelta(days=2)
    resolved = alert(rule, 1, resolved_at=resolved_at)
    await warning_store.save([resolved])
    # An unresolved version written later (a standby's older copy) does not undo it.
    await warning_store.save([alert(rule, 1)])
    assert await warning_store.open_by_level() == {"breach": 4}
    facts = await warning_store.all_facts()
    assert [f[0] for f in facts] == sorted(a.id for a in open_ones)
    assert [f[5] for f in facts] == [True, False, False, False, False]

    docs, cursor = await warning_store.list({}, None, None, 2)
    assert [orjson.loads(d)["project"] for d in docs] == ["P-5", "P-4"]
    assert cursor is not None
    seen = [orjson.loads(d)["project"] for d in docs]
    while cursor is not None:
        docs, cursor = await warning_store.list({}, None, cursor, 2)
        seen += [orjson.loads(d)["project"] for d in docs]
    assert seen == ["P-5", "P-4", "P-3", "P-2", "P-1"]
    docs, _ = await warning_store.list({"agency": "YW-GGZY"}, "open", None, 10)
    assert [orjson.loads(d)["project"] for d in docs] == ["P-5", "P-3"]
    docs, _ = await warning_store.list({}, "resolved", None, 10)
    assert [orjson.loads(d)["resolved_at"] for d in docs] == ["2026-03-04T10:00:00.000+08:00"]
    for bad in ("", "not a cursor", "WzEsMl0=", "!!!"):
        with pytest.raises(ValueError):
            await warning_store.list({}, None, bad, 10)


async def test_warning_store_keeps_one_snapshot_and_replaces_on_rebuild(
    warning_store: WarningStore, rule: Any
) -> None:
    state = bytes(range(256)) * 10  # binary, not text
    await warning_store.save([alert(rule, 1)], Progress(3, START), Snapshot(3, "f1", "c3", state))
    await warning_store.save([], Progress(9, START), Snapshot(9, "f2", "c9", b"\x00"))
    assert await warning_store.snapshot() == Snapshot(9, "f2", "c9", b"\x00")
    await warning_store.save([alert(rule, 2)], Progress(10, START), replace=True)
    assert [f[0] for f in await warning_store.all_facts()] == [alert(rule, 2).id]
    assert await warning_store.snapshot() is None
    assert await warning_store.progress() == Progress(10, START)
    await warning_store.clear()
    assert await warning_store.count() == 0 and await warning_store.progress() is None


# --- the lease ------------------------------------------------------------------------------


@pytest.fixture
def database() -> Iterator[tuple[str, str]]:
    with postgres_schema() as pair:
        yield pair


async def expire(database: tuple[str, str]) -> None:
    """The holder's time is up (as if it had stopped renewing long ago)."""
    conn = await asyncpg.connect(database[0])
    try:
        await conn.execute(
            f"UPDATE \"{database[1]}\".leases SET expires_at = now() - interval '1 second'"
        )
    finally:
        await conn.close()


async def test_one_holder_at_a_time_and_a_lost_lease_fences_its_writes(
    database: tuple[str, str], tmp_path: Path, rule: Any
) -> None:
    url, schema = database
    changes: list[tuple[str, bool]] = []
    a = leases.Lease(url, schema, "job", holder="a:1", on_change=lambda h: changes.append(("a", h)))
    b = leases.Lease(url, schema, "job", holder="b:2", on_change=lambda h: changes.append(("b", h)))
    await a.open()
    await b.open()
    records = WarningStore(tmp_path / "x.db", database_url=url, database_schema=schema)
    await records.open()
    try:
        assert a.active and not b.active
        assert await b.current_holder() == "a:1"
        records.fence = ("job", "a:1")
        await records.save([alert(rule, 1)])  # a holds it: written

        a.abandon()  # stops renewing, the row stays until it expires
        await expire(database)
        took = await wait_for(_true(lambda: b.active), leases.RETRY + 1, "b takes over")
        assert took <= leases.RETRY + 1
        assert await a.current_holder() == "b:2"
        with pytest.raises(leases.LeaseLost):  # a's late write is refused
            await records.save([alert(rule, 2)])
        assert await records.count() == 1
        records.fence = ("job", "b:2")
        await records.save([alert(rule, 2)])
        assert await records.count() == 2

        await b.close()  # given up: free for the next at once
        assert await a.current_holder() is None
        assert changes == [("a", True), ("a", False), ("b", True), ("b", False)]
    finally:
        await records.close()
        await a.close()
        await b.close()


async def test_a_holder_that_cannot_renew_counts_itself_out_before_it_expires(
    database: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, schema = database
    changes: list[bool] = []
    held = leases.Lease(url, schema, "job", holder="a:1", ttl=3, renew=1, retry=0.5)
    held.on_change = changes.append
    await held.open()
    try:
        assert held.active
        began = asyncio.get_running_loop().time()
        assert held._database is not None

        @contextlib.asynccontextmanager
        async def unreachable() -> AsyncIterator[Any]:
            raise OSError("the database is unreachable")
            yield

        monkeypatch.setattr(held._database, "connection", unreachable)
        await wait_for(_true(lambda: not held.active), 3, "counted out")
        # Out before the row's expiry (3 s after its last renewal, by the database).
        assert asyncio.get_running_loop().time() - began < 3
        await wait_for(_true(lambda: changes == [True, False]), 2, "told")
        monkeypatch.undo()
        await wait_for(_true(lambda: held.active), 2, "renewed when the database is back")
    finally:
        await held.close()


def test_a_lease_is_renewed_well_inside_its_time() -> None:
    for ttl, renew in ((10, 10), (3, 3), (10, 0)):
        with pytest.raises(ValueError):
            leases.Lease("postgresql://x/y", "public", "job", ttl=ttl, renew=renew)
    # The contract: a dead holder is replaced within 15 s.
    assert leases.TTL + leases.RETRY < TAKEOVER_SECONDS


def _true(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def checked() -> bool:
        return check()

    return checked


# --- two processes' watchdogs on one schema -------------------------------------------------


class Process(Server):
    """A Server (tests/test_compliance_service.py) on a PostgreSQL schema whose
    store publishes to a bus shared with the other 'processes'."""

    def __init__(
        self, data_dir: Path, clock: FrozenClock, bus: Bus, schema: str = "public", **env: str
    ) -> None:
        super().__init__(data_dir, clock, **env)
        self.bus = bus
        self.schema = schema

    async def start(self) -> Process:
        settings = Settings.from_env({"SUNBID_DATA_DIR": str(self.data_dir), **self.env})
        self.store = open_store(settings.database_url, self.clock, schema=self.schema)
        self.projects = open_projects(self.store, DOMAIN)
        await self.store.open()
        self.store.on_commit(self.bus.publish)
        self.compliance = Compliance.load(settings, DOMAIN, self.clock, self._broadcast)
        if self.compliance._lease is not None:  # one test process: a holder name of each's own
            self.compliance._lease.holder = f"{leases.node_name()}/{self.data_dir.name}"
        await self.compliance.open(self.store, self.bus)
        return self

    async def crash(self) -> None:
        """Gone at once, as with SIGKILL: no last write, the lease not given up."""
        compliance, self.compliance = self.compliance, None
        assert compliance is not None and compliance._lease is not None
        compliance._lease.abandon()
        assert compliance._follower is not None and compliance._ticker is not None
        subscribers = self.bus._subscribers  # type: ignore[attr-defined]
        subscribers.remove(compliance._follower.deliver)
        # (Python 3.11's wait_for can swallow a cancel that meets a wake-up.)
        compliance._closing = True
        compliance._ticker.cancel()
        await asyncio.gather(compliance._ticker, return_exceptions=True)
        await compliance._follower.close()
        await compliance.warnings.close()
        await self.stop()


async def workload(publisher: Server, clock: FrozenClock) -> None:
    """Warnings of every kind: approaching, breach, data_incomplete, too short."""
    await publisher.project("ROAD-1")
    await publisher.project("ROAD-2")
    await publisher.publish("ROAD-1", "award")
    await publisher.publish("ROAD-2", "notice")  # no deadline: data_incomplete
    await publisher.publish("ROAD-2", "candidates")
    clock.advance(timedelta(days=1))
    await publisher.publish("ROAD-2", "award")  # publicity too short


async def later(publisher: Server, clock: FrozenClock) -> None:
    """Time passes (approaching, then breaches), then a resolution."""
    clock.advance(datetime(2026, 4, 2, 8, 0, tzinfo=TZ) - clock.now())
    await asyncio.sleep(1.5)  # timers fire (within a second)
    await publisher.publish("ROAD-1", "contract", signed_at="2026-04-02T08:00:00.000+08:00")


async def facts_of(process: Server) -> list[Any]:
    assert process.compliance is not None
    return await process.compliance.warnings.all_facts()


async def reference_facts(tmp_path: Path) -> list[Any]:
    """The same work in one SQLite process: what the record must hold."""
    clock = FrozenClock(TZ, START)
    alone = await Server(tmp_path / "alone", clock).start()
    try:
        await workload(alone, clock)
        await later(alone, clock)
        await asyncio.sleep(1.5)
        return await facts_of(alone)
    finally:
        await alone.stop()


@pytest.fixture
async def processes(
    tmp_path: Path, database: tuple[str, str]
) -> AsyncIterator[Callable[..., Awaitable[Process]]]:
    url, schema = database
    bus = MemoryBus()  # stands for Redis: every process sees every commit
    await bus.start()
    clock = FrozenClock(TZ, START)
    started: list[Process] = []

    async def start(**env: str) -> Process:
        env = {"SUNBID_DATABASE_URL": url, "SUNBID_DATABASE_SCHEMA": schema, **env}
        number = len(started)
        process = await Process(tmp_path / f"p{number}", clock, bus, schema, **env).start()
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(Exception):
            await process.stop()
    await bus.close()


def actives(*running: Server) -> list[bool]:
    return [p.compliance is not None and p.compliance.active for p in running]


async def test_exactly_one_stores_and_a_standby_takes_over_losing_and_doubling_nothing(
    processes: Callable[..., Awaitable[Process]], tmp_path: Path
) -> None:
    expected = await reference_facts(tmp_path)
    assert len(expected) == 5 and any(f[5] for f in expected)  # one resolved

    a = await processes()
    b = await processes()
    assert actives(a, b) == [True, False]
    assert a.compliance is not None and b.compliance is not None
    await workload(a, a.clock)

    async def stored_by_a() -> bool:
        return len(await facts_of(a)) == 2

    await wait_for(stored_by_a, 3, "the first warnings stored by the active one")
    # The standby knows them (it answers from memory) and drops those stored.
    assert b.compliance.watchdog.head == a.compliance.watchdog.head
    await wait_for(_true(lambda: not b.compliance._unsaved), 5, "b drops what a stored")  # type: ignore[union-attr]

    # a cannot store any more (its database writes fail), then dies: what it
    # had not stored is stored by b.
    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError("connection lost")

    a.compliance.warnings.save = refuse  # type: ignore[method-assign]
    await later(a, a.clock)
    await asyncio.sleep(1.0)
    assert len(await facts_of(b)) == 2, "nothing stored while a holds the lease"
    assert b.compliance._unsaved, "b keeps what a did not store"
    await a.crash()
    crashed = time.monotonic()
    await wait_for(_true(lambda: b.compliance.active), TAKEOVER_SECONDS, "b takes over")  # type: ignore[union-attr]
    assert time.monotonic() - crashed <= TAKEOVER_SECONDS
    assert await facts_of(b) == expected

    # Each 'process' warned its own supervisors once per change.
    for process in (a, b):
        sent = [(w["id"], w["resolved_at"]) for w in process.warnings_sent()]
        assert len(sent) == len(set(sent)) > 0

    # b goes on as the writer; a restarted a stands by.
    c = await processes()
    assert actives(b, c) == [True, False]
    await b.stop()
    await wait_for(_true(lambda: c.compliance.active), leases.RETRY + 2, "c takes over")  # type: ignore[union-attr]
    assert await facts_of(c) == expected


async def test_a_process_that_loses_the_lease_stops_writing_and_the_new_holder_writes(
    processes: Callable[..., Awaitable[Process]], database: tuple[str, str], tmp_path: Path
) -> None:
    a = await processes()
    b = await processes()
    assert a.compliance is not None and b.compliance is not None
    assert a.compliance._lease is not None and b.compliance._lease is not None
    assert actives(a, b) == [True, False]
    conn = await asyncpg.connect(database[0])
    try:  # b takes the lease over (as if a had stalled past its time)
        await conn.execute(
            f"UPDATE {database[1]}.leases SET holder = $1,"
            " expires_at = now() + interval '10 seconds'",
            b.compliance._lease.holder,
        )
    finally:
        await conn.close()
    await wait_for(_true(lambda: actives(a, b) == [False, True]), leases.RENEW + 2, "b holds it")
    writes: list[int] = []
    save = a.compliance.warnings.save

    async def counted(*args: Any, **kwargs: Any) -> None:
        writes.append(1)
        await save(*args, **kwargs)

    a.compliance.warnings.save = counted  # type: ignore[method-assign]
    await workload(a, a.clock)
    await later(a, a.clock)
    await asyncio.sleep(1.5)
    assert writes == [], "a stands by: no write"
    assert await facts_of(b) == await reference_facts(tmp_path)
    assert actives(a, b) == [False, True]


async def test_not_a_candidate_only_stands_by(
    processes: Callable[..., Awaitable[Process]], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Settings.from_env

    def no_worker(env: Any = None) -> Settings:
        import dataclasses

        return dataclasses.replace(original(env), background=False)

    monkeypatch.setattr(Settings, "from_env", staticmethod(no_worker))
    only = await processes()
    await workload(only, only.clock)
    await asyncio.sleep(1.5)
    assert actives(only) == [False]
    assert await facts_of(only) == []
    assert len(only.warnings_sent()) == 2, "its own supervisors are warned all the same"


async def test_sqlite_is_always_active_without_a_lease(tmp_path: Path) -> None:
    clock = FrozenClock(TZ, START)
    alone = await Server(tmp_path / "data", clock).start()
    try:
        assert alone.compliance is not None
        assert alone.compliance.active and alone.compliance._lease is None
    finally:
        await alone.stop()


# --- the replay of a PostgreSQL log ---------------------------------------------------------


async def test_replay_of_a_postgres_log_reads_what_sqlite_reads(
    processes: Callable[..., Awaitable[Process]], tmp_path: Path
) -> None:
    """The PostgreSQL page and the SQLite page give the watchdog the same facts."""
    process = await processes()
    await workload(process, process.clock)
    await later(process, process.clock)
    # Also events with data the rules read, nulls and an amendment.
    await process.publish("ROAD-2", "contract", signed_at=None, amount="1 万")
    await process.publish("ROAD-2", "amended", changes={"signed_at": None, "x": [1, "二"]})
    assert process.store is not None and process.compliance is not None
    dog = process.compliance.watchdog
    async with logread.Rows(dog.fresh(), process.store).opened() as rows:
        assert rows.direct
        facts = [rows.fact_of(row) for row in await rows.page(0, None)]
        assert [int(row[0]) for row in await rows.page(2, 5)] == [3, 4, 5]
    events = await process.store.events_since(0, None, 100)
    assert [f.seq for f in facts] == [e.seq for e in events]
    assert facts == [dog.fact(e) for e in events]

    # `sunbid verify` compares the PostgreSQL record with a replay of the log.
    await asyncio.sleep(1.5)  # the latest warnings stored
    settings = Settings.from_env({"SUNBID_DATA_DIR": str(tmp_path / "none"), **process.env})
    record = ComplianceRecord.load(settings, DOMAIN, process.clock)
    assert await record.check(process.store) is None
    assert process.compliance.warnings.fence is not None
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            f"UPDATE {settings.database_schema}.warnings SET level = 'approaching'"
            " WHERE level = 'breach'"
        )
    finally:
        await conn.close()
    problem = await record.check(process.store)
    assert problem is not None and "level" in problem


# --- real processes ---------------------------------------------------------------------------


def test_sigkill_of_the_active_server_hands_the_watchdog_to_another(
    tmp_path: Path, database: tuple[str, str]
) -> None:
    """Two `sunbid serve` on one schema and one Redis bus: one stores warnings;
    SIGKILL it, and the other stores them within 15 s, also those made while
    no process held the lease, each once."""
    from tests.services import redis_url
    from tests.test_scaleout import Deployment

    deployment = Deployment(tmp_path, database, redis_url())
    staff: Staff | None = None
    try:
        servers = deployment.start(2)
        token = deployment.token()

        def active() -> list[bool]:
            return [
                server.process is not None
                and bool(httpx.get(server.url + "/readyz", timeout=5).json()["compliance_active"])
                for server in servers
            ]

        assert sorted(active()) == [False, True]
        holder = active().index(True)
        other = servers[1 - holder]
        staff = Staff(other, token)

        def too_short(project_id: str) -> str:
            staff.project(project_id)
            staff.publish(project_id, "notice", data=CLOSED)
            candidates = staff.publish(project_id, "candidates")
            award = staff.publish(project_id, "award")  # the same day: publicity too short
            rule = "construction.candidates-publicity"
            return f"{rule}/{project_id}/{candidates['seq']}-{award['seq']}/breach"

        def stored() -> list[str]:
            answer = staff.client.get("/api/supervision/warnings", params={"limit": 500})
            assert answer.status_code == 200, answer.text
            return [w["id"] for w in answer.json()["items"]]

        first = too_short("ROAD-1")
        began = time.monotonic()
        while first not in stored():
            assert time.monotonic() - began < 5, "the holder stores the warning"
            time.sleep(0.1)
        servers[holder].stop(signal.SIGKILL)
        killed = time.monotonic()
        second = too_short("ROAD-2")  # no holder yet: the standby keeps it
        while not active()[1 - holder]:
            assert time.monotonic() - killed <= TAKEOVER_SECONDS, "no takeover within 15 s"
            time.sleep(0.25)
        while not {first, second} <= set(stored()):
            assert time.monotonic() - killed <= TAKEOVER_SECONDS + 2, "the kept warnings stored"
            time.sleep(0.1)
        ids = stored()
        assert len(ids) == len(set(ids)), "a warning stored twice"
    finally:
        if staff is not None:
            staff.client.close()
        deployment.stop()
