"""The scorecard's response figures of each agency, from the cases' tallies
(server/respond/cases.py `tallies`): how many were received, answered on
time, late, still open, how long they took, how they ended, and how the
askers rated the answers."""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

from server.compliance.calendar import LEGAL_TZ
from server.respond.cases import Tally
from server.respond.deadlines import to_us
from server.respond.rules import CaseKind

DAY_US = 86_400_000_000
FIGURE = {CaseKind.ENQUIRY: "enquiries", CaseKind.DISCLOSURE_REQUEST: "disclosure_requests"}


def figures(
    tallies: list[Tally], taken: dict[tuple[str, str], list[int]]
) -> dict[str, dict[str, Any]]:
    """Agency → {"enquiries": …, "disclosure_requests": …}, both always."""
    found: dict[str, dict[str, Any]] = {}
    for tally in tallies:
        per_kind = found.setdefault(tally.agency, _started())
        _add(per_kind[FIGURE[CaseKind(tally.kind)]], tally)
    for (agency, kind), took in taken.items():
        found[agency][FIGURE[CaseKind(kind)]]["median_days"] = round(
            statistics.median(took) / DAY_US, 1
        )
    for per_kind in found.values():
        for entry in per_kind.values():
            _finish(entry)
    return found


def none() -> dict[str, dict[str, Any]]:
    """The figures of an agency no case was filed with."""
    per_kind = _started()
    for entry in per_kind.values():
        _finish(entry)
    return per_kind


def month_range(month: str | None) -> tuple[int, int] | None:
    """A month (YYYY-MM) as epoch microseconds [from, to) in Beijing time."""
    if month is None:
        return None
    year, number = int(month[:4]), int(month[5:7])
    if not 1 <= year < 9999:  # no case was received then; and no datetime for 10000-01
        return (0, 0)
    start = datetime(year, number, 1, tzinfo=LEGAL_TZ)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=LEGAL_TZ)
    return to_us(start), to_us(end)


def _started() -> dict[str, dict[str, Any]]:
    return {FIGURE[kind]: _empty(kind) for kind in CaseKind}


def _empty(kind: CaseKind) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "received": 0,
        "answered_on_time": 0,
        "late": 0,
        "open": 0,
        "median_days": None,
        "outcomes": {},
        "_scores": [0, 0],
    }
    if kind is CaseKind.ENQUIRY:
        entry["satisfaction"] = None
    return entry


def _add(entry: dict[str, Any], tally: Tally) -> None:
    entry["received"] += tally.received
    entry["answered_on_time"] += tally.on_time
    entry["late"] += tally.late
    entry["open"] += tally.open
    if tally.outcome is not None:
        entry["outcomes"][tally.outcome] = entry["outcomes"].get(tally.outcome, 0) + (
            tally.received - tally.open
        )
    entry["_scores"][0] += tally.scores
    entry["_scores"][1] += tally.score_sum


def _finish(entry: dict[str, Any]) -> None:
    count, total = entry.pop("_scores")
    if "satisfaction" in entry:
        entry["satisfaction"] = {"mean": round(total / count, 2) if count else None, "count": count}
