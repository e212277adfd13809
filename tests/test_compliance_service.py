"""The watchdog in the server, in-process: a real SQLite log and warning store, a
frozen clock moved by the test, the timer task, broadcasting and restarts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from server.bus import open_bus
from server.compliance.service import MAX_SLEEP, Compliance
from server.core.clock import FrozenClock
from server.core.frames import Message
from server.demo import load_demo
from server.domain import Domain
from server.projects import open_projects
from server.projects.changes import registration
from server.settings import Settings
from server.store import AppendRequest, EventStore, open_store

TZ = ZoneInfo("Asia/Shanghai")
DOMAIN = Domain.load()
START = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)  # a Monday
AWARD_DUE = "2026-04-01T23:59:59.999+08:00"  # 30 日 after 2 Mar
BREACH_AT = "2026-04-02T00:00:00.000+08:00"  # the first instant after the last day
BREACH = "construction.award-contract/ROAD-1/2/breach"  # seq 1: its registration
APPROACHING = "construction.award-contract/ROAD-1/2/approaching"


class Server:
    """One 'process': the event log and the compliance service over a data directory."""

    def __init__(self, data_dir: Path, clock: FrozenClock) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.sent: list[dict[str, Any]] = []
        self.store: EventStore | None = None
        self.compliance: Compliance | None = None

    def _broadcast(self, message: Message) -> None:
        assert message["type"] == "websocket.send"
        self.sent.append(orjson.loads(message["text"]))

    async def start(self) -> Server:
        settings = Settings.from_env({"SUNBID_DATA_DIR": str(self.data_dir)})
        self.store = open_store(settings.database_url, self.clock)
        self.projects = open_projects(self.store, DOMAIN)
        await self.store.open()
        bus = open_bus("memory://")
        self.store.on_commit(bus.publish)
        await bus.start()
        self.compliance = Compliance.load(settings, DOMAIN, self.clock, self._broadcast)
        try:
            await self.compliance.open(self.store, bus)
        except BaseException:
            self.compliance = None
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        if self.compliance is not None:
            await self.compliance.close()
            self.compliance = None
        if self.store is not None:
            await self.store.close()
            self.store = None

    async def project(self, project_id: str, category: str = "construction") -> None:
        assert self.store is not None
        await self.store.append(
            registration(
                DOMAIN.project_input(
                    {"id": project_id, "title": "项目", "category": category, "agency": "YW-GGZY"}
                )
            )
        )

    async def publish(self, project_id: str, stage: str, **data: Any) -> dict[str, Any]:
        assert self.store is not None
        project = await self.projects.get(project_id)
        assert project is not None
        draft = DOMAIN.event_input(
            {"stage": stage, "title": f"{stage} 公告", "data": data}, project["category"], TZ
        )
        result = await self.store.append(
            AppendRequest(project=project, draft=draft, fingerprint="")
        )
        await asyncio.sleep(0)  # the commit listeners run right after the commit
        return dict(orjson.loads(result.event.json))

    async def stored(self) -> list[dict[str, Any]]:
        assert self.compliance is not None
        docs, cursor = await self.compliance.warnings.list({}, None, None, 500)
        assert cursor is None
        return [orjson.loads(doc) for doc in docs]

    def warnings_sent(self) -> list[dict[str, Any]]:
        assert all(m["op"] == "warning" for m in self.sent)
        return [m["warning"] for m in self.sent]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[[], Awaitable[Server]]]:
    """Start 'processes' on one data directory and one clock; all stopped afterwards."""
    clock = FrozenClock(TZ, START)
    started: list[Server] = []

    async def start() -> Server:
        server = await Server(tmp_path / "data", clock).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


async def wait_for(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Poll `check` until it holds; return how long that took."""
    began = time.monotonic()
    while not await check():
        if time.monotonic() - began > within:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - began


MISSING = "0001-01-01T00:00:00+00:00"


def moment(text: str) -> datetime:
    """Times are compared as times: the same instant may be written with or without .000."""
    return datetime.fromisoformat(text)


def by_id(warnings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {w["id"]: w for w in warnings}


async def test_breach_fires_within_a_second_of_the_moved_clock_once_and_is_resolved(
    start: Callable[[], Awaitable[Server]],
) -> None:
    server = await start()
    assert server.compliance is not None
    await server.project("ROAD-1")
    await server.publish("ROAD-1", "award")
    [deadline] = server.compliance.watchdog.deadlines("ROAD-1", server.clock.now())
    assert deadline["due"] == AWARD_DUE
    await asyncio.sleep(MAX_SLEEP + 0.2)  # the ticker is asleep with nothing due
    assert server.sent == [] and await server.stored() == []

    server.clock.advance(datetime(2026, 4, 2, 0, 0, 1, tzinfo=TZ) - server.clock.now())

    async def breach_stored() -> bool:
        return BREACH in by_id(await server.stored())

    took = await wait_for(breach_stored, MAX_SLEEP + 0.5, "the breach is stored")
    assert took <= MAX_SLEEP + 0.5
    stored = by_id(await server.stored())
    assert set(stored) == {APPROACHING, BREACH}
    assert stored[BREACH]["due"] == AWARD_DUE
    assert stored[BREACH]["created_at"] == BREACH_AT
    assert stored[APPROACHING]["created_at"] == "2026-03-31T00:00:00.000+08:00"
    assert stored[BREACH]["resolved_at"] is None and stored[BREACH]["level"] == "breach"
    assert server.sent == [
        {"op": "warning", "warning": stored[APPROACHING]},
        {"op": "warning", "warning": stored[BREACH]},
    ]

    # Time goes on: nothing is sent twice.
    server.clock.advance(timedelta(days=1))
    await asyncio.sleep(MAX_SLEEP + 0.2)
    assert len(server.sent) == 2

    contract = await server.publish("ROAD-1", "contract", signed_at="2026-04-03T09:00:00.000+08:00")

    async def resolved() -> bool:
        return all(w["resolved_at"] for w in await server.stored())

    await wait_for(resolved, MAX_SLEEP + 0.5, "the resolutions are stored")
    stored = by_id(await server.stored())
    assert {moment(w["resolved_at"]) for w in stored.values()} == {moment(contract["published_at"])}
    resolutions = server.warnings_sent()[2:]
    assert sorted(w["id"] for w in resolutions) == [APPROACHING, BREACH]
    assert all(w == stored[w["id"]] for w in resolutions)
    assert server.compliance.watchdog.deadlines("ROAD-1", server.clock.now()) == []


async def test_a_rule_broken_by_a_publication_is_sent_and_stored_at_once(
    start: Callable[[], Awaitable[Server]],
) -> None:
    server = await start()
    await server.project("ROAD-2")
    await server.publish("ROAD-2", "candidates")
    server.clock.advance(timedelta(days=1))
    award = await server.publish("ROAD-2", "award")
    [sent] = server.warnings_sent()
    # Seq 1 is the project's registration.
    assert sent["id"] == "construction.candidates-publicity/ROAD-2/2-3/breach"
    assert sent["due"] is None and moment(sent["created_at"]) == moment(award["published_at"])

    async def stored() -> bool:
        return [w["id"] for w in await server.stored()] == [sent["id"]]

    await wait_for(stored, MAX_SLEEP + 0.5, "the breach is stored")


async def test_a_restart_stores_no_duplicate_and_loses_none(
    start: Callable[[], Awaitable[Server]],
) -> None:
    first = await start()
    await first.project("ROAD-1")
    await first.project("ROAD-2")
    award = await first.publish("ROAD-1", "award")
    breach = f"construction.award-contract/ROAD-1/{award['seq']}/breach"
    await first.publish("ROAD-2", "notice")  # no deadline: data_incomplete
    await first.publish("ROAD-2", "candidates")
    first.clock.advance(timedelta(days=1))
    await first.publish("ROAD-2", "award")  # publicity too short
    first.clock.advance(datetime(2026, 4, 2, 8, 0, tzinfo=TZ) - first.clock.now())

    async def all_five() -> bool:
        return len(await first.stored()) == 5

    await wait_for(all_five, MAX_SLEEP + 0.5, "five warnings stored")
    await first.publish("ROAD-1", "contract", signed_at="2026-04-02T08:00:00.000+08:00")

    async def resolved() -> bool:
        return by_id(await first.stored())[breach]["resolved_at"] is not None

    await wait_for(resolved, MAX_SLEEP + 0.5, "the resolution is stored")
    before = await first.stored()
    # Both awards' contracts were warned about (ROAD-2's is due a day later), ROAD-1's
    # is overdue; ROAD-2's notice had no deadline and its publicity was too short.
    assert sorted(w["level"] for w in before) == [
        "approaching",
        "approaching",
        "breach",
        "breach",
        "data_incomplete",
    ]
    await first.stop()

    second = await start()
    assert await second.stored() == before
    assert second.sent == [], "a rebuild sends nothing again"
    await second.stop()
    third = await start()
    assert await third.stored() == before


async def test_a_deadline_that_passed_while_down_appears_once_when_back(
    start: Callable[[], Awaitable[Server]],
) -> None:
    first = await start()
    await first.project("ROAD-1")
    await first.publish("ROAD-1", "award")
    await first.stop()

    first.clock.advance(timedelta(days=45))  # down past the due time
    second = await start()
    stored = by_id(await second.stored())
    assert set(stored) == {APPROACHING, BREACH}
    assert stored[BREACH]["created_at"] == BREACH_AT
    assert stored[APPROACHING]["created_at"] == "2026-03-31T00:00:00.000+08:00"
    assert all(w["resolved_at"] is None for w in stored.values())
    await asyncio.sleep(MAX_SLEEP + 0.2)
    assert second.sent == [], "became true while down: stored, not sent again later"
    assert by_id(await second.stored()) == stored
    await second.stop()

    third = await start()
    assert by_id(await third.stored()) == stored
    contract = await third.publish("ROAD-1", "contract", signed_at="2026-04-15T10:00:00.000+08:00")
    assert sorted(w["id"] for w in third.warnings_sent()) == [APPROACHING, BREACH]

    async def resolved() -> bool:
        published = moment(contract["published_at"])
        return all(moment(w["resolved_at"] or MISSING) == published for w in await third.stored())

    await wait_for(resolved, MAX_SLEEP + 0.5, "the resolution is stored")
    assert len(await third.stored()) == 2


async def test_a_time_at_the_end_of_the_calendar_does_not_stop_a_restart(
    start: Callable[[], Awaitable[Server]],
) -> None:
    first = await start()
    await first.project("ROAD-1")
    await first.publish("ROAD-1", "notice", deadline="9999-12-31T23:59:59-12:00")
    await first.publish("ROAD-1", "award")
    await first.stop()
    second = await start()  # raises today
    assert second.compliance is not None
    assert second.compliance.watchdog.deadlines("ROAD-1", second.clock.now()) != []


@pytest.mark.parametrize("today", ["2026-03-20", "2026-06-15", "2026-09-28"])
async def test_the_demo_breaks_only_its_deliberate_rule_whatever_the_date(
    tmp_path: Path, today: str
) -> None:
    now = datetime.fromisoformat(f"{today}T12:00:00.000+08:00")
    clock = FrozenClock(TZ, now)
    settings = Settings.from_env({"SUNBID_DATA_DIR": str(tmp_path)})
    store = open_store(settings.database_url, clock)
    projects = open_projects(store, DOMAIN)
    await store.open()
    compliance = Compliance.load(settings, DOMAIN, clock, lambda message: None)
    try:
        await load_demo(store, projects, DOMAIN, now)
        await compliance.open(store, open_bus("memory://"))
        docs, _ = await compliance.warnings.list({"level": "breach"}, None, None, 500)
    finally:
        await compliance.close()
        await store.close()
    breaches = sorted(
        orjson.loads(doc)["rule"] + " " + orjson.loads(doc)["project"] for doc in docs
    )
    assert breaches == ["gov_procurement.award-contract YW-ZFCG-2026-0056"]


async def test_a_rebuild_reads_the_same_facts_as_live_checking(
    start: Callable[[], Awaitable[Server]],
) -> None:
    """The rebuild's rows (extracted by SQLite) and the live path's events
    (parsed here) must give the watchdog the same moments and data."""
    server = await start()
    await server.project("ROW-1")
    await server.project("ROW-2", "gov_procurement")
    await server.publish("ROW-1", "notice", deadline="2026-04-01T09:30:00+08:00")
    await server.publish("ROW-1", "notice", deadline=20260401)
    await server.publish("ROW-1", "notice", deadline={"at": "soon"})
    await server.publish("ROW-1", "notice")
    await server.publish("ROW-2", "contract", signed_at="2026-03-01T10:00:00+08:00", amount=5)
    await server.publish("ROW-2", "performance", progress=0.5)
    assert server.store is not None and server.compliance is not None
    dog = server.compliance.watchdog
    events = await server.store.events_since(0, None, 100)
    rows = await server.store.event_times_since(0, dog.data_keys, 100)
    assert [row[0] for row in rows] == [event.seq for event in events]
    for event, row in zip(events, rows, strict=True):
        live, rebuilt = dog.fact(event), dog.fact_of_row(row)
        assert (live.seq, live.project, live.category, live.agency, live.stage) == (
            rebuilt.seq,
            rebuilt.project,
            rebuilt.category,
            rebuilt.agency,
            rebuilt.stage,
        )
        assert live.published_at == rebuilt.published_at
        assert live.occurred_at == rebuilt.occurred_at
        for key, value in live.data.items():  # what the stage's rules read
            got = rebuilt.data[key]
            # SQLite hands an object back as its JSON text; scalars as they are.
            assert (orjson.loads(got) if isinstance(value, dict) else got) == value, (key, got)
        assert set(live.data) <= set(rebuilt.data)
