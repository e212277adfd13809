"""Pruning: idempotency keys and finished push deliveries are forgotten after
their configured time, and nothing else is; real SQLite files and a real
PostgreSQL schema (the keys), a frozen clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from push.queue import Outcome, PushQueue, State
from push.settings import PushSettings
from server.core.clock import FrozenClock
from server.projects import open_projects
from server.pruning import Pruner
from server.settings import Settings, SettingsError
from server.store import open_store
from server.store.pruning import key_home
from tests.test_push_queue import event, subscribe
from tests.test_store import DOMAIN, TZ, log_url, new_project, request

__all__ = ["log_url"]  # the fixture: every key test runs on SQLite and PostgreSQL

START = datetime(2026, 12, 1, 9, 30, tzinfo=TZ)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(TZ, START)


@pytest.fixture
async def store(log_url: tuple[str, str], clock: FrozenClock) -> AsyncIterator[Any]:
    opened = open_store(log_url[0], clock, schema=log_url[1])
    open_projects(opened, DOMAIN)  # as the server does: the projects kept with the log
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[PushQueue]:
    opened = PushQueue(tmp_path / "push.db")
    await opened.open()
    yield opened
    await opened.close()


def pruner(store: Any, queue: PushQueue | None, clock: FrozenClock) -> Pruner:
    return Pruner(
        key_home(store) if store is not None else None,
        queue,
        clock,
        keep_keys=timedelta(hours=168),
        keep_deliveries=timedelta(days=30),
    )


async def test_keys_older_than_the_keep_time_are_pruned(store: Any, clock: FrozenClock) -> None:
    project = await new_project(store, "P-1")
    old = await store.append(request(project, key="k-old", title="一"))
    clock.advance(timedelta(hours=100))
    young = await store.append(request(project, key="k-young", title="二"))
    clock.advance(timedelta(hours=68, seconds=1))  # k-old is 168 h + 1 s old, k-young 68 h

    pruned = await pruner(store, None, clock).prune_once()

    assert (pruned.keys, pruned.deliveries) == (1, 0)
    # The kept key still answers its event; the pruned one makes a new event.
    again = await store.append(request(project, key="k-young", title="二"))
    assert (again.created, again.event.seq) == (False, young.event.seq)
    repeat = await store.append(request(project, key="k-old", title="一"))
    # Seq 1 is the project's registration.
    assert repeat.created and repeat.event.seq == 4 and old.event.seq == 2
    # Pruning again finds nothing: exactly the keys past their time went.
    assert (await pruner(store, None, clock).prune_once()).keys == 0


async def test_a_key_just_inside_its_time_is_kept(store: Any, clock: FrozenClock) -> None:
    project = await new_project(store, "P-1")
    await store.append(request(project, key="k", title="一"))
    clock.advance(timedelta(hours=168) - timedelta(seconds=1))
    assert (await pruner(store, None, clock).prune_once()).keys == 0
    assert not (await store.append(request(project, key="k", title="一"))).created


async def test_finished_deliveries_are_pruned_queued_ones_kept(
    queue: PushQueue, clock: FrozenClock
) -> None:
    sub = await subscribe(queue, 1, ["project:P1"])
    other = await subscribe(queue, 2, ["project:P2"])  # its endpoint goes away
    then = START.timestamp()
    await queue.enqueue([event(1), event(2), event(3, "P2"), event(4)], up_to=4, now=then)
    await queue.record(
        [
            Outcome(1, sub, State.DELIVERED, 201),
            Outcome(2, sub, State.FAILED, 500),
            Outcome(3, other, State.GONE, 410),
        ]
    )  # event 4 stays queued (a retry far off, say)
    recent = then + 29 * 86400
    await queue.enqueue([event(5)], up_to=5, now=recent)
    await queue.record([Outcome(5, sub, State.DELIVERED, 201)])
    clock.advance(timedelta(days=30, seconds=1))

    pruned = await pruner(None, queue, clock).prune_once()

    assert (pruned.keys, pruned.deliveries) == (0, 3)
    rows = await queue.rows("SELECT seq, state FROM deliveries ORDER BY seq")
    assert [tuple(r) for r in rows] == [(4, State.QUEUED), (5, State.DELIVERED)]
    assert await queue.counts(1) == {"queued": 0, "delivered": 0, "failed": 0, "gone": 0}
    assert (await queue.counts(5))["delivered"] == 1


def test_keep_times_are_settings() -> None:
    settings, push = Settings.from_env({}), PushSettings.from_env({})
    assert (settings.idempotency_keep_hours, push.delivery_keep_days) == (168, 30)
    env = {"SUNBID_IDEMPOTENCY_KEEP_HOURS": "24", "SUNBID_DELIVERY_KEEP_DAYS": "7"}
    custom, custom_push = Settings.from_env(env), PushSettings.from_env(env)
    assert (custom.idempotency_keep_hours, custom_push.delivery_keep_days) == (24, 7)
    with pytest.raises(SettingsError, match="SUNBID_IDEMPOTENCY_KEEP_HOURS"):
        Settings.from_env({"SUNBID_IDEMPOTENCY_KEEP_HOURS": "0"})
    with pytest.raises(SettingsError, match="SUNBID_DELIVERY_KEEP_DAYS"):
        PushSettings.from_env({"SUNBID_DELIVERY_KEEP_DAYS": "0"})


async def test_a_key_s_age_reads_the_offset_its_event_was_published_with(
    store: Any, clock: FrozenClock
) -> None:
    """Events published under another SUNBID_TIMEZONE: their times carry other
    offsets, and the age is still measured in absolute time."""
    project = await new_project(store, "P-1")
    utc, kiribati = UTC, timezone(timedelta(hours=14))
    # Read as local times, without the offset, old would look younger than the
    # keep time (+6 h) and young older (-8 h): each would be judged wrong.
    old = (START - timedelta(hours=169)).astimezone(kiribati)
    young = (START - timedelta(hours=167)).astimezone(utc)
    await store.append(replace(request(project, key="k-old", title="一"), published_at=old))
    await store.append(replace(request(project, key="k-young", title="二"), published_at=young))

    assert (await pruner(store, None, clock).prune_once()).keys == 1
    assert not (await store.append(request(project, key="k-young", title="二"))).created
    assert (await store.append(request(project, key="k-old", title="一"))).created
