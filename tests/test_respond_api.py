"""The public's cases through a real `sunbid serve`: asking on a project and
reading the case back with the ticket, staff inboxes and answers published
as events, linking a repeat, declining, rating once, disclosure requests
with their extension and reply, the scorecard, rate limits, due-time
warnings live on `supervision`, and erasure: no file of the data directory
and no line the server wrote holds a contact once its case is erased."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from push.channels.contacts import ContactCipher
from server.compliance.calendar import LEGAL_TZ, WorkCalendar
from server.core.clock import Clock
from server.respond.cases import CaseStore
from server.respond.rules import ResponseRules
from server.respond.service import Respond
from tests.conftest import ServerProcess, Staff, backend_env
from tests.standins import until

PROJECT = "ZFCG-ASK-1"
OTHER = "ZFCG-ASK-2"
CONTACT = "13912345678"
QUESTION = "投标保证金能否以银行保函形式提交？我的电话 13912345678"
PUBLISHED = "投标保证金能否以银行保函形式提交？"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[ServerProcess, Staff, httpx.Client]]:
    server = ServerProcess(tmp_path / "data").start()
    staff = Staff(server, server.token("respond-admin"))
    staff.project(PROJECT, category="gov_procurement", agency="YW-ZFCG")
    staff.project(OTHER, category="gov_procurement", agency="YW-ZFCG")
    public = httpx.Client(base_url=server.url, timeout=10)
    yield server, staff, public
    public.close()
    staff.client.close()
    if server.process is not None:
        server.stop()


def ask(public: httpx.Client, project: str = PROJECT, **body: Any) -> dict[str, Any]:
    response = public.post(
        f"/api/projects/{project}/enquiries", json={"question": PUBLISHED, **body}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_ask_answer_rate_with_the_ticket(
    world: tuple[ServerProcess, Staff, httpx.Client],
) -> None:
    server, staff, public = world
    asked = ask(public, question=QUESTION, contact=CONTACT)
    assert set(asked) == {"id", "ticket", "status", "due", "asked_at", "project", "topic"}
    assert asked["status"] == "open" and asked["topic"] == f"enquiry:{asked['id']}"
    # 3 working days (政府采购法实施条例 §52): the end of the third working day after.
    received = datetime.fromisoformat(asked["asked_at"])
    due = WorkCalendar.load().due(received, 3, ResponseRules.load()["all.disclosure-reply"].unit)
    assert asked["due"] == due.at.isoformat(timespec="milliseconds")
    ticket = {"X-Ticket": asked["ticket"]}
    mine = public.get(f"/api/enquiries/{asked['id']}", headers=ticket)
    assert mine.status_code == 200 and mine.headers["cache-control"] == "no-store"
    assert mine.json()["question"] == QUESTION and mine.json()["answer"] is None
    # A wrong ticket, no ticket and an unknown id: the same 404, word for word.
    wrong = public.get(f"/api/enquiries/{asked['id']}", headers={"X-Ticket": "x" * 43})
    missing = public.get(f"/api/enquiries/{asked['id']}")
    unknown = public.get("/api/enquiries/qaaaaaaaaaaaa", headers=ticket)
    assert wrong.status_code == missing.status_code == unknown.status_code == 404
    assert wrong.json() == missing.json() == unknown.json()
    # Not answered yet: no rating.
    early = public.post(f"/api/enquiries/{asked['id']}/rating", json={"score": 5}, headers=ticket)
    assert early.status_code == 409 and early.json()["error"]["code"] == "not_answered"

    inbox = staff.client.get("/api/enquiries", params={"status": "open"})
    assert inbox.status_code == 200 and inbox.headers["cache-control"] == "no-store"
    [item] = inbox.json()["items"]
    assert item["question"] == QUESTION and item["contact"] == CONTACT
    answered = staff.client.post(
        f"/api/enquiries/{asked['id']}/answer",
        json={"answer": "可以，接受银行保函。", "question": PUBLISHED},
    )
    assert answered.status_code == 201, answered.text
    event = answered.json()
    assert event["stage"] == "enquiry_answer" and event["project"] == PROJECT
    assert event["data"] == {
        "enquiry": asked["id"],
        "question": PUBLISHED,
        "answer": "可以，接受银行保函。",
        "asked_at": asked["asked_at"],
    }
    again = staff.client.post(f"/api/enquiries/{asked['id']}/answer", json={"answer": "改答"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_open"
    # In everyone's timeline; the project's stage is not moved by it.
    project = public.get(f"/api/projects/{PROJECT}").json()
    assert project["timeline"][-1]["seq"] == event["seq"]
    assert project["stage"] != "enquiry_answer"
    # Publishing the answer directly, as a stage, is not allowed.
    direct = staff.client.post(
        f"/api/projects/{PROJECT}/events", json={"stage": "enquiry_answer", "title": "答"}
    )
    assert direct.status_code == 422
    mine = public.get(f"/api/enquiries/{asked['id']}", headers=ticket).json()
    assert mine["status"] == "answered" and mine["answer"]["seq"] == event["seq"]
    assert mine["answer"]["question"] == PUBLISHED
    rated = public.post(
        f"/api/enquiries/{asked['id']}/rating", json={"score": 4, "comment": "清楚"}, headers=ticket
    )
    assert rated.status_code == 201
    twice = public.post(f"/api/enquiries/{asked['id']}/rating", json={"score": 1}, headers=ticket)
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_rated"
    # The public scorecard counts it; the contact and the asker's own words are nowhere public.
    [agency] = [
        a for a in public.get("/api/compliance").json()["agencies"] if a["agency"] == "YW-ZFCG"
    ]
    assert agency["enquiries"]["received"] == 1
    assert agency["enquiries"]["answered_on_time"] == 1
    assert agency["enquiries"]["satisfaction"] == {"mean": 4.0, "count": 1}
    everything = public.get("/api/events", params={"since": 0, "limit": 1000}).text
    assert CONTACT not in everything and PUBLISHED in everything
    assert CONTACT not in server.log_tail(10**7)


def test_a_repeat_is_answered_by_linking_and_a_decline_gives_a_reason(
    world: tuple[ServerProcess, Staff, httpx.Client],
) -> None:
    server, staff, public = world
    first, repeat, elsewhere, declined = (
        ask(public),
        ask(public),
        ask(public, project=OTHER),
        ask(public),
    )
    answered = staff.client.post(f"/api/enquiries/{first['id']}/answer", json={"answer": "可以"})
    assert answered.status_code == 201
    head = server.head()
    linked = staff.client.post(
        f"/api/enquiries/{repeat['id']}/answer", json={"same_as": first["id"]}
    )
    assert linked.status_code == 200 and linked.json()["seq"] == answered.json()["seq"]
    assert server.head() == head  # nothing new published
    mine = public.get(f"/api/enquiries/{repeat['id']}", headers={"X-Ticket": repeat["ticket"]})
    assert mine.json()["status"] == "answered"
    assert mine.json()["answer"]["answer"] == "可以"
    # Only an answered enquiry of the same project.
    wrong = staff.client.post(
        f"/api/enquiries/{elsewhere['id']}/answer", json={"same_as": first["id"]}
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "not_answered"
    no = staff.client.post(
        f"/api/enquiries/{declined['id']}/decline", json={"reason": "非本项目事项"}
    )
    assert no.status_code == 200 and no.json()["status"] == "declined"
    mine = public.get(f"/api/enquiries/{declined['id']}", headers={"X-Ticket": declined["ticket"]})
    assert mine.json()["reason"] == "非本项目事项" and mine.json()["answer"] is None
    assert server.head() == head  # a decline publishes nothing; it is counted
    [agency] = [
        a for a in public.get("/api/compliance").json()["agencies"] if a["agency"] == "YW-ZFCG"
    ]
    assert agency["enquiries"]["outcomes"] == {"answered": 2, "declined": 1}
    assert agency["enquiries"]["open"] == 1


def test_publishers_see_their_own_agency_and_supervisors_no_contact(
    world: tuple[ServerProcess, Staff, httpx.Client],
) -> None:
    server, staff, public = world
    staff.project("TD-ASK-1", category="land", agency="YW-ZRZY")
    ask(public, contact=CONTACT)
    land = ask(public, project="TD-ASK-1")
    mine = server.token("zfcg", "publisher", "YW-ZFCG")
    watcher = server.token("watcher", "supervisor")
    own = httpx.get(server.url + "/api/enquiries", headers=bearer(mine)).json()["items"]
    assert {i["agency"] for i in own} == {"YW-ZFCG"}
    other = httpx.get(
        server.url + "/api/enquiries", params={"agency": "YW-ZRZY"}, headers=bearer(mine)
    )
    assert other.status_code == 403
    answer = httpx.post(
        server.url + f"/api/enquiries/{land['id']}/answer",
        json={"answer": "x"},
        headers=bearer(mine),
    )
    assert answer.status_code == 403
    every = httpx.get(server.url + "/api/enquiries", headers=bearer(watcher)).json()["items"]
    assert {i["agency"] for i in every} == {"YW-ZFCG", "YW-ZRZY"}
    assert all(i["contact"] is None for i in every)  # supervisors see cases, not people
    assert all(i["age_days"] >= 0 for i in every)
    # Oldest due first: the land enquiry (all.enquiry-answer, 3 WD) is due with the other.
    dues = [i["due"] for i in every]
    assert dues == sorted(dues)
    refused = httpx.post(
        server.url + f"/api/enquiries/{land['id']}/decline",
        json={"reason": "x"},
        headers=bearer(watcher),
    )
    assert refused.status_code == 403
    assert httpx.get(server.url + "/api/enquiries").status_code == 401


def test_a_disclosure_request_is_extended_once_and_replied(
    world: tuple[ServerProcess, Staff, httpx.Client],
) -> None:
    _, staff, public = world
    body = {
        "agency": "YW-ZRZY",
        "subject": "2025年土地出让收入明细",
        "description": "请公开2025年度全部土地出让收入明细表。",
        "contact": "zhang.san@example.com",
    }
    unknown = public.post("/api/disclosure-requests", json={**body, "agency": "NOWHERE"})
    assert unknown.status_code == 422
    no_contact = public.post("/api/disclosure-requests", json={**body, "contact": ""})
    assert (
        no_contact.status_code == 422
        and no_contact.json()["error"]["details"]["field"] == "contact"
    )
    filed = public.post("/api/disclosure-requests", json=body)
    assert filed.status_code == 201
    request = filed.json()
    assert request["status"] == "received"
    ticket = {"X-Ticket": request["ticket"]}
    extended = staff.client.post(
        f"/api/disclosure-requests/{request['id']}/extend", json={"reason": "需征求第三方意见"}
    )
    assert extended.status_code == 200 and extended.json()["status"] == "extended"
    assert extended.json()["due"] > request["due"]
    twice = staff.client.post(
        f"/api/disclosure-requests/{request['id']}/extend", json={"reason": "再延"}
    )
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_extended"
    bad = staff.client.post(
        f"/api/disclosure-requests/{request['id']}/reply", json={"outcome": "maybe", "text": "x"}
    )
    assert bad.status_code == 422
    replied = staff.client.post(
        f"/api/disclosure-requests/{request['id']}/reply",
        json={"outcome": "partly_granted", "text": "附件为可公开部分。", "basis": "第十五条"},
    )
    assert replied.status_code == 200 and replied.json()["status"] == "replied"
    seen = public.get(f"/api/disclosure-requests/{request['id']}", headers=ticket).json()
    assert seen["reply"]["outcome"] == "partly_granted"
    assert seen["reply"]["text"] == "附件为可公开部分。"
    assert seen["extension"]["reason"] == "需征求第三方意见"
    assert public.get(f"/api/disclosure-requests/{request['id']}").status_code == 404
    # Only counts and timeliness are public.
    scorecard = public.get("/api/compliance").text
    assert body["subject"] not in scorecard and body["contact"] not in scorecard
    [agency] = [a for a in json.loads(scorecard)["agencies"] if a["agency"] == "YW-ZRZY"]
    assert agency["disclosure_requests"]["received"] == 1
    assert agency["disclosure_requests"]["outcomes"] == {"partly_granted": 1}
    assert body["subject"] not in public.get("/api/events", params={"since": 0}).text


def test_a_retried_filing_gets_the_same_case_and_ticket(
    world: tuple[ServerProcess, Staff, httpx.Client],
) -> None:
    """A phone that lost the 201 sends again with the same Idempotency-Key."""
    _, staff, public = world
    key = {"Idempotency-Key": "5f0c6a1e-ask-1"}
    path = f"/api/projects/{PROJECT}/enquiries"
    first = public.post(path, json={"question": "工期？", "contact": "x"}, headers=key)
    again = public.post(path, json={"question": "工期？", "contact": "x"}, headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    other = public.post(path, json={"question": "别的问题"}, headers=key)
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    # The same key for a request is another filing; repeated, the same request.
    body = {"agency": "YW-ZFCG", "subject": "合同", "description": "请公开", "contact": "y"}
    filed = public.post("/api/disclosure-requests", json=body, headers=key)
    repeat = public.post("/api/disclosure-requests", json=body, headers=key)
    assert (filed.status_code, repeat.status_code) == (201, 200)
    assert repeat.json()["ticket"] == filed.json()["ticket"]
    inbox = staff.client.get("/api/enquiries").json()["items"]
    assert [i["id"] for i in inbox] == [first.json()["id"]]


def test_filing_is_rate_limited_per_address_and_per_device(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data", SUNBID_ASK_BURST="4", SUNBID_ASK_DEVICE_BURST="2"
    ).start()
    try:
        staff = Staff(server, server.token("a"))
        staff.project(PROJECT, category="gov_procurement")
        staff.client.close()
        with httpx.Client(base_url=server.url) as public:
            device = {"X-Device-Id": "device-0001"}
            for _ in range(2):
                assert (
                    public.post(
                        f"/api/projects/{PROJECT}/enquiries",
                        json={"question": "问"},
                        headers=device,
                    ).status_code
                    == 201
                )
            limited = public.post(
                f"/api/projects/{PROJECT}/enquiries", json={"question": "问"}, headers=device
            )
            assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
            # Another device behind the same address still may, until the address's limit.
            other = {"X-Device-Id": "device-0002"}
            assert (
                public.post(
                    f"/api/projects/{PROJECT}/enquiries", json={"question": "问"}, headers=other
                ).status_code
                == 201
            )
            statuses = [
                public.post(
                    f"/api/projects/{PROJECT}/enquiries", json={"question": "问"}, headers=other
                ).status_code
                for _ in range(2)
            ]
            assert statuses[-1] == 429
            bad = public.post(
                f"/api/projects/{PROJECT}/enquiries",
                json={"question": "问"},
                headers={"X-Device-Id": "short"},
            )
            assert bad.status_code == 422
    finally:
        server.stop()


def test_the_enquiry_topic_is_for_notifications_only(
    world: tuple[ServerProcess, Staff, httpx.Client],
) -> None:
    server, _, public = world
    asked = ask(public)
    topic = asked["topic"]
    sse = public.get("/api/events", params={"topics": topic})
    assert sse.status_code == 422 and sse.json()["error"]["code"] == "invalid_topic"

    async def on_the_socket() -> dict[str, Any]:
        async with websockets.connect(server.ws_url) as ws:
            await ws.send(json.dumps({"op": "subscribe", "topics": [topic]}))
            return dict(json.loads(await ws.recv()))

    answer = asyncio.run(on_the_socket())
    assert answer["op"] == "error" and answer["code"] == "invalid_topic"


def test_a_due_time_warning_reaches_supervisors_live_once(tmp_path: Path) -> None:
    """A case whose period ran out while no server ran is found by the timer,
    handed to the supervisor following `supervision`, listed, and neither
    repeated nor lost by a restart."""
    data = tmp_path / "data"
    server = ServerProcess(data).start()
    staff = Staff(server, server.token("admin"))
    staff.project(PROJECT, category="gov_procurement", agency="YW-ZFCG")
    staff.client.close()
    watcher = server.token("watcher", "supervisor")

    async def follow() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        async with websockets.connect(server.ws_url) as ws:
            await ws.send(json.dumps({"op": "auth", "token": watcher}))
            assert json.loads(await ws.recv())["op"] == "authed"
            await ws.send(json.dumps({"op": "subscribe", "topics": ["supervision"]}))
            assert json.loads(await ws.recv())["op"] == "subscribed"
            # Filed "ten days ago" beside the running server (another writer of
            # respond.db, as a second process would be): its warnings are due.
            await file_in_the_past(data, days=10)
            deadline = asyncio.get_running_loop().time() + 8
            while len(got) < 2 and asyncio.get_running_loop().time() < deadline:
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 1))
                except TimeoutError:
                    continue
                if frame.get("op") == "warning" and "case" in frame["warning"]:
                    got.append(frame["warning"])
        return got

    try:
        live = asyncio.run(follow())
        assert sorted(w["level"] for w in live) == ["approaching", "breach"]
        assert all(w["case"]["kind"] == "enquiry" and w["project"] == PROJECT for w in live)
        assert all(w["rule"] == "gov_procurement.enquiry-answer" for w in live)
        listed = httpx.get(
            server.url + "/api/supervision/warnings", headers=bearer(watcher)
        ).json()["items"]
        assert {w["id"] for w in listed} >= {w["id"] for w in live}
        server.stop()
        server.start()
        again = httpx.get(server.url + "/api/supervision/warnings", headers=bearer(watcher)).json()[
            "items"
        ]
        assert sorted(w["id"] for w in again if "case" in w) == sorted(w["id"] for w in live)
        metrics = httpx.get(server.url + "/metrics").text
        assert 'sunbid_compliance_open_warnings{level="breach"} 1.0' in metrics
        assert server.cli("verify").returncode == 0
    finally:
        if server.process is not None:
            server.stop()


async def file_in_the_past(data: Path, days: int) -> None:
    """File an enquiry as if received `days` ago, through the service's own code."""
    clock = PastClock(days)
    respond = Respond(
        CaseStore(data / "respond.db", **_store_backend(data)),
        ResponseRules.load(),
        WorkCalendar.load(),
        clock,
        ContactCipher.load_or_create(data),
        lambda warning: None,
        background=False,
    )
    await respond.store.open()
    try:
        project = {"id": PROJECT, "agency": "YW-ZFCG", "category": "gov_procurement"}
        await respond.ask(project, "逾期未答的问题", None)
    finally:
        await respond.store.close()


class PastClock(Clock):
    def __init__(self, days: int) -> None:
        super().__init__(LEGAL_TZ)
        self.days = days

    def now(self) -> datetime:
        return super().now() - timedelta(days=self.days)


def _store_backend(data: Path) -> dict[str, str]:
    env = backend_env(data)
    if not env:
        return {}
    return {
        "database_url": env["SUNBID_DATABASE_URL"],
        "database_schema": env["SUNBID_DATABASE_SCHEMA"],
    }


def test_contacts_are_erased_from_every_file_after_the_case_closes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, SUNBID_CASE_KEEP_DAYS="0").start()
    try:
        staff = Staff(server, server.token("admin"))
        staff.project(PROJECT, category="gov_procurement", agency="YW-ZFCG")
        with httpx.Client(base_url=server.url) as public:
            asked = ask(public, question=QUESTION, contact=CONTACT)
            request = public.post(
                "/api/disclosure-requests",
                json={
                    "agency": "YW-ZFCG",
                    "subject": "采购合同",
                    "description": "请提供合同文本",
                    "contact": "li.si@example.com",
                },
            ).json()
            inbox = staff.client.get("/api/enquiries").json()["items"]
            assert inbox[0]["contact"] == CONTACT  # kept while the case is open
            unedited = staff.client.post(
                f"/api/enquiries/{asked['id']}/answer", json={"answer": "可以"}
            )
            assert unedited.status_code == 422  # the asker's number is in the question
            assert unedited.json()["error"]["code"] == "personal_data"
            assert unedited.json()["error"]["details"]["found"] == [
                "a mobile number",
                "the asker's contact",
            ]
            staff.client.post(
                f"/api/enquiries/{asked['id']}/answer",
                json={"answer": "可以", "question": PUBLISHED},
            )
            staff.client.post(
                f"/api/disclosure-requests/{request['id']}/reply",
                json={"outcome": "granted", "text": "见附件"},
            )

            def erased() -> bool:
                items = staff.client.get("/api/enquiries").json()["items"]
                return bool(items) and all(i["erased"] for i in items)

            until(erased, 15)
            mine = public.get(
                f"/api/enquiries/{asked['id']}", headers={"X-Ticket": asked["ticket"]}
            ).json()
            assert mine["erased"] and mine["question"] is None
            assert mine["answer"]["answer"] == "可以"  # what was published stays published
            [item] = staff.client.get("/api/disclosure-requests").json()["items"]
            assert (
                item["erased"] and item["contact"] is None and item["reply"]["outcome"] == "granted"
            )
        staff.client.close()
        server.stop()
        for needle in (CONTACT, "li.si@example.com", "请提供合同文本"):
            holders = [
                p.name for p in data.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()
            ]
            assert holders == [], needle
    finally:
        if server.process is not None:
            server.stop()
