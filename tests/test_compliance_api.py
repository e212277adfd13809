"""Compliance as clients see it, against real `sunbid serve` processes: the catalogue,
the public scorecard, the supervisors' warning list and live `supervision` topic,
deadlines on a project, restarts, staff-edited rules and the demo.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from server.compliance.calendar import LEGAL_TZ, Unit, WorkCalendar
from server.compliance.rules import RULES_FILE
from tests.conftest import ROOT, ServerProcess, Staff

CALENDAR = WorkCalendar.load()
CATEGORIES = {
    "construction",
    "gov_procurement",
    "state_assets",
    "land",
    "mining",
    "soe_procurement",
    "rural_property",
    "emission_rights",
}
ITEM_FIELDS = {
    "code",
    "name",
    "content",
    "basis",
    "time_limit",
    "body",
    "channel",
    "audience",
    "mode",
    "level",
    "stages",
}
RULE_FIELDS = {
    "id",
    "category",
    "trigger",
    "target",
    "kind",
    "amount",
    "unit",
    "basis",
    "confidence",
}
WARNING_FIELDS = {
    "id",
    "rule",
    "project",
    "agency",
    "due",
    "basis",
    "level",
    "message",
    "created_at",
    "resolved_at",
}
SCORE_FIELDS = {"due", "on_time", "late", "open_breaches", "on_time_rate"}
RFC3339_CST = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?\+08:00$")

_ids = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def served(at: datetime) -> datetime:
    """A calendar time as the API serves it: to the millisecond."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def beijing(text: str, days: int = 0) -> str:
    """An event time `days` after `text`, as an RFC 3339 Beijing time."""
    return (moment(text) + timedelta(days=days)).astimezone(LEGAL_TZ).isoformat()


def assert_error(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error["code"] and error["message"], error
    if field is not None:
        assert error["details"]["field"] == field, error


def rules_copy(
    tmp_path: Path, old: str, new: str, rule: str = "construction.award-contract"
) -> Path:
    """The shipped rules with one line of one rule changed."""
    text = RULES_FILE.read_text("utf-8")
    block = re.compile(rf'(id = "{re.escape(rule)}"(?:\n(?!\[\[rule\]\]).*)*?){re.escape(old)}')
    changed, count = block.subn(lambda m: m.group(1) + new, text)
    assert count == 1, (rule, old)
    path = tmp_path / "rules.toml"
    path.write_text(changed, "utf-8")
    return path


class Supervisor:
    def __init__(self, server: ServerProcess, token: str) -> None:
        self.server = server
        self.client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def warnings(self, **params: str | int) -> dict[str, Any]:
        response = self.client.get("/api/supervision/warnings", params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def all_warnings(self, **params: str | int) -> list[dict[str, Any]]:
        body = self.warnings(limit=500, **params)
        assert body["next_cursor"] is None
        return list(body["items"])

    def wait_for(self, count: int, **params: str | int) -> list[dict[str, Any]]:
        """The warnings matching `params`, once there are `count` (they are stored
        by the timer task, within about a second of being found)."""
        deadline = time.monotonic() + 5
        while True:
            items = self.all_warnings(**params)
            if len(items) >= count or time.monotonic() > deadline:
                assert len(items) == count, items
                return items
            time.sleep(0.05)


def project_page(server: ServerProcess, project_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/api/projects/{project_id}", timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def scorecard(server: ServerProcess, **params: str) -> list[dict[str, Any]]:
    response = httpx.get(server.url + "/api/compliance", params=params, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"as_of", "agencies"} and RFC3339_CST.match(body["as_of"]), body
    return list(body["agencies"])


def break_rules(staff: Staff, prefix: str) -> dict[str, Any]:
    """Four warnings in two fresh agencies: two open (construction), two resolved
    at once (gov_procurement). (A contract needs its award, and an award its
    notice: the contract is in a project of its own, `g2`, so that `g`'s plan
    awaits no notice.)"""
    c, g, g2 = f"{prefix}-C", f"{prefix}-G", f"{prefix}-G2"
    staff.project(c, "construction", agency=f"{prefix}-A1")
    staff.project(g, "gov_procurement", agency=f"{prefix}-A2")
    staff.project(g2, "gov_procurement", agency=f"{prefix}-A2")
    soon = beijing(datetime.now(LEGAL_TZ).isoformat(), 5)
    notice = staff.publish(c, "notice", data={"deadline": soon})  # 5 days: too short (时限不足)
    candidates = staff.publish(c, "candidates")
    award = staff.publish(c, "award")  # the same day: publicity too short
    plan = staff.publish(g, "plan", occurred_at=beijing(award["published_at"], -60))
    staff.publish(g2, "notice")
    staff.publish(g2, "award", occurred_at=beijing(award["published_at"], -12))
    contract = staff.publish(
        g2, "contract", data={"signed_at": beijing(award["published_at"], -10)}
    )
    return {
        "c": c,
        "g": g,
        "g2": g2,
        "agencies": (f"{prefix}-A1", f"{prefix}-A2"),
        "ids": {
            f"construction.notice-deadline/{c}/{notice['seq']}-{notice['seq']}/breach",
            f"construction.candidates-publicity/{c}/{candidates['seq']}-{award['seq']}/breach",
            f"all.information-published/{g}/{plan['seq']}/breach",
            f"gov_procurement.contract-published/{g2}/{contract['seq']}/breach",
        },
        "award": award,
        "contract": contract,
    }


# --- fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("compliance") / "data").start()
    yield proc
    if proc.process is not None:
        proc.stop()


@pytest.fixture(scope="module")
def tokens(shared: ServerProcess) -> dict[str, str]:
    return {
        "admin": shared.token("admin", "admin"),
        "supervisor": shared.token("supervisor", "supervisor"),
        "publisher": shared.token("publisher", "publisher", "YW-GGZY"),
    }


@pytest.fixture
def staff(shared: ServerProcess, tokens: dict[str, str]) -> Iterator[Staff]:
    member = Staff(shared, tokens["admin"])
    yield member
    member.client.close()


@pytest.fixture
def supervisor(shared: ServerProcess, tokens: dict[str, str]) -> Iterator[Supervisor]:
    member = Supervisor(shared, tokens["supervisor"])
    yield member
    member.client.close()


# --- the catalogue and the scorecard (public) ------------------------------------------


def test_catalog_has_every_item_and_rule_field_and_every_category(shared: ServerProcess) -> None:
    response = httpx.get(shared.url + "/api/catalog")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "rules", "must_tender"}
    assert [t["amount"] for t in body["must_tender"]["thresholds"]] == [4e6, 2e6, 1e6]
    items, rules = body["items"], body["rules"]
    assert len(items) >= 10 and len(rules) >= 30
    for item in items:
        assert set(item) >= ITEM_FIELDS, item["code"]
        assert all(item[k] for k in ITEM_FIELDS - {"stages"}), item["code"]
    for rule in rules:
        assert set(rule) >= RULE_FIELDS, rule
        assert rule["kind"] in ("due_within", "at_least") and rule["unit"] in ("day", "workday")
        assert isinstance(rule["amount"], int) and rule["amount"] > 0
        assert rule["confidence"] in ("statute", "secondary", "memory")
    assert len({i["code"] for i in items}) == len(items)
    assert len({r["id"] for r in rules}) == len(rules)
    # Every category of DOMAIN.md's time-limit table has its rules, and the
    # catalogue speaks of every trading category.
    assert {r["category"] for r in rules} == CATEGORIES | {"all"}
    assert set(itertools.chain.from_iterable(i["categories"] for i in items)) == CATEGORIES
    # Items refer to real rules and stages.
    rule_ids = {r["id"] for r in rules}
    vocabulary = httpx.get(shared.url + "/api/categories").json()["items"]
    stages = {s["code"] for c in vocabulary for s in c["stages"]}
    for item in items:
        assert set(item.get("rules", [])) <= rule_ids, item["code"]
        assert set(item["stages"]) <= stages, item["code"]
    award = next(r for r in rules if r["id"] == "construction.award-contract")
    assert (award["trigger"], award["target"], award["amount"], award["unit"]) == (
        "award",
        "contract.data.signed_at",
        30,
        "day",
    )


def test_scorecard_shape_and_filters(shared: ServerProcess, staff: Staff) -> None:
    made = break_rules(staff, unique("SC"))
    a1, a2 = made["agencies"]
    [entry] = scorecard(shared, agency=a1)
    assert entry["agency"] == a1
    assert set(entry) >= SCORE_FIELDS and {"by_category", "by_period"} <= set(entry)
    assert entry["due"] == (
        entry["on_time"] + entry["late"] + entry["too_short"] + entry["open_breaches"]
    )
    # The notice's period and the candidates' publicity were too short (时限不足): not late.
    assert entry["too_short"] == 2 and entry["late"] == 0
    assert 0 <= entry["on_time_rate"] < 1
    assert [c["category"] for c in entry["by_category"]] == ["construction"]
    month = moment(made["award"]["published_at"]).strftime("%Y-%m")
    assert [p["period"] for p in entry["by_period"]] == [month]
    for part in (*entry["by_category"], *entry["by_period"]):
        assert set(part) >= SCORE_FIELDS
    [other] = scorecard(shared, agency=a2, category="gov_procurement")
    assert other["late"] == 2 and other["open_breaches"] == 0
    assert scorecard(shared, agency=a2, category="construction") == []
    assert scorecard(shared, agency=a1, period=month) == [entry]
    assert scorecard(shared, agency=a1, period="1999-01") == []
    assert scorecard(shared, agency=a1, month=month) == [entry]
    assert scorecard(shared, agency=a1, month="1999-01") == []
    everyone = {a["agency"] for a in scorecard(shared)}
    assert {a1, a2} <= everyone


def test_the_scorecard_lists_the_worst_agencies_first(shared: ServerProcess, staff: Staff) -> None:
    made = break_rules(staff, unique("WF"))
    # One more late disclosure: the second agency misses 3, the first 2.
    staff.publish(made["g"], "plan", occurred_at=beijing(made["award"]["published_at"], -60))
    card = scorecard(shared)
    missed = [a["late"] + a["too_short"] + a["open_breaches"] for a in card]
    assert missed == sorted(missed, reverse=True)
    order = [a["agency"] for a in card]
    assert order.index(made["agencies"][1]) < order.index(made["agencies"][0]), "3 missed before 2"


def items(server: ServerProcess, **params: str) -> list[dict[str, Any]]:
    response = httpx.get(server.url + "/api/compliance/items", params=params, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert RFC3339_CST.match(body["as_of"]), body["as_of"]
    return list(body["items"])


def test_the_drill_down_names_each_item_late_and_too_short_apart(
    shared: ServerProcess, staff: Staff
) -> None:
    made = break_rules(staff, unique("DD"))
    a1, a2 = made["agencies"]
    notice_short, short = items(shared, agency=a1)
    assert notice_short["rule"] == "construction.notice-deadline"
    assert notice_short["state"] == "too_short"
    assert short["project"] == made["c"] and short["project_title"] == f"测试项目 {made['c']}"
    assert (short["status"], short["state"], short["kind"]) == ("late", "too_short", "at_least")
    assert short["rule"] == "construction.candidates-publicity"
    assert short["rule_name"] == {"zh": "中标候选人公示期不少于3日", "en": short["rule_name"]["en"]}
    assert "3 days" in short["rule_name"]["en"] and short["basis"] == "招标投标法实施条例 §54"
    assert short["basis_en"] == "Bidding Law Implementing Regulations §54"
    assert short["advisory"] is False
    assert short["target_seq"] == made["award"]["seq"]
    assert moment(short["done_at"]) == moment(made["award"]["published_at"])
    late = items(shared, agency=a2)
    assert {i["rule"] for i in late} == {
        "all.information-published",
        "gov_procurement.contract-published",
    }
    for item in late:
        assert (item["status"], item["state"]) == ("late", "late")
        assert moment(item["done_at"]) > moment(item["due_at"]), item
    by_project = [
        *items(shared, project=made["g"], status="late"),
        *items(shared, project=made["g2"], status="late"),
    ]
    assert {i["rule"] for i in by_project} == {i["rule"] for i in late}
    month = moment(made["award"]["published_at"]).astimezone(LEGAL_TZ).strftime("%Y-%m")
    assert items(shared, agency=a1, month=month) == [notice_short, short]
    assert items(shared, agency=a1, month="1999-01") == []
    assert items(shared, agency=a1, status="open") == []
    assert items(shared, agency=a2, limit="1") == late[:1]
    # On time: one project's every item, the every-event rule's too.
    on_time = items(shared, project=made["c"], status="on_time")
    assert on_time and all(i["status"] == "on_time" for i in on_time)
    assert {i["rule"] for i in on_time} >= {"all.information-published"}


def test_an_overdue_item_is_open_until_published(start_server: Any) -> None:
    """A fresh server whose award was published 40 days ago, with no contract yet."""
    server = start_server()
    staff = Staff(server, server.token("open-admin"))
    # An administrative organ (directory.toml): bound to publish within 20 working days.
    staff.project("OPEN-1", agency="YW-ZRZY")
    staff.publish("OPEN-1", "notice")
    long_ago = (datetime.now(LEGAL_TZ) - timedelta(days=40)).isoformat()
    award = staff.publish("OPEN-1", "award", occurred_at=long_ago)
    [item] = [
        i for i in items(server, project="OPEN-1") if i["rule"] == "construction.award-contract"
    ]
    assert (item["status"], item["state"], item["done_at"]) == ("open", "overdue", None)
    assert item["trigger_seq"] == award["seq"] and item["target_seq"] is None
    assert items(server, project="OPEN-1", status="open") == [item]
    # Published 40 days after it happened: that is late too (20 working days).
    assert [i["rule"] for i in items(server, status="late")] == ["all.information-published"]
    signed = datetime.now(LEGAL_TZ).isoformat()
    contract = staff.publish("OPEN-1", "contract", data={"signed_at": signed})
    [done] = [
        i
        for i in items(server, project="OPEN-1", status="late")
        if i["rule"] == "construction.award-contract"
    ]
    assert done["target_seq"] == contract["seq"] and done["state"] == "late"
    assert items(server, project="OPEN-1", status="open") == []
    staff.client.close()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"month": "2026-13"}, "month"),
        ({"month": "26-01"}, "month"),
        ({"status": "too_short"}, "status"),
        ({"status": "on_time"}, "status"),  # needs project=
        ({"project": "a b"}, "project"),
        ({"agency": "x" * 65}, "agency"),
        ({"limit": "0"}, "limit"),
        ({"limit": "5001"}, "limit"),
    ],
)
def test_drill_down_bad_parameters_are_422(
    shared: ServerProcess, params: dict[str, str], field: str
) -> None:
    url = shared.url + "/api/compliance/items"
    assert_error(httpx.get(url, params=params), 422, field)


def test_the_demo_drill_down_shows_its_late_contract(start_server: Any) -> None:
    server = start_server(SUNBID_DEMO="1")
    late = items(server, status="late")
    assert any(i["rule"].endswith("award-contract") for i in late), late
    assert all(i["project_title"] for i in late)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"agency": "a b"}, "agency"),
        ({"agency": "x" * 65}, "agency"),
        ({"category": "gov procurement"}, "category"),
        ({"category": "类别"}, "category"),
        ({"period": "2026-13"}, "period"),
        ({"period": "2026-1"}, "period"),
        ({"period": "202611"}, "period"),
        ({"period": "2026-11-01"}, "period"),
    ],
)
def test_scorecard_bad_parameters_are_422(
    shared: ServerProcess, params: dict[str, str], field: str
) -> None:
    assert_error(httpx.get(shared.url + "/api/compliance", params=params), 422, field)


# --- the warning list (supervisors) ---------------------------------------------------


def test_warnings_need_a_supervisor_or_admin_token(
    shared: ServerProcess, tokens: dict[str, str]
) -> None:
    url = shared.url + "/api/supervision/warnings"
    assert_error(httpx.get(url), 401)
    assert_error(httpx.get(url, headers={"Authorization": "Bearer sb_" + "x" * 43}), 401)
    publisher = {"Authorization": f"Bearer {tokens['publisher']}"}
    assert_error(httpx.get(url, headers=publisher), 403)
    for role in ("supervisor", "admin"):
        response = httpx.get(url, headers={"Authorization": f"Bearer {tokens[role]}"})
        assert response.status_code == 200, role
        assert set(response.json()) == {"items", "next_cursor"}


def test_warnings_filter_by_agency_category_level_state_and_project(
    staff: Staff, supervisor: Supervisor
) -> None:
    made = break_rules(staff, unique("WF"))
    a1, a2 = made["agencies"]
    c, g = made["c"], made["g"]
    found = supervisor.wait_for(2, agency=a1) + supervisor.wait_for(2, agency=a2)
    assert {w["id"] for w in found} == made["ids"]
    for warning in found:
        assert set(warning) >= WARNING_FIELDS, warning
        assert RFC3339_CST.match(warning["created_at"]), warning
        assert warning["basis"] and warning["message"]
    contract = next(w for w in found if w["rule"] == "gov_procurement.contract-published")
    assert RFC3339_CST.match(contract["due"]) and contract["level"] == "breach"
    assert moment(contract["resolved_at"]) == moment(made["contract"]["published_at"])

    def ids(**params: str) -> set[str]:
        return {w["id"] for w in supervisor.all_warnings(**params)}

    assert ids(project=c) == {w["id"] for w in found if w["project"] == c}
    assert ids(category="gov_procurement", agency=a2) == ids(project=g) | ids(project=made["g2"])
    assert ids(category="construction", agency=a2) == set()
    assert ids(level="data_incomplete", project=c) == set()  # a notice states its deadline
    assert len(ids(level="breach", project=c)) == 2
    assert ids(level="approaching", project=c) == set()
    assert ids(state="open", agency=a1) == ids(project=c)
    assert ids(state="resolved", agency=a1) == set()
    assert ids(state="resolved", project=g) == ids(project=g)
    assert ids(state="open", project=g) == set()
    # Newest first.
    listed = supervisor.all_warnings()
    keys = [(moment(w["created_at"]), w["id"]) for w in listed]
    assert keys == sorted(keys, reverse=True)


def test_warnings_paging_with_a_cursor(staff: Staff, supervisor: Supervisor) -> None:
    made = break_rules(staff, unique("WP"))
    for agency in made["agencies"]:
        supervisor.wait_for(2, agency=agency)  # all stored: the list holds still
    everything = supervisor.all_warnings()
    assert len(everything) >= 4
    paged: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(len(everything) + 1):
        params: dict[str, str | int] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = supervisor.warnings(**params)
        assert len(page["items"]) <= 3
        paged += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == everything


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"[1,2]").decode()}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b'{"a":1}').decode()}, "cursor"),
        ({"level": "urgent"}, "level"),
        ({"state": "closed"}, "state"),
        ({"agency": "a b"}, "agency"),
        ({"project": "x" * 65}, "project"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
    ],
)
def test_warnings_bad_parameters_are_422(
    supervisor: Supervisor, params: dict[str, str], field: str
) -> None:
    response = supervisor.client.get("/api/supervision/warnings", params=params)
    assert_error(response, 422, field)


# --- live warnings on the `supervision` topic ------------------------------------------


async def recv(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def before_pong(ws: Any) -> list[dict[str, Any]]:
    await ws.send('{"op":"ping"}')
    seen = []
    while (message := await recv(ws))["op"] != "pong":
        seen.append(message)
    return seen


async def test_supervisors_get_warnings_live_and_bidders_never_do(
    shared: ServerProcess, staff: Staff, tokens: dict[str, str]
) -> None:
    prefix = unique("WS")
    async with (
        websockets.connect(shared.ws_url) as desk,
        websockets.connect(shared.ws_url) as bidder,
    ):
        await desk.send(json.dumps({"op": "auth", "token": tokens["supervisor"]}))
        assert await recv(desk) == {"op": "authed", "role": "supervisor", "agency": None}
        await desk.send(json.dumps({"op": "subscribe", "topics": ["supervision"]}))
        assert (await recv(desk))["op"] == "subscribed"
        await bidder.send(json.dumps({"op": "subscribe", "topics": ["all"]}))
        assert (await recv(bidder))["op"] == "subscribed"

        road, school = f"{prefix}-C", f"{prefix}-G"
        staff.project(road, "construction")
        staff.project(school, "gov_procurement", agency="YW-ZFCG")
        notice = staff.publish(road, "notice")  # an award needs one (no warning: deadline far)
        candidates = staff.publish(road, "candidates")
        award = staff.publish(road, "award")
        published = time.monotonic()
        warning = (await recv(desk))["warning"]
        assert time.monotonic() - published < 5
        assert warning["id"] == (
            f"construction.candidates-publicity/{road}/{candidates['seq']}-{award['seq']}/breach"
        )
        assert set(warning) >= WARNING_FIELDS
        assert warning["project"] == road and warning["agency"] == "YW-GGZY"
        assert warning["level"] == "breach" and warning["due"] is None
        assert warning["resolved_at"] is None
        assert warning["basis"] == "招标投标法实施条例 §54"
        assert moment(warning["created_at"]) == moment(award["published_at"])

        signed = beijing(award["published_at"], -10)
        # A contract needs its award, an award its notice.
        school_notice = staff.publish(school, "notice")
        school_award = staff.publish(
            school, "award", occurred_at=beijing(award["published_at"], -12)
        )
        contract = staff.publish(school, "contract", data={"signed_at": signed})
        late = (await recv(desk))["warning"]
        assert late["id"] == (
            f"gov_procurement.contract-published/{school}/{contract['seq']}/breach"
        )
        due = CALENDAR.due(moment(signed), 2, Unit.WORKDAY).at
        assert moment(late["due"]) == served(due) and late["level"] == "breach"
        assert moment(late["resolved_at"]) == moment(late["created_at"])
        assert await before_pong(desk) == [], "each warning once, and no events"

        seen = await before_pong(bidder)
        assert [m["op"] for m in seen] == ["event"] * 8  # two registrations, six events
        assert [(m["event"]["project"], m["event"]["stage"]) for m in seen[:2]] == [
            (road, "registered"),
            (school, "registered"),
        ]
        assert [m["event"]["seq"] for m in seen[2:]] == [
            notice["seq"],
            candidates["seq"],
            award["seq"],
            school_notice["seq"],
            school_award["seq"],
            contract["seq"],
        ]


# --- deadlines on a project -----------------------------------------------------------


def test_project_page_shows_what_is_awaited_and_from_when(
    shared: ServerProcess, staff: Staff
) -> None:
    road = unique("DL")
    staff.project(road, "construction")
    assert project_page(shared, road)["deadlines"] == []
    staff.publish(road, "notice")  # an award needs its notice; its deadline is far: no rule waits
    assert project_page(shared, road)["deadlines"] == []
    evaluation = staff.publish(road, "evaluation")
    [awaited] = project_page(shared, road)["deadlines"]
    due = CALENDAR.due(moment(evaluation["published_at"]), 3, Unit.DAY)
    assert awaited["rule"] == "construction.evaluation-candidates"
    assert awaited["target"] == "candidates" and awaited["kind"] == "due_within"
    assert moment(awaited["due"]) == served(due.at) and awaited["not_before"] is None
    assert awaited["trigger"] == evaluation["seq"] and awaited["status"] == "open"
    assert awaited["estimated"] is due.estimated and awaited["basis"]

    candidates = staff.publish(road, "candidates")
    [publicity] = project_page(shared, road)["deadlines"]
    earliest = CALENDAR.at_least_met(
        moment(candidates["published_at"]), moment(candidates["published_at"]), 3, Unit.DAY, True
    ).earliest  # after the whole third day
    assert publicity["rule"] == "construction.candidates-publicity"
    assert publicity["due"] is None and moment(publicity["not_before"]) == earliest
    assert publicity["trigger"] == candidates["seq"]

    award = staff.publish(road, "award")
    [contract] = project_page(shared, road)["deadlines"]
    assert contract["rule"] == "construction.award-contract"
    assert contract["target"] == "contract.data.signed_at"
    due = CALENDAR.due(moment(award["published_at"]), 30, Unit.DAY).at
    assert moment(contract["due"]) == served(due)
    staff.publish(road, "contract", data={"signed_at": award["published_at"]})
    assert project_page(shared, road)["deadlines"] == []


# --- restarts, edited rules, the demo ------------------------------------------------


def test_a_restart_leaves_the_warnings_and_scorecard_as_they_were(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server()
    staff = Staff(server, server.token("admin"))
    supervisor = Supervisor(server, server.token("desk", "supervisor"))
    try:
        made = break_rules(staff, "RS")
        before = supervisor.wait_for(4)
        assert {w["id"] for w in before} == made["ids"]
        card = scorecard(server)
        page = project_page(server, made["c"])
        server.stop()
        server.start()
        assert supervisor.all_warnings() == before
        assert scorecard(server) == card
        assert project_page(server, made["c"])["deadlines"] == page["deadlines"]
        # And it goes on finding new ones, once each.
        staff.publish(made["c"], "notice")  # still no deadline: no second warning
        staff.publish(
            made["c"], "notice", data={"deadline": beijing(made["award"]["published_at"], 1)}
        )
        after = supervisor.wait_for(5)
        assert len({w["id"] for w in after}) == 5
    finally:
        staff.client.close()
        supervisor.client.close()


def test_a_server_with_an_edited_rules_file_counts_with_it(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    path = rules_copy(tmp_path, "amount = 30", "amount = 10")
    server = start_server(SUNBID_RULES_FILE=str(path))
    rules = httpx.get(server.url + "/api/catalog").json()["rules"]
    assert next(r for r in rules if r["id"] == "construction.award-contract")["amount"] == 10
    staff = Staff(server, server.token("admin"))
    try:
        staff.project("EDITED-1", "construction")
        staff.publish("EDITED-1", "notice")
        award = staff.publish("EDITED-1", "award")
    finally:
        staff.client.close()
    [deadline] = project_page(server, "EDITED-1")["deadlines"]
    due = CALENDAR.due(moment(award["published_at"]), 10, Unit.DAY).at
    assert moment(deadline["due"]) == served(due)


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("amount = 30", 'amount = "thirty"', ("rule #", "construction.award-contract", "amount")),
        ('unit = "day"', 'unit = "days"', ("construction.award-contract", "unit", "workday")),
        ('target = "contract.data.signed_at"', 'target = "signing"', ("award-contract", "target")),
    ],
)
def test_a_malformed_rules_file_stops_the_server_naming_file_rule_and_field(
    tmp_path: Path, old: str, new: str, named: tuple[str, ...]
) -> None:
    path = rules_copy(tmp_path, old, new)
    server = ServerProcess(tmp_path / "data", SUNBID_RULES_FILE=str(path))
    server.data_dir.mkdir(parents=True)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "server", "serve", "--port", str(server.port)],
            cwd=ROOT,
            env=server.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the server started with a malformed rules file")
    assert done.returncode != 0
    assert str(path) in done.stderr, done.stderr
    for word in named:
        assert word in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_a_missing_rules_file_stops_the_server(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "rules.toml"
    env = {**os.environ, "SUNBID_DATA_DIR": str(tmp_path / "data"), "SUNBID_RULES_FILE": str(path)}
    done = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0 and str(path) in done.stderr, done.stderr


def test_the_demo_has_its_late_contract_as_a_resolved_breach(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(SUNBID_DEMO="1")
    supervisor = Supervisor(server, server.token("desk", "supervisor"))
    try:
        late = supervisor.all_warnings(project="YW-ZFCG-2026-0056")
        timeline = project_page(server, "YW-ZFCG-2026-0056")["timeline"]
    finally:
        supervisor.client.close()
    award = next(e for e in timeline if e["stage"] == "award")
    contract = next(e for e in timeline if e["stage"] == "contract")
    due = CALENDAR.due(moment(award["published_at"]), 30, Unit.DAY).at
    assert moment(contract["data"]["signed_at"]) > due, "the demo's contract is late"
    breach = next(w for w in late if w["level"] == "breach")
    assert breach["id"] == f"gov_procurement.award-contract/YW-ZFCG-2026-0056/{award['seq']}/breach"
    assert moment(breach["due"]) == served(due)
    assert moment(breach["created_at"]) == due + timedelta(microseconds=1)  # once the day is over
    assert moment(breach["resolved_at"]) == moment(contract["published_at"])
    assert all(w["resolved_at"] is not None for w in late)

    agencies = {a["agency"]: a for a in scorecard(server)}
    assert len(agencies) >= 5
    procurement = agencies["YW-ZFCG"]
    assert procurement["late"] >= 1
    by_category = {c["category"]: c for c in procurement["by_category"]}
    assert by_category["gov_procurement"]["late"] >= 1
    for entry in agencies.values():
        if entry["due"] == 0:  # only local practice (rural property, emission rights): apart
            assert entry["on_time_rate"] is None and entry["advisory_late"] == 0, entry
            continue
        assert entry["completed"] <= entry["due"]
        assert 0.5 <= entry["on_time_rate"] <= 1, entry
    due_total = sum(a["due"] for a in agencies.values())
    on_time = sum(a["on_time"] for a in agencies.values())
    assert on_time / due_total >= 0.9, "on time, mostly"
