"""`GET /api/stats` in one call: the figures, put together and kept a few
seconds per question and log head (a figure changes with the log, and the
on-time rates and answers also with the clock: hence the time limit too)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from server.compliance.watchdog import Watchdog
from server.respond.cases import CaseStore
from server.stats import figures
from server.stats.figures import Filters
from server.stats.table import StatsTable

KEPT_ANSWERS = 256


class Statistics:
    def __init__(
        self, table: StatsTable, categories: Sequence[str], kept_seconds: float = 5.0
    ) -> None:
        self.table = table
        self.kept_seconds = kept_seconds
        self.categories = list(categories)
        self._kept: dict[tuple[Filters, int], tuple[float, dict[str, Any]]] = {}

    async def figures(
        self, filters: Filters, watchdog: Watchdog, cases: CaseStore | None, now_us: int
    ) -> dict[str, Any]:
        store = self.table.store
        key = (filters, store.head)
        kept = self._kept.get(key)
        if kept is not None and time.monotonic() - kept[0] < self.kept_seconds:
            return kept[1]
        answer = await self.compute(filters, watchdog, cases, now_us)
        if len(self._kept) >= KEPT_ANSWERS:
            self._kept.clear()
        self._kept[key] = (time.monotonic(), answer)
        return answer

    async def compute(
        self, filters: Filters, watchdog: Watchdog, cases: CaseStore | None, now_us: int
    ) -> dict[str, Any]:
        """The figures, from the tables as they are now (nothing kept)."""
        # One snapshot: the medians are looked up by the ranks the cells give.
        async with self.table.store.snapshot() as conn:

            async def read(sql: str, params: Sequence[Any]) -> list[Any]:
                return list(await conn.execute_fetchall(sql, params))

            cursor = await read("SELECT seq FROM cursors WHERE name = ?", [self.table.name])
            head = int(cursor[0][0]) if cursor else 0  # the log's head, as the tables have it
            found = await figures.project_figures(read, filters)
            amounts, competition, durations = found.pop("_totals")
            by_month = await figures.events_by_month(read, filters)
        on_time = figures.on_time(watchdog, filters, self.categories)
        answers, answered = await figures.answers(cases, now_us, filters)
        due = sum(row["due"] for row in on_time)
        in_time = sum(row["on_time"] for row in on_time)
        totals = {
            "projects": amounts["projects"],
            "events": sum(row["events"] for row in by_month),
            "budget_sum": amounts["budget_sum"],
            "budget_median": amounts["budget_median"],
            "award_count": amounts["award_count"],
            "award_sum": amounts["award_sum"],
            "award_median": amounts["award_median"],
            "awarded": durations["awarded"],
            "failed": durations["failed"],
            "failure_rate": durations["failure_rate"],
            "median_days": durations["median_days"],
            "mean_bidders": competition["mean_bidders"],
            "single_bidder": competition["bidders_1"],
            "counted_bidders": competition["counted"],
            "due": due,
            "on_time": in_time,
            "on_time_rate": figures.rate(in_time, due),
            "enquiries": answered["enquiries"],
            "disclosure_requests": answered["disclosure_requests"],
        }
        return {
            "log_head": head,
            "filters": filters.to_json(),
            "currency": "CNY",
            "totals": totals,
            **found,
            "events_by_month": by_month,
            "on_time": on_time,
            "answers": answers,
        }
