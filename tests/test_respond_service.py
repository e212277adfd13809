"""The public's cases in-process, on a real store (SQLite, and PostgreSQL where
reachable), with a clock the test moves: due times by the rules and the
calendar, warnings fired once whoever fires them, resolved when the case
closes or is extended, restarts, half-done answers, erasure, the scorecard,
and `sunbid verify`'s view of it all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from push.channels.contacts import ContactCipher
from server.compliance.calendar import LEGAL_TZ, WorkCalendar
from server.core.clock import FrozenClock
from server.core.events import StoredEvent
from server.respond.cases import CaseStore
from server.respond.derived import RespondRecord
from server.respond.rules import ResponseRules
from server.respond.service import CaseConflict, Respond
from tests.services import postgres_schema

CALENDAR = WorkCalendar.load()
RULES = ResponseRules.load()
# A Monday morning in Beijing, 2026-12-07 09:00: 3 working days run to Thursday.
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=LEGAL_TZ)
PROJECT = {"id": "ZFCG-1", "agency": "YW-ZFCG", "category": "gov_procurement"}
LAND = {"id": "TD-1", "agency": "YW-ZRZY", "category": "land"}


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {}
        return
    with postgres_schema() as (url, schema):
        yield {"database_url": url, "database_schema": schema}


class World:
    """Several Respond instances on one store (as several processes, or a
    restart), one clock, and what each handed to its supervisors."""

    def __init__(self, tmp_path: Path, backend: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.backend = backend
        self.clock = FrozenClock(LEGAL_TZ, MONDAY)
        self.cipher = ContactCipher.load_or_create(tmp_path)
        self.opened: list[Respond] = []
        self.started = 0
        self.seen: dict[int, list[dict[str, Any]]] = {}
        self.timelines: dict[str, list[StoredEvent]] = {}

    async def start(self, keep: timedelta = timedelta(days=30)) -> Respond:
        number, self.started = self.started, self.started + 1
        seen = self.seen.setdefault(number, [])
        respond = Respond(
            CaseStore(self.tmp_path / "respond.db", **self.backend),
            RULES,
            CALENDAR,
            self.clock,
            self.cipher,
            seen.append,
            keep=keep,
        )
        await respond.open(self.timeline)
        self.opened.append(respond)
        return respond

    def record(self) -> RespondRecord:
        """What `sunbid verify` and `rebuild` open: their own store on the same data."""
        store = CaseStore(self.tmp_path / "respond.db", **self.backend)
        return RespondRecord(
            Respond(store, RULES, CALENDAR, self.clock, self.cipher, lambda warning: None)
        )

    async def timeline(self, project: str) -> list[StoredEvent]:
        return self.timelines.get(project, [])

    async def stop(self, respond: Respond) -> None:
        await respond.close()
        self.opened.remove(respond)

    def at(self, moment: datetime) -> None:
        self.clock.advance(moment - self.clock.now())


@pytest.fixture
async def world(tmp_path: Path, backend: dict[str, str]) -> AsyncIterator[World]:
    made = World(tmp_path, backend)
    yield made
    for respond in list(made.opened):
        await respond.close()


def answer_event(seq: int, project: dict[str, str], enquiry: str, at: datetime) -> StoredEvent:
    doc = {
        "seq": seq,
        "project": project["id"],
        "category": project["category"],
        "agency": project["agency"],
        "region": None,
        "stage": "enquiry_answer",
        "title": "咨询答复：…",
        "body": "答",
        "data": {"enquiry": enquiry, "question": "问", "answer": "答", "asked_at": None},
        "occurred_at": at.isoformat(),
        "published_at": at.isoformat(timespec="milliseconds"),
        "hash": "0" * 64,
    }
    return StoredEvent.from_dict(doc)


def ids(warnings: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    return [(w["id"].split("/", 1)[1], w["level"], w["resolved_at"] is not None) for w in warnings]


async def test_due_times_follow_the_rule_of_the_kind_and_category(world: World) -> None:
    respond = await world.start()
    procurement = await respond.ask(PROJECT, "保证金可以用保函吗？", None)
    land = await respond.ask(LAND, "竞买保证金何时退还？", "13800138000")
    request = await respond.request("YW-ZRZY", "土地出让收入", "请公开明细", "a@example.com")
    assert procurement.case.rule == "gov_procurement.enquiry-answer"  # 实施条例 §52, the law
    assert land.case.rule == "all.enquiry-answer"  # local practice, advisory
    assert request.case.rule == "all.disclosure-reply"  # 条例 §33
    thursday_end = datetime(2026, 12, 10, 23, 59, 59, 999999, tzinfo=LEGAL_TZ)
    assert respond.clock_of(procurement.case).due == thursday_end
    # 20 working days from Tuesday 8 December, over the New Year holiday.
    twenty = CALENDAR.due(MONDAY, 20, RULES["all.disclosure-reply"].unit).at
    assert respond.clock_of(request.case).due == twenty
    assert procurement.case.id.startswith("q") and request.case.id.startswith("r")
    # What people wrote is sealed: not in the row as text, back in full with the key.
    row = await respond.store.get(land.case.id)
    assert row is not None and row.private is not None and b"13800138000" not in row.private
    assert respond.private(row) == {"question": "竞买保证金何时退还？", "contact": "13800138000"}


async def test_warnings_fire_once_at_their_moments_and_close_with_the_case(world: World) -> None:
    one, two = await world.start(), await world.start()  # two processes on one store
    filed = await one.ask(PROJECT, "问题", None)
    case_id = filed.case.id
    await one.tick()
    await two.tick()
    assert world.seen[0] == world.seen[1] == []
    # Wednesday 00:00: one working day before the last day (Thursday), `approaching`.
    world.at(datetime(2026, 12, 9, 0, 0, 1, tzinfo=LEGAL_TZ))
    await two.tick()
    await one.tick()
    await two.tick()
    expected = [(f"{case_id}/0/approaching", "approaching", False)]
    assert ids(world.seen[0]) == ids(world.seen[1]) == expected
    approaching = world.seen[0][0]
    assert approaching["created_at"] == "2026-12-09T00:00:00.000+08:00"  # when it became true
    assert approaching["case"] == {"kind": "enquiry", "id": case_id}
    assert approaching["project"] == PROJECT["id"] and "问题" not in approaching["message"]
    # Friday: the period is over, `breach`.
    world.at(datetime(2026, 12, 11, 8, 0, tzinfo=LEGAL_TZ))
    await one.tick()
    await two.tick()
    assert [w["level"] for w in world.seen[1]] == ["approaching", "breach"]
    assert world.seen[1][1]["created_at"] == "2026-12-11T00:00:00.000+08:00"
    # Answered late: both are resolved, at the answer's time, once each.
    case = await one.store.get(case_id)
    assert case is not None
    await one.answered(case, answer_event(7, PROJECT, case_id, world.clock.now()), "staff")
    await one.tick()
    await two.tick()
    for seen in world.seen.values():
        assert ids(seen) == [
            (f"{case_id}/0/approaching", "approaching", False),
            (f"{case_id}/0/breach", "breach", False),
            (f"{case_id}/0/approaching", "approaching", True),
            (f"{case_id}/0/breach", "breach", True),
        ]
    stored = await one.store.all_warnings()
    assert len(stored) == 2 and all(w["resolved_at"] for w in stored.values())


async def test_a_case_closed_after_a_long_outage_still_has_its_warnings(world: World) -> None:
    respond = await world.start()
    filed = await respond.ask(PROJECT, "问题", None)
    await world.stop(respond)
    # No server ran the timer; the answer comes a week late.
    world.at(datetime(2026, 12, 14, 10, 0, tzinfo=LEGAL_TZ))
    later = await world.start()
    case = await later.store.get(filed.case.id)
    assert case is not None
    answer = answer_event(3, PROJECT, case.id, world.clock.now())
    await later.answered(case, answer, None)
    stored = await later.store.all_warnings()
    assert sorted((w["level"], w["resolved_at"]) for w in stored.values()) == [
        ("approaching", "2026-12-14T10:00:00.000+08:00"),
        ("breach", "2026-12-14T10:00:00.000+08:00"),
    ]
    assert (await world.record().check(EmptyLog([answer]))) is None


async def test_a_restart_neither_repeats_nor_loses_a_warning(world: World) -> None:
    respond = await world.start()
    filed = await respond.ask(PROJECT, "问题", None)
    world.at(datetime(2026, 12, 9, 9, 0, tzinfo=LEGAL_TZ))
    await respond.tick()
    assert [w["level"] for w in world.seen[0]] == ["approaching"]
    await world.stop(respond)
    world.at(datetime(2026, 12, 11, 9, 0, tzinfo=LEGAL_TZ))  # the breach came while stopped
    again = await world.start()  # fires at start what came due while it was down
    await again.tick()
    await again.tick()
    # Handed on once, the breach that is new; not the approaching stored before.
    assert [w["level"] for w in world.seen[1]] == ["breach"]
    stored = await again.store.all_warnings()
    assert sorted(w["id"].rsplit("/", 1)[1] for w in stored.values()) == ["approaching", "breach"]
    assert all(w["id"].split("/")[1] == filed.case.id for w in stored.values())
    await again.tick()
    assert len(await again.store.all_warnings()) == 2


async def test_an_extension_resolves_the_first_period_and_starts_the_second(world: World) -> None:
    respond = await world.start()
    filed = await respond.request("YW-ZRZY", "主题", "说明", "张三 13800138000")
    first = respond.clock_of(filed.case)
    warn_day = CALENDAR.shift_workdays(first.due.date(), -1)
    world.at(datetime.combine(warn_day, datetime.min.time(), LEGAL_TZ) + timedelta(hours=9))
    await respond.tick()
    assert [w["level"] for w in world.seen[0]] == ["approaching"]
    case = await respond.store.get(filed.case.id)
    assert case is not None
    extended = await respond.extend(case, "需要征求第三方意见", "staff")
    assert extended.status == "extended"
    twenty_more = CALENDAR.due(first.due, 20, RULES["all.disclosure-reply"].unit).at
    assert respond.clock_of(extended).due == twenty_more
    with pytest.raises(CaseConflict, match="once"):
        await respond.extend(extended, "again", "staff")
    await respond.tick()
    assert ids(world.seen[0])[-1] == (f"{case.id}/0/approaching", "approaching", True)
    world.at(respond.clock_of(extended).due + timedelta(hours=1))
    await respond.tick()
    assert ids(world.seen[0])[-1] == (f"{case.id}/1/breach", "breach", False)
    assert [w[0] for w in ids(world.seen[0])].count(f"{case.id}/1/approaching") == 1
    replied = await respond.reply(extended, "granted", "见附件", None, "staff")
    assert replied.status == "replied" and replied.outcome == "granted"
    assert respond.private(replied)["reply"] == {"text": "见附件", "basis": None}
    assert (await world.record().check(EmptyLog())) is None


async def test_an_extension_comes_before_the_period_ends(world: World) -> None:
    respond = await world.start()
    filed = await respond.request("YW-ZRZY", "主题", "说明", "联系人")
    world.at(respond.clock_of(filed.case).due + timedelta(minutes=1))
    with pytest.raises(CaseConflict, match="run out"):
        await respond.extend(filed.case, "太晚", "staff")


async def test_a_half_done_answer_is_settled_at_the_next_start(world: World) -> None:
    respond = await world.start()
    answered = await respond.ask(PROJECT, "问题一", None)
    abandoned = await respond.ask(PROJECT, "问题二", None)
    await respond.begin_answer(answered.case)
    await respond.begin_answer(abandoned.case)
    # The process died after appending the first answer, before closing its case;
    # the second's append never happened.
    world.timelines[PROJECT["id"]] = [answer_event(9, PROJECT, answered.case.id, world.clock.now())]
    await world.stop(respond)
    world.at(MONDAY + timedelta(seconds=30))
    again = await world.start()  # a mark this young may be another process's, appending still
    assert len(await again.store.half_answered(world.clock.now_us())) == 2
    await world.stop(again)
    world.at(MONDAY + timedelta(minutes=2))
    again = await world.start()
    closed = await again.store.get(answered.case.id)
    still = await again.store.get(abandoned.case.id)
    assert closed is not None and closed.status == "answered" and closed.answer_seq == 9
    assert still is not None and still.status == "open" and still.answering_us is None
    assert await again.store.half_answered(world.clock.now_us()) == []


async def test_what_people_wrote_is_erased_after_the_case_closes(world: World) -> None:
    respond = await world.start(keep=timedelta(days=2))
    filed = await respond.ask(PROJECT, "我的手机 13912345678 能否报名？", "13912345678")
    open_case = await respond.ask(PROJECT, "未答复的问题", "13700000000")
    case = await respond.store.get(filed.case.id)
    assert case is not None and case.private is not None
    sealed = case.private
    await respond.decline(case, "与本项目无关", "staff")
    world.at(MONDAY + timedelta(days=1))
    assert await respond.erase_due(world.clock.now()) == 0  # not yet: kept two days
    world.at(MONDAY + timedelta(days=2, minutes=1))
    assert await respond.erase_due(world.clock.now()) == 1
    erased = await respond.store.get(filed.case.id)
    assert erased is not None and erased.private is None and erased.erased_us is not None
    assert respond.private(erased) == {}
    assert erased.status == "declined"  # what the scorecard counts stays
    kept = await respond.store.get(open_case.case.id)
    assert kept is not None and respond.private(kept)["contact"] == "13700000000"
    history = [h["what"] for h in await respond.store.history(filed.case.id)]
    assert history == ["filed", "declined", "erased"]
    if not world.backend:  # the sealed bytes are gone from every file, the WAL included
        for path in world.tmp_path.iterdir():
            if path.is_file():
                assert sealed not in path.read_bytes(), path.name


async def test_the_scorecard_counts_answers_on_time_late_open_and_ratings(world: World) -> None:
    respond = await world.start()
    on_time = await respond.ask(PROJECT, "一", None)
    late = await respond.ask(PROJECT, "二", None)
    overdue = await respond.ask(PROJECT, "三", None)
    declined = await respond.ask(PROJECT, "四", None)
    await respond.request("YW-ZFCG", "主题", "说明", "联系人")
    world.at(MONDAY + timedelta(days=1))
    case = await respond.store.get(on_time.case.id)
    assert case is not None
    await respond.answered(case, answer_event(1, PROJECT, case.id, world.clock.now()), None)
    await respond.decline(declined.case, "重复", "staff")
    world.at(MONDAY + timedelta(days=7))
    case = await respond.store.get(late.case.id)
    assert case is not None
    await respond.answered(case, answer_event(2, PROJECT, case.id, world.clock.now()), None)
    for rated, score in ((on_time, 5), (late, 2)):
        row = await respond.store.get(rated.case.id)
        assert row is not None
        await respond.rate(row, score, "评价" if score == 2 else None)
    row = await respond.store.get(late.case.id)
    assert row is not None
    with pytest.raises(CaseConflict, match="already"):
        await respond.rate(row, 4, None)
    with pytest.raises(CaseConflict, match="answered"):
        await respond.rate(overdue.case, 4, None)
    figures = (await respond.scorecard(None, None, None))["YW-ZFCG"]
    enquiries = figures["enquiries"]
    assert enquiries["received"] == 4
    assert enquiries["answered_on_time"] == 2  # the answer on day 1 and the decline
    assert enquiries["late"] == 2  # answered on day 7, and still open past its due time
    assert enquiries["open"] == 1
    assert enquiries["outcomes"] == {"answered": 2, "declined": 1}
    assert enquiries["median_days"] == 1.0
    assert enquiries["satisfaction"] == {"mean": 3.5, "count": 2}
    requests = figures["disclosure_requests"]
    assert requests["received"] == 1 and requests["open"] == 1 and requests["late"] == 0
    assert "satisfaction" not in requests
    # A category counts only enquiries; another month counts nothing.
    by_category = await respond.scorecard(None, "land", None)
    assert by_category == {}
    assert await respond.scorecard(None, None, "2026-11") == {}


async def test_verify_names_a_tampered_warning_and_a_missing_answer(world: World) -> None:
    respond = await world.start()
    filed = await respond.ask(PROJECT, "问题", None)
    world.at(datetime(2026, 12, 11, 8, 0, tzinfo=LEGAL_TZ))
    await respond.tick()
    record = world.record()
    assert await record.check(EmptyLog()) is None
    # An answer in the log that closed nothing.
    log = EmptyLog([answer_event(5, PROJECT, filed.case.id, world.clock.now())])
    assert "seq 5 answers enquiry" in str(await record.check(log))
    await record.rebuild(log)
    assert await record.check(log) is None
    # A stored warning edited by hand.
    async with respond.store.transaction():
        await respond.store.db.execute(
            "UPDATE case_warnings SET doc = ? WHERE id LIKE ?",
            (
                orjson.dumps(
                    {
                        "id": "x",
                        "rule": "other",
                        "level": "breach",
                        "due": None,
                        "resolved_at": None,
                        "created_at": "x",
                    }
                ),
                "%breach",
            ),
        )
    problem = await record.check(log)
    assert problem is not None and "breach rule" in problem
    await record.rebuild(log)
    assert await record.check(log) is None


class EmptyLog:
    """A log reader holding only the given answers (what verify reads of the log)."""

    def __init__(self, events: list[StoredEvent] | None = None) -> None:
        self.events = events or []
        self.head = max((e.seq for e in self.events), default=0)

    async def events_since(self, since: int, topics: Any, limit: int) -> list[StoredEvent]:
        return [e for e in self.events if e.seq > since][:limit]


async def test_the_inbox_pages_each_case_once_in_due_order(world: World) -> None:
    """Cases asked at one moment share their due time: the cursor goes on by id."""
    respond = await world.start()
    asked = [await respond.ask(PROJECT, f"问题 {i}", None) for i in range(7)]
    world.at(MONDAY + timedelta(days=1))
    asked.append(await respond.ask(PROJECT, "晚一天的问题", None))
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await respond.store.inbox("enquiry", {}, ("open",), cursor, 3)
        seen += [case.id for case in page]
        if cursor is None:
            break
    assert seen == [
        filed.case.id for filed in sorted(asked, key=lambda f: (f.case.due_us, f.case.id))
    ]
