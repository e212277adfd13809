"""The watchdog in the server, in-process: a real SQLite log and warning store, a
frozen clock moved by the test, the timer task, broadcasting and restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from server.bus import open_bus
from server.compliance import logread, snapshot
from server.compliance.derived import ComplianceRecord
from server.compliance.rules import RULES_FILE
from server.compliance.service import MAX_SLEEP, Compliance
from server.core.clock import FrozenClock
from server.core.frames import warning_frame
from server.demo import load_demo
from server.domain import Domain
from server.projects import open_projects
from server.projects.changes import amendment, registration
from server.settings import Settings
from server.store import AppendRequest, EventStore, open_store
from tests.conftest import TENDERED

TZ = ZoneInfo("Asia/Shanghai")
DOMAIN = Domain.load()
START = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)  # a Monday
AWARD_DUE = "2026-04-01T23:59:59.999+08:00"  # 30 日 after 2 Mar
BREACH_AT = "2026-04-02T00:00:00.000+08:00"  # the first instant after the last day
BREACH = "construction.award-contract/ROAD-1/2/breach"  # seq 1: its registration
APPROACHING = "construction.award-contract/ROAD-1/2/approaching"


class Server:
    """One 'process': the event log and the compliance service over a data directory."""

    def __init__(self, data_dir: Path, clock: FrozenClock, **env: str) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.env = env
        self.sent: list[dict[str, Any]] = []
        self.store: EventStore | None = None
        self.compliance: Compliance | None = None

    def _broadcast(self, warning: dict[str, Any]) -> None:
        message = warning_frame(warning)  # as the app hands it to the hub
        assert message["type"] == "websocket.send"
        self.sent.append(orjson.loads(message["text"]))

    async def start(self) -> Server:
        settings = Settings.from_env({"SUNBID_DATA_DIR": str(self.data_dir), **self.env})
        self.store = open_store(settings.database_url, self.clock)
        self.projects = open_projects(self.store, DOMAIN)
        await self.store.open()
        bus = open_bus("memory://", self.store)
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
                    {
                        "id": project_id,
                        "title": "项目",
                        "category": category,
                        "agency": "YW-GGZY",
                        "must_tender": True if category in TENDERED else None,
                    }
                )
            )
        )

    async def publish(self, project_id: str, stage: str, **data: Any) -> dict[str, Any]:
        assert self.store is not None
        project = await self.projects.get(project_id)
        assert project is not None
        # As the log may hold it: events published before the checks before
        # publishing (a notice without its deadline, a deadline that is not a
        # time) are still the watchdog's to read, so they are written directly.
        draft = {"stage": stage, "title": f"{stage} 公告", "body": "", "data": data}
        draft["occurred_at"] = None
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
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    """Start 'processes' on one data directory and one clock; all stopped afterwards."""
    clock = FrozenClock(TZ, START)
    started: list[Server] = []

    async def start(**env: str) -> Server:
        server = await Server(tmp_path / "data", clock, **env).start()
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
    await server.project("ROAD-2")  # seq 1
    await server.publish("ROAD-2", "candidates")  # seq 2
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
        await compliance.open(store, open_bus("memory://", store))
        docs, _ = await compliance.warnings.list({}, None, None, 500)
    finally:
        await compliance.close()
        await store.close()
    warnings = [orjson.loads(doc) for doc in docs]
    breaches = sorted(w["rule"] + " " + w["project"] for w in warnings if w["level"] == "breach")
    assert breaches == ["gov_procurement.award-contract YW-ZFCG-2026-0056"]
    # It states every fact the rules read: nothing left unchecked.
    assert [w["id"] for w in warnings if w["level"] == "data_incomplete"] == []


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
    # A deadline moved by a clarification; must_tender stated, then unset by amendments.
    await server.publish("ROW-1", "clarification", deadline="2026-04-08T09:30:00+08:00")
    assert server.store is not None
    for must_tender in (False, None):
        project = await server.projects.get("ROW-1")
        assert project is not None
        await server.store.append(amendment(project, {"must_tender": must_tender}, "更正"))
    assert server.store is not None and server.compliance is not None
    dog = server.compliance.watchdog
    events = await server.store.events_since(0, None, 100)
    async with logread.Rows(dog, server.store).opened() as reader:
        rows = await reader.page(0, None, 100)
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
            assert rebuilt.data[key] == value, key
        assert set(live.data) <= set(rebuilt.data)
    amended = [dog.fact_of_row(row).data for row in rows if row[4] == "amended"]
    assert amended == [{"must_tender": False}, {"must_tender": None}]


# --- snapshots -------------------------------------------------------------------


def pages_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The `since` of every page the watchdog reads from the log."""
    seen: list[int] = []
    original = logread.Rows.page

    async def page(self: logread.Rows, since: int, until: int | None, limit: int = 100) -> Any:
        seen.append(since)
        return await original(self, since, until, limit)

    monkeypatch.setattr(logread.Rows, "page", page)
    return seen


async def publish_while_down(server: Server, project_id: str, stage: str) -> None:
    """An event committed while no watchdog runs (the log only)."""
    down = Server(server.data_dir, server.clock)
    settings = Settings.from_env({"SUNBID_DATA_DIR": str(server.data_dir)})
    down.store = open_store(settings.database_url, server.clock)
    down.projects = open_projects(down.store, DOMAIN)
    await down.store.open()
    try:
        await down.publish(project_id, stage)
    finally:
        await down.store.close()


def compliance_db(server: Server) -> sqlite3.Connection:
    return sqlite3.connect(server.data_dir / "compliance.db", isolation_level=None)


def stored_snapshot(server: Server) -> tuple[int, bytes] | None:
    with contextlib.closing(compliance_db(server)) as db:
        row = db.execute("SELECT cursor, state FROM snapshot").fetchone()
    return None if row is None else (int(row[0]), bytes(row[1]))


async def test_a_restart_loads_the_shutdown_snapshot_and_replays_only_the_tail(
    start: Callable[..., Awaitable[Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await start()
    await first.project("ROAD-1")
    await first.project("ROAD-2")
    await first.publish("ROAD-1", "award")  # seq 3, after the two registrations
    await first.stop()
    assert (stored_snapshot(first) or (0,))[0] == 3, "taken at shutdown, at the head"
    await publish_while_down(first, "ROAD-2", "award")

    seen = pages_read(monkeypatch)
    second = await start()
    assert second.compliance is not None
    assert seen[0] == 3, "read from the snapshot's cursor on, not from the start"
    assert second.compliance.cursor == second.compliance.watchdog.head == 4
    for project in ("ROAD-1", "ROAD-2"):  # one from the snapshot, one from the tail
        [deadline] = second.compliance.watchdog.deadlines(project, second.clock.now())
        assert deadline["rule"] == "construction.award-contract"
    # Both deadlines pass: one warning each, stored once, as a server that never
    # stopped would have it.
    second.clock.advance(timedelta(days=45))
    await wait_for(
        lambda: _count(second, 4), MAX_SLEEP + 0.5, "both deadlines' warnings are stored"
    )
    await second.stop()
    third = await start()
    assert len(await third.stored()) == 4 and third.sent == []


async def _count(server: Server, n: int) -> bool:
    return len(await server.stored()) == n


async def test_a_snapshot_made_with_other_rules_is_discarded_not_trusted(
    start: Callable[..., Awaitable[Server]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = await start()
    await first.project("ROAD-1")
    await first.publish("ROAD-1", "award")
    await first.stop()
    edited = tmp_path / "rules.toml"
    text = RULES_FILE.read_text("utf-8")
    rule = text.index('id = "construction.award-contract"')
    amount = text.index("amount = 30", rule)
    edited.write_text(text[:amount] + "amount = 10" + text[amount + len("amount = 30") :])

    seen = pages_read(monkeypatch)
    second = await start(SUNBID_RULES_FILE=str(edited))
    assert second.compliance is not None
    assert seen[0] == 0, "rebuilt from the whole log"
    [deadline] = second.compliance.watchdog.deadlines("ROAD-1", second.clock.now())
    assert deadline["due"] == "2026-03-12T23:59:59.999+08:00"  # 10 日, the edited rule
    await second.stop()
    seen.clear()
    third = await start(SUNBID_RULES_FILE=str(edited))
    assert seen[0] == 2, "the snapshot made with these rules is used"  # registration, award
    await third.stop()


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE snapshot SET state = x'8004deadbeef'",  # unreadable
        "UPDATE snapshot SET chain = 'ab12'",  # made from another log
        "UPDATE snapshot SET cursor = 7",  # past the log's head
    ],
)
async def test_a_snapshot_that_cannot_be_trusted_is_rebuilt_from_the_log(
    start: Callable[..., Awaitable[Server]], monkeypatch: pytest.MonkeyPatch, edit: str
) -> None:
    first = await start()
    await first.project("ROAD-1")
    await first.publish("ROAD-1", "award")
    await first.stop()
    with contextlib.closing(compliance_db(first)) as db:
        db.execute(edit)
    seen = pages_read(monkeypatch)
    second = await start()
    assert second.compliance is not None and seen[0] == 0
    assert len(second.compliance.watchdog.deadlines("ROAD-1", second.clock.now())) == 1


async def test_a_snapshot_is_taken_every_n_events_while_running(
    start: Callable[..., Awaitable[Server]],
) -> None:
    server = await start(SUNBID_COMPLIANCE_SNAPSHOT_EVENTS="3")
    await server.project("ROAD-1")
    await server.publish("ROAD-1", "notice", deadline="2026-04-01T09:30:00+08:00")
    await server.publish("ROAD-1", "clarification")
    assert stored_snapshot(server) is None
    await server.publish("ROAD-1", "candidates")

    async def taken() -> bool:
        return (stored_snapshot(server) or (0,))[0] == 3

    await wait_for(taken, MAX_SLEEP + 0.5, "a snapshot at the third event")
    # Events keep flowing while and after it is taken.
    server.clock.advance(timedelta(days=1))
    await server.publish("ROAD-1", "award")
    assert [w["rule"] for w in server.warnings_sent()] == ["construction.candidates-publicity"]


async def test_events_that_arrive_while_a_snapshot_is_pickled_are_applied_after(
    start: Callable[..., Awaitable[Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await start()
    assert server.compliance is not None
    compliance = server.compliance
    await server.project("ROAD-2")
    await server.publish("ROAD-2", "candidates")
    server.clock.advance(timedelta(days=1))
    # The pickling (a step at a time) goes on until the test has delivered an event.
    delivered = asyncio.Event()
    dumping = snapshot.dumping

    def slow_dumping(watchdog: Any) -> Generator[None, None, bytes]:
        while not delivered.is_set():
            yield
        return (yield from dumping(watchdog))

    monkeypatch.setattr(snapshot, "dumping", slow_dumping)
    taking = asyncio.ensure_future(compliance._snapshot())
    await asyncio.sleep(0.05)
    assert compliance._freezing
    award = await server.publish("ROAD-2", "award")
    assert compliance.watchdog.head == 2 and compliance.cursor == 3  # held, not applied
    assert server.sent == []
    delivered.set()
    await taking
    assert compliance.watchdog.head == 3 and not compliance._freezing
    [sent] = server.warnings_sent()
    assert moment(sent["created_at"]) == moment(award["published_at"])
    assert (stored_snapshot(server) or (0,))[0] == 2


# --- verify and rebuild (DerivedRecord) ------------------------------------------------


# In record_after_a_run, ROAD-1's award is seq 3 (after the two registrations).
RUN_BREACH = "construction.award-contract/ROAD-1/3/breach"


async def record_after_a_run(start: Callable[..., Awaitable[Server]]) -> tuple[Server, Any]:
    """A stopped server whose warnings include an open breach, and its record."""
    first = await start()
    await first.project("ROAD-1")
    await first.project("ROAD-2")
    await first.publish("ROAD-1", "award")  # seq 3, after the two registrations
    await first.publish("ROAD-2", "candidates")
    await first.publish("ROAD-2", "award")  # publicity too short
    first.clock.advance(timedelta(days=45))  # both contracts overdue
    await wait_for(lambda: _count(first, 5), MAX_SLEEP + 0.5, "five warnings stored")
    await first.stop()
    settings = Settings.from_env({"SUNBID_DATA_DIR": str(first.data_dir)})
    first.store = open_store(settings.database_url, first.clock)
    await first.store.open()
    return first, ComplianceRecord.load(settings, DOMAIN, first.clock)


async def test_verify_finds_the_record_equal_to_the_log_and_names_an_edited_warning(
    start: Callable[..., Awaitable[Server]],
) -> None:
    server, record = await record_after_a_run(start)
    assert server.store is not None
    assert await record.check(server.store) is None
    breach = RUN_BREACH
    with contextlib.closing(compliance_db(server)) as db:
        db.execute("UPDATE warnings SET level = 'approaching' WHERE id = ?", (breach,))
    assert await record.check(server.store) == (
        f"compliance: warning {breach} level 'approaching' != 'breach' (log)"
    )
    with contextlib.closing(compliance_db(server)) as db:
        db.execute("DELETE FROM warnings WHERE id = ?", (breach,))
    assert await record.check(server.store) == (
        f"compliance: warning {breach} is missing; the log yields it"
    )
    await record.rebuild(server.store)
    assert await record.check(server.store) is None
    await server.stop()
    again = await start()
    assert breach in by_id(await again.stored()) and again.sent == []


async def test_verify_names_a_snapshot_that_differs_from_the_log(
    start: Callable[..., Awaitable[Server]],
) -> None:
    server, record = await record_after_a_run(start)
    assert server.store is not None
    cursor, blob = stored_snapshot(server) or (0, b"")
    dog = record._fresh()
    snapshot.load(dog, blob)
    tally = next(iter(dog.tallies.values()))
    tally.on_time += 1
    with contextlib.closing(compliance_db(server)) as db:
        db.execute("UPDATE snapshot SET state = ?", (snapshot.dump(dog),))
    message = await record.check(server.store)
    assert message is not None and message.startswith(
        f"compliance: snapshot at seq {cursor}: tally "
    ), message
    with contextlib.closing(compliance_db(server)) as db:
        db.execute("UPDATE snapshot SET cursor = 99")
    assert await record.check(server.store) == (
        "compliance: snapshot cursor 99 is past the warnings' cursor 5"
    )
    await record.rebuild(server.store)
    assert await record.check(server.store) is None


def test_an_event_that_fails_to_check_is_skipped_and_the_page_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Dog:
        def __init__(self) -> None:
            self.head = 0
            self.seen: list[int] = []

        def observe(self, fact: int) -> list[Any]:
            if fact == 2:
                raise ValueError("a bug in a rule")
            self.seen.append(fact)
            self.head = fact
            return [fact]

    dog = Dog()
    changes = logread._observe_page(dog, [1, 2, 3, 4], lambda x: x, lambda x: x)  # type: ignore[arg-type]
    assert changes == [1, 3, 4] and dog.seen == [1, 3, 4] and dog.head == 4
    assert "checking event 2 failed; it is skipped" in caplog.text
