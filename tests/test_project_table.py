"""The projects table kept with the log, on a real SQLite file: written in each
append's transaction, checked and rebuilt against the log, caught up at open."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from server.core.clock import FrozenClock
from server.domain import Domain
from server.projects import open_projects
from server.projects.changes import amendment, registration
from server.projects.table import ProjectTable
from server.store import AlreadyExists, AppendRequest
from server.store.sqlite import SQLiteStore
from tests.conftest import with_facts

TZ = ZoneInfo("Asia/Shanghai")
DOMAIN = Domain.load()
CLOCK = FrozenClock(TZ, datetime(2026, 12, 1, 9, 30, tzinfo=TZ))


async def opened(path: Path) -> tuple[SQLiteStore, ProjectTable]:
    store = SQLiteStore(f"sqlite:///{path}", CLOCK)
    projects = open_projects(store, DOMAIN)
    await store.open()
    return store, projects


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, ProjectTable]]:
    store, projects = await opened(tmp_path / "log.db")
    yield store, projects
    await store.close()


def project_input(project_id: str, **fields: Any) -> dict[str, Any]:
    return DOMAIN.project_input(
        {"id": project_id, "title": "项目", "category": "construction", "agency": "AG", **fields}
    )


async def publish(
    store: SQLiteStore, project: dict[str, Any], stage: str, data: dict[str, Any] | None = None
) -> None:
    # Facts given are all it states (the defaults would add key dates of their own).
    body = (
        with_facts(stage, title=stage)
        if data is None
        else {"stage": stage, "title": stage, "data": data}
    )
    draft = DOMAIN.event_input(body, project["category"], TZ)
    await store.append(AppendRequest(project=project, draft=draft))


async def history(store: SQLiteStore, projects: ProjectTable) -> None:
    for n in range(3):
        await store.append(registration(project_input(f"P-{n}", region="330782", budget=n)))
    p1 = await projects.get("P-1")
    assert p1 is not None
    await publish(store, p1, "notice", {"deadline": "2026-12-25T09:30:00+08:00"})
    await store.append(amendment(p1, {"title": "新名称", "must_tender": True}, "更名"))
    p1 = await projects.get("P-1")
    assert p1 is not None
    await publish(store, p1, "objection")


async def test_the_table_is_what_the_log_yields(log: tuple[SQLiteStore, ProjectTable]) -> None:
    store, projects = log
    await history(store, projects)
    assert await projects.check(store) is None
    p1 = await projects.get("P-1")
    assert p1 is not None
    assert (p1["title"], p1["must_tender"], p1["stage"], p1["last_seq"]) == (
        "新名称",
        True,
        "notice",
        6,
    )
    assert await projects.count() == 3
    with pytest.raises(AlreadyExists):
        await store.append(registration(project_input("P-1")))
    assert store.head == 6


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ("UPDATE projects SET title = 'x' WHERE id = 'P-1'", "projects: P-1 title 'x' != '新名称'"),
        ("UPDATE projects SET stage = 'award' WHERE id = 'P-1'", "projects: P-1 stage 'award'"),
        ("UPDATE projects SET budget = 9 WHERE id = 'P-2'", "projects: P-2 budget 9.0 != 2.0"),
        ("UPDATE projects SET must_tender = 0 WHERE id = 'P-1'", "projects: P-1 must_tender"),
        ("UPDATE projects SET activity_us = 1 WHERE id = 'P-0'", "projects: P-0 activity_us 1"),
        ("DELETE FROM projects WHERE id = 'P-2'", "projects: P-2 is missing"),
        (
            "INSERT INTO projects (id, title, category, agency, region, budget, currency,"
            " must_tender, stage, created_at, updated_at, activity_us, last_seq)"
            " SELECT 'P-9', title, category, agency, region, budget, currency,"
            " must_tender, stage, created_at, updated_at, activity_us, last_seq FROM projects"
            " WHERE id = 'P-0'",
            "projects: P-9 is not a project the log registers",
        ),
        ("UPDATE cursors SET seq = 99 WHERE name = 'projects'", "projects: cursor 99 is past"),
        ("UPDATE projects SET concluded = 1 WHERE id = 'P-0'", "projects: P-0 concluded True"),
        (
            "UPDATE projects SET key_dates = '[]', closes_at = NULL WHERE id = 'P-1'",
            "projects: P-1 key_dates []",
        ),
    ],
)
async def test_check_names_the_first_row_that_differs_and_rebuild_mends_it(
    log: tuple[SQLiteStore, ProjectTable], edit: str, named: str
) -> None:
    store, projects = log
    await history(store, projects)
    with sqlite3.connect(store.path) as db:
        db.execute(edit)
    found = await projects.check(store)
    assert found is not None and found.startswith(named), found
    await projects.rebuild(store)
    assert await projects.check(store) is None
    assert (await projects.get("P-1") or {}).get("title") == "新名称"


async def test_an_emptied_table_catches_up_at_open(tmp_path: Path) -> None:
    store, projects = await opened(tmp_path / "log.db")
    await history(store, projects)
    before = await projects.list({}, None, None, 10)
    await store.close()
    with sqlite3.connect(tmp_path / "log.db") as db:
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute("DELETE FROM projects")
        db.execute("UPDATE cursors SET seq = 0")
    store, projects = await opened(tmp_path / "log.db")
    try:
        assert await projects.list({}, None, None, 10) == before
        assert await projects.check(store) is None
    finally:
        await store.close()


OLD_SCHEMA = """
CREATE TABLE events (seq INTEGER PRIMARY KEY, project TEXT NOT NULL REFERENCES projects(id),
    category TEXT NOT NULL, agency TEXT NOT NULL, region TEXT, stage TEXT NOT NULL,
    doc BLOB NOT NULL);
CREATE TABLE projects (id TEXT PRIMARY KEY, title TEXT NOT NULL, category TEXT NOT NULL,
    agency TEXT NOT NULL, region TEXT, budget REAL, currency TEXT NOT NULL, stage TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, activity_us INTEGER NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0);
"""


async def test_a_file_from_before_registration_events_registers_late_to_the_same_record(
    tmp_path: Path,
) -> None:
    """A project created before registration was an event: its row, its events;
    registered later (as the migration does) at its old created_at."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    # Write its history through today's store, then make the file look old:
    # no registration event, no cursor, no must_tender column.
    store, projects = await opened(tmp_path / "new.db")
    await store.append(registration(project_input("OLD", region="330782")))
    old = await projects.get("OLD")
    assert old is not None
    # Steps that state no key date: the old file's row could not hold one.
    await publish(store, old, "failed")
    await publish(store, old, "penalty")
    await store.close()
    with sqlite3.connect(tmp_path / "new.db") as new, sqlite3.connect(path) as db:
        rows = new.execute("SELECT * FROM events WHERE seq > 1 ORDER BY seq").fetchall()
        row = new.execute(
            "SELECT id, title, category, agency, region, budget, currency, stage, created_at,"
            " updated_at, activity_us, last_seq FROM projects"
        ).fetchone()
        db.execute("INSERT INTO projects VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", row)
        db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?)", rows)
    # (the copied events keep seq 2 and 3: the chain is not what this test is about)
    store, projects = await opened(path)
    try:
        kept = await projects.get("OLD")
        assert kept is not None and kept["must_tender"] is None  # the column was added
        await store.append(registration(project_input("OLD", region="330782"), old["created_at"]))
        registered = await projects.get("OLD")
        assert registered is not None
        assert registered == {
            **old,
            "stage": "failed",
            "updated_at": kept["updated_at"],
            "last_seq": 4,
        }
        await projects.rebuild(store)
        assert await projects.get("OLD") == registered, "the fold gives the same record"
    finally:
        await store.close()


async def test_publications_written_without_the_full_fold_agree_with_it(
    log: tuple[SQLiteStore, ProjectTable],
) -> None:
    """Publications (neither `registered` nor `amended`) take a shorter path into
    the table; published out of order, in batches, it still equals the fold."""
    store, projects = log
    base = datetime(2026, 11, 1, 9, 0, tzinfo=TZ)
    for n in range(2):
        await store.append(registration(project_input(f"Q-{n}"), published_at=base))
    records = [await projects.get(f"Q-{n}") for n in range(2)]
    plan = [
        (0, "notice", 3),
        (1, "notice", 2),
        (0, "objection", 5),
        (0, "award", 4),
        (1, "failed", 1),
    ]
    requests = []
    for n, stage, day in plan:
        project = records[n]
        assert project is not None
        draft = DOMAIN.event_input(with_facts(stage, title=stage), "construction", TZ)
        published = base.replace(day=base.day + day)
        requests.append(AppendRequest(project=project, draft=draft, published_at=published))
    await asyncio.gather(*(store.append(r) for r in requests))  # one batch, in this order
    assert await projects.check(store) is None
    q0 = await projects.get("Q-0")
    assert q0 is not None and q0["stage"] == "award" and q0["last_seq"] == 6
    assert q0["updated_at"].startswith("2026-11-06T09:00:00")  # the objection, published last


async def test_a_table_an_older_fold_wrote_is_folded_again_at_open(tmp_path: Path) -> None:
    store, projects = await opened(tmp_path / "log.db")
    await history(store, projects)
    want = await projects.get("P-1")
    assert want is not None and want["closes_at"] == "2026-12-25T09:30:00+08:00"
    await store.close()
    with sqlite3.connect(tmp_path / "log.db") as db:
        db.execute("UPDATE projects SET key_dates = '[]', closes_at = NULL")
        db.execute("DELETE FROM fold_versions")
    store, projects = await opened(tmp_path / "log.db")
    try:
        assert await projects.get("P-1") == want
        assert await projects.check(store) is None
    finally:
        await store.close()
