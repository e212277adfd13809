"""The shipped statutory rules against the statutes' own words, case by case.

Every rule the legal review added or changed (LEGAL-REVIEW.md) is checked with
the shipped rules file, the real working-day calendar and the domain, on 2026
dates read from the statute's wording: one case on time, one late or too
short, and the boundary, the last lawful day and the first unlawful one (the
case id says which). Then when a rule applies (`applies_when`: the project's
must_tender, its notice's method, deal and control_transfer, its agency's
kind), counting around 国庆节 (1–7 Oct) and 春节 (15–23 Feb) forward and
backward (民法典 §201, §203), and advisory rules counted apart from the law.

Facts are built directly: no server, no store. Times are Beijing times. The
agency of the tables is a public institution (事业单位), so the rule on every
event (政府信息公开条例 §26, binding 行政机关) stays out of their counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

import pytest

from server.compliance.calendar import LEGAL_TZ, WorkCalendar
from server.compliance.rules import Kind, Rule, Rules
from server.compliance.watchdog import Alert, Fact, Level, Watchdog
from server.domain import Domain
from server.projects.checks import contradiction

DOMAIN = Domain.load()
RULES = Rules.load(domain=DOMAIN)
CALENDAR = WorkCalendar.load()
AGENCY = "YW-GGZY"
# A public institution: the rule on every event (政府信息公开条例 §26) does not
# bind it, so each table counts only the rule it is about.
NOT_BOUND: Mapping[str, Mapping[str, Any]] = {AGENCY: {"agency_kind": "事业单位"}}
TENDER = "公开招标"

ON_TIME, LATE, TOO_SHORT, OPEN = "on_time", "late", "too_short", "open"
STATE = {LATE: "overdue", OPEN: "overdue", TOO_SHORT: "too_short"}  # Alert.state of the breach
COUNTS = ("due", "on_time", "late", "too_short", "open_breaches", "advisory_late", "advisory_open")


def at(text: str) -> datetime:
    """A Beijing time written without its offset: `2026-03-02T10:00`."""
    return datetime.fromisoformat(text).replace(tzinfo=LEGAL_TZ)


class Step(NamedTuple):
    """One event of a project: its stage, publication, occurred_at and data."""

    stage: str
    published: str
    occurred: str | None
    data: dict[str, Any]


def step(stage: str, published: str, *, occurred: str | None = None, **data: Any) -> Step:
    return Step(stage, published, occurred, data)


class History:
    """Facts of one project, numbered 1, 2, … in the order they are made."""

    def __init__(self, category: str, agency: str = AGENCY, project: str = "P") -> None:
        self.category, self.agency, self.project = category, agency, project
        self.facts: list[Fact] = []

    def __call__(self, stage: str, published: str, occurred: str | None, **data: Any) -> Fact:
        fact = Fact(
            seq=len(self.facts) + 1,
            project=self.project,
            category=self.category,
            agency=self.agency,
            stage=stage,
            published_at=at(published),
            occurred_at=at(occurred or published),
            data=data,
        )
        self.facts.append(fact)
        return fact


def watchdog(agencies: Mapping[str, Mapping[str, Any]] = NOT_BOUND) -> Watchdog:
    return Watchdog(RULES, CALENDAR, DOMAIN, agencies=agencies)


def run(
    category: str,
    steps: Iterable[Step],
    *,
    now: str | None = None,
    agency: str = AGENCY,
    agencies: Mapping[str, Mapping[str, Any]] = NOT_BOUND,
    dog: Watchdog | None = None,
    project: str = "P",
) -> tuple[Watchdog, list[Fact], list[Alert]]:
    """Follow the steps as a running server does: the timers due by each
    publication fire before it is observed, and at the end those due by `now`
    (the last publication by default). Returns every warning once."""
    dog = dog or watchdog(agencies)
    history = History(category, agency, project)
    seen: dict[str, Alert] = {}
    for stage, published, occurred, data in steps:
        fact = history(stage, published, occurred, **data)
        for warning in (*dog.fire(fact.published_at), *dog.observe(fact)):
            seen.setdefault(warning.id, warning)
    for warning in dog.fire(at(now) if now else history.facts[-1].published_at):
        seen.setdefault(warning.id, warning)
    return dog, history.facts, list(seen.values())


def counts(dog: Watchdog, agency: str = AGENCY) -> dict[str, int]:
    """The agency's scorecard totals (zeros where nothing was counted)."""
    entries = dog.scorecard(agency=agency)
    return {k: entries[0][k] if entries else 0 for k in COUNTS}


def expected_counts(rule: Rule, outcome: str, others: int) -> dict[str, int]:
    """`others` legal items met on time, and the rule's own outcome: in the
    law's columns, or for an advisory rule in advisory_late/advisory_open."""
    legal = {"on_time": others, "late": 0, "too_short": 0, "open_breaches": 0}
    advisory = {"advisory_late": 0, "advisory_open": 0}
    if rule.advisory:
        if outcome in (LATE, TOO_SHORT):
            advisory["advisory_late"] = 1
        elif outcome == OPEN:
            advisory["advisory_open"] = 1
    else:
        legal[{ON_TIME: "on_time", OPEN: "open_breaches"}.get(outcome, outcome)] += 1
    return {"due": sum(legal.values()), **legal, **advisory}


def cause(rule: Rule, facts: Sequence[Fact]) -> str:
    """The events a breach of `rule` names in its id: trigger-target for a
    minimum interval, the event for a limit within one event, else the trigger."""

    def last(stage: str) -> int:
        return max(f.seq for f in facts if f.stage == stage)

    if rule.kind is Kind.AT_LEAST:
        return f"{last(rule.trigger.stage)}-{last(rule.target.stage)}"
    if rule.trigger.stage == rule.target.stage:
        return f"{last(rule.target.stage)}"
    return f"{last(rule.trigger.stage)}"


def ids(warnings: Iterable[Alert]) -> list[str]:
    return [w.id for w in warnings]


def breaches(warnings: Iterable[Alert], rule_id: str | None = None) -> list[Alert]:
    return [
        w for w in warnings if w.level is Level.BREACH and (rule_id is None or w.rule.id == rule_id)
    ]


# --- 1. each reviewed rule on its statute's dates ---------------------------------------


@dataclass(frozen=True)
class Scenario:
    """A project's events around the rule under test; every other limit in it
    is met, and counted `others` times on the scorecard."""

    category: str
    steps: tuple[Step, ...]
    others: int = 0
    now: str | None = None  # fire the timers due by then (an obligation never met)


def tender(category: str, *, must_tender: bool = False) -> tuple[Step, ...]:
    """What comes before: the registration where the law requires the tender,
    and a January notice stating the method (its on-sale period met, and its
    20 days to the bid deadline where they apply)."""
    registered = (step("registered", "2026-01-05T08:00", must_tender=True),) if must_tender else ()
    notice = step(
        "notice",
        "2026-01-05T09:00",
        method=TENDER,
        sale_ends="2026-01-12T17:00",
        deadline="2026-02-02T09:30",
    )
    return (*registered, notice)


def documents_on_sale(category: str, sale_ends: str) -> Scenario:
    # Tender documents issued Wed 4 Mar: the 5th day is Mon 9 Mar.
    notice = step("notice", "2026-03-04T09:00", method=TENDER, sale_ends=sale_ends)
    return Scenario(category, (notice,))


def prequalification_on_sale(category: str, sale_ends: str) -> Scenario:
    # Prequalification documents issued Wed 4 Mar: the 5th day is Mon 9 Mar.
    return Scenario(category, (step("prequalification", "2026-03-04T09:00", sale_ends=sale_ends),))


def prequalification_submission(category: str, deadline: str) -> Scenario:
    # Sale ends Thu 12 Mar (10 days after issue: met): the 5th day is Tue 17 Mar.
    steps = (
        step("registered", "2026-03-02T08:00", must_tender=True),
        step(
            "prequalification",
            "2026-03-02T09:00",
            sale_ends="2026-03-12T17:00",
            submission_deadline=deadline,
        ),
    )
    return Scenario(category, steps, others=1)


def award_notice(category: str, sent: str) -> Scenario:
    # Winner chosen Mon 2 Mar: the 15th day is Tue 17 Mar. The award's
    # occurred_at (= its publication here) is the notice sent.
    award = step("award", sent, chosen_at="2026-03-02T10:00")
    return Scenario(category, (*tender(category), award), others=1)


def complaint_acceptance(category: str, received: str, accepted: str) -> Scenario:
    # The complaint's occurred_at (= its publication here) is its acceptance.
    complaint = step("complaint", accepted, received_at=received)
    return Scenario(category, (*tender(category), complaint), others=1)


def candidates_publicity(category: str, award: str) -> Scenario:
    # Candidates published Mon 2 Mar 18:00: the 3rd day is Thu 5 Mar, so the
    # award may come from Fri 6 Mar. The award notice goes the day the winner
    # is chosen (met), as do the January notice's two limits.
    steps = (
        *tender(category, must_tender=True),
        step("candidates", "2026-03-02T18:00"),
        step("award", award, chosen_at=award),
    )
    return Scenario(category, steps, others=3)


def single_source(publicity_ends: str) -> Scenario:
    # Published Mon 2 Mar: the 5th working day is Mon 9 Mar.
    publicity = step("single_source", "2026-03-02T10:00", publicity_ends=publicity_ends)
    return Scenario("gov_procurement", (publicity,))


def documents_available(sale_ends: str) -> Scenario:
    # Issued Mon 2 Mar: the 5th working day is Mon 9 Mar. The bid deadline,
    # 28 days on, meets §35's 20 days.
    notice = step(
        "notice",
        "2026-03-02T09:00",
        method=TENDER,
        sale_ends=sale_ends,
        deadline="2026-03-30T09:30",
    )
    return Scenario("gov_procurement", (notice,), others=1)


def pre_disclosure(published: str) -> Scenario:
    # Approved Mon 2 Mar: the 10th working day is Mon 16 Mar. The pre-disclosure
    # runs to 29 May (20 working days: met).
    plan = step(
        "plan",
        published,
        control_transfer=True,
        approved_at="2026-03-02T10:00",
        publicity_ends="2026-05-29",
    )
    return Scenario("state_assets", (plan,), others=1)


def pre_disclosure_period(publicity_ends: str) -> Scenario:
    # Published Mon 2 Mar (approved Fri 27 Feb: within 10 working days): the
    # 20th working day is Mon 30 Mar.
    plan = step(
        "plan",
        "2026-03-02T10:00",
        control_transfer=True,
        approved_at="2026-02-27T10:00",
        publicity_ends=publicity_ends,
    )
    return Scenario("state_assets", (plan,), others=1)


def penalty_withdrawn(changed: str, published: str) -> Scenario:
    # The withdrawal's occurred_at is the penalty's change or annulment.
    withdrawn = step("penalty_withdrawn", published, occurred=changed)
    return Scenario("construction", (withdrawn,))


def land_result(award: str | None) -> Scenario:
    # The listing opens Mon 2 Mar and ends Mon 16 Mar 15:00 (14 days: met):
    # the 10th working day after its end is Mon 30 Mar.
    steps = [step("auction", "2026-03-02T10:00", listing_ends="2026-03-16T15:00")]
    if award:
        steps.append(step("award", award))
    return Scenario("land", tuple(steps), others=1, now=None if award else "2026-04-01T00:00")


def mining_result(award: str | None) -> Scenario:
    # The listing ends Mon 16 Mar 15:00: the 5th working day after is Mon 23
    # Mar. The result's publicity (advisory, 10 working days) is met.
    steps = [step("auction", "2026-03-02T10:00", listing_ends="2026-03-16T15:00")]
    if award:
        steps.append(step("award", award, publicity_ends="2026-04-30"))
    return Scenario("mining", tuple(steps), now=None if award else "2026-03-25T00:00")


def bidding_result(category: str, award: str | None) -> Scenario:
    # The bidding (竞价) ends Mon 16 Mar 15:00, the auction event's occurred_at:
    # the 10th working day after is Mon 30 Mar.
    steps = [step("auction", "2026-03-16T15:00")]
    if award:
        steps.append(step("award", award))
    return Scenario(category, tuple(steps), now=None if award else "2026-04-01T00:00")


Row = tuple[str, Any, str]  # outcome, the builder's argument(s), what the case shows


def table(rule_id: str, build: Any, rows: Iterable[Row], *lead: Any) -> list[Any]:
    params = []
    for outcome, args, label in rows:
        scenario = build(*lead, *(args if isinstance(args, tuple) else (args,)))
        params.append(pytest.param(rule_id, outcome, scenario, id=f"{rule_id}: {label}"))
    return params


def twins(name: str, build: Any, rows: Iterable[Row]) -> list[Any]:
    """The construction rule and its soe_procurement twin on the same rows."""
    rows = list(rows)
    return [
        *table(f"construction.{name}", build, rows, "construction"),
        *table(f"soe_procurement.{name}", build, rows, "soe_procurement"),
    ]


def results(rule_id: str, build: Any, *lead: Any, last: str, first: str) -> list[Any]:
    """A result rule: published early, on the last lawful day, on the first
    unlawful one, and never (an open breach once the time has passed)."""
    return table(
        rule_id,
        build,
        [
            (ON_TIME, "2026-03-20T10:00", "published Fri 20 Mar"),
            (ON_TIME, f"{last}T16:00", f"boundary {last}: last lawful day"),
            (LATE, f"{first}T09:00", f"boundary {first}: first unlawful day"),
            (OPEN, None, "never published: overdue"),
        ],
        *lead,
    )


CASES = [
    # 招标投标法实施条例 §16 “资格预审文件或者招标文件的发售期不得少于5日”.
    *twins(
        "documents-on-sale",
        documents_on_sale,
        [
            (ON_TIME, "2026-03-16T17:00", "on sale 12 days"),
            (ON_TIME, "2026-03-09T17:00", "boundary Mon 9 Mar, 5th day: first lawful"),
            (TOO_SHORT, "2026-03-08T17:00", "boundary Sun 8 Mar, 4th day: last too short"),
            (TOO_SHORT, "2026-03-06T17:00", "on sale 2 days"),
        ],
    ),
    *twins(
        "prequalification-on-sale",
        prequalification_on_sale,
        [
            (ON_TIME, "2026-03-16T17:00", "on sale 12 days"),
            (ON_TIME, "2026-03-09T17:00", "boundary Mon 9 Mar, 5th day: first lawful"),
            (TOO_SHORT, "2026-03-08T17:00", "boundary Sun 8 Mar, 4th day: last too short"),
            (TOO_SHORT, "2026-03-06T17:00", "on sale 2 days"),
        ],
    ),
    # 条例 §17 “自资格预审文件停止发售之日起不得少于5日”.
    *twins(
        "prequalification-submission",
        prequalification_submission,
        [
            (ON_TIME, "2026-03-20T09:00", "8 days after the sale"),
            (ON_TIME, "2026-03-17T09:00", "boundary Tue 17 Mar, 5th day: first lawful"),
            (TOO_SHORT, "2026-03-16T17:00", "boundary Mon 16 Mar, 4th day: last too short"),
            (TOO_SHORT, "2026-03-14T09:00", "2 days after the sale"),
        ],
    ),
    # 浙江省招标投标条例 §39: the award notice within 15 days of choosing the winner.
    *twins(
        "award-notice",
        award_notice,
        [
            (ON_TIME, "2026-03-10T10:00", "sent Tue 10 Mar"),
            (ON_TIME, "2026-03-17T16:00", "boundary Tue 17 Mar, 15th day: last lawful"),
            (LATE, "2026-03-18T09:00", "boundary Wed 18 Mar, 16th day: first unlawful"),
            (LATE, "2026-03-25T10:00", "sent Wed 25 Mar"),
        ],
    ),
    # 条例 §61 “自收到投诉之日起3个工作日内决定是否受理投诉”.
    *twins(
        "complaint-acceptance",
        complaint_acceptance,
        [
            (ON_TIME, ("2026-03-02T10:00", "2026-03-04T10:00"), "accepted Wed 4 Mar"),
            (
                ON_TIME,
                ("2026-03-02T10:00", "2026-03-05T16:00"),
                "boundary Thu 5 Mar, 3rd working day: last lawful",
            ),
            (
                LATE,
                ("2026-03-02T10:00", "2026-03-06T09:00"),
                "boundary Fri 6 Mar, 4th working day: first unlawful",
            ),
            (
                ON_TIME,
                ("2026-03-05T10:00", "2026-03-10T16:00"),
                "received Thu 5 Mar, boundary Tue 10 Mar, 3rd working day: last lawful",
            ),
            (
                LATE,
                ("2026-03-05T10:00", "2026-03-11T09:00"),
                "received Thu 5 Mar, boundary Wed 11 Mar: first unlawful",
            ),
        ],
    ),
    # 条例 §54 “公示期不得少于3日”, and the award only after the whole 3rd day.
    *twins(
        "candidates-publicity",
        candidates_publicity,
        [
            (TOO_SHORT, "2026-03-03T10:00", "award Tue 3 Mar"),
            (TOO_SHORT, "2026-03-05T16:00", "boundary Thu 5 Mar, 3rd day: publicity still on"),
            (ON_TIME, "2026-03-06T09:00", "boundary Fri 6 Mar, 4th day: first lawful"),
            (ON_TIME, "2026-03-09T10:00", "award Mon 9 Mar"),
        ],
    ),
    # 政府采购法实施条例 §38 “公示期不得少于5个工作日”.
    *table(
        "gov_procurement.single-source-publicity",
        single_source,
        [
            (ON_TIME, "2026-03-13T17:00", "runs to Fri 13 Mar"),
            (ON_TIME, "2026-03-09T17:00", "boundary Mon 9 Mar, 5th working day: first lawful"),
            (TOO_SHORT, "2026-03-06T17:00", "boundary Fri 6 Mar, 4th working day: too short"),
            (TOO_SHORT, "2026-03-08T17:00", "ends Sun 8 Mar: still 4 working days"),
        ],
    ),
    # 实施条例 §31 “自招标文件开始发出之日起不得少于5个工作日”.
    *table(
        "gov_procurement.documents-available",
        documents_available,
        [
            (ON_TIME, "2026-03-13T17:00", "available to Fri 13 Mar"),
            (ON_TIME, "2026-03-09T17:00", "boundary Mon 9 Mar, 5th working day: first lawful"),
            (TOO_SHORT, "2026-03-06T17:00", "boundary Fri 6 Mar, 4th working day: too short"),
            (TOO_SHORT, "2026-03-03T17:00", "available 1 working day"),
        ],
    ),
    # 32号令 §13 “转让行为获批后10个工作日内，通过产权交易机构进行信息预披露”.
    *table(
        "state_assets.pre-disclosure",
        pre_disclosure,
        [
            (ON_TIME, "2026-03-10T10:00", "pre-disclosed Tue 10 Mar"),
            (ON_TIME, "2026-03-16T16:00", "boundary Mon 16 Mar, 10th working day: last lawful"),
            (LATE, "2026-03-17T09:00", "boundary Tue 17 Mar, 11th working day: first unlawful"),
            (LATE, "2026-03-25T10:00", "pre-disclosed Wed 25 Mar"),
        ],
    ),
    # 32号令 §13 “时间不得少于20个工作日”.
    *table(
        "state_assets.pre-disclosure-period",
        pre_disclosure_period,
        [
            (ON_TIME, "2026-04-02T17:00", "runs to Thu 2 Apr"),
            (ON_TIME, "2026-03-30T17:00", "boundary Mon 30 Mar, 20th working day: first lawful"),
            (TOO_SHORT, "2026-03-27T17:00", "boundary Fri 27 Mar, 19th working day: too short"),
            (TOO_SHORT, "2026-03-20T17:00", "runs 15 working days"),
        ],
    ),
    # 行政处罚法 §48 ¶2 “应当在三日内撤回行政处罚决定信息”.
    *table(
        "all.penalty-withdrawn",
        penalty_withdrawn,
        [
            (ON_TIME, ("2026-03-02T10:00", "2026-03-04T10:00"), "withdrawn Wed 4 Mar"),
            (
                ON_TIME,
                ("2026-03-02T10:00", "2026-03-05T16:00"),
                "boundary Thu 5 Mar, 3rd day: last lawful",
            ),
            (
                LATE,
                ("2026-03-02T10:00", "2026-03-06T09:00"),
                "boundary Fri 6 Mar, 4th day: first unlawful",
            ),
            (
                ON_TIME,
                ("2026-03-04T10:00", "2026-03-09T16:00"),
                "changed Wed 4 Mar, 3rd day a Saturday: boundary Mon 9 Mar last lawful",
            ),
            (
                LATE,
                ("2026-03-04T10:00", "2026-03-10T09:00"),
                "changed Wed 4 Mar: boundary Tue 10 Mar first unlawful",
            ),
        ],
    ),
    # Results counted from the end of the sale (39号令 “活动结束后”), never from
    # the listing's opening: 30 Mar is 20 working days after it opened.
    *results("land.auction-award", land_result, last="2026-03-30", first="2026-03-31"),
    *results("mining.auction-award", mining_result, last="2026-03-23", first="2026-03-24"),
    *results(
        "rural_property.auction-award",
        bidding_result,
        "rural_property",
        last="2026-03-30",
        first="2026-03-31",
    ),
    *results(
        "emission_rights.auction-award",
        bidding_result,
        "emission_rights",
        last="2026-03-30",
        first="2026-03-31",
    ),
]

# The rules the review added or changed: each has its cases above.
REVIEWED = {
    "construction.documents-on-sale",
    "construction.prequalification-on-sale",
    "construction.prequalification-submission",
    "construction.award-notice",
    "construction.complaint-acceptance",
    "construction.candidates-publicity",
    "gov_procurement.single-source-publicity",
    "gov_procurement.documents-available",
    "state_assets.pre-disclosure",
    "state_assets.pre-disclosure-period",
    "all.penalty-withdrawn",
    "land.auction-award",
    "mining.auction-award",
    "rural_property.auction-award",
    "emission_rights.auction-award",
}


@pytest.mark.parametrize(("rule_id", "outcome", "scenario"), CASES)
def test_each_reviewed_rule_on_its_statute_s_dates(
    rule_id: str, outcome: str, scenario: Scenario
) -> None:
    rule = RULES[rule_id]
    dog, facts, warnings = run(scenario.category, scenario.steps, now=scenario.now)
    assert {w.rule.id for w in warnings} <= {rule_id}, "every other limit in the case is met"
    found = breaches(warnings)
    if outcome == ON_TIME:
        assert found == []
        # A deadline met on its last day was approaching the day before: resolved.
        assert all(w.resolved_at is not None for w in warnings)
    else:
        [breach] = found
        assert breach.id == f"{rule_id}/P/{cause(rule, facts)}/breach"
        assert breach.state == STATE[outcome]
        assert breach.to_json()["state"] == STATE[outcome]
        assert breach.to_json()["advisory"] is rule.advisory
        if outcome == TOO_SHORT:
            assert breach.due is None and breach.message.startswith("时限不足")
        else:
            assert breach.due is not None
        # Done late is settled when done; too short and overdue stay for a supervisor.
        assert (breach.resolved_at is not None) == (outcome == LATE)
    assert counts(dog) == expected_counts(rule, outcome, scenario.others)


def test_every_reviewed_rule_has_a_case_each_way_and_on_its_boundary() -> None:
    soe = {f"soe_procurement.{r.split('.', 1)[1]}" for r in REVIEWED if r.startswith("constr")}
    for rule_id in REVIEWED | soe:
        mine = [c for c in CASES if c.values[0] == rule_id]
        outcomes = {c.values[1] for c in mine}
        assert ON_TIME in outcomes and outcomes & {LATE, TOO_SHORT, OPEN}, rule_id
        assert sum("boundary" in c.id for c in mine) >= 2, rule_id


def test_the_soe_twins_differ_from_construction_only_by_applies_when() -> None:
    fields = ("trigger", "target", "kind", "amount", "unit", "anchor", "after_period", "basis")
    for rule in RULES:
        if rule.category == "soe_procurement":
            twin = RULES[f"construction.{rule.id.split('.', 1)[1]}"]
            assert [getattr(rule, f) for f in fields] == [getattr(twin, f) for f in fields]
            assert rule.advisory is twin.advisory is False


# --- 2. applies_when ---------------------------------------------------------------------

NOTICE_DEADLINE = "construction.notice-deadline"


def short_notice(published: str = "2026-03-09T09:00", **data: Any) -> Step:
    """Documents issued Mon 9 Mar with the bids due Fri 20 Mar: 11 days, not 20."""
    return step(
        "notice", published, sale_ends="2026-03-16T17:00", deadline="2026-03-20T09:30", **data
    )


@pytest.mark.parametrize(
    ("stated", "applies"),
    [
        pytest.param((), False, id="nothing stated"),
        pytest.param((("registered", True),), True, id="registered true"),
        pytest.param((("registered", False),), False, id="registered false"),
        pytest.param((("registered", True), ("amended", False)), False, id="amended to false"),
        pytest.param((("registered", False), ("amended", True)), True, id="amended to true"),
        pytest.param((("registered", True), ("amended", None)), False, id="amended to unknown"),
    ],
)
def test_a_must_tender_rule_applies_while_the_project_says_it_must_tender(
    stated: tuple[tuple[str, bool | None], ...], applies: bool
) -> None:
    steps = [
        step(stage, f"2026-03-0{n}T10:00", must_tender=value)
        for n, (stage, value) in enumerate(stated, start=2)
    ]
    n = len(steps) + 1
    dog, _, warnings = run("construction", [*steps, short_notice()])
    assert ids(warnings) == ([f"{NOTICE_DEADLINE}/P/{n}-{n}/breach"] if applies else [])
    # The documents' sale (条例 §16, every tender) is counted either way.
    assert (counts(dog)["on_time"], counts(dog)["too_short"]) == (1, int(applies))


def test_an_amendment_of_another_field_leaves_must_tender_as_it_was() -> None:
    steps = [
        step("registered", "2026-03-02T10:00", must_tender=True),
        step("amended", "2026-03-03T10:00", title="义乌市某道路工程（二期）"),
        short_notice(),
    ]
    _, _, warnings = run("construction", steps)
    assert ids(warnings) == [f"{NOTICE_DEADLINE}/P/3-3/breach"]


def test_an_amendment_to_false_binds_only_the_checks_made_after_it() -> None:
    steps = [
        step("registered", "2026-03-02T10:00", must_tender=True),
        short_notice("2026-03-09T09:00"),
        step("amended", "2026-03-10T10:00", must_tender=False),
        short_notice("2026-03-11T09:00"),
    ]
    dog, _, warnings = run("construction", steps)
    # The first notice was checked while the law required the tender: its
    # breach stands. The second is checked after the amendment: not at all.
    [breach] = warnings
    assert breach.id == f"{NOTICE_DEADLINE}/P/2-2/breach" and breach.resolved_at is None
    assert counts(dog)["too_short"] == 1 and counts(dog)["on_time"] == 2


def test_a_must_tender_deadline_opens_only_once_the_fact_is_stated() -> None:
    # 条例 §54: candidates within 3 days of the evaluation report, 依法必须 only.
    rule = "construction.evaluation-candidates"
    dog, _, _ = run("construction", [step("evaluation", "2026-03-02T10:00")])
    assert [d["rule"] for d in dog.deadlines("P", at("2026-03-02T10:00"))] == []
    steps = [
        step("registered", "2026-03-02T09:00", must_tender=True),
        step("evaluation", "2026-03-02T10:00"),
    ]
    dog, _, _ = run("construction", steps)
    [deadline] = dog.deadlines("P", at("2026-03-02T10:00"))
    assert deadline["rule"] == rule and deadline["due"] == "2026-03-05T23:59:59.999+08:00"


METHOD_RULE = "gov_procurement.notice-deadline"  # 政府采购法 §35: 招标 only


@pytest.mark.parametrize(
    ("method", "applies"),
    [
        ("公开招标", True),
        ("邀请招标", True),
        ("竞争性谈判", False),
        ("竞争性磋商", False),
        (None, False),
    ],
)
def test_a_method_rule_applies_to_tenders_only(method: str | None, applies: bool) -> None:
    stated = {} if method is None else {"method": method}
    notice = step(
        "notice",
        "2026-03-02T09:00",
        sale_ends="2026-03-09T17:00",
        deadline="2026-03-13T09:30",
        **stated,
    )
    dog, _, warnings = run("gov_procurement", [notice])
    assert ids(warnings) == ([f"{METHOD_RULE}/P/1-1/breach"] if applies else [])
    # With a tender, the documents' 5 working days (§31) are checked and met too.
    assert (counts(dog)["on_time"], counts(dog)["too_short"]) == (int(applies), int(applies))


@pytest.mark.parametrize(
    ("notice_method", "evaluation_method", "applies"),
    [
        pytest.param("公开招标", "综合评估法", True, id="tender, evaluated 综合评估法"),
        pytest.param("邀请招标", "经评审的最低投标价法", True, id="tender, lowest price"),
        pytest.param("竞争性谈判", "公开招标", False, id="negotiation, evaluation says 公开招标"),
        pytest.param(None, "公开招标", False, id="no method, evaluation says 公开招标"),
    ],
)
def test_the_evaluation_method_is_not_the_procurement_method(
    notice_method: str | None, evaluation_method: str, applies: bool
) -> None:
    # The award notice (浙江 §39, soe tenders only) sent 23 days after the choice.
    rule = "soe_procurement.award-notice"
    stated = {} if notice_method is None else {"method": notice_method}
    steps = [
        step("notice", "2026-01-05T09:00", sale_ends="2026-01-12T17:00", **stated),
        step("evaluation", "2026-03-02T10:00", method=evaluation_method),
        step("award", "2026-03-25T10:00", chosen_at="2026-03-02T10:00"),
    ]
    _, _, warnings = run("soe_procurement", steps)
    assert ids(warnings) == ([f"{rule}/P/3/breach"] if applies else [])


@pytest.mark.parametrize(
    ("deal", "applies"), [("产权转让", True), ("增资", False), ("资产转让", False), (None, False)]
)
def test_the_formal_disclosure_rule_applies_to_transfers_only(
    deal: str | None, applies: bool
) -> None:
    # 32号令 §13: a transfer's formal disclosure runs 20 working days; here 10.
    stated = {} if deal is None else {"deal": deal}
    steps = [step("notice", "2026-03-02T10:00", **stated), step("auction", "2026-03-16T10:00")]
    _, _, warnings = run("state_assets", steps)
    assert ids(warnings) == (["state_assets.notice-auction/P/1-2/breach"] if applies else [])


@pytest.mark.parametrize("control_transfer", [True, False, None])
def test_the_pre_disclosure_rules_apply_where_control_moves(control_transfer: bool | None) -> None:
    # Approved Mon 2 Mar, pre-disclosed Fri 20 Mar (14th working day) until Fri
    # 27 Mar (5 working days): both limits broken, where they apply.
    stated = {} if control_transfer is None else {"control_transfer": control_transfer}
    plan = step(
        "plan",
        "2026-03-20T10:00",
        approved_at="2026-03-02T10:00",
        publicity_ends="2026-03-27",
        **stated,
    )
    _, _, warnings = run("state_assets", [plan])
    expected = {
        "state_assets.pre-disclosure/P/1/breach",
        "state_assets.pre-disclosure-period/P/1-1/breach",
    }
    assert set(ids(warnings)) == (expected if control_transfer else set())


INFORMATION = "all.information-published"  # 政府信息公开条例 §26: 行政机关


@pytest.mark.parametrize(
    ("agency_facts", "applies"),
    [
        pytest.param({"agency_kind": "行政机关"}, True, id="行政机关"),
        pytest.param({"agency_kind": "法律法规授权组织"}, True, id="法律法规授权组织"),
        pytest.param({"agency_kind": "事业单位"}, False, id="事业单位"),
        pytest.param({"agency_kind": "企业"}, False, id="企业"),
        # The directory names the agencies a rule does not bind: one it gives
        # no kind, or does not list, is held to it.
        pytest.param({}, True, id="no kind stated"),
        pytest.param(None, True, id="not in the directory"),
    ],
)
def test_the_rule_on_every_event_binds_administrative_organs(
    agency_facts: dict[str, str] | None, applies: bool
) -> None:
    # Occurred Mon 2 Mar, published Tue 31 Mar: the 21st working day.
    agencies = {} if agency_facts is None else {"YW-ZRZY": agency_facts}
    performance = step("performance", "2026-03-31T10:00", occurred="2026-03-02T10:00")
    dog, _, warnings = run("land", [performance], agency="YW-ZRZY", agencies=agencies)
    assert ids(warnings) == ([f"{INFORMATION}/P/1/breach"] if applies else [])
    assert counts(dog, "YW-ZRZY")["late"] == int(applies)


@pytest.mark.parametrize(
    ("published", "outcome"),
    [
        pytest.param("2026-03-30T16:00", ON_TIME, id="boundary Mon 30 Mar, 20th WD: last lawful"),
        pytest.param("2026-03-31T09:00", LATE, id="boundary Tue 31 Mar, 21st WD: first unlawful"),
    ],
)
def test_information_published_within_twenty_working_days(published: str, outcome: str) -> None:
    agencies = {"YW-ZRZY": {"agency_kind": "行政机关"}}
    performance = step("performance", published, occurred="2026-03-02T10:00")
    dog, _, warnings = run("land", [performance], agency="YW-ZRZY", agencies=agencies)
    assert [w.state for w in warnings] == ([] if outcome == ON_TIME else ["overdue"])
    assert counts(dog, "YW-ZRZY") == expected_counts(RULES[INFORMATION], outcome, 0)


# --- 3. counting around the holidays ------------------------------------------------------


def deadline_of(dog: Watchdog, rule_id: str, now: str) -> str:
    [deadline] = [d for d in dog.deadlines("P", at(now)) if d["rule"] == rule_id]
    return str(deadline["due"])


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        pytest.param("2026-09-30T10:00", ON_TIME, id="reply Wed 30 Sep"),
        pytest.param("2026-10-08T16:00", ON_TIME, id="boundary Thu 8 Oct: last lawful"),
        pytest.param("2026-10-09T09:00", LATE, id="boundary Fri 9 Oct: first unlawful"),
    ],
)
def test_an_objection_reply_due_in_national_day_is_due_the_next_working_day(
    reply: str, outcome: str
) -> None:
    # 条例 §22 “自收到异议之日起3日内”: received Mon 28 Sep, the 3rd day is Thu 1
    # Oct, in 国庆节 (1–7 Oct): the period ends Thu 8 Oct.
    rule = "construction.objection-reply"
    assert not any(CALENDAR.is_workday(date(2026, 10, d)) for d in range(1, 8))
    objection = step("objection", "2026-09-28T10:00")
    dog, _, _ = run("construction", [objection])
    assert deadline_of(dog, rule, "2026-09-28T10:00") == "2026-10-08T23:59:59.999+08:00"
    dog, _, warnings = run("construction", [objection, step("objection_reply", reply)])
    assert [w.state for w in breaches(warnings)] == ([] if outcome == ON_TIME else ["overdue"])
    assert counts(dog) == expected_counts(RULES[rule], outcome, 0)


@pytest.mark.parametrize(
    ("award", "due", "signed", "outcome"),
    [
        pytest.param(
            "2026-01-19T10:00", "2026-02-24", "2026-02-24T15:00", ON_TIME,
            id="30th day Wed 18 Feb in 春节: boundary Tue 24 Feb last lawful",
        ),
        pytest.param(
            "2026-01-19T10:00", "2026-02-24", "2026-02-25T10:00", LATE,
            id="30th day Wed 18 Feb in 春节: boundary Wed 25 Feb first unlawful",
        ),
        pytest.param(
            "2026-01-19T10:00", "2026-02-24", "2026-02-12T10:00", ON_TIME,
            id="signed Thu 12 Feb before 春节",
        ),
        pytest.param(
            "2026-01-15T10:00", "2026-02-14", "2026-02-14T15:00", ON_TIME,
            id="30th day Sat 14 Feb, a working day: boundary last lawful",
        ),
        pytest.param(
            "2026-01-15T10:00", "2026-02-14", "2026-02-24T10:00", LATE,
            id="30th day Sat 14 Feb, a working day: not moved past 春节",
        ),
    ],
)  # fmt: skip
def test_the_contract_period_ending_in_the_spring_festival(
    award: str, due: str, signed: str, outcome: str
) -> None:
    # 招标投标法 §46 “自中标通知书发出之日起三十日内”: a forward period that ends on a
    # rest day ends on the next working day (民法典 §203).
    rule = "construction.award-contract"
    assert CALENDAR.is_workday(date(2026, 2, 14)) and CALENDAR.is_workday(date(2026, 2, 24))
    assert not any(CALENDAR.is_workday(date(2026, 2, d)) for d in range(15, 24))
    sent = step("award", award, chosen_at=award)
    dog, _, _ = run("construction", [sent])
    assert deadline_of(dog, rule, award) == f"{due}T23:59:59.999+08:00"
    contract = step("contract", signed, signed_at=signed)
    dog, _, warnings = run("construction", [sent, contract])
    assert [w.state for w in breaches(warnings)] == ([] if outcome == ON_TIME else ["overdue"])
    # The award notice went the day the winner was chosen: one more on time.
    assert counts(dog) == expected_counts(RULES[rule], outcome, 1)


@pytest.mark.parametrize(
    ("issued", "deadline", "clarified", "outcome"),
    [
        pytest.param(
            "2026-09-14", "2026-10-16T09:30", "2026-09-30T10:00", ON_TIME,
            id="国庆: Wed 30 Sep, 16 days before",
        ),
        pytest.param(
            "2026-09-14", "2026-10-16T09:30", "2026-10-01T10:00", ON_TIME,
            id="国庆: boundary Thu 1 Oct, a holiday, 15 days before: last lawful",
        ),
        pytest.param(
            "2026-09-14", "2026-10-16T09:30", "2026-10-02T10:00", TOO_SHORT,
            id="国庆: boundary Fri 2 Oct, 14 days before: first too short",
        ),
        pytest.param(
            "2026-01-19", "2026-02-25T09:30", "2026-02-09T10:00", ON_TIME,
            id="春节 in the span: Mon 9 Feb, 16 days before",
        ),
        pytest.param(
            "2026-01-19", "2026-02-25T09:30", "2026-02-10T10:00", ON_TIME,
            id="春节 in the span: boundary Tue 10 Feb, 15 days before: last lawful",
        ),
        pytest.param(
            "2026-01-19", "2026-02-25T09:30", "2026-02-11T10:00", TOO_SHORT,
            id="春节 in the span: boundary Wed 11 Feb, 14 days before: first too short",
        ),
    ],
)  # fmt: skip
def test_a_period_counted_back_from_the_deadline_is_never_lengthened_by_holidays(
    issued: str, deadline: str, clarified: str, outcome: str
) -> None:
    # 招标投标法 §23, 条例 §21 “在投标截止时间至少15日前”.
    rule = "construction.clarification-deadline"
    # The documents are on sale a week (met): not the point here.
    sale_ends = date.fromisoformat(issued) + timedelta(days=7)
    steps = [
        step("notice", f"{issued}T09:00", sale_ends=f"{sale_ends}T17:00", deadline=deadline),
        step("clarification", clarified),
    ]
    dog, _, warnings = run("construction", steps)
    assert [w.state for w in breaches(warnings, rule)] == (
        [] if outcome == ON_TIME else ["too_short"]
    )
    assert counts(dog) == expected_counts(RULES[rule], outcome, 1)


@pytest.mark.parametrize("rule_id", [NOTICE_DEADLINE, METHOD_RULE])
@pytest.mark.parametrize(
    ("deadline", "outcome"),
    [
        pytest.param(
            "2026-10-01T09:30", ON_TIME, id="boundary Thu 1 Oct, 20th day, 国庆: met on it"
        ),
        pytest.param("2026-09-30T09:30", TOO_SHORT, id="boundary Wed 30 Sep, 19th day: too short"),
    ],
)
def test_a_minimum_interval_ending_on_a_rest_day_is_met_on_that_day(
    rule_id: str, deadline: str, outcome: str
) -> None:
    # 招标投标法 §24, 政府采购法 §35 “不得少于二十日”: issued Fri 11 Sep.
    category = rule_id.split(".")[0]
    assert not CALENDAR.is_workday(date(2026, 10, 1))
    steps = [
        step("registered", "2026-09-11T08:00", must_tender=True),
        step(
            "notice",
            "2026-09-11T09:00",
            method=TENDER,
            sale_ends="2026-09-18T17:00",
            deadline=deadline,
        ),
    ]
    dog, _, warnings = run(category, steps)
    assert [w.id for w in warnings] == ([] if outcome == ON_TIME else [f"{rule_id}/P/2-2/breach"])
    # The documents' sale (a week) is met too.
    assert counts(dog) == expected_counts(RULES[rule_id], outcome, 1)


# --- 4. advisory rules -------------------------------------------------------------------


def test_an_advisory_limit_warns_but_is_counted_apart_from_the_law() -> None:
    rule = "rural_property.auction-award"
    assert RULES[rule].advisory
    dog = watchdog()
    # A: bidding ends Mon 16 Mar, result Tue 31 Mar (the 11th working day): late.
    late = [step("auction", "2026-03-16T15:00"), step("award", "2026-03-31T10:00")]
    _, _, found = run("rural_property", late, dog=dog, project="A")
    [breach] = breaches(found)
    assert breach.id == f"{rule}/A/1/breach" and breach.state == "overdue"
    assert breach.to_json()["advisory"] is True and breach.resolved_at is not None
    # B: bidding ends the same day, no result by Wed 1 Apr: overdue, still open.
    _, _, found = run(
        "rural_property",
        [step("auction", "2026-03-16T15:00")],
        dog=dog,
        project="B",
        now="2026-04-01T00:00",
    )
    [breach] = breaches(found)
    assert breach.to_json()["advisory"] is True and breach.resolved_at is None
    assert counts(dog) == {
        "due": 0,
        "on_time": 0,
        "late": 0,
        "too_short": 0,
        "open_breaches": 0,
        "advisory_late": 1,
        "advisory_open": 1,
    }
    assert dog.scorecard()[0]["on_time_rate"] is None, "nothing the law requires was due"
    # C: a legal limit broken in the same agency and category counts as the law's.
    withdrawn = step("penalty_withdrawn", "2026-03-09T10:00", occurred="2026-03-02T10:00")
    _, _, found = run("rural_property", [withdrawn], dog=dog, project="C")
    [breach] = breaches(found)
    assert breach.to_json()["advisory"] is False
    card = dog.scorecard()[0]
    assert {k: card[k] for k in COUNTS} == {
        "due": 1,
        "on_time": 0,
        "late": 1,
        "too_short": 0,
        "open_breaches": 0,
        "advisory_late": 1,
        "advisory_open": 1,
    }
    [by_category] = card["by_category"]
    assert (by_category["late"], by_category["advisory_late"]) == (1, 1)
    items = {(i["project"], i["rule"]): i["advisory"] for i in dog.items()}
    assert items == {
        ("A", rule): True,
        ("B", rule): True,
        ("C", "all.penalty-withdrawn"): False,
    }


# --- the end of the sale ---------------------------------------------------------------


@pytest.mark.parametrize("category", ["rural_property", "emission_rights", "state_assets"])
def test_where_bidding_follows_the_listing_the_auction_is_the_end_of_the_sale(
    category: str,
) -> None:
    """The result rules of rural property and emission rights count from the
    auction's occurred_at: in those trades (as in state assets) bidding (竞价)
    follows the listing, and the checks before publishing refuse an auction
    before the listing ends, so that moment is the end of the sale, never the
    listing's opening (land and mining open the listing with theirs, and
    count from its listing_ends)."""
    notice = {
        "seq": 2,
        "project": "P",
        "category": category,
        "stage": "notice",
        "occurred_at": "2026-03-02T09:00:00+08:00",
        "data": {"listing_ends": "2026-03-16T15:00:00+08:00"},
    }

    def refused(occurred_at: str) -> str | None:
        auction = {**notice, "seq": 3, "stage": "auction", "occurred_at": occurred_at, "data": {}}
        found = contradiction(DOMAIN, DOMAIN.categories[category], [notice], auction)
        return None if found is None else found.rule

    assert refused("2026-03-02T10:00:00+08:00") == "auction_before_listing_end"
    assert refused("2026-03-16T14:59:00+08:00") == "auction_before_listing_end"
    assert refused("2026-03-17T09:30:00+08:00") is None


@pytest.mark.parametrize(
    ("moved_to", "outcome"),
    [
        pytest.param(None, TOO_SHORT, id="deadline kept: 10 days left, too short"),
        pytest.param("2026-03-17T09:30", ON_TIME, id="boundary: moved to the 15th day, lawful"),
        pytest.param(
            "2026-03-16T09:30", TOO_SHORT, id="boundary: moved to the 14th day, too short"
        ),
    ],
)
def test_a_clarification_is_measured_against_the_deadline_as_it_moves(
    moved_to: str | None, outcome: str
) -> None:
    """条例 §21: with less than 15 days left, the deadline must be postponed; the
    postponed deadline, stated in the clarification, is the one to check."""
    moved = {} if moved_to is None else {"deadline": moved_to}
    steps = [
        step("notice", "2026-02-26T09:00", deadline="2026-03-12T09:30", sale_ends="2026-03-06"),
        step("clarification", "2026-03-02T10:00", **moved),
        # Later that day, one stating no deadline: the moved one stands.
        step("clarification", "2026-03-02T15:00"),
    ]
    _, _, warnings = run("construction", steps)
    found = breaches(warnings, "construction.clarification-deadline")
    if outcome == ON_TIME:
        assert found == []
    else:
        assert [w.state for w in found] == [TOO_SHORT, TOO_SHORT]


@pytest.mark.parametrize(
    ("corrected_to", "outcome"),
    [
        pytest.param("2026-03-17T09:30", ON_TIME, id="corrected to the 15th day: lawful"),
        pytest.param("2026-03-16T09:30", TOO_SHORT, id="corrected to the 14th day: too short"),
    ],
)
def test_a_corrected_deadline_is_the_one_a_clarification_is_measured_against(
    corrected_to: str, outcome: str
) -> None:
    """A correction of the notice's deadline (field = deadline, now = the new
    time) moves it as a clarification stating it would, as the checks read it."""
    steps = [
        step("notice", "2026-02-26T09:00", deadline="2026-03-12T09:30", sale_ends="2026-03-06"),
        step("correction", "2026-03-01T10:00", corrects=1, field="deadline", now=corrected_to),
        step("clarification", "2026-03-02T10:00"),
    ]
    _, _, warnings = run("construction", steps)
    found = breaches(warnings, "construction.clarification-deadline")
    assert [w.state for w in found] == ([] if outcome == ON_TIME else [TOO_SHORT])
