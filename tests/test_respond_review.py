"""Respond (回应) under an attacker's and a reviewer's eye: each test is a
problem found by review, kept as the test that shows it fixed — personal
data however it is written, contacts that say little, bidi marks in an
answer's title, cursors out of range, races between staff (an answer and a
decline, a reply and an extension), renamed rules, due times counted over a
year the calendar did not know yet, and erasure while a reader holds the WAL.

The API's problems are shown through a real `sunbid serve`; the service's
races and timers in-process on a real store (SQLite, and PostgreSQL where
reachable) with a clock the test moves, calling the service in the order
the API's handlers do, so that what two staff members do at once happens
in a known order rather than by chance.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from push.channels.contacts import ContactCipher
from server.compliance.calendar import LEGAL_TZ, Unit, WorkCalendar
from server.core.clock import FrozenClock
from server.core.events import StoredEvent
from server.respond.cases import CaseStore
from server.respond.derived import RespondRecord
from server.respond.rules import ResponseRules
from server.respond.service import CaseConflict, Respond
from tests.conftest import ServerProcess, Staff
from tests.services import postgres_schema
from tests.test_respond_service import EmptyLog, answer_event

PROJECT = "ZFCG-REVIEW-1"
LONE_AGENCY = "YW-PWQ"  # only ever asked about here: no disclosure request is filed with it
LONE = "PWQ-REVIEW-1"
BIDI_MARKS = re.compile("[\u200e\u200f\u061c]")

CALENDAR = WorkCalendar.load()
RULES = ResponseRules.load()
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=LEGAL_TZ)  # 3 working days run to Thursday
GOV = {"id": "ZFCG-R1", "agency": "YW-ZFCG", "category": "gov_procurement"}


# --- through a real server -----------------------------------------------------------


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(staff as admin, the public) on one server; filing is not limited here."""
    server = ServerProcess(tmp_path_factory.mktemp("review") / "data", SUNBID_ASK_BURST="1000")
    server.start()
    staff = Staff(server, server.token("review-admin"))
    staff.project(PROJECT, category="gov_procurement", agency="YW-ZFCG")
    staff.project(LONE, category="gov_procurement", agency=LONE_AGENCY)
    public = httpx.Client(base_url=server.url, timeout=10)
    try:
        yield staff.client, public
    finally:
        public.close()
        staff.client.close()
        server.stop()


def ask(public: httpx.Client, question: str, project: str = PROJECT, **body: Any) -> str:
    response = public.post(
        f"/api/projects/{project}/enquiries", json={"question": question, **body}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_the_api_document_is_served_with_the_respond_routes(
    running: tuple[httpx.Client, httpx.Client],
) -> None:
    _, public = running
    document = public.get("/api/openapi.json")
    assert document.status_code == 200
    paths = document.json()["paths"]
    assert {"/api/enquiries/{case_id}/answer", "/api/disclosure-requests"} <= set(paths)


def test_every_agency_on_the_scorecard_has_both_response_figures(
    running: tuple[httpx.Client, httpx.Client],
) -> None:
    _, public = running
    ask(public, "报名截止时间是否顺延？", project=LONE)
    agencies = public.get("/api/compliance").json()["agencies"]
    [lone] = [a for a in agencies if a["agency"] == LONE_AGENCY]
    assert lone["enquiries"]["received"] == 1
    assert lone["disclosure_requests"]["received"] == 0


# How people write a mobile number, besides eleven plain digits: each one
# published with the asker's words stays in the log, which nothing erases.
SPELLINGS = (
    "+8613912345678",
    "+86 139 1234 5678",
    "139-1234-5678",
    "１３９１２３４５６７８",  # full-width digits, as a Chinese input method types them
    "139\u200b12345678",  # a zero-width space: invisible, and allowed in text
)


def test_a_mobile_number_however_written_is_not_published(
    running: tuple[httpx.Client, httpx.Client],
) -> None:
    staff, public = running
    published = []
    for number in SPELLINGS:
        case_id = ask(public, f"我的电话 {number}，保证金可以用保函吗？")
        answered = staff.post(f"/api/enquiries/{case_id}/answer", json={"answer": "可以。"})
        if answered.status_code != 422:
            published.append(number)
    assert published == []


def test_a_contact_of_one_common_character_does_not_block_the_answer(
    running: tuple[httpx.Client, httpx.Client],
) -> None:
    staff, public = running
    case_id = ask(public, "是否需要提交纸质文件？", contact="无")
    answered = staff.post(
        f"/api/enquiries/{case_id}/answer",
        json={"answer": "无需提交纸质文件。", "question": "是否需要提交纸质文件？"},
    )
    assert answered.status_code == 201, answered.text


def test_an_answer_title_holds_no_bidi_mark(
    running: tuple[httpx.Client, httpx.Client],
) -> None:
    staff, public = running
    direct = staff.post(
        f"/api/projects/{PROJECT}/events",
        json={"stage": "notice", "title": "保证金 1\u200f0000 元"},
    )
    assert direct.status_code == 422  # the rule for every title
    case_id = ask(public, "保证金 1\u200f0000 元是否正确？")
    answered = staff.post(f"/api/enquiries/{case_id}/answer", json={"answer": "正确。"})
    assert answered.status_code == 422 or not BIDI_MARKS.search(answered.json()["title"])


def test_an_inbox_cursor_out_of_range_is_a_422(
    running: tuple[httpx.Client, httpx.Client],
) -> None:
    staff, _ = running
    cursor = base64.urlsafe_b64encode(json.dumps([2**63, "q"]).encode()).decode()
    for path in ("/api/enquiries", "/api/disclosure-requests"):
        listed = staff.get(path, params={"cursor": cursor})
        assert listed.status_code == 422, (path, listed.status_code)


# --- in-process, on a real store -------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {}
        return
    with postgres_schema() as (url, schema):
        yield {"database_url": url, "database_schema": schema}


class Desk:
    """Respond instances on one store (processes, or one after a restart), one clock."""

    def __init__(self, tmp_path: Path, backend: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.backend = backend
        self.clock = FrozenClock(LEGAL_TZ, MONDAY)
        self.cipher = ContactCipher.load_or_create(tmp_path)
        self.opened: list[Respond] = []

    def respond(
        self,
        rules: ResponseRules = RULES,
        calendar: WorkCalendar = CALENDAR,
        seen: list[dict[str, Any]] | None = None,
        keep: timedelta = timedelta(days=30),
    ) -> Respond:
        return Respond(
            CaseStore(self.tmp_path / "respond.db", **self.backend),
            rules,
            calendar,
            self.clock,
            self.cipher,
            (seen if seen is not None else []).append,
            keep=keep,
        )

    async def start(self, **how: Any) -> Respond:
        respond = self.respond(**how)
        await respond.open(self.timeline)
        self.opened.append(respond)
        return respond

    async def stop(self, respond: Respond) -> None:
        self.opened.remove(respond)
        await respond.close()

    async def timeline(self, project: str) -> list[StoredEvent]:
        return []

    def record(self, **how: Any) -> RespondRecord:
        """What `sunbid verify` opens: its own store on the same data."""
        return RespondRecord(self.respond(**how))

    def at(self, moment: datetime) -> None:
        self.clock.advance(moment - self.clock.now())


@pytest.fixture
async def desk(tmp_path: Path, backend: dict[str, str]) -> AsyncIterator[Desk]:
    made = Desk(tmp_path, backend)
    yield made
    for respond in list(made.opened):
        await respond.close()


@pytest.mark.parametrize("closer", ["decline", "link"])
async def test_an_enquiry_being_answered_is_not_closed_another_way(desk: Desk, closer: str) -> None:
    respond = await desk.start()
    earlier = await respond.ask(GOV, "投标截止时间？", None)
    first = answer_event(1, GOV, earlier.case.id, desk.clock.now())
    await respond.answered(earlier.case, first, "staff-a")
    asked = await respond.ask(GOV, "保证金可以用保函吗？", None)
    # Staff A answers (POST …/answer): the case is marked, the event appended, the case closed.
    await respond.begin_answer(asked.case)
    # Meanwhile staff B, from the inbox read a moment before, closes it another way.
    with contextlib.suppress(CaseConflict):
        if closer == "decline":
            await respond.decline(asked.case, "重复提问", "staff-b")
        else:
            answered_earlier = await respond.store.get(earlier.case.id)
            assert answered_earlier is not None
            await respond.link(asked.case, answered_earlier, "staff-b")
    answer = answer_event(2, GOV, asked.case.id, desk.clock.now())  # A's append succeeded
    await respond.answered(asked.case, answer, "staff-a")
    case = await respond.store.get(asked.case.id)
    assert case is not None
    assert (case.status, case.answer_seq, case.linked) == ("answered", 2, False)
    assert await desk.record().check(EmptyLog([first, answer])) is None


async def test_a_reply_keeps_the_reason_of_an_extension_made_meanwhile(desk: Desk) -> None:
    respond = await desk.start()
    filed = await respond.request("YW-ZRZY", "土地出让收入", "请公开明细", "a@example.com")
    as_read = await respond.store.get(filed.case.id)  # staff B opens the request to reply
    assert as_read is not None
    await respond.extend(filed.case, "需征求第三方意见", "staff-a")  # staff A extends it
    with contextlib.suppress(CaseConflict):  # refusing B's stale reply would be right too
        await respond.reply(as_read, "granted", "见附件", None, "staff-b")
    case = await respond.store.get(filed.case.id)
    assert case is not None and case.extended_us is not None
    assert respond.private(case).get("extension") == "需征求第三方意见"


async def test_renaming_a_response_rule_does_not_warn_again(desk: Desk) -> None:
    before: list[dict[str, Any]] = []
    respond = await desk.start(seen=before)
    await respond.ask(GOV, "问题", None)
    desk.at(datetime(2026, 12, 9, 0, 0, 1, tzinfo=LEGAL_TZ))  # Wednesday: approaching
    await respond.tick()
    assert [w["level"] for w in before] == ["approaching"]
    await desk.stop(respond)
    renamed = ResponseRules(
        replace(rule, id="gov_procurement.enquiry-reply")
        if rule.id == "gov_procurement.enquiry-answer"
        else rule
        for rule in RULES
    )
    after: list[dict[str, Any]] = []
    again = await desk.start(rules=renamed, seen=after)
    desk.at(datetime(2026, 12, 11, 8, 0, tzinfo=LEGAL_TZ))  # Friday: breach
    await again.tick()
    assert [w["level"] for w in after] == ["breach"]
    assert await desk.record(rules=renamed).check(EmptyLog()) is None


async def test_a_due_time_follows_the_calendar_once_it_knows_the_year(desk: Desk) -> None:
    respond = await desk.start()
    filed = await respond.request("YW-ZRZY", "主题", "说明", "联系人")
    guessed = CALENDAR.due(MONDAY, 20, Unit.WORKDAY)
    assert guessed.estimated and guessed.at.date() == date(2027, 1, 4)
    await desk.stop(respond)
    # The State Council's notice for 2027 is written into workdays.toml (元旦 is a
    # statutory holiday every year).
    known = WorkCalendar(holidays=[date(2027, 1, 1)], covers=[2027])
    again = await desk.start(calendar=known)
    case = await again.store.get(filed.case.id)
    assert case is not None
    assert again.clock_of(case).due == known.due(MONDAY, 20, Unit.WORKDAY).at  # 5 January


async def test_erased_text_leaves_the_files_though_a_reader_was_open(tmp_path: Path) -> None:
    desk = Desk(tmp_path, {})
    try:
        respond = await desk.start(keep=timedelta(days=1))
        filed = await respond.ask(GOV, "我的问题", "13912345678")
        await respond.decline(filed.case, "与本项目无关", "staff")
        closed = await respond.store.get(filed.case.id)
        assert filed.case.private is not None and closed is not None and closed.private
        sealed = (filed.case.private, closed.private)
        reader = sqlite3.connect(tmp_path / "respond.db")
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM cases").fetchall()
        desk.at(MONDAY + timedelta(days=2))
        try:
            assert await respond.erase_due(desk.clock.now()) == 1
        finally:
            reader.rollback()
            reader.close()
        assert await respond.erase_due(desk.clock.now()) == 0  # the next round: nothing due
        holders = [
            path.name
            for path in tmp_path.iterdir()
            if path.is_file() and any(blob in path.read_bytes() for blob in sealed)
        ]
        assert holders == []
    finally:
        for respond in list(desk.opened):
            await respond.close()
