"""Checks before publishing: the vocabulary's facts, the contradictions with the
log (pure functions, projects/checks.py), and the API that applies them on a
real server: 422 naming the field or rule, dry runs that append nothing,
warnings shown before publishing, and racing awards of which one wins."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from server.core.errors import ApiError
from server.domain import CATEGORIES_FILE, Domain, DomainFileError
from server.projects.checks import contradiction, latest_value, refusal
from tests.conftest import Staff, with_facts

DOMAIN = Domain.load()
SHANGHAI = ZoneInfo("Asia/Shanghai")
DEMO = Path(__file__).resolve().parent.parent / "server" / "data" / "demo.json"


def event(
    seq: int, stage: str, occurred_at: str = "2026-12-01T09:00:00+08:00", **data: Any
) -> dict[str, Any]:
    return {
        "seq": seq,
        "project": "P-1",
        "category": "construction",
        "stage": stage,
        "data": data,
        "occurred_at": occurred_at,
    }


REGISTERED = event(1, "registered")
NOTICE = event(2, "notice", deadline="2026-12-20T09:30:00+08:00")


def rule_of(earlier: list[dict[str, Any]], candidate: dict[str, Any]) -> str | None:
    found = contradiction(DOMAIN, DOMAIN.categories["construction"], earlier, candidate)
    return None if found is None else found.rule


# --- the vocabulary ---------------------------------------------------------------------------


def test_every_category_names_its_own_steps() -> None:
    listed = DOMAIN.as_json()
    names = {c["code"]: {s["code"]: s["name"]["zh"] for s in c["stages"]} for c in listed["items"]}
    assert names["land"]["notice"] == "出让公告"
    assert names["construction"]["notice"] == "招标公告"
    assert names["gov_procurement"]["notice"] == "采购公告"
    assert names["state_assets"]["notice"] == "产权转让公告"
    assert names["gov_procurement"]["objection"] == "质疑"
    for category in listed["items"]:
        for stage in category["stages"]:
            if not stage["oversight"]:  # lifecycle and record stages: the trade's own word
                assert "/" not in stage["name"]["zh"], (category["code"], stage)
            assert set(stage["required"]) <= set(stage["fields"])
            assert set(stage["fields"]) <= set(listed["fields"])


def test_every_data_key_of_the_demo_is_named() -> None:
    demo = orjson.loads(DEMO.read_bytes())
    keys = {
        key
        for project in demo["projects"]
        for e in project["events"]
        for key in e.get("data", {})
        if key != "corrects_event"  # the demo file's own way to write `corrects`
    }
    fields = DOMAIN.as_json()["fields"]
    assert keys - set(fields) == set()
    for key in ("deadline", "signed_at", "winner", "amount", "corrects"):  # DOMAIN.md's
        assert key in fields
    assert fields["deadline"]["closes"] and fields["listing_ends"]["closes"]
    assert fields["deadline"]["key_date"] == {"zh": "投标截止", "en": "Bid deadline"}
    assert fields["area_km2"]["unit"] == {"zh": "平方公里", "en": "km²"}
    assert fields["amount"] == {
        "zh": "金额",
        "en": "Amount",
        "kind": "amount",
        "unit": None,
        "key_date": None,
        "closes": False,
    }
    # Every stage a demo event uses lists the keys it carries there.
    uses = {c.code: c.uses for c in DOMAIN.categories.values()}
    for project in demo["projects"]:
        for e in project["events"]:
            listed = uses[project["category"]][e["stage"]].fields
            missing = set(e.get("data", {})) - set(listed) - {"corrects_event"}
            assert not missing, (project["id"], e["stage"], missing)


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (('kind = "amount"', 'kind = "money"', 1), "fields.amount.kind"),
        (('required = ["winner", "amount"]', 'required = ["winner", "price"]', 1), "required"),
        (
            ('not_before = { deadline = "opening_before_deadline" }', "not_before = 3", 1),
            "category_stages.construction.bid_opening.not_before",
        ),
        (("[category_stages.land.notice]", "[category_stages.land.bid_opening]", 1), "land"),
        (('key_date = { zh = "公示截止"', 'key_date = { zh = ""', 1), "fields.publicity_ends"),
    ],
)
def test_a_broken_fields_table_names_the_entry(
    tmp_path: Path, edit: tuple[str, str, int], where: str
) -> None:
    text = CATEGORIES_FILE.read_text("utf-8")
    assert edit[0] in text
    path = tmp_path / "categories.toml"
    path.write_text(text.replace(*edit), "utf-8")
    with pytest.raises(DomainFileError) as caught:
        Domain.load(path)
    assert where in str(caught.value)


def test_required_facts_and_kinds_are_checked() -> None:
    def refused(stage: str, data: dict[str, Any], category: str = "construction") -> str:
        with pytest.raises(ApiError) as caught:
            body = {"stage": stage, "title": "t", "data": data}
            draft = DOMAIN.event_input(body, category, SHANGHAI)
            if (missing := DOMAIN.missing_fact(category, stage, draft["data"])) is not None:
                raise missing
        assert caught.value.status == 422
        return str(caught.value.details["field"])

    assert refused("award", {"winner": "某公司"}) == "data.amount"
    assert refused("award", {"amount": 5}) == "data.winner"
    assert refused("contract", {}) == "data.signed_at"
    assert refused("notice", {}) == "data.deadline"
    assert refused("notice", {"deadline": "2026-12-20T09:30:00+08:00"}, "land") == (
        "data.listing_ends"
    )
    assert refused("candidates", {"candidates": []}) == "data.publicity_ends"
    assert refused("notice", {"deadline": "2026-12-20 09:30"}) == "data.deadline"
    assert refused("award", {"winner": "某公司", "amount": -1}) == "data.amount"
    assert refused("award", {"winner": "某公司", "amount": "一千万"}) == "data.amount"
    assert refused("award", {"winner": 3, "amount": 5}) == "data.winner"
    assert refused("correction", {}) == "data.corrects"
    assert refused("correction", {"corrects": True}) == "data.corrects"
    assert refused("bid_opening", {"bidders": 7.5}) == "data.bidders"
    assert refused("clarification", {"deadline_changed": "yes"}) == "data.deadline_changed"
    # A correction's `now` has the kind of the field it corrects.
    assert refused("correction", {"corrects": 2, "field": "amount", "now": "lots"}) == "data.now"
    # Kept as written: 万元, exact figures, unknown keys, null for an optional fact.
    kept = {"winner": "某公司", "amount": "1285万元", "area_km2": 0.0935, "colour": [1], "x": None}
    draft = DOMAIN.event_input(
        {"stage": "award", "title": "t", "data": kept}, "construction", SHANGHAI
    )
    assert draft["data"] == kept


# --- contradictions with the log (pure) -------------------------------------------------------


def test_opening_before_the_current_deadline() -> None:
    early = event(9, "bid_opening", "2026-12-20T09:00:00+08:00")
    assert rule_of([REGISTERED, NOTICE], early) == "opening_before_deadline"
    assert (
        rule_of([REGISTERED, NOTICE], event(9, "bid_opening", "2026-12-20T09:30:00+08:00")) is None
    )
    # A clarification that postpones the deadline moves it; a correction too.
    later = event(3, "clarification", deadline="2026-12-27T09:30:00+08:00")
    on_time = event(9, "bid_opening", "2026-12-21T09:30:00+08:00")
    assert rule_of([REGISTERED, NOTICE, later], on_time) == "opening_before_deadline"
    found = contradiction(DOMAIN, DOMAIN.categories["construction"], [NOTICE, later], on_time)
    assert found is not None and found.event == 3
    fixed = event(4, "correction", corrects=3, field="deadline", now="2026-12-21T09:00:00+08:00")
    assert latest_value([NOTICE, later, fixed], "deadline") == ("2026-12-21T09:00:00+08:00", 4)
    assert rule_of([REGISTERED, NOTICE, later, fixed], on_time) is None
    # No recorded deadline: nothing to contradict.
    assert rule_of([REGISTERED, event(2, "notice")], early) is None


def test_auction_before_the_listing_ends_or_starts() -> None:
    def rule(category: str, notice: dict[str, Any], at: str) -> str | None:
        found = contradiction(
            DOMAIN,
            DOMAIN.categories[category],
            [REGISTERED, {**event(2, "notice"), "data": notice}],
            event(3, "auction", at),
        )
        return None if found is None else found.rule

    ends = {"listing_ends": "2026-12-20T17:00:00+08:00"}
    assert rule("state_assets", ends, "2026-12-20T16:00:00+08:00") == "auction_before_listing_end"
    assert rule("state_assets", ends, "2026-12-21T09:30:00+08:00") is None
    # Land: the auction event is the listing itself; it may not open before it starts.
    starts = {"auction_starts": "2026-12-10T09:00:00+08:00", **ends}
    assert rule("land", starts, "2026-12-10T09:00:00+08:00") is None
    assert rule("land", starts, "2026-12-09T09:00:00+08:00") == "auction_before_start"


def test_awards_need_a_notice_and_a_correction_before_a_second() -> None:
    award = event(3, "award", winner="甲", amount=1)
    assert rule_of([REGISTERED], award) == "award_before_notice"
    assert rule_of([REGISTERED, NOTICE], award) is None
    second = event(4, "award", winner="乙", amount=2)
    found = contradiction(DOMAIN, DOMAIN.categories["construction"], [NOTICE, award], second)
    assert found is not None and (found.rule, found.event) == ("second_award", 3)
    assert found.error().body()["error"]["details"] == {"event": 3, "rule": "second_award"}
    corrected = event(4, "correction", corrects=3)
    assert rule_of([REGISTERED, NOTICE, award, corrected], event(5, "award")) is None
    # A correction of something else does not make room for a second award.
    other = event(4, "correction", corrects=2)
    assert rule_of([REGISTERED, NOTICE, award, other], event(5, "award")) == "second_award"


def test_contract_needs_the_award_and_nothing_follows_failed_but_oversight() -> None:
    assert rule_of([REGISTERED, NOTICE], event(3, "contract")) == "contract_before_award"
    failed = event(3, "failed")
    assert rule_of([REGISTERED, NOTICE, failed], event(4, "notice")) == "after_failed"
    assert rule_of([REGISTERED, NOTICE, failed], event(4, "failed")) == "after_failed"
    for stage in ("objection", "complaint", "penalty", "correction"):
        assert rule_of([REGISTERED, NOTICE, failed], event(4, stage)) is None


def test_a_reference_names_an_earlier_event_of_the_project() -> None:
    correction = event(9, "correction", corrects=7)
    refused = refusal(DOMAIN, [REGISTERED, NOTICE], correction)
    assert refused is not None and refused.details == {"field": "data.corrects"}
    assert refusal(DOMAIN, [REGISTERED, NOTICE], event(9, "correction", corrects=2)) is None


def test_the_demo_passes_every_check() -> None:
    """Its events in file order (the loader publishes them in time order, which
    keeps each project's order) are each refused by nothing."""
    demo = orjson.loads(DEMO.read_bytes())
    for project in demo["projects"]:
        earlier = [{**event(1, "registered"), "category": project["category"]}]
        for n, raw in enumerate(project["events"], start=2):
            data = dict(raw.get("data", {}))
            if "corrects_event" in data:
                data["corrects"] = data.pop("corrects_event") + 2
            resolved = _resolve(data)
            candidate = {
                **event(n, raw["stage"], _resolve(raw["occurred_at"])),
                "category": project["category"],
                "data": resolved,
            }
            assert refusal(DOMAIN, earlier, candidate) is None, (project["id"], n)
            DOMAIN.event_input(
                {"stage": raw["stage"], "title": raw["title"], "data": resolved},
                project["category"],
                SHANGHAI,
            )
            earlier.append(candidate)


def _resolve(value: Any) -> Any:
    """The demo's relative dates ({"$day": -3, "$time": "09:30"}), from 1 Dec 2026."""
    if isinstance(value, dict) and "$day" in value:
        day = date(2026, 12, 1) + timedelta(days=value["$day"])
        return f"{day.isoformat()}T{value.get('$time', '09:00')}:00+08:00"
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    return value


# --- on a real server -------------------------------------------------------------------------


def test_publishing_refuses_what_cannot_be_true(staff: Staff) -> None:
    staff.project("CK-1")
    award = staff.client.post("/api/projects/CK-1/events", json=with_facts("award", title="结果"))
    assert award.status_code == 422
    error = award.json()["error"]
    assert error["code"] == "contradicts" and error["details"]["rule"] == "award_before_notice"
    assert "尚未发布招标公告" in error["message"]
    missing = staff.client.post(
        "/api/projects/CK-1/events",
        json={"stage": "award", "title": "结果", "data": {"winner": "某公司"}},
    )
    assert missing.status_code == 422
    assert missing.json()["error"]["details"] == {"field": "data.amount"}
    notice = staff.publish("CK-1", "notice", data={"deadline": "2026-12-18T09:30:00+08:00"})
    early = staff.client.post(
        "/api/projects/CK-1/events",
        json={"stage": "bid_opening", "title": "开标", "occurred_at": "2026-11-23T09:30:00+08:00"},
    )
    assert early.status_code == 422
    assert early.json()["error"]["details"] == {
        "event": notice["seq"],
        "rule": "opening_before_deadline",
    }
    first = staff.publish("CK-1", "award")
    second = staff.client.post("/api/projects/CK-1/events", json=with_facts("award", title="再"))
    assert second.json()["error"]["details"] == {"event": first["seq"], "rule": "second_award"}
    staff.publish("CK-1", "correction", data={"corrects": first["seq"], "field": "amount"})
    staff.publish("CK-1", "award")  # after a correction of the first


def test_the_deadline_an_earlier_clarification_moved_still_decides(staff: Staff) -> None:
    """Clarification 1 moves the deadline; clarification 2 says nothing of it:
    the moved deadline decides, not the notice's (the check reads every step
    that states such a time, not only the latest of each stage)."""
    staff.project("CK-MOVED")
    staff.publish("CK-MOVED", "notice", data={"deadline": "2026-12-28T09:30:00+08:00"})
    moved = staff.publish(
        "CK-MOVED", "clarification", data={"deadline": "2026-12-18T09:30:00+08:00"}
    )
    staff.publish("CK-MOVED", "clarification", data={"number": 2})
    early = staff.client.post(
        "/api/projects/CK-MOVED/events",
        json={"stage": "bid_opening", "title": "开标", "occurred_at": "2026-12-17T09:30:00+08:00"},
    )
    assert early.status_code == 422
    assert early.json()["error"]["details"] == {
        "event": moved["seq"],
        "rule": "opening_before_deadline",
    }
    staff.publish("CK-MOVED", "bid_opening", occurred_at="2026-12-18T09:30:00+08:00")


def test_dry_run_appends_nothing_and_shows_the_warnings(staff: Staff) -> None:
    staff.project("DR-1")
    head = staff.server.head()
    # Ten days from now to the bid deadline: less than the statutory 20 日.
    soon = (datetime.now(SHANGHAI) + timedelta(days=10)).replace(microsecond=0).isoformat()
    body = {"stage": "notice", "title": "招标公告", "data": {"deadline": soon}}
    answer = staff.client.post(
        "/api/projects/DR-1/events",
        params={"dry_run": "1"},
        json=body,
        headers={"Idempotency-Key": "dry-1"},
    )
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert set(preview) == {"event", "warnings"}
    assert "seq" not in preview["event"] and "hash" not in preview["event"]
    assert preview["event"]["data"] == {"deadline": soon}
    assert preview["event"]["stage"] == "notice" and preview["event"]["project"] == "DR-1"
    short = [w for w in preview["warnings"] if w["rule"] == "construction.notice-deadline"]
    assert len(short) == 1 and short[0]["level"] == "breach", preview["warnings"]
    assert short[0]["message"].startswith("时限不足") and short[0]["basis"]
    assert staff.server.head() == head  # nothing appended
    # The same 4xx as a real publication, and nothing appended either.
    bad = staff.client.post(
        "/api/projects/DR-1/events", params={"dry_run": "1"}, json={"stage": "award", "title": "t"}
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"] == {"field": "data.winner"}
    assert staff.server.head() == head
    wrong = staff.client.post("/api/projects/DR-1/events", params={"dry_run": "x"}, json=body)
    assert wrong.status_code == 422 and wrong.json()["error"]["details"] == {"field": "dry_run"}
    # A long enough period: no warning. The key of the dry run was not spent.
    later = (datetime.now(SHANGHAI) + timedelta(days=40)).replace(microsecond=0).isoformat()
    body["data"] = {"deadline": later}
    calm = staff.client.post("/api/projects/DR-1/events", params={"dry_run": "1"}, json=body)
    assert calm.status_code == 200 and calm.json()["warnings"] == []
    real = staff.client.post(
        "/api/projects/DR-1/events", json=body, headers={"Idempotency-Key": "dry-1"}
    )
    assert real.status_code == 201 and staff.server.head() == head + 1
    # Dry runs need a publisher's token like publishing.
    anonymous = httpx.post(
        staff.server.url + "/api/projects/DR-1/events", params={"dry_run": "1"}, json=body
    )
    assert anonymous.status_code == 401


async def test_of_two_racing_awards_exactly_one_is_published(staff: Staff, admin: str) -> None:
    staff.project("RACE-1")
    staff.publish("RACE-1", "notice")
    async with httpx.AsyncClient(
        base_url=staff.server.url, timeout=60, headers={"Authorization": f"Bearer {admin}"}
    ) as client:

        async def award(n: int) -> httpx.Response:
            body = with_facts("award", title=f"结果 {n}")
            return await client.post("/api/projects/RACE-1/events", json=body)

        answers = await asyncio.gather(*(award(n) for n in range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [422] * 7, [a.text for a in answers]
    winner = next(a.json() for a in answers if a.status_code == 201)
    for answer in answers:
        if answer.status_code == 422:
            assert answer.json()["error"]["details"] == {
                "event": winner["seq"],
                "rule": "second_award",
            }
    timeline = staff.client.get("/api/projects/RACE-1").json()["timeline"]
    assert [e["stage"] for e in timeline].count("award") == 1


def test_the_facts_rules_apply_by_are_published_as_staff_write_them(staff: Staff) -> None:
    """The procurement method, a transfer's type and whether it moves control
    are text and booleans, not times; a rule applies once they are stated."""
    staff.project("AW-1", category="gov_procurement", agency="YW-ZFCG")
    soon = (datetime.now(SHANGHAI) + timedelta(days=10)).replace(microsecond=0).isoformat()

    def preview(method: str | None) -> list[str]:
        data = {"deadline": soon, **({} if method is None else {"method": method})}
        answer = staff.client.post(
            "/api/projects/AW-1/events",
            params={"dry_run": "1"},
            json={"stage": "notice", "title": "采购公告", "data": data},
        )
        assert answer.status_code == 200, answer.text
        return [w["rule"] for w in answer.json()["warnings"] if w["level"] == "breach"]

    # 政府采购法 §35 binds tenders: a tender's ten days are too short, a 询价's are not.
    assert "gov_procurement.notice-deadline" in preview("公开招标")
    assert "gov_procurement.notice-deadline" not in preview("询价")
    assert "gov_procurement.notice-deadline" not in preview(None)
    staff.project("AW-2", category="state_assets", agency="YW-CQJYS")
    staff.publish("AW-2", "plan", data={"control_transfer": True, "approved_at": soon})
    staff.publish("AW-2", "notice", data={"deal": "产权转让", "listing_ends": soon})
    notice = staff.publish("AW-1", "notice", data={"deadline": soon, "method": "公开招标"})
    corrected = staff.publish(
        "AW-1", "correction", data={"corrects": notice["seq"], "field": "method", "now": "询价"}
    )
    assert corrected["data"]["now"] == "询价"
