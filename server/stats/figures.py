"""The figures of `GET /api/stats`, from the statistics' cells (counts and
sums per month, category, agency and stage: stats/cells.py), their projects'
values in value order (the medians) and the events per month, with the
on-time rates of the compliance scorecard and the answers of the respond
scorecard beside them (docs/stats.md defines each).

Every figure is a list of flat rows (one table of the page, one CSV) plus
the totals over them. Medians are the middle value (the mean of the two
middle ones for an even count) of the projects' own values.
"""

from __future__ import annotations

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
from server.stats import cells

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
    """The cells, projects and months the figures count: all have these columns."""
    clauses, params = ["TRUE"], []
    if (span := filters.months()) is not None:
        clauses.append("month BETWEEN ? AND ?")
        params += list(span)
    for column in ("category", "agency"):
        if (value := getattr(filters, column)) is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return " AND ".join(clauses), params


# The cells asked for, summed over agencies: at most months × categories ×
# stages rows, whatever the number of projects (stats/cells.py).
CELLS = (
    f"SELECT month, category, stage, {', '.join(f'SUM({f})' for f in cells.FIELDS)}"
    " FROM stats_cells WHERE {where} GROUP BY month, category, stage"
)
# The values medians are taken of, and how a stored value reads as the figure's unit.
MEDIANS = {"budget": ("budget_cny", 1, 2), "award": ("award_amount", 1, 2)}
DAYS = ("days_us", DAY_US, 1)
BUCKETS = ("bidders_0", "bidders_1", "bidders_2", "bidders_3_5", "bidders_6_plus")
_AT = {name: index for index, name in enumerate(cells.FIELDS)}


class _Group:
    """The summed cells of one category (or of all of them)."""

    def __init__(self) -> None:
        self.sums = [0.0] * len(cells.FIELDS)
        self.medians: dict[str, float | None] = {}

    def add(self, values: Sequence[Any]) -> None:
        for index, value in enumerate(values):
            self.sums[index] += float(value or 0)

    def count(self, field: str) -> int:
        return int(self.sums[_AT[field]])

    def rows(self, category: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        awarded, failed = self.count("awarded"), self.count("failed")
        concluded = awarded + failed
        counted = self.count("counted")
        amounts = {
            "category": category,
            "projects": self.count("projects"),
            "budget_count": self.count("budget_count"),
            "budget_sum": round(self.sums[_AT["budget_fen"]] / 100, 2),
            "budget_median": self.medians.get("budget"),
            "award_count": self.count("award_count"),
            "award_sum": round(self.sums[_AT["award_fen"]] / 100, 2),
            "award_median": self.medians.get("award"),
        }
        competition = {
            "category": category,
            "counted": counted,
            "mean_bidders": round(self.sums[_AT["bidders_sum"]] / counted, 2) if counted else None,
            **{bucket: self.count(bucket) for bucket in BUCKETS},
        }
        durations = {
            "category": category,
            "awarded": awarded,
            "failed": failed,
            "failure_rate": None if not concluded else round(failed / concluded, 4),
            "timed": self.count("timed"),
            "median_days": self.medians.get("days"),
        }
        return amounts, competition, durations


async def median(
    read: Read,
    filters: Filters,
    category: str | None,
    count: int,
    value: tuple[str, int, int],
) -> float | None:
    """The middle of the `count` values the filters pick (the mean of the two
    middle ones for an even count): looked up by rank in an index in value
    order (stats/table.py), which holds the filters' columns, so no project
    row is read. `count` is the cells' own, read in the same snapshot."""
    if count == 0:
        return None
    column, scale, digits = value
    cond, params = where(Filters(filters.year, filters.month, category, filters.agency))
    rows = await read(
        f"SELECT {column} FROM stats_projects WHERE {column} IS NOT NULL AND {cond}"
        f" ORDER BY {column} LIMIT ? OFFSET ?",
        [*params, 2 - count % 2, (count - 1) // 2],
    )
    middle = [float(row[0]) / scale for row in rows]
    return round(statistics.median(middle), digits) if middle else None


async def project_figures(read: Read, filters: Filters) -> dict[str, Any]:
    """The figures of the statistics' cells: every table but events by
    month, on time and answers. Counts and sums are the cells' (a few
    thousand rows at most); each median is one lookup by rank."""
    cond, params = where(filters)
    by_stage: Counter[tuple[str, str]] = Counter()
    by_month: Counter[tuple[int, str]] = Counter()
    groups: dict[str, _Group] = {}
    overall = _Group()
    for month, category, stage, *sums in await read(CELLS.format(where=cond), params):
        projects = int(sums[0])
        by_stage[(category, stage)] += projects
        by_month[(int(month), category)] += projects
        group = groups.get(category)
        if group is None:
            group = groups[category] = _Group()
        group.add(sums)
        overall.add(sums)
    counts = {"budget": "budget_count", "award": "award_count"}
    for category, group in [*groups.items(), (None, overall)]:
        if category is None and len(groups) == 1:  # one category: the same medians
            overall.medians = next(iter(groups.values())).medians
            break
        for name, value in MEDIANS.items():
            group.medians[name] = await median(
                read, filters, category, group.count(counts[name]), value
            )
        group.medians["days"] = await median(read, filters, category, group.count("timed"), DAYS)
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
    clauses, params = where(filters)  # stats_months has the same columns
    rows = await read(
        f"SELECT month, SUM(events) FROM stats_months WHERE {clauses}"
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
