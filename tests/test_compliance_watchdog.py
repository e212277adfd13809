"""The compliance watchdog's pure core, with the shipped rules and the real calendar.

Facts are built directly with chosen publication times, so every deadline,
warning moment and tally can be checked to the microsecond: approaching at
00:00 Beijing of the working day before the last day, breach once the last
day is over, holidays (国庆节 1–7 Oct 2026, 春节 15–23 Feb 2026) moving a
period's end, `at_least` checks, missing data, the scorecard, and a rebuild
that finds exactly what a running server found.
"""

from __future__ import annotations

import dataclasses
import gc
import pickle
import re
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.compliance import snapshot as snapshots
from server.compliance.calendar import LEGAL_TZ, WorkCalendar
from server.compliance.rules import RULES_FILE, Rules
from server.compliance.watchdog import Alert, Fact, Level, Watchdog, iter_open
from server.domain import Domain

DOMAIN = Domain.load()
SHIPPED = Rules.load(RULES_FILE, DOMAIN)
# The projects here are tenders the law requires (依法必须招标): the rules
# that apply only to those apply to every project. Which rules apply when is
# tested in test_compliance_statutes.py.
RULES = Rules(
    (
        dataclasses.replace(
            r, applies_when=tuple(c for c in r.applies_when if c[0] != "must_tender")
        )
        for r in SHIPPED
    ),
    DOMAIN,
)
# Times other rules read that the examples here do not: stated as staff state
# them, far enough from the trigger to meet their own limits.
STATED = {"notice": ("sale_ends", 10), "award": ("chosen_at", 0)}
CALENDAR = WorkCalendar.load()
US = timedelta(microseconds=1)

AWARD_CONTRACT = "construction.award-contract"
PUBLICITY = "construction.candidates-publicity"
NOTICE_DEADLINE = "construction.notice-deadline"
OBJECTION = "gov_procurement.objection-reply"
GOV: dict[str, Any] = {"category": "gov_procurement", "agency": "YW-ZFCG"}


def at(text: str) -> datetime:
    """A Beijing time written without its offset: `2026-03-02T10:00`."""
    return datetime.fromisoformat(text).replace(tzinfo=LEGAL_TZ)


def start_of(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time.min, LEGAL_TZ)


def end_of(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time.max, LEGAL_TZ)


def iso(moment: datetime) -> str:
    """As the watchdog serves times: milliseconds, like event times."""
    return moment.isoformat(timespec="milliseconds")


class History:
    """Facts of one test, numbered 1, 2, … in the order they are made."""

    def __init__(self) -> None:
        self.facts: list[Fact] = []

    def __call__(
        self,
        project: str,
        stage: str,
        published: str,
        *,
        category: str = "construction",
        agency: str = "YW-GGZY",
        occurred: str | None = None,
        **data: Any,
    ) -> Fact:
        published_at = at(published)
        if stage in STATED and category in ("construction", "soe_procurement", "gov_procurement"):
            key, days = STATED[stage]
            moment = at(occurred) if occurred else published_at
            data.setdefault(key, (moment + timedelta(days=days)).isoformat())
        fact = Fact(
            seq=len(self.facts) + 1,
            project=project,
            category=category,
            agency=agency,
            stage=stage,
            published_at=published_at,
            occurred_at=at(occurred) if occurred else published_at,
            data=data,
        )
        self.facts.append(fact)
        return fact


# The agencies here are administrative organs: the rule on every event
# (政府信息公开条例 §26) applies to their projects.
AGENCIES = {code: {"agency_kind": "行政机关"} for code in ("YW-GGZY", "YW-ZFCG", "YW-CQJYS")}


def watchdog(rules: Rules = RULES, lead: int = 1) -> Watchdog:
    return Watchdog(rules, CALENDAR, DOMAIN, lead_workdays=lead, agencies=AGENCIES)


def ids(warnings: Iterable[Alert]) -> list[str]:
    return [w.id for w in warnings]


def snapshot(warnings: Iterable[Alert]) -> dict[str, dict[str, Any]]:
    """The last state of each warning, as it would be stored (by id)."""
    return {w.id: w.to_json() for w in warnings}


def totals(card: list[dict[str, Any]], agency: str) -> dict[str, Any]:
    entry = next(a for a in card if a["agency"] == agency)
    return {k: entry[k] for k in ("due", "on_time", "late", "open_breaches", "on_time_rate")}


def score(
    due: int, on_time: int, late: int = 0, open_breaches: int = 0
) -> dict[str, int | float | None]:
    return {
        "due": due,
        "on_time": on_time,
        "late": late,
        "open_breaches": open_breaches,
        "on_time_rate": round(on_time / due, 4) if due else None,
    }


# --- due_within: award → contract (contract.data.signed_at) ------------------------


def test_contract_signed_on_time_gives_no_warning_and_counts_on_time() -> None:
    history, dog = History(), watchdog()
    assert dog.observe(history("P", "award", "2026-03-02T10:00")) == []
    contract = history(
        "P", "contract", "2026-03-20T10:00", signed_at="2026-03-19T15:00:00.000+08:00"
    )
    assert dog.observe(contract) == []
    assert dog.fire(at("2026-12-31T00:00")) == []
    assert list(iter_open(dog)) == [] and dog.next_timer() is None
    assert dog.deadlines("P", at("2026-03-21T00:00")) == []
    # The award-contract deadline counts in the month it fell due (April); every
    # event also counts once for the rule on every event (published ≤ 20 WD),
    # and the award notice once, sent the day the winner was chosen (浙江 §39).
    assert totals(dog.scorecard(period="2026-04"), "YW-GGZY") == score(1, 1)
    assert totals(dog.scorecard(period="2026-03"), "YW-GGZY") == score(3, 3)


def test_late_contract_warns_approaching_then_breach_then_both_are_resolved() -> None:
    history, dog = History(), watchdog()
    dog.observe(history("P", "award", "2026-03-02T10:00"))  # 30 日 → Wed 1 Apr 2026
    due, warn_at = end_of("2026-04-01"), start_of("2026-03-31")
    assert dog.next_timer() == warn_at
    [deadline] = dog.deadlines("P", at("2026-03-02T10:00"))
    assert deadline["rule"] == AWARD_CONTRACT and deadline["trigger"] == 1
    assert deadline["due"] == "2026-04-01T23:59:59.999+08:00"
    assert deadline["status"] == "open" and deadline["estimated"] is False

    assert dog.fire(warn_at - US) == []
    assert dog.deadlines("P", warn_at - US)[0]["status"] == "open"
    [approaching] = dog.fire(warn_at)
    assert approaching.id == f"{AWARD_CONTRACT}/P/1/approaching"
    assert approaching.level is Level.APPROACHING
    assert approaching.created_at == warn_at and approaching.due == due
    assert approaching.resolved_at is None
    assert dog.deadlines("P", warn_at)[0]["status"] == "approaching"
    assert dog.fire(warn_at + timedelta(hours=12)) == [], "each warning once"
    assert dog.next_timer() == due + US  # the first instant after the last day

    assert dog.fire(due) == []
    assert dog.deadlines("P", due - US)[0]["status"] == "approaching"
    [breach] = dog.fire(start_of("2026-04-02"))
    assert breach.id == f"{AWARD_CONTRACT}/P/1/breach" and breach.level is Level.BREACH
    assert breach.created_at == due + US and breach.due == due and breach.resolved_at is None
    assert "2026-04-01" in breach.message and "招标投标法 §46" in breach.message
    assert dog.deadlines("P", start_of("2026-04-02"))[0]["status"] == "overdue"
    assert dog.fire(at("2026-04-30T00:00")) == []
    assert totals(dog.scorecard(period="2026-04"), "YW-GGZY") == score(1, 0, 0, 1)

    contract = history(
        "P", "contract", "2026-04-03T10:00", signed_at="2026-04-03T09:00:00.000+08:00"
    )
    resolved = dog.observe(contract)
    assert sorted(ids(resolved)) == sorted([approaching.id, breach.id])
    assert all(w.resolved_at == contract.published_at for w in resolved)
    assert approaching.created_at == warn_at and breach.created_at == due + US, "unchanged"
    assert dog.deadlines("P", at("2026-04-03T10:00")) == []
    assert dog.next_timer() is None
    assert totals(dog.scorecard(period="2026-04"), "YW-GGZY") == score(2, 1, late=1)


def test_contract_published_the_same_night_before_the_timer_fired_is_still_a_breach() -> None:
    """The awaited stage comes after the due time but before the ticker ran."""
    history, dog = History(), watchdog()
    dog.observe(history("P", "award", "2026-03-02T10:00"))
    contract = history(
        "P", "contract", "2026-04-02T00:00", signed_at="2026-04-02T00:00:00.000+08:00"
    )
    found = dog.observe(contract)
    assert {w.id: w.created_at for w in found} == {
        f"{AWARD_CONTRACT}/P/1/approaching": start_of("2026-03-31"),
        f"{AWARD_CONTRACT}/P/1/breach": end_of("2026-04-01") + US,
    }
    assert all(w.resolved_at == contract.published_at for w in found)
    assert dog.fire(at("2026-05-01T00:00")) == []


@pytest.mark.parametrize(
    ("award", "last_day", "warn_day"),
    [
        # 30 日 from 1 Sep ends on 1 Oct (国庆节 1–7 Oct): the 8th; warned on the
        # 30th of September, the working day before it, across the holiday.
        ("2026-09-01T10:00", "2026-10-08", "2026-09-30"),
        # 30 日 from 16 Jan ends on 15 Feb (春节 15–23 Feb): the 24th; the working
        # day before it is Saturday 14 Feb, a make-up workday (调休).
        ("2026-01-16T10:00", "2026-02-24", "2026-02-14"),
    ],
)
def test_a_period_ending_in_a_holiday_moves_to_the_next_working_day(
    award: str, last_day: str, warn_day: str
) -> None:
    history, dog = History(), watchdog()
    dog.observe(history("P", "award", award))
    [deadline] = dog.deadlines("P", at(award))
    assert deadline["due"] == iso(end_of(last_day))
    assert dog.fire(start_of(warn_day) - US) == []
    assert ids(dog.fire(start_of(warn_day))) == [f"{AWARD_CONTRACT}/P/1/approaching"]
    # Nothing during the holiday: the period has not ended.
    assert dog.fire(end_of(last_day) - US) == []
    [breach] = dog.fire(end_of(last_day) + US)
    assert breach.level is Level.BREACH and breach.created_at == end_of(last_day) + US


def test_objection_reply_counts_seven_working_days_across_national_day() -> None:
    history, dog = History(), watchdog()
    dog.observe(history("G", "objection", "2026-09-28T10:00", **GOV))
    # Working days after Mon 28 Sep: 29, 30 Sep, (1–7 Oct off) 8, 9, Sat 10 (调休),
    # 12, 13 Oct: the 7th is Tue 13 Oct; warned from Mon 12 Oct.
    [deadline] = dog.deadlines("G", at("2026-09-28T10:00"))
    assert deadline["rule"] == OBJECTION
    assert deadline["due"] == "2026-10-13T23:59:59.999+08:00"
    assert dog.fire(start_of("2026-10-12") - US) == []
    [approaching] = dog.fire(at("2026-10-13T14:00"))
    assert approaching.created_at == start_of("2026-10-12")
    reply = history("G", "objection_reply", "2026-10-13T15:00", **GOV)
    assert snapshot(dog.observe(reply)) == {
        approaching.id: {**approaching.to_json(), "resolved_at": "2026-10-13T15:00:00.000+08:00"}
    }
    assert dog.fire(at("2026-11-01T00:00")) == []
    assert totals(dog.scorecard(category="gov_procurement", period="2026-10"), "YW-ZFCG") == (
        score(2, 2)  # the reply on time, and the reply's own publication
    )


def test_two_objections_open_two_deadlines_and_replies_close_the_oldest_first() -> None:
    history, dog = History(), watchdog()
    dog.observe(history("G", "objection", "2026-03-02T10:00", **GOV))  # due Wed 11 Mar
    dog.observe(history("G", "objection", "2026-03-05T10:00", **GOV))  # due Mon 16 Mar
    shown = dog.deadlines("G", at("2026-03-05T10:00"))
    assert [(d["trigger"], d["due"]) for d in shown] == [
        (1, iso(end_of("2026-03-11"))),
        (2, iso(end_of("2026-03-16"))),
    ]
    # Replied on the day the first one was being warned about (from 00:00 on
    # Tue 10 Mar): that warning is found and resolved at once.
    [warned] = dog.observe(history("G", "objection_reply", "2026-03-10T10:00", **GOV))
    assert warned.id == f"{OBJECTION}/G/1/approaching"
    assert warned.created_at == start_of("2026-03-10")
    assert warned.resolved_at == at("2026-03-10T10:00")
    assert [d["trigger"] for d in dog.deadlines("G", at("2026-03-10T10:00"))] == [2]
    # The first one was answered: only the second objection's timers fire.
    assert ids(dog.fire(at("2026-03-17T09:00"))) == [
        f"{OBJECTION}/G/2/approaching",
        f"{OBJECTION}/G/2/breach",
    ]
    reply = history("G", "objection_reply", "2026-03-18T10:00", **GOV)
    assert sorted(ids(dog.observe(reply))) == [
        f"{OBJECTION}/G/2/approaching",
        f"{OBJECTION}/G/2/breach",
    ]
    assert dog.deadlines("G", at("2026-03-18T10:00")) == []
    # A reply nothing awaits changes nothing.
    assert dog.observe(history("G", "objection_reply", "2026-03-19T10:00", **GOV)) == []


def test_no_approaching_warning_with_lead_zero() -> None:
    history, dog = History(), watchdog(lead=0)
    dog.observe(history("P", "award", "2026-03-02T10:00"))
    assert dog.next_timer() == end_of("2026-04-01") + US
    assert dog.fire(end_of("2026-04-01")) == []
    assert [w.level for w in dog.fire(start_of("2026-04-02"))] == [Level.BREACH]


def test_a_longer_lead_warns_earlier() -> None:
    history, dog = History(), watchdog(lead=3)
    dog.observe(history("P", "award", "2026-03-02T10:00"))
    # Three working days before Wed 1 Apr: Thu 27 Mar.
    assert dog.next_timer() == start_of("2026-03-27")


# --- at_least ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("award", "met"),
    [
        ("2026-03-03T10:00", False),
        ("2026-03-04T23:59:59", False),
        ("2026-03-05T10:00", False),  # the 3rd day after the candidates' day: still running
        ("2026-03-05T23:59:59", False),
        ("2026-03-06T00:00", True),  # the whole publicity is over
        ("2026-03-09T10:00", True),
    ],
)
def test_candidates_publicity_lasts_at_least_three_days(award: str, met: bool) -> None:
    history, dog = History(), watchdog()
    assert dog.observe(history("P", "candidates", "2026-03-02T18:00")) == []
    found = [w for w in dog.observe(history("P", "award", award)) if w.rule.id == PUBLICITY]
    if met:
        assert found == []
        assert totals(dog.scorecard(), "YW-GGZY")["late"] == 0
        return
    [breach] = found
    assert breach.id == f"{PUBLICITY}/P/1-2/breach"
    assert breach.level is Level.BREACH and breach.due is None
    assert breach.created_at == at(award) and breach.resolved_at is None
    assert "2026-03-06" in breach.message, "names the earliest allowed day"
    assert breach.to_json()["due"] is None
    # Publishing cannot undo it: it stays open.
    dog.observe(history("P", "contract", "2026-03-20T10:00", signed_at="2026-03-20T09:00+08:00"))
    assert dog.fire(at("2027-01-01T00:00")) == []
    assert breach.resolved_at is None
    # In the scorecard it is a period left too short (时限不足): neither late
    # nor an overdue one still awaited (open breach).
    card = next(a for a in dog.scorecard() if a["agency"] == "YW-GGZY")
    assert card["too_short"] == 1 and card["late"] == 0 and card["open_breaches"] == 0
    assert breach.to_json()["state"] == "too_short" and breach.message.startswith("时限不足")
    [item] = dog.items("P")
    assert (item["status"], item["state"], item["kind"]) == ("late", "too_short", "at_least")
    assert (item["trigger_seq"], item["target_seq"]) == (1, 2)


@pytest.mark.parametrize(
    ("deadline", "met"),
    [
        ("2026-03-22T09:30:00.000+08:00", True),  # 20 日 after 2 Mar (a Sunday: still met)
        ("2026-03-21T09:30:00.000+08:00", False),
        ("2026-03-21T23:30:00+00:00", True),  # 22 Mar 07:30 in Beijing
        ("2026-03-22", True),  # a bare date is a Beijing day
    ],
)
def test_notice_deadline_at_least_twenty_days_both_in_one_event(deadline: str, met: bool) -> None:
    history, dog = History(), watchdog()
    found = dog.observe(history("P", "notice", "2026-03-02T09:00", deadline=deadline))
    if met:
        assert found == []
    else:
        assert ids(found) == [f"{NOTICE_DEADLINE}/P/1-1/breach"]
        assert found[0].due is None and found[0].created_at == at("2026-03-02T09:00")
    assert dog.deadlines("P", at("2026-03-02T09:00")) == [], "nothing awaited"


@pytest.mark.parametrize("data", [{}, {"deadline": "下周一上午"}, {"deadline": 20260322}])
def test_notice_without_a_usable_deadline_is_data_incomplete_until_one_comes(
    data: dict[str, Any],
) -> None:
    history, dog = History(), watchdog()
    first = history("P", "notice", "2026-03-02T09:00", **data)
    [incomplete] = dog.observe(first)
    assert incomplete.id == f"{NOTICE_DEADLINE}/P/1/data_incomplete"
    assert incomplete.level is Level.DATA_INCOMPLETE and incomplete.due is None
    assert incomplete.created_at == first.published_at and incomplete.resolved_at is None
    assert "notice.data.deadline" in incomplete.message
    # Still incomplete: no second warning for the same rule and stage.
    assert dog.observe(history("P", "notice", "2026-03-03T09:00", deadline="soon")) == []
    # A notice with the time resolves it, and is checked (here: too short).
    fixed = history("P", "notice", "2026-03-04T09:00", deadline="2026-03-20T09:30:00.000+08:00")
    changes = dog.observe(fixed)
    assert snapshot(changes) == {
        incomplete.id: {**incomplete.to_json(), "resolved_at": "2026-03-04T09:00:00.000+08:00"},
        f"{NOTICE_DEADLINE}/P/3-3/breach": changes[-1].to_json(),
    }
    assert changes[-1].level is Level.BREACH


def test_gov_procurement_contract_published_late_is_a_breach_found_at_once() -> None:
    history, dog = History(), watchdog()
    dog.observe(history("G", "award", "2026-03-02T10:00", **GOV))
    contract = history("G", "contract", "2026-03-20T10:00", signed_at="2026-03-10T15:00", **GOV)
    [breach] = dog.observe(contract)
    # Signed Tue 10 Mar: 2 WD → Thu 12 Mar. Late, but done: nothing left to await.
    assert breach.id == "gov_procurement.contract-published/G/2/breach"
    assert breach.due == end_of("2026-03-12")
    assert breach.created_at == breach.resolved_at == contract.published_at
    assert dog.deadlines("G", at("2026-03-20T10:00")) == []


def contract_without_signed_at() -> tuple[History, Watchdog, list[Alert]]:
    history, dog = History(), watchdog()
    dog.observe(history("G", "award", "2026-03-02T10:00", **GOV))
    found = dog.observe(history("G", "contract", "2026-03-20T10:00", **GOV))
    return history, dog, found


def test_contract_without_signed_at_is_data_incomplete_for_both_rules() -> None:
    history, dog, found = contract_without_signed_at()
    assert sorted(ids(found)) == [
        "gov_procurement.award-contract/G/2/data_incomplete",
        "gov_procurement.contract-published/G/2/data_incomplete",
    ]
    assert all(w.due is None and w.resolved_at is None for w in found)
    assert list(iter_open(dog)) == [], "the contract still closes the award's deadline"
    fixed = history("G", "contract", "2026-03-21T10:00", signed_at="2026-03-19T10:00+08:00", **GOV)
    resolved = {w.id: w for w in dog.observe(fixed) if w.level is Level.DATA_INCOMPLETE}
    published = resolved["gov_procurement.contract-published/G/2/data_incomplete"]
    assert published.resolved_at == fixed.published_at


def test_a_later_contract_with_signed_at_resolves_every_data_incomplete() -> None:
    history, dog, found = contract_without_signed_at()
    fixed = history("G", "contract", "2026-03-21T10:00", signed_at="2026-03-19T10:00+08:00", **GOV)
    resolved = {w.id for w in dog.observe(fixed) if w.resolved_at == fixed.published_at}
    assert set(ids(found)) <= resolved


def test_an_event_lacking_a_time_leaves_no_garbage_cycle() -> None:
    # Replay runs with the collector off (logread.replay): a cycle per such
    # event kept the frames below it, down to a page of rows, until the end.
    history, dog = History(), watchdog()
    dog.observe(history("G", "award", "2026-03-02T10:00", **GOV))
    contract = history("G", "contract", "2026-03-20T10:00", **GOV)
    gc.collect()
    gc.disable()
    try:
        found = dog.observe(contract)
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert len(found) == 2


# --- what a project page shows --------------------------------------------------------


def test_deadlines_show_awaited_stages_and_earliest_allowed_ones() -> None:
    history, dog = History(), watchdog()
    assert dog.deadlines("P", at("2026-03-01T00:00")) == []
    dog.observe(history("P", "candidates", "2026-03-02T10:00"))
    dog.observe(history("P", "objection", "2026-03-03T10:00"))  # 3 日 → Fri 6 Mar
    shown = dog.deadlines("P", at("2026-03-03T12:00"))
    assert shown == [
        {
            "rule": PUBLICITY,
            "name": RULES[PUBLICITY].name,
            "name_en": RULES[PUBLICITY].name_en,
            "kind": "at_least",
            "target": "award",
            "basis": "招标投标法实施条例 §54",
            "basis_en": RULES[PUBLICITY].basis_en,
            "confidence": "statute",
            "advisory": False,
            "trigger": 1,
            "due": None,
            "not_before": "2026-03-06T00:00:00.000+08:00",
            "estimated": False,
            "status": "open",
        },
        {
            "rule": "construction.objection-reply",
            "name": RULES["construction.objection-reply"].name,
            "name_en": RULES["construction.objection-reply"].name_en,
            "kind": "due_within",
            "target": "objection_reply",
            "basis": "招标投标法实施条例 §22",
            "basis_en": RULES["construction.objection-reply"].basis_en,
            "confidence": "statute",
            "advisory": False,
            "trigger": 2,
            "due": "2026-03-06T23:59:59.999+08:00",
            "not_before": None,
            "estimated": False,
            "status": "open",
        },
    ]
    statuses = {
        "2026-03-04T23:59:59": "open",
        "2026-03-05T00:00:00": "approaching",
        "2026-03-06T23:59:59": "approaching",
        "2026-03-07T00:00:00": "overdue",
    }
    for now, status in statuses.items():
        reply = [d for d in dog.deadlines("P", at(now)) if d["due"] is not None]
        assert reply[0]["status"] == status, now
    # The award comes: nothing is "not before" any more, the contract is awaited
    # (30 日 from Thu 5 Mar: Sat 4 Apr, 清明 4–6 Apr, so Tue 7 Apr).
    dog.observe(history("P", "award", "2026-03-05T10:00"))
    shown = dog.deadlines("P", at("2026-03-05T10:00"))
    assert [(d["rule"], d["due"], d["not_before"]) for d in shown] == [
        ("construction.objection-reply", "2026-03-06T23:59:59.999+08:00", None),
        (AWARD_CONTRACT, "2026-04-07T23:59:59.999+08:00", None),
    ]
    assert dog.deadlines("OTHER", at("2026-03-05T10:00")) == []


def test_plan_shows_when_the_notice_may_come_at_the_earliest() -> None:
    history, dog = History(), watchdog()
    dog.observe(history("G", "plan", "2026-03-02T10:00", category="gov_procurement"))
    [entry] = dog.deadlines("G", at("2026-03-02T10:00"))
    assert entry["rule"] == "gov_procurement.plan-notice"
    assert entry["not_before"] == "2026-04-01T00:00:00.000+08:00" and entry["due"] is None


def test_a_year_no_calendar_covers_is_estimated_never_a_crash() -> None:
    history, dog = History(), watchdog()
    dog.observe(history("P", "award", "2031-03-03T10:00"))
    dog.observe(
        history("S", "notice", "2031-03-03T10:00", category="state_assets", deal="产权转让")
    )
    [award] = dog.deadlines("P", at("2031-03-03T10:00"))
    assert award["estimated"] is True
    assert award["due"] == "2031-04-02T23:59:59.999+08:00"  # Monday–Friday assumed
    [auction] = dog.deadlines("S", at("2031-03-03T10:00"))
    assert auction["rule"] == "state_assets.notice-auction"
    assert auction["estimated"] is True and auction["not_before"] == "2031-03-31T00:00:00.000+08:00"
    assert [w.level for w in dog.fire(at("2031-05-01T00:00"))] == [
        Level.APPROACHING,
        Level.BREACH,
    ]
    # A covered year is not estimated.
    dog.observe(history("Q", "award", "2026-03-02T10:00"))
    assert dog.deadlines("Q", at("2026-03-02T10:00"))[0]["estimated"] is False


# --- the scorecard -----------------------------------------------------------------


def scored_history() -> tuple[History, Watchdog]:
    history, dog = History(), watchdog()
    # YW-GGZY, construction: one contract on time, one never signed.
    dog.observe(history("C1", "award", "2026-03-02T10:00"))
    dog.observe(history("C1", "contract", "2026-03-20T10:00", signed_at="2026-03-19T10:00+08:00"))
    dog.observe(history("C2", "award", "2026-03-03T10:00"))  # due Thu 2 Apr
    # YW-ZFCG, gov_procurement: an objection answered a day late (due Wed 11 Mar).
    dog.observe(history("G1", "objection", "2026-03-02T10:00", **GOV))
    dog.observe(history("G1", "objection_reply", "2026-03-12T10:00", **GOV))
    dog.fire(at("2026-04-10T00:00"))
    return history, dog


def test_scorecard_counts_per_agency_category_and_month() -> None:
    _, dog = scored_history()
    card = dog.scorecard()
    # Worst first: one item missed each, then the lower on-time rate (2/3 < 6/7).
    assert [a["agency"] for a in card] == ["YW-ZFCG", "YW-GGZY"]
    # Each event counts once (published within 20 WD of occurring) in its month,
    # each award notice once (sent the day the winner was chosen); each
    # due_within deadline in the month it fell due.
    ggzy = card[1]
    assert totals(card, "YW-GGZY") == score(7, 6, open_breaches=1)
    assert ggzy["completed"] == 6
    assert [c["category"] for c in ggzy["by_category"]] == ["construction"]
    periods = {p["period"]: p for p in ggzy["by_period"]}
    assert {k: periods["2026-03"][k] for k in ("due", "on_time", "open_breaches")} == {
        "due": 5,
        "on_time": 5,
        "open_breaches": 0,
    }
    assert periods["2026-04"]["on_time_rate"] == 0.5
    assert totals(card, "YW-ZFCG") == score(3, 2, late=1)
    assert card[0]["on_time_rate"] == 0.6667


def test_scorecard_filters_by_agency_category_and_period() -> None:
    _, dog = scored_history()
    assert [a["agency"] for a in dog.scorecard(agency="YW-ZFCG")] == ["YW-ZFCG"]
    assert [a["agency"] for a in dog.scorecard(category="construction")] == ["YW-GGZY"]
    assert [a["agency"] for a in dog.scorecard(category="gov_procurement")] == ["YW-ZFCG"]
    april = dog.scorecard(period="2026-04")
    assert totals(april, "YW-GGZY") == score(2, 1, open_breaches=1)
    assert [a["agency"] for a in april] == ["YW-GGZY"]
    assert dog.scorecard(period="2026-05") == []
    assert dog.scorecard(agency="YW-ZFCG", category="construction") == []
    assert dog.scorecard(agency="NOBODY") == []


def test_an_at_least_breach_counts_once_in_the_scorecard() -> None:
    history, dog = History(), watchdog()
    dog.observe(history("P", "candidates", "2026-03-02T10:00"))
    dog.observe(history("P", "award", "2026-03-03T10:00"))  # publicity too short
    entry = dog.scorecard(period="2026-03")[0]
    # Two publications (each on time for the every-event rule), the award
    # notice sent on time, and one rule broken by a publication: four things
    # due, three on time, one too short.
    assert entry["too_short"] == 1 and entry["late"] == 0 and entry["open_breaches"] == 0
    assert entry["due"] == 4 and entry["on_time_rate"] == 0.75


# --- determinism: a rebuild finds what the running server found -------------------------


def busy_history() -> History:
    history = History()
    history("C1", "notice", "2026-02-02T09:00", deadline="2026-02-25T09:30+08:00")
    history("C2", "notice", "2026-02-03T09:00")  # no deadline: data_incomplete
    history("G1", "objection", "2026-02-11T10:00", **GOV)  # 7 WD across 春节: Fri 27 Feb
    history("C1", "evaluation", "2026-02-25T15:00")  # 3 日 → Sat 28 Feb (a workday)
    history("C2", "notice", "2026-02-26T09:00", deadline="2026-03-20T09:30+08:00")
    history("C1", "candidates", "2026-02-27T10:00")
    history("C1", "award", "2026-03-01T10:00")  # publicity too short: at_least breach
    history("G1", "objection_reply", "2026-03-04T10:00", **GOV)  # late
    history("G2", "award", "2026-03-05T10:00", **GOV)
    history("G2", "contract", "2026-03-16T10:00", signed_at="2026-03-06T15:00", **GOV)
    history("G1", "objection", "2026-03-20T10:00", **GOV)  # never answered
    history("C1", "contract", "2026-04-08T16:00", signed_at="2026-04-08T10:00+08:00")  # late
    history("C3", "award", "2026-04-10T10:00")
    history("C3", "contract", "2026-04-20T10:00", signed_at="2026-04-17T10:00+08:00")
    return history


END = at("2026-06-01T00:00")


def live(facts: list[Fact], step: timedelta) -> tuple[Watchdog, dict[str, dict[str, Any]]]:
    """As a running server: the ticker fires every `step`, events come in between."""
    dog, seen = watchdog(), []
    now = facts[0].published_at
    for fact in facts:
        while now + step < fact.published_at:
            now += step
            seen += dog.fire(now)
        seen += dog.fire(fact.published_at - US)
        seen += dog.observe(fact)
    seen += dog.fire(END)
    return dog, snapshot(seen)


def rebuild(facts: list[Fact]) -> tuple[Watchdog, dict[str, dict[str, Any]]]:
    """As start-up: the whole log observed, then the timers due by now."""
    dog, seen = watchdog(), []
    for fact in facts:
        seen += dog.observe(fact)
    seen += dog.fire(END)
    return dog, snapshot(seen)


def test_rebuild_finds_exactly_the_warnings_the_live_watchdog_found() -> None:
    facts = busy_history().facts
    built, found = rebuild(facts)
    levels = sorted(w["level"] for w in found.values())
    assert levels.count("breach") >= 5 and "approaching" in levels and "data_incomplete" in levels
    assert any(w["resolved_at"] is None for w in found.values())
    for step in (timedelta(hours=1), timedelta(hours=7, minutes=13), timedelta(days=3)):
        running, live_found = live(facts, step)
        assert live_found == found, step
        assert running.scorecard() == built.scorecard()
        assert running.deadlines("G1", END) == built.deadlines("G1", END)
    # And a second rebuild is the same again, to the microsecond.
    assert rebuild(facts)[1] == found
    breach = found["gov_procurement.objection-reply/G1/11/breach"]
    assert breach["created_at"] == "2026-04-01T00:00:00.000+08:00"  # once 31 Mar is over
    assert breach["resolved_at"] is None


def test_a_rebuild_stopped_half_way_and_resumed_live_agrees() -> None:
    """A restart: rebuilt from the log up to then, then following it live."""
    facts = busy_history().facts
    _, found = rebuild(facts)
    dog, seen = watchdog(), []
    for fact in facts[:7]:
        seen += dog.observe(fact)
    seen += dog.fire(facts[7].published_at - US)
    for fact in facts[7:]:
        seen += dog.fire(fact.published_at - US)
        seen += dog.observe(fact)
    seen += dog.fire(END)
    assert snapshot(seen) == found


def test_contract_signed_on_time_but_published_after_the_due_time_rebuilds_the_same() -> None:
    history = History()
    history("P", "award", "2026-03-02T10:00")  # due Wed 1 Apr
    history("P", "contract", "2026-04-02T09:00", signed_at="2026-04-01T15:00:00+08:00")
    _, live_found = live(history.facts, timedelta(hours=1))
    assert set(live_found) == {
        f"{AWARD_CONTRACT}/P/1/approaching",
        f"{AWARD_CONTRACT}/P/1/breach",
    }
    assert rebuild(history.facts)[1] == live_found


# --- malformed times from staff never stop the watchdog ------------------------------


@pytest.mark.parametrize(
    ("stage", "category", "data"),
    [
        ("notice", "construction", {"deadline": "9999-12-31T23:59:59-12:00"}),
        ("notice", "construction", {"deadline": "0001-01-01T00:00:00+14:00"}),
        ("penalty", "construction", {"decided_at": "9999-12-30T00:00:00.000+08:00"}),
        ("contract", "gov_procurement", {"signed_at": "9999-12-31T00:00:00.000+08:00"}),
    ],
)
def test_a_time_at_the_edge_of_the_calendar_is_data_incomplete(
    stage: str, category: str, data: dict[str, Any]
) -> None:
    history, dog = History(), watchdog()
    found = dog.observe(history("P", stage, "2026-03-02T10:00", category=category, **data))
    assert Level.DATA_INCOMPLETE in {w.level for w in found}


# --- rules are data -----------------------------------------------------------------


def test_a_changed_rule_file_moves_the_deadline(tmp_path: Path) -> None:
    text = RULES_FILE.read_text("utf-8")
    block = re.compile(
        r'(id = "construction\.award-contract"(?:\n(?!\[\[rule\]\]).*)*?)amount = 30'
    )
    changed, count = block.subn(r"\1amount = 10", text)
    assert count == 1
    path = tmp_path / "rules.toml"
    path.write_text(changed, "utf-8")
    rules = Rules.load(path, DOMAIN)
    assert rules[AWARD_CONTRACT].amount == 10
    assert rules["gov_procurement.award-contract"].amount == 30, "only that rule changed"

    shipped, edited = watchdog(), watchdog(rules)
    history = History()
    award = history("P", "award", "2026-03-02T10:00")
    shipped.observe(award)
    edited.observe(award)
    assert shipped.deadlines("P", award.published_at)[0]["due"] == iso(end_of("2026-04-01"))
    assert edited.deadlines("P", award.published_at)[0]["due"] == iso(end_of("2026-03-12"))
    now = at("2026-03-20T10:00")
    assert shipped.fire(now) == []
    assert [w.level for w in edited.fire(now)] == [Level.APPROACHING, Level.BREACH]


def test_a_failed_transaction_voids_its_open_deadlines() -> None:
    history, dog = History(), watchdog()
    dog.observe(history("P", "evaluation", "2026-03-02T15:00"))  # candidates due in 3 日
    dog.observe(history("Q", "award", "2026-03-02T10:00"))  # contract due 1 Apr
    [approaching] = dog.fire(start_of("2026-03-04"))
    assert approaching.project == "P"
    failed = history("P", "failed", "2026-03-04T11:00")
    resolved = dog.observe(failed)
    assert ids(resolved) == [approaching.id] and approaching.resolved_at == failed.published_at
    assert dog.deadlines("P", at("2026-03-04T11:00")) == []
    assert dog.fire(at("2026-03-10T00:00")) == [], "no breach for a void deadline"
    assert len(dog.deadlines("Q", at("2026-03-10T00:00"))) == 1, "other projects untouched"
    assert totals(dog.scorecard(period="2026-03"), "YW-GGZY")["open_breaches"] == 0


def test_a_breach_before_the_failure_stays_counted_late() -> None:
    history, dog = History(), watchdog()
    dog.observe(history("P", "evaluation", "2026-03-02T15:00"))
    breach = next(w for w in dog.fire(at("2026-03-06T00:00")) if w.level is Level.BREACH)
    dog.observe(history("P", "failed", "2026-03-09T10:00"))
    assert breach.resolved_at == at("2026-03-09T10:00")
    card = totals(dog.scorecard(period="2026-03"), "YW-GGZY")
    assert card["open_breaches"] == 0 and card["late"] == 1


# --- anchoring: where the statute counts from ---------------------------------------

CANDIDATES = "construction.evaluation-candidates"


def test_a_late_published_evaluation_does_not_grant_itself_more_days() -> None:
    # §54: 3 日 from receipt of the report (the evaluation's occurred_at, Mon 2
    # Mar): the last day is Thu 5 Mar, however late the evaluation is published.
    history, dog = History(), watchdog()
    evaluation = history("P", "evaluation", "2026-03-04T10:00", occurred="2026-03-02T15:00")
    changes = dog.observe(evaluation)
    [deadline] = [d for d in iter_open(dog) if d.rule.id == CANDIDATES]
    assert deadline.due == end_of("2026-03-05")  # from publication: Mon 9 Mar
    # The approaching moment (00:00 Wed 4 Mar) had passed when it was published:
    # found with the event, dated by its publication.
    assert ids(changes) == [f"{CANDIDATES}/P/1/approaching"]
    assert changes[0].created_at == evaluation.published_at
    candidates = history("P", "candidates", "2026-03-06T09:00")
    changes = dog.observe(candidates)
    assert sorted(ids(changes)) == [f"{CANDIDATES}/P/1/approaching", f"{CANDIDATES}/P/1/breach"]
    assert all(w.resolved_at == candidates.published_at for w in changes)
    breach = next(w for w in changes if w.level is Level.BREACH)
    assert breach.created_at == end_of("2026-03-05") + US


def test_a_trigger_published_after_its_period_ran_out_is_a_breach_at_once_and_once() -> None:
    history, dog = History(), watchdog()
    evaluation = history("P", "evaluation", "2026-03-10T10:00", occurred="2026-03-02T15:00")
    changes = dog.observe(evaluation)
    assert ids(changes) == [f"{CANDIDATES}/P/1/breach"]  # no approaching: too late for it
    [breach] = changes
    assert breach.created_at == evaluation.published_at and breach.resolved_at is None
    assert breach.due == end_of("2026-03-05")
    assert totals(dog.scorecard(period="2026-03"), "YW-GGZY")["open_breaches"] == 1
    # No timer fires it again, now or later; the candidates resolve it.
    assert dog.fire(at("2026-03-10T10:00")) == [] and dog.fire(at("2026-12-31T00:00")) == []
    changes = dog.observe(history("P", "candidates", "2026-03-11T09:00"))
    assert ids(changes) == [breach.id] and changes[0].resolved_at == at("2026-03-11T09:00")
    # A rebuild from the same facts finds the same warning, created at the same moment.
    again = watchdog()
    found = [w for fact in history.facts for w in again.observe(fact)]
    assert snapshot(found) == snapshot([breach])


def test_without_occurred_at_the_period_counts_from_the_publication() -> None:
    history, dog = History(), watchdog()
    assert dog.observe(history("P", "evaluation", "2026-03-02T15:00")) == []
    [deadline] = [d for d in iter_open(dog) if d.rule.id == CANDIDATES]
    assert deadline.due == end_of("2026-03-05")


def test_the_contract_period_counts_from_the_award_notice_sent() -> None:
    # 法 §46: 30 日 from the notice sent (occurred Mon 2 Mar), not from its publication.
    history, dog = History(), watchdog()
    dog.observe(history("P", "award", "2026-03-20T10:00", occurred="2026-03-02T10:00"))
    [deadline] = [d for d in iter_open(dog) if d.rule.id == AWARD_CONTRACT]
    assert deadline.due == end_of("2026-04-01")


def test_a_published_anchor_ignores_occurred_at() -> None:
    # §54's publicity period is the publication itself: the candidates' occurred_at
    # (the report's date, say) does not shorten it.
    history, dog = History(), watchdog()
    dog.observe(history("P", "candidates", "2026-03-10T10:00", occurred="2026-03-01T10:00"))
    changes = dog.observe(history("P", "award", "2026-03-12T10:00"))
    assert ids(changes) == [f"{PUBLICITY}/P/1-2/breach"]


def test_an_at_least_period_anchored_at_occurred_counts_from_the_documents_issued() -> None:
    # §24: 20 日 from the tender documents first issued (the notice's occurred_at).
    history, dog = History(), watchdog()
    late_notice = history(
        "P",
        "notice",
        "2026-03-12T10:00",
        occurred="2026-03-02T10:00",
        deadline="2026-03-25T09:30:00+08:00",
    )
    assert dog.observe(late_notice) == []
    too_soon = history(
        "Q",
        "notice",
        "2026-03-12T10:00",
        occurred="2026-03-12T10:00",
        deadline="2026-03-25T09:30:00+08:00",
    )
    assert ids(dog.observe(too_soon)) == [f"{NOTICE_DEADLINE}/Q/2-2/breach"]


# --- snapshots: the state as bytes, without I/O -----------------------------------


def test_a_restored_snapshot_goes_on_exactly_as_the_watchdog_it_was_taken_from() -> None:
    history, dog = History(), watchdog()
    before = [
        history("P", "award", "2026-03-02T10:00"),
        history("Q", "evaluation", "2026-03-04T10:00", occurred="2026-03-02T15:00"),
        history("R", "objection", "2026-03-02T09:00", **GOV),
        history("S", "notice", "2026-03-02T09:00"),  # no deadline: data_incomplete
        history("T", "candidates", "2026-03-02T09:00"),
    ]
    for fact in before:
        dog.observe(fact)
    dog.fire(at("2026-03-05T12:00"))
    copy = watchdog()
    snapshots.load(copy, snapshots.dump(dog))
    assert copy.head == dog.head and copy.tallies == dog.tallies
    open_deadlines = {id(d) for d in iter_open(copy)}
    assert all(id(entry[2]) in open_deadlines for entry in copy._timers)
    after = [
        history("T", "award", "2026-03-04T09:00"),  # publicity too short
        history("R", "objection_reply", "2026-03-20T09:00", **GOV),  # late
        history("S", "notice", "2026-03-06T09:00", deadline="2026-04-01T09:30:00+08:00"),
        history("Q", "candidates", "2026-03-09T09:00"),
    ]
    for original_or_copy in (dog, copy):
        changes = [w for fact in after for w in original_or_copy.observe(fact)]
        changes += original_or_copy.fire(at("2026-05-01T00:00"))
        if original_or_copy is dog:
            expected = snapshot(changes)
        else:
            assert snapshot(changes) == expected
    assert len(expected) >= 5  # resolutions, a too-short publicity, P's overdue contract
    assert dog.deadlines("P", at("2026-05-01T00:00")) == copy.deadlines("P", at("2026-05-01T00:00"))
    assert dog.scorecard() == copy.scorecard()
    assert dog.items() == copy.items() and {i["state"] for i in dog.items()} >= {
        "too_short",
        "late",
        "overdue",
    }
    # The items made before the snapshot came through it.
    again = watchdog()
    snapshots.load(again, snapshots.dump(dog))
    assert again.items() == dog.items()


def test_a_snapshot_names_rules_by_id_and_refuses_one_it_does_not_know(tmp_path: Path) -> None:
    history, dog = History(), watchdog()
    dog.observe(history("P", "award", "2026-03-02T10:00"))
    blob = snapshots.dump(dog)
    copy = watchdog()
    snapshots.load(copy, blob)
    [deadline] = iter_open(copy)
    assert deadline.rule is RULES[AWARD_CONTRACT]  # today's rule, not a copy
    fewer = tmp_path / "rules.toml"
    text = RULES_FILE.read_text("utf-8")
    start = text.index('[[rule]]\nid = "construction.award-contract"')
    end = text.index("[[rule]]", start + 1)
    fewer.write_text(text[:start] + text[end:], "utf-8")
    with pytest.raises(pickle.UnpicklingError, match="unknown rule"):
        snapshots.load(watchdog(Rules.load(fewer, DOMAIN)), blob)
