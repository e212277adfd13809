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
from pathlib import Path
from typing import Any

import aiosqlite

from server.core import versions
from server.domain import Domain
from server.projects import open_projects
from server.projects.changes import registration
from server.store import AppendRequest, EventStore

PAGE = 500
OLD_COLUMNS = (
    "id", "title", "category", "agency", "region", "budget", "currency", "created_at",
    "must_tender",
)  # fmt: skip


@dataclass(frozen=True)
class Step:
    version: int  # the file's version once this step is done
    what: str  # as `sunbid migrate` prints it
    sql: tuple[str, ...] = ()
    # (the open log, its file) → how many events it appended
    append: Callable[[EventStore, Path], Awaitable[int]] | None = None


async def register_old_projects(store: EventStore, log_file: Path) -> int:
    """A `registered` event for every project that has none: projects created
    before projects were events. Oldest first; `occurred_at` is when the
    project was created, and `data` its fields then (`must_tender`, where the
    table has no such column yet, was not recorded: null).

    The old rows are read with SQL of its own, not through the store: they
    are what this step exists for, whatever the store reads projects from.
    """
    async with aiosqlite.connect(log_file) as conn:
        await conn.execute("PRAGMA busy_timeout=5000")
        columns = {row[1] for row in await conn.execute_fetchall("PRAGMA table_info(projects)")}
        tender = "must_tender" if "must_tender" in columns else "NULL"
        rows = await conn.execute_fetchall(
            "SELECT id, title, category, agency, region, budget, currency, created_at,"
            f" {tender} FROM projects WHERE id NOT IN"
            " (SELECT project FROM events WHERE stage = 'registered')"
            " ORDER BY created_at, id"
        )
    missing = [dict(zip(OLD_COLUMNS, row, strict=True)) for row in rows]
    for start in range(0, len(missing), PAGE):  # one group commit per page
        chunk = missing[start : start + PAGE]
        await asyncio.gather(*(store.append(_registration(p)) for p in chunk))
    # The table is a fold of the log from now on: rows written before (a
    # project's activity to the microsecond of its creation, where the log
    # knows only its events' milliseconds) are recomputed from the log.
    await open_projects(store, Domain.load()).rebuild(store)
    return len(missing)


def _registration(project: dict[str, Any]) -> AppendRequest:
    fields = dict(project)
    if fields["must_tender"] is not None:
        fields["must_tender"] = bool(fields["must_tender"])
    return registration(fields, occurred_at=project["created_at"])


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
    Step(
        2,
        "notification channels beside Web Push: a kind per subscription, and their addresses",
        sql=(
            "ALTER TABLE subscriptions ADD COLUMN kind TEXT NOT NULL DEFAULT 'push'",
            "CREATE TABLE IF NOT EXISTS contacts (subscription_id INTEGER PRIMARY KEY,"
            " kind TEXT NOT NULL, address BLOB NOT NULL, address_digest TEXT NOT NULL,"
            " hint TEXT NOT NULL, manage_digest TEXT NOT NULL, code_digest TEXT,"
            " code_expires_at REAL, tries INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,"
            " confirmed_at TEXT, sent_day TEXT, sent_count INTEGER NOT NULL DEFAULT 0)",
            "CREATE INDEX IF NOT EXISTS contacts_by_address ON contacts(address_digest)",
            "CREATE TABLE IF NOT EXISTS channel_usage (kind TEXT NOT NULL, day TEXT NOT NULL,"
            " sent INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (kind, day))",
            "CREATE TABLE IF NOT EXISTS code_sends (address_digest TEXT NOT NULL,"
            " sent_at REAL NOT NULL)",
            "CREATE INDEX IF NOT EXISTS code_sends_by_address"
            " ON code_sends(address_digest, sent_at)",
        ),
    ),
)
COMPLIANCE_STEPS = (Step(1, "schema versions begin (no change)"),)

RESPOND_STEPS = (Step(1, "the public's cases begin (no change)"),)

WEBHOOKS_STEPS = (Step(1, "webhooks begin (no change)"),)

STEPS = {
    "events": EVENTS_STEPS,
    "push": PUSH_STEPS,
    "compliance": COMPLIANCE_STEPS,
    "respond": RESPOND_STEPS,
    "webhooks": WEBHOOKS_STEPS,
}
LATEST = {
    "events": versions.EVENTS,
    "push": versions.PUSH,
    "compliance": versions.COMPLIANCE,
    "respond": versions.RESPOND,
    "webhooks": versions.WEBHOOKS,
}
