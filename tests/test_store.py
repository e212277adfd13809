"""The event store's contract, in-process on a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from server.clock import FrozenClock
from server.domain import Domain
from server.events import GENESIS_HASH, chain_hash
from server.store import AppendRequest, IdempotencyConflict
from server.store.sqlite import SQLiteStore

TZ = ZoneInfo("Asia/Shanghai")
DOMAIN = Domain.load()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    clock = FrozenClock(TZ, datetime(2026, 12, 1, 9, 30, tzinfo=TZ))
    opened = SQLiteStore(f"sqlite:///{tmp_path / 'log.db'}", clock)
    await opened.open()
    yield opened
    await opened.close()


async def new_project(
    store: SQLiteStore,
    project_id: str,
    category: str = "construction",
    region: str | None = "330782",
) -> dict[str, object]:
    return await store.create_project(
        DOMAIN.project_input(
            {
                "id": project_id,
                "title": "项目",
                "category": category,
                "agency": "YW-GGZY",
                "region": region,
            }
        )
    )


def request(
    project: dict[str, object], stage: str = "notice", key: str | None = None, title: str = "公告"
) -> AppendRequest:
    draft = DOMAIN.event_input({"stage": stage, "title": title}, str(project["category"]), TZ)
    return AppendRequest(
        project=project,
        draft=draft,
        lifecycle=DOMAIN.is_lifecycle(stage),
        idempotency_key=key,
        fingerprint=title,
    )


async def test_concurrent_appends_share_commits_and_stay_gapless(store: SQLiteStore) -> None:
    project = await new_project(store, "P-1")
    seen: list[int] = []
    store.on_commit(lambda events: seen.extend(e.seq for e in events))

    results = await asyncio.gather(*(store.append(request(project)) for _ in range(200)))

    assert sorted(r.event.seq for r in results) == list(range(1, 201))
    assert seen == list(range(1, 201)), "listeners see events once, in seq order"
    assert store.commits < 50, f"200 concurrent appends took {store.commits} commits"
    previous = GENESIS_HASH
    for event in await store.events_since(0, None, 1000):
        body = orjson.loads(event.json)
        assert body["hash"] == chain_hash(previous, body)
        previous = body["hash"]


async def test_idempotency_inside_one_batch(store: SQLiteStore) -> None:
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
    assert store.head == 2


async def test_events_since_filters_by_topic_and_stage(store: SQLiteStore) -> None:
    road = await new_project(store, "ROAD")
    land = await new_project(store, "LAND", category="land", region=None)
    await store.append(request(road, "notice"))
    await store.append(request(land, "notice"))
    await store.append(request(road, "bid_opening"))
    await store.append(request(land, "auction"))

    async def seqs(topics: dict[str, frozenset[str] | None] | None, since: int = 0) -> list[int]:
        return [e.seq for e in await store.events_since(since, topics, 100)]

    assert await seqs(None) == [1, 2, 3, 4]
    assert await seqs({"project:ROAD": None}) == [1, 3]
    assert await seqs({"category:land": frozenset({"auction"})}) == [4]
    assert await seqs({"region:330782": None, "project:LAND": frozenset({"notice"})}) == [1, 2, 3]
    assert await seqs({"all": frozenset({"notice"})}, since=1) == [2]


async def test_project_stage_moves_only_on_lifecycle_stages(store: SQLiteStore) -> None:
    project = await new_project(store, "P-1")
    await store.append(request(project, "notice"))
    await store.append(request(project, "objection"))
    stored = await store.get_project("P-1")
    assert stored is not None
    assert stored["stage"] == "notice" and stored["last_seq"] == 2


async def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    clock = FrozenClock(TZ, datetime(2026, 12, 1, 9, 30, tzinfo=TZ))
    url = f"sqlite:///{tmp_path / 'log.db'}"
    first = SQLiteStore(url, clock)
    await first.open()
    project = await new_project(first, "P-1")
    await first.append(request(project))
    await first.close()

    second = SQLiteStore(url, clock)
    await second.open()
    try:
        result = await second.append(request(project))
        assert result.event.seq == 2
        assert (await second.verify()).first_bad_seq is None
    finally:
        await second.close()
