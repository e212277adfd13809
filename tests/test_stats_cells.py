"""The statistics' cells on a real SQLite file: kept by deltas in batches of any
size, they are what the projects' facts sum to; the figures read from them
(medians looked up by rank) are those worked out from every project in Python,
as the figures were before the cells; `check` finds a cell, a project row or a
month that is off; a table written by the first fold is made anew at open."""

from __future__ import annotations

import math
import random
import sqlite3
import statistics
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from server.core.clock import FrozenClock
from server.core.events import StoredEvent
from server.domain import Domain
from server.projects import open_projects
from server.projects.changes import registration
from server.stats import open_stats
from server.stats.cells import cells_of
from server.stats.figures import DAY_US, Filters, project_figures
from server.stats.fold import ProjectFacts, StatsFold
from server.stats.table import FOLD_VERSION, StatsTable
from server.store.postgres import PostgresStore
from server.store.sqlite import SQLiteStore

TZ = ZoneInfo("Asia/Shanghai")
DOMAIN = Domain.load()
CLOCK = FrozenClock(TZ, datetime(2026, 12, 1, 9, 30, tzinfo=TZ))
CATEGORIES = ("construction", "gov_procurement", "land")
AGENCIES = ("AG-A", "AG-B", "AG-C")
STAGES = (
    "plan",
    "notice",
    "prequalification",
    "clarification",
    "bid_opening",
    "award",
    "failed",
    "contract",
    "performance",
    "objection",
    "correction",
    "amended",
)


class Log:
    """The log as `check` and `rebuild` read it: a list of events."""

    def __init__(self, events: Sequence[StoredEvent]) -> None:
        self.events = list(events)
        self.head = self.events[-1].seq if self.events else 0

    async def events_since(self, since: int, topics: Any, limit: int) -> list[StoredEvent]:
        return [e for e in self.events if e.seq > since][:limit]


def random_log(rng: random.Random, projects: int, count: int) -> list[StoredEvent]:
    """Registrations, then events of every kind the fold minds, in random order:
    amounts as numbers and text, budgets in and out of yuan, corrections of the
    award and of the bidders, a project moving to another agency, awards dated
    before their notice."""
    events: list[StoredEvent] = []
    start = datetime(2025, 10, 1, tzinfo=TZ)
    homes = {f"p{n}": (rng.choice(CATEGORIES), rng.choice(AGENCIES)) for n in range(projects)}

    def add(project: str, stage: str, data: dict[str, Any], agency: str | None = None) -> None:
        moment = start + timedelta(days=rng.randrange(0, 420), seconds=rng.randrange(86_400))
        category, home = homes[project]
        doc = {
            "project": project,
            "stage": stage,
            "data": data,
            "occurred_at": moment.isoformat(),
            "published_at": (moment + timedelta(hours=rng.randrange(48))).isoformat(),
        }
        seq = len(events) + 1
        events.append(
            StoredEvent(seq, project, category, agency or home, None, stage, orjson.dumps(doc))
        )

    for project in homes:
        budget = rng.choice([None, rng.randrange(1, 10**8) / 100, rng.randrange(10**4, 10**9)])
        given: dict[str, Any] = (
            {}
            if budget is None
            else {"budget": budget, "currency": rng.choice(["CNY"] * 4 + ["USD"])}
        )
        add(project, "registered", given)
    awards: dict[str, int] = {}
    for _ in range(count):
        project, stage = rng.choice(list(homes)), rng.choice(STAGES)
        data: dict[str, Any] = {}
        if stage == "award":
            data["amount"] = rng.choice(
                [
                    rng.randrange(10**3, 10**9) / 100,
                    f"{rng.randrange(1, 9000)}万元",
                    "3.25亿元",
                    "x",
                ]
            )
            awards[project] = len(events) + 1
        if stage in ("bid_opening", "award", "failed") and rng.random() < 0.8:
            data["bidders"] = rng.choice([0, 1, 1, 2, 3, 4, 5, 6, 11])
        if stage == "correction" and project in awards:
            field, now = rng.choice([("amount", rng.randrange(10**6)), ("bidders", 2)])
            data = {"corrects": awards[project], "field": field, "now": now}
        if stage == "amended":
            data = {"changes": {"budget": rng.randrange(10**6), "currency": "CNY"}}
        moved = rng.choice(AGENCIES) if rng.random() < 0.02 else None
        if moved is not None:
            homes[project] = (homes[project][0], moved)
        add(project, stage, data)
    return events


@pytest.fixture
async def table(tmp_path: Path) -> AsyncIterator[StatsTable]:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'log.db'}", CLOCK)
    stats = open_stats(store, DOMAIN)
    await store.open()
    yield stats
    await store.close()


async def write_in_batches(
    table: StatsTable, events: Sequence[StoredEvent], rng: random.Random
) -> None:
    """As appends arrive: batches of one to fifty events (group commit)."""
    at = 0
    while at < len(events):
        size = rng.choice([1, 1, 2, 7, 50])
        async with table.store.exclusive() as conn:
            await table.write(conn, events[at : at + size])
        at += size


def worked_out(
    records: Sequence[ProjectFacts], filters: Filters
) -> dict[str | None, dict[str, Any]]:
    """The figures from every project, as they were computed before the cells:
    fsum of the amounts, statistics.median of each project's value."""
    span = filters.months()
    picked = [
        r
        for r in records
        if (span is None or span[0] <= r.month <= span[1])
        and filters.category in (None, r.category)
        and filters.agency in (None, r.agency)
    ]
    groups: dict[str | None, list[ProjectFacts]] = {None: picked}
    for r in picked:
        groups.setdefault(r.category, []).append(r)

    def median(values: list[float], digits: int) -> float | None:
        return round(statistics.median(values), digits) if values else None

    found: dict[str | None, dict[str, Any]] = {}
    for category, members in groups.items():
        budgets = [r.budget_cny for r in members if r.budget_cny is not None]
        awards = [r.award_amount for r in members if r.award_amount is not None]
        bidders = [r.bidders for r in members if r.bidders is not None]
        days = [r.days_us / DAY_US for r in members if r.days_us is not None]
        found[category] = {
            "projects": len(members),
            "budget_sum": round(math.fsum(budgets), 2),
            "budget_median": median(budgets, 2),
            "award_count": len(awards),
            "award_sum": round(math.fsum(awards), 2),
            "award_median": median(awards, 2),
            "mean_bidders": round(sum(bidders) / len(bidders), 2) if bidders else None,
            "single": sum(1 for b in bidders if b == 1),
            "awarded": sum(1 for r in members if r.outcome == "awarded"),
            "failed": sum(1 for r in members if r.outcome == "failed"),
            "timed": len(days),
            "median_days": median(days, 1),
            "stages": Counter((r.category, r.stage or "registered") for r in members),
        }
    return found


def as_read(store: SQLiteStore | PostgresStore) -> Any:
    async def read(sql: str, params: Sequence[Any]) -> list[Any]:
        return await store.read(sql, params)

    return read


def compare(figures: Mapping[str, Any], wanted: Mapping[str | None, dict[str, Any]]) -> None:
    totals = figures["_totals"]
    for category, (amounts, competition, durations) in [
        *(
            (row["category"], (row, c, d))
            for row, c, d in zip(
                figures["amounts"], figures["competition"], figures["durations"], strict=True
            )
        ),
        (None, totals),
    ]:
        want = wanted[category]
        assert amounts["projects"] == want["projects"], category
        for field in ("budget_sum", "budget_median", "award_count", "award_sum", "award_median"):
            assert amounts[field] == want[field], (category, field)
        assert competition["mean_bidders"] == want["mean_bidders"]
        assert competition["bidders_1"] == want["single"]
        for field in ("awarded", "failed", "timed", "median_days"):
            assert durations[field] == want[field], (category, field)
    stages = Counter(
        {(r["category"], r["stage"]): r["projects"] for r in figures["projects_by_stage"]}
    )
    assert stages == wanted[None]["stages"]


async def test_cells_by_deltas_are_the_sums_and_the_figures_are_exact(table: StatsTable) -> None:
    rng = random.Random(15)
    events = random_log(rng, projects=60, count=900)
    await write_in_batches(table, events, rng)
    log = Log(events)
    assert await table.check(log) is None
    fold = StatsFold(DOMAIN.lifecycle_stages)
    fold.apply(events)
    stored = await table.store.read("SELECT COUNT(*) FROM stats_cells")
    assert stored[0][0] == len(cells_of(fold.records.values()))  # no empty cell is left
    records = list(fold.records.values())
    assert {r.stage for r in records} > {"award", "performance"}  # projects moved on
    for filters in (
        Filters(),
        Filters(year=2026),
        Filters(year=2025, month=12),
        Filters(category="construction"),
        Filters(agency="AG-B"),
        Filters(year=2026, category="land", agency="AG-A"),
        Filters(year=2000),
    ):
        figures = await project_figures(as_read(table.store), filters)
        compare(figures, worked_out(records, filters))


FIRST_CELL = "(SELECT MIN(rowid) FROM stats_cells)"


async def test_check_finds_what_is_off_and_rebuild_mends_it(table: StatsTable) -> None:
    rng = random.Random(7)
    events = random_log(rng, projects=20, count=200)
    await write_in_batches(table, events, rng)
    log = Log(events)
    for tamper, found in (
        (
            f"UPDATE stats_cells SET awarded = awarded + 1 WHERE rowid = {FIRST_CELL}",
            "awarded",
        ),
        (
            f"UPDATE stats_cells SET award_fen = award_fen + 1 WHERE rowid = {FIRST_CELL}",
            "award_fen",
        ),
        ("DELETE FROM stats_cells WHERE rowid = (SELECT MAX(rowid) FROM stats_cells)", "cell"),
        ("UPDATE stats_projects SET stage = 'no_such' WHERE id = 'p3'", "p3 stage"),
        (
            "UPDATE stats_projects SET days_us = 1 WHERE id ="
            " (SELECT MIN(id) FROM stats_projects WHERE days_us IS NOT NULL)",
            "days_us",
        ),
    ):
        async with table.store.exclusive() as conn:
            await conn.execute(tamper)
        problem = await table.check(log)
        assert problem is not None and found in problem, (tamper, problem)
        await table.rebuild(log)
        assert await table.check(log) is None


async def test_tables_of_the_first_fold_are_made_anew(tmp_path: Path) -> None:
    """A data directory whose statistics tables an older server wrote (fold
    version 1: no cells, no category or stage per project) gets the new ones
    at its next start, folded from the log."""
    path = tmp_path / "log.db"
    store = SQLiteStore(f"sqlite:///{path}", CLOCK)
    open_projects(store, DOMAIN)
    open_stats(store, DOMAIN)
    await store.open()
    for n in range(3):
        project = DOMAIN.project_input(
            {
                "id": f"P-{n}",
                "title": "项目",
                "category": "construction",
                "agency": "AG",
                "budget": 1000 * (n + 1),
            }
        )
        await store.append(registration(project))
    await store.close()
    with sqlite3.connect(path) as db:  # the first fold's tables, as a version-1 server left them
        db.executescript(
            "DROP TABLE stats_projects; DROP TABLE stats_cells;"
            " CREATE TABLE stats_projects (id TEXT PRIMARY KEY, month INTEGER NOT NULL,"
            " noticed_us INTEGER, award_us INTEGER, award_seq INTEGER, award_amount REAL,"
            " bidders INTEGER, bidders_seq INTEGER, outcome TEXT, last_seq INTEGER NOT NULL);"
            " CREATE INDEX stats_projects_by_month ON stats_projects(month);"
            " INSERT INTO stats_projects (id, month, last_seq) VALUES ('P-0', 202612, 1);"
            " UPDATE fold_versions SET version = 1 WHERE name = 'stats';"
        )
    store = SQLiteStore(f"sqlite:///{path}", CLOCK)
    open_projects(store, DOMAIN)
    stats = open_stats(store, DOMAIN)
    await store.open()
    try:
        assert await stats.check(store) is None
        cells = await store.read("SELECT category, stage, projects, budget_fen FROM stats_cells")
        assert [tuple(c) for c in cells] == [("construction", "registered", 3, 600_000.0)]
        version = await store.read("SELECT version FROM fold_versions WHERE name = 'stats'")
        assert version[0][0] == FOLD_VERSION
    finally:
        await store.close()
