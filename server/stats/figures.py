"""The figures of `GET /api/stats`, aggregated in SQL from the statistics'
facts (stats_projects, stats_months) and the projects table, with the
on-time rates of the compliance scorecard and the answers of the respond
scorecard beside them (docs/stats.md defines each).

Every figure is a list of flat rows (one table of the page, one CSV) plus
the totals over them. Medians are the middle value (the mean of the two
middle ones for an even count), computed in SQL with window functions that
SQLite and PostgreSQL both have.
"""

from __future__ import annotations

import statistics
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

    def periods(self) -> set[str] | None:
        """The same months as the compliance scorecard names them (YYYY-MM)."""
        span = self.months()
        if span is None:
            return None
        return {f"{m // 100:04d}-{m % 100:02d}" for m in range(span[0], span[1] + 1)}

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


FROM = " FROM stats_projects f JOIN projects p ON p.id = f.id WHERE "
BUDGET = "CASE WHEN p.currency = 'CNY' THEN p.budget END"
DAYS = (
    "CASE WHEN f.outcome = 'awarded' AND f.award_us >= f.noticed_us"
    f" THEN (f.award_us - f.noticed_us) / {DAY_US}.0 END"
)


async def project_figures(read: Read, filters: Filters) -> dict[str, Any]:
    """The figures of the projects table and the facts: every table but
    events by month, on time and answers."""
    cond, params = where(filters)
    by_stage = await read(
        f"SELECT p.category, COALESCE(p.stage, 'registered'), COUNT(*){FROM}{cond}"
        " GROUP BY p.category, COALESCE(p.stage, 'registered') ORDER BY 1, 2",
        params,
    )
    by_month = await read(
        f"SELECT f.month, p.category, COUNT(*){FROM}{cond} GROUP BY f.month, p.category"
        " ORDER BY 1, 2",
        params,
    )
    sums = (
        f"COUNT(*), COUNT({BUDGET}), SUM({BUDGET}), COUNT(f.award_amount), SUM(f.award_amount),"
        " COUNT(f.bidders), AVG(f.bidders),"
        " SUM(CASE WHEN f.bidders = 0 THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN f.bidders = 1 THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN f.bidders = 2 THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN f.bidders BETWEEN 3 AND 5 THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN f.bidders >= 6 THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN f.outcome = 'awarded' THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN f.outcome = 'failed' THEN 1 ELSE 0 END), COUNT({DAYS})"
    )
    per_category = await read(
        f"SELECT p.category, {sums}{FROM}{cond} GROUP BY p.category ORDER BY 1", params
    )
    overall = await read(f"SELECT '', {sums}{FROM}{cond}", params)
    medians = {
        name: await _medians(read, expr, cond, params)
        for name, expr in (("budget", BUDGET), ("award", "f.award_amount"), ("days", DAYS))
    }
    amounts, competition, durations = [], [], []
    for row in per_category:
        a, c, d = _category_rows(row, medians)
        amounts.append(a)
        competition.append(c)
        durations.append(d)
    total = _category_rows(overall[0], medians)
    return {
        "projects_by_stage": [
            {"category": c, "stage": s, "projects": int(n)} for c, s, n in by_stage
        ],
        "projects_by_month": [
            {"month": _month(m), "category": c, "projects": int(n)} for m, c, n in by_month
        ],
        "amounts": amounts,
        "competition": competition,
        "durations": durations,
        "_totals": total,
    }


def _category_rows(
    row: Sequence[Any], medians: dict[str, dict[str, float | None]]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    category = row[0]
    (projects, budgets, budget_sum, awards, award_sum, counted, mean) = row[1:8]
    buckets = [int(_number(v) or 0) for v in row[8:13]]
    awarded, failed, timed = (int(_number(v) or 0) for v in row[13:16])
    concluded = awarded + failed
    amounts = {
        "category": category,
        "projects": int(projects),
        "budget_count": int(budgets),
        "budget_sum": _money(budget_sum if budgets else 0),
        "budget_median": _money(medians["budget"].get(category)),
        "award_count": int(awards),
        "award_sum": _money(award_sum if awards else 0),
        "award_median": _money(medians["award"].get(category)),
    }
    competition = {
        "category": category,
        "counted": int(counted),
        "mean_bidders": None if not counted else round(float(_number(mean) or 0), 2),
        **dict(zip(TABLES["competition"][3:], buckets, strict=True)),
    }
    durations = {
        "category": category,
        "awarded": awarded,
        "failed": failed,
        "failure_rate": None if not concluded else round(failed / concluded, 4),
        "timed": timed,
        "median_days": _round(medians["days"].get(category), 1),
    }
    return amounts, competition, durations


async def _medians(read: Read, expr: str, cond: str, params: list[Any]) -> dict[str, float | None]:
    """Category → the median of `expr` over the rows where it is not null,
    and '' → the median over all of them."""
    found: dict[str, float | None] = {}
    for group, partition in (("p.category", "PARTITION BY p.category"), ("''", "")):
        rows = await read(
            f"SELECT g, AVG(v) FROM (SELECT {group} AS g, {expr} AS v,"
            f" ROW_NUMBER() OVER ({partition} ORDER BY {expr}) AS r,"
            f" COUNT(*) OVER ({partition}) AS n{FROM}{cond} AND {expr} IS NOT NULL) AS ranked"
            " WHERE 2 * r BETWEEN n AND n + 2 GROUP BY g",
            params,
        )
        found.update((g, _number(v)) for g, v in rows)
    return found


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
    disclosures due, on time, late …) summed over the agencies and months asked."""
    periods = filters.periods()
    single = f"{filters.year:04d}-{filters.month:02d}" if filters.year and filters.month else None
    rows = []
    for category in categories:
        if filters.category is not None and category != filters.category:
            continue
        row: dict[str, Any] = {"category": category, **dict.fromkeys(SCORE_FIELDS, 0)}
        for agency in watchdog.scorecard(filters.agency, category, single):
            for cell in agency["by_period"]:
                if periods is None or cell["period"] in periods:
                    for name in SCORE_FIELDS:
                        row[name] += cell[name]
        row["on_time_rate"] = rate(row["on_time"], row["due"])
        rows.append(row)
    return rows


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


def _number(value: Any) -> float | None:
    """SQLite's and PostgreSQL's numbers alike (AVG and SUM are NUMERIC there)."""
    if value is None:
        return None
    return float(value)


def _money(value: Any) -> float | None:
    return _round(_number(value), 2)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
