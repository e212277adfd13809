"""The steps from each schema version to the next, per file of a data directory.

A step either changes a file's schema (`sql`, run in one transaction with the
version it reaches) or appends events to the log through the store's normal
`append` (`append`: seq, hash chain and `published_at` are the store's, as
for any publication). The number of steps of a file is its current version
(server/core/versions.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from server.core import versions
from server.store import AppendRequest, EventStore

PAGE = 500


@dataclass(frozen=True)
class Step:
    version: int  # the file's version once this step is done
    what: str  # as `sunbid migrate` prints it
    sql: tuple[str, ...] = ()
    append: Callable[[EventStore], Awaitable[int]] | None = None  # returns events appended


async def register_old_projects(store: EventStore) -> int:
    """A `registered` event for every project that has none: projects created
    before projects were events. Oldest first; `occurred_at` is when the
    project was created, and `data` its fields then (`must_tender` was not
    recorded before: null)."""
    registered = await _registered_projects(store)
    missing: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page, cursor = await store.list_projects({}, None, cursor, PAGE)
        missing += [p for p in page if p["id"] not in registered]
        if cursor is None:
            break
    missing.sort(key=lambda p: (p["created_at"], p["id"]))
    for start in range(0, len(missing), PAGE):  # one group commit per page
        chunk = missing[start : start + PAGE]
        await asyncio.gather(*(store.append(_registration(p)) for p in chunk))
    return len(missing)


async def _registered_projects(store: EventStore) -> set[str]:
    seen: set[str] = set()
    since, only = 0, {"all": frozenset({"registered"})}  # through the stage index
    while events := await store.events_since(since, only, PAGE):
        seen.update(e.project for e in events)
        since = events[-1].seq
    return seen


def _registration(project: dict[str, Any]) -> AppendRequest:
    return AppendRequest(
        project=project,
        draft={
            "stage": "registered",
            "title": project["title"],
            "body": "",
            "data": {
                "title": project["title"],
                "budget": project["budget"],
                "currency": project["currency"],
                "region": project["region"],
                "must_tender": project.get("must_tender"),
            },
            "occurred_at": project["created_at"],
        },
        lifecycle=False,  # registration does not move the project's stage
    )


EVENTS_STEPS = (
    Step(1, "a `registered` event for each project created before projects were events",
         append=register_old_projects),
)  # fmt: skip
PUSH_STEPS = (
    Step(
        1,
        "an index of finished deliveries, for pruning them",
        sql=(
            "CREATE INDEX IF NOT EXISTS deliveries_finished ON deliveries(next_at)"
            " WHERE state != 0",
        ),
    ),
)
COMPLIANCE_STEPS = (Step(1, "schema versions begin (no change)"),)

STEPS = {"events": EVENTS_STEPS, "push": PUSH_STEPS, "compliance": COMPLIANCE_STEPS}
LATEST = {"events": versions.EVENTS, "push": versions.PUSH, "compliance": versions.COMPLIANCE}
