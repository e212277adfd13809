"""The figures of `GET /api/stats`, aggregated in SQL from the statistics'
facts (stats_projects, stats_months) and the projects table, with the
on-time rates of the compliance scorecard and the answers of the respond
scorecard beside them (docs/stats.md defines each).

Every figure is a list of flat rows (one table of the page, one CSV) plus
the totals over them. Medians are the middle value (the mean of the two
middle ones for an even count) of the projects' own values.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.compliance.calendar import LEGAL_TZ
from server.compliance.watchdog import Watchdog
from server.respond import scorecard as response_figures
from server.respond.cases import CaseStore

DAY_US = 86_400_000_000
Read = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]
# What each figure's rows hold, in order: the CSV's columns.
TABLES: dict[str, tuple[str, ...]] = {
    "projects_by_stage": ("category", "stage", "projects"),
    "projects_by_month": ("month", "category", "projects"),
    "events_by_month": ("month", "events"),
    "amounts": (
        "category",
        "projects",
        "budget_count",
        "budget_sum",
        "budget_median",
        "award_count",
        "award_sum",
        "award_median",
    ),
    "competition": (
        "category",
        "counted",
        "mean_bidders",
        "bidders_0",
        "bidders_1",
        "bidders_2",
        "bidders_3_5",
        "bidders_6_plus",
    ),
    "durations": ("category", "awarded", "failed", "failure_rate", "timed", "median_days"),
    "on_time": ("category", "due", "on_time", "late", "too_short", "open_breaches", "on_time_rate"),
    "answers": (
        "agency",
        "kind",
        "received",
        "answered_on_time",
        "late",
        "open",
        "on_time_rate",
        "median_days",
    ),
}
SCORE_FIELDS = ("due", "on_time", "late", "too_short", "open_breaches")
ANSWER_FIELDS = ("received", "answered_on_time", "late", "open")


@dataclass(frozen=True)
class Filters:
    year: int | None = None
    month: int | None = None  # only with a year
    category: str | None = None
    agency: str | None = None

    def months(self) -> tuple[int, int] | None:
        """The YYYYMM range the figures count, both ends in; None for all."""
        if self.year is None:
            return None
        if self.month is None:
            return self.year * 100 + 1, self.year * 100 + 12
        return self.year * 100 + self.month, self.year * 100 + self.month

    def span_us(self) -> tuple[int, int] | None:
        """The same months as epoch µs [from, to), Beijing time."""
        if self.year is None:
            return None
        first = datetime(self.year, self.month or 1, 1, tzinfo=LEGAL_TZ)
        if self.month is None or self.month == 12:
            end = datetime(self.year + 1, 1, 1, tzinfo=LEGAL_TZ)
        else:
            end = datetime(self.year, self.month + 1, 1, tzinfo=LEGAL_TZ)
        return int(first.timestamp() * 1e6), int(end.timestamp() * 1e6)

    def to_json(self) -> dict[str, Any]:
        return {
            "year": self.year,
            "month": self.month,
            "category": self.category,
            "agency": self.agency,
        }


def where(filters: Filters) -> tuple[str, list[Any]]:
    """The projects the figures count (f: stats_projects, p: projects)."""
    clauses, params = ["TRUE"], []
    if (span := filters.months()) is not None:
        clauses.append("f.month BETWEEN ? AND ?")
        params += list(span)
    for column in ("category", "agency"):
        if (value := getattr(filters, column)) is not None:
            clauses.append(f"p.{column} = ?")
            params.append(value)
    return " AND ".join(clauses), params


# One row per project counted: everything the project tables need, read in one
# pass (one join) and aggregated here: ten aggregate queries over the same join
# (one per figure and median) took seven times as long on the 1M-event log.
ROWS = (
    "SELECT p.category, p.stage, f.month, CASE WHEN p.currency = 'CNY' THEN p.budget END,"
    " f.award_amount, f.bidders, f.outcome, f.noticed_us, f.award_us"
    " FROM stats_projects f JOIN projects p ON p.id = f.id WHERE "
)
BUCKETS = ("bidders_0", "bidders_1", "bidders_2", "bidders_3_5", "bidders_6_plus")


class _Group:
    """The projects of one category (or all of them), as they are counted."""

    def __init__(self) -> None:
        self.projects = 0
        self.budgets: list[float] = []
        self.awards: list[float] = []
        self.bidders: list[int] = []
        self.buckets = dict.fromkeys(BUCKETS, 0)
        self.awarded = self.failed = 0
        self.days: list[float] = []

    def add(self, budget: Any, award: Any, bidders: Any, outcome: Any, days: float | None) -> None:
        self.projects += 1
        if budget is not None:
            self.budgets.append(float(budget))
        if award is not None:
            self.awards.append(float(award))
        if bidders is not None:
            self.bidders.append(bidders)
            self.buckets[_bucket(bidders)] += 1
        if outcome == "awarded":
            self.awarded += 1
            if days is not None:
                self.days.append(days)
        elif outcome == "failed":
            self.failed += 1

    def rows(self, category: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        concluded = self.awarded + self.failed
        amounts = {
            "category": category,
            "projects": self.projects,
            "budget_count": len(self.budgets),
            "budget_sum": round(math.fsum(self.budgets), 2),
            "budget_median": _median(self.budgets, 2),
            "award_count": len(self.awards),
            "award_sum": round(math.fsum(self.awards), 2),
            "award_median": _median(self.awards, 2),
        }
        competition = {
            "category": category,
            "counted": len(self.bidders),
            "mean_bidders": round(sum(self.bidders) / len(self.bidders), 2)
            if self.bidders
            else None,
            **self.buckets,
        }
        durations = {
            "category": category,
            "awarded": self.awarded,
            "failed": self.failed,
            "failure_rate": None if not concluded else round(self.failed / concluded, 4),
            "timed": len(self.days),
            "median_days": _median(self.days, 1),
        }
        return amounts, competition, durations


def _bucket(bidders: int) -> str:
    if bidders <= 2:
        return BUCKETS[bidders]
    return "bidders_3_5" if bidders <= 5 else "bidders_6_plus"


def _median(values: list[float], digits: int) -> float | None:
    return round(statistics.median(values), digits) if values else None


async def project_figures(read: Read, filters: Filters) -> dict[str, Any]:
    """The figures of the projects table and the facts: every table but
    events by month, on time and answers."""
    cond, params = where(filters)
    by_stage: Counter[tuple[str, str]] = Counter()
    by_month: Counter[tuple[int, str]] = Counter()
    groups: dict[str, _Group] = {}
    overall = _Group()
    for category, stage, month, budget, award, bidders, outcome, noticed, awarded in await read(
        ROWS + cond, params
    ):
        by_stage[(category, stage or "registered")] += 1
        by_month[(month, category)] += 1
        days = None
        if noticed is not None and awarded is not None and awarded >= noticed:
            days = (awarded - noticed) / DAY_US
        group = groups.get(category)
        if group is None:
            group = groups[category] = _Group()
        for counted in (group, overall):
            counted.add(budget, award, bidders, outcome, days)
    amounts, competition, durations = [], [], []
    for category in sorted(groups):
        a, c, d = groups[category].rows(category)
        amounts.append(a)
        competition.append(c)
        durations.append(d)
    return {
        "projects_by_stage": [
            {"category": c, "stage": s, "projects": n} for (c, s), n in sorted(by_stage.items())
        ],
        "projects_by_month": [
            {"month": _month(m), "category": c, "projects": n}
            for (m, c), n in sorted(by_month.items())
        ],
        "amounts": amounts,
        "competition": competition,
        "durations": durations,
        "_totals": overall.rows(""),
    }


async def events_by_month(read: Read, filters: Filters) -> list[dict[str, Any]]:
    clauses, params = ["TRUE"], []
    if (span := filters.months()) is not None:
        clauses.append("month BETWEEN ? AND ?")
        params += list(span)
    for column in ("category", "agency"):
        if (value := getattr(filters, column)) is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    rows = await read(
        f"SELECT month, SUM(events) FROM stats_months WHERE {' AND '.join(clauses)}"
        " GROUP BY month ORDER BY month",
        params,
    )
    return [{"month": _month(m), "events": int(n)} for m, n in rows]


def on_time(
    watchdog: Watchdog, filters: Filters, categories: Sequence[str]
) -> list[dict[str, Any]]:
    """Per category, the compliance scorecard's legal figures (statutory
    disclosures due, on time, late …) summed over the agencies and months asked.

    Read from the watchdog's own cells, (agency, category, month) → tally, in
    one pass: what `Watchdog.scorecard` sums, without building its per-agency
    answer once per category (that took 250 ms on the 1M-event log)."""
    span = filters.months()
    rows: dict[str, dict[str, Any]] = {
        category: {"category": category, **dict.fromkeys(SCORE_FIELDS, 0)}
        for category in categories
        if filters.category is None or category == filters.category
    }
    for (agency, category, month), tally in watchdog.tallies.items():
        row = rows.get(category)
        if row is None or (filters.agency is not None and agency != filters.agency):
            continue
        if span is not None and not span[0] <= month <= span[1]:
            continue
        row["on_time"] += tally.on_time
        row["late"] += tally.late
        row["too_short"] += tally.too_short
        row["open_breaches"] += tally.open_breaches
        row["due"] += tally.on_time + tally.late + tally.too_short + tally.open_breaches
    for row in rows.values():
        row["on_time_rate"] = rate(row["on_time"], row["due"])
    return list(rows.values())


async def answers(
    cases: CaseStore | None, now_us: int, filters: Filters
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per agency and kind (enquiries, disclosure requests), how the public's
    cases were answered (the respond scorecard's figures); and the totals of
    each kind, with the median over every case closed."""
    totals: dict[str, dict[str, Any]] = {
        kind: {"kind": kind, **dict.fromkeys(ANSWER_FIELDS, 0), "median_days": None}
        for kind in response_figures.FIGURE.values()
    }
    if cases is None:
        return [], totals
    tallies, taken = await cases.tallies(
        now_us, filters.agency, filters.category, filters.span_us()
    )
    rows = []
    for agency, kinds in sorted(response_figures.figures(tallies, taken).items()):
        for kind, entry in kinds.items():
            if not entry["received"]:
                continue
            row = {"agency": agency, "kind": kind, **{f: entry[f] for f in ANSWER_FIELDS}}
            row["on_time_rate"] = rate(
                entry["answered_on_time"], entry["answered_on_time"] + entry["late"]
            )
            row["median_days"] = entry["median_days"]
            rows.append(row)
            for name in ANSWER_FIELDS:
                totals[kind][name] += entry[name]
    for kind_code, kind in response_figures.FIGURE.items():
        took = [t for (_, k), durations in taken.items() if k == kind_code for t in durations]
        if took:
            totals[kind]["median_days"] = round(statistics.median(took) / DAY_US, 1)
        entry = totals[kind]
        entry["on_time_rate"] = rate(
            entry["answered_on_time"], entry["answered_on_time"] + entry["late"]
        )
    return rows, totals


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _month(month: int) -> str:
    return f"{int(month) // 100:04d}-{int(month) % 100:02d}"
