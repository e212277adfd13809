"""The event store's contract, in-process, on a real SQLite file and a real PostgreSQL schema."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from server.core.clock import FrozenClock
from server.core.events import GENESIS_HASH, chain_hash
from server.domain import Domain
from server.projects import open_projects
from server.projects.changes import amendment, registration
from server.store import AppendRequest, IdempotencyConflict, open_store
from server.store.queries import events_query
from server.store.readers import Readers
from server.store.sqlite import SCHEMA, SQLiteStore
from tests.conftest import with_facts
from tests.services import postgres_schema

TZ = ZoneInfo("Asia/Shanghai")
DOMAIN = Domain.load()


CLOCK = FrozenClock(TZ, datetime(2026, 12, 1, 9, 30, tzinfo=TZ))


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(database URL, schema) of an empty log: each contract test runs on both backends."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'log.db'}", "public"
    else:
        with postgres_schema() as (url, schema):
            yield url, schema


def log_store(log_url: tuple[str, str], *, projects: bool = True) -> Any:
    """A store (not yet open) on the test's log, as a process opening it would have."""
    url, schema = log_url
    opened = open_store(url, CLOCK, schema=schema)
    if projects:
        open_projects(opened, DOMAIN)
    return opened


@pytest.fixture
async def store(log_url: tuple[str, str]) -> AsyncIterator[Any]:
    opened = log_store(log_url)
    await opened.open()
    yield opened
    await opened.close()


async def new_project(
    store: SQLiteStore,
    project_id: str,
    category: str = "construction",
    region: str | None = "330782",
) -> dict[str, object]:
    """A project registered (seq +1), as an append request needs it."""
    project = DOMAIN.project_input(
        {
            "id": project_id,
            "title": "项目",
            "category": category,
            "agency": "YW-GGZY",
            "region": region,
        }
    )
    await store.append(registration(project))
    return project


def request(
    project: dict[str, object], stage: str = "notice", key: str | None = None, title: str = "公告"
) -> AppendRequest:
    body = with_facts(stage, title=title)  # with the facts the stage requires
    draft = DOMAIN.event_input(body, str(project["category"]), TZ)
    return AppendRequest(
        project=project,
        draft=draft,
        idempotency_key=key,
        fingerprint=title,
    )


async def test_concurrent_appends_share_commits_and_stay_gapless(store: Any) -> None:
    seen: list[int] = []
    store.on_commit(lambda events: seen.extend(e.seq for e in events))
    project = await new_project(store, "P-1")

    results = await asyncio.gather(*(store.append(request(project)) for _ in range(200)))

    assert sorted(r.event.seq for r in results) == list(range(2, 202))  # 1: its registration
    assert seen == list(range(1, 202)), "listeners see events once, in seq order"
    assert store.commits < 50, f"200 concurrent appends took {store.commits} commits"
    previous = GENESIS_HASH
    for event in await store.events_since(0, None, 1000):
        body = orjson.loads(event.json)
        assert body["hash"] == chain_hash(previous, body)
        previous = body["hash"]


async def test_idempotency_inside_one_batch(store: Any) -> None:
    project = await new_project(store, "P-1")
    first, second, other = await asyncio.gather(
        store.append(request(project, key="k")),
        store.append(request(project, key="k")),
        store.append(request(project, key="k2")),
    )
    assert first.created and not second.created and other.created
    assert second.event == first.event
    with pytest.raises(IdempotencyConflict):
        await store.append(request(project, key="k", title="另一个"))
    assert store.head == 3  # the registration, k and k2


def publication(project: dict[str, object]) -> AppendRequest:
    """A checked request as the API makes it: from the project's identity only
    (its region is read in the writer's transaction)."""
    identity = {name: project[name] for name in ("id", "category", "agency")}
    return dataclasses.replace(request(identity), check=lambda earlier, event: None, check_reads={})


async def test_a_publication_is_routed_by_the_region_its_record_holds(store: Any) -> None:
    project = await new_project(store, "P-1", region="330782")
    await store.append(amendment(project, {"region": "330783"}, "划入新区"))
    result = await store.append(publication(project))
    assert result.event.region == "330783"


async def test_a_publication_batched_after_an_amendment_waits_for_the_amended_record(
    store: Any,
) -> None:
    project = await new_project(store, "P-1", region="330782")
    commits = store.commits
    amended, published = await asyncio.gather(
        store.append(amendment(project, {"region": "330783"}, "划入新区")),
        store.append(publication(project)),
    )
    assert amended.event.region == "330782"  # to those who followed it where it was
    assert published.event.region == "330783"
    assert published.event.seq == amended.event.seq + 1
    assert store.commits == commits + 2  # queued together, decided in two transactions


async def test_events_since_filters_by_topic_and_stage(store: Any) -> None:
    road = await new_project(store, "ROAD")
    land = await new_project(store, "LAND", category="land", region=None)
    await store.append(request(road, "notice"))
    await store.append(request(land, "notice"))
    await store.append(request(road, "bid_opening"))
    await store.append(request(land, "auction"))

    async def seqs(topics: dict[str, frozenset[str] | None] | None, since: int = 0) -> list[int]:
        return [e.seq for e in await store.events_since(since, topics, 100)]

    # 1 and 2: the registrations of ROAD and LAND.
    assert await seqs(None) == [1, 2, 3, 4, 5, 6]
    assert await seqs({"project:ROAD": None}) == [1, 3, 5]
    assert await seqs({"category:land": frozenset({"auction"})}) == [6]
    assert await seqs({"region:330782": None, "project:LAND": frozenset({"notice"})}) == [
        1,
        3,
        4,
        5,
    ]
    assert await seqs({"all": frozenset({"notice"})}, since=3) == [4]


async def test_project_stage_moves_only_on_lifecycle_stages(log_url: tuple[str, str]) -> None:
    store = log_store(log_url, projects=False)
    projects = open_projects(store, DOMAIN)
    await store.open()
    try:
        project = await new_project(store, "P-1")
        await store.append(request(project, "notice"))
        await store.append(request(project, "objection"))
        stored = await projects.get("P-1")
    finally:
        await store.close()
    assert stored is not None
    assert stored["stage"] == "notice" and stored["last_seq"] == 3


async def test_reopening_continues_the_chain(log_url: tuple[str, str]) -> None:
    first = log_store(log_url)
    await first.open()
    project = await new_project(first, "P-1")
    await first.append(request(project))
    await first.close()

    second = log_store(log_url, projects=False)
    await second.open()
    try:
        result = await second.append(request(project))
        assert result.event.seq == 3
        assert (await second.verify()).first_bad_seq is None
    finally:
        await second.close()


# --- reads answered by indexes, and readers that long reads cannot take over ---------------

FILTERS: list[dict[str, frozenset[str] | None] | None] = [
    None,
    {"all": None},
    {"all": frozenset({"penalty"})},
    {"all": frozenset({"notice", "award"})},
    {"project:ROAD": None},
    {"project:ROAD": frozenset({"award"})},
    {"category:land": None},
    {"category:land": frozenset({"auction", "notice"})},
    {"agency:YW-GGZY": frozenset({"notice"}), "region:330782": None},
    {"all": frozenset({"award"}), "project:LAND": None},
    {"all": None, "project:LAND": frozenset({"notice"})},
    {f"project:P{i}": frozenset({"notice", "award"}) for i in range(40)},  # beyond MAX_BRANCHES
]


@pytest.mark.parametrize("topics", FILTERS)
def test_every_event_filter_is_answered_by_an_index(
    topics: dict[str, frozenset[str] | None] | None,
) -> None:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    sql, params = events_query(10, topics, 100)
    plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params)]
    reads = [step for step in plan if step.startswith(("SCAN events", "SEARCH events"))]
    assert reads, plan
    if topics is None or topics.get("all", ()) is None:
        # Everything after `since`: the seq range itself is the index.
        assert reads == ["SEARCH events USING INTEGER PRIMARY KEY (rowid>?)"], plan
        return
    # A filter: every read of `events` is a lookup in one of its indexes (or of
    # one row by seq); a walk of the seq range or a SCAN would read the log.
    # (SCAN of a subquery walks the few rows it found.)
    for step in reads:
        assert " INDEX events_by_" in step or step.endswith("(rowid=?)"), plan


async def test_event_filters_give_the_first_matches_in_order(store: Any) -> None:
    road = await new_project(store, "ROAD")
    land = await new_project(store, "LAND", category="land", region=None)
    stages = ["notice", "award", "penalty", "notice", "auction", "notice", "award"]
    written = []
    for i in range(60):
        project = road if i % 3 else land
        stage = stages[i % len(stages)]
        if stage == "auction" and project is road:
            stage = "notice"
        written.append((await store.append(request(project, stage))).event)
    written[:0] = await store.events_since(0, None, 2)  # the two registrations

    def wanted(event: Any, topics: dict[str, frozenset[str] | None] | None) -> bool:
        if topics is None:
            return True
        fields = {
            "all": "all",
            "project": event.project,
            "category": event.category,
            "agency": event.agency,
            "region": event.region,
        }
        for topic, only in topics.items():
            kind, _, value = topic.partition(":")
            if (topic == "all" or fields[kind] == value) and (only is None or event.stage in only):
                return True
        return False

    for topics in FILTERS:
        for since, limit in ((0, 100), (5, 3), (20, 7), (59, 5)):
            got = [e.seq for e in await store.events_since(since, topics, limit)]
            expected = [e.seq for e in written if e.seq > since and wanted(e, topics)][:limit]
            assert got == expected, (topics, since, limit)


async def test_an_existing_log_gets_the_stage_index(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA.replace("CREATE INDEX IF NOT EXISTS events_by_stage", "-- "))
    assert "events_by_stage" not in str(old.execute("SELECT name FROM sqlite_master").fetchall())
    old.close()
    store = SQLiteStore(f"sqlite:///{path}", FrozenClock(TZ, datetime(2026, 12, 1, tzinfo=TZ)))
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:
        names = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
    assert "events_by_stage" in names


async def test_long_reads_never_hold_up_short_ones(tmp_path: Path) -> None:
    readers = await Readers.open(tmp_path / "r.db", count=3)
    try:
        async with readers.long(), readers.long():
            third_long = asyncio.create_task(_hold(readers))
            await asyncio.sleep(0.05)
            assert not third_long.done(), "a third long read must wait"
            # A short read has a connection of its own.
            async with asyncio.timeout(1):
                assert await readers.short.execute_fetchall("SELECT 1") == [(1,)]
        await asyncio.wait_for(third_long, 1)  # and the long one goes once one is back
    finally:
        await readers.close()


async def _hold(readers: Readers) -> None:
    async with readers.long():
        pass


# --- several processes on one PostgreSQL log -------------------------------------------------


@pytest.fixture
def postgres_log() -> Iterator[tuple[str, str]]:
    with postgres_schema() as pair:
        yield pair


async def test_stores_sharing_a_postgres_log_append_one_gapless_chain(
    postgres_log: tuple[str, str],
) -> None:
    """Three stores on one schema, as three processes would be: their
    concurrent appends interleave into one chain, gapless and verified."""
    stores = [log_store(postgres_log) for _ in range(3)]
    for opened in stores:
        await opened.open()
    try:
        project = await new_project(stores[0], "P-1")
        results = await asyncio.gather(
            *(stores[i % 3].append(request(project, title=f"公告{i}")) for i in range(150))
        )
        assert sorted(r.event.seq for r in results) == list(range(2, 152))
        assert all(opened.commits < 150 for opened in stores)  # group commit in each
        report = await stores[1].verify()
        assert (report.first_bad_seq, report.head) == (None, 151)
        projects = await stores[2].read("SELECT last_seq FROM projects WHERE id = 'P-1'")
        assert projects[0][0] == 151  # the projects record was written in each commit
    finally:
        for opened in stores:
            await opened.close()


async def test_a_reader_following_seq_never_skips_an_event_committed_later(
    postgres_log: tuple[str, str],
) -> None:
    """`WHERE seq > cursor` is how every follower reads the log: while two
    writers append, a reader polling that way must see every seq, in order,
    each exactly once. (With a sequence assigning seq at insert time, a
    reader would see 8 before 7 committed and move past 7 for good.)"""
    writers = [log_store(postgres_log) for _ in range(2)]
    reader = log_store(postgres_log, projects=False)
    for opened in (*writers, reader):
        await opened.open()
    seen: list[int] = []
    done = asyncio.Event()

    async def follow() -> None:
        while not done.is_set() or (seen[-1] if seen else 0) < 201:
            events = await reader.events_since(seen[-1] if seen else 0, None, 1000)
            seen.extend(e.seq for e in events)
            await asyncio.sleep(0)

    try:
        project = await new_project(writers[0], "P-1")
        following = asyncio.create_task(follow())
        await asyncio.gather(
            *(writers[i % 2].append(request(project, title=f"公告{i}")) for i in range(200))
        )
        done.set()
        await asyncio.wait_for(following, 10)
        assert seen == list(range(1, 202))
    finally:
        for opened in (*writers, reader):
            await opened.close()
