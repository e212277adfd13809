"""The event log behind one small interface: append, read, verify, head.

A backend is chosen by the database URL's scheme: `sqlite:///path` (default,
one machine) and `postgresql://` (scale-out: any number of processes). Every backend passes
the same contract tests (tests/test_store.py).

The records derived from the log and kept beside it (projects/) are written
in the transaction that appends the events, through `write_with_log`; other
records in the same file (tokens.py, store/idempotency.py) have modules of
their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from server.core.clock import Clock
from server.core.events import StoredEvent

CommitListener = Callable[[Sequence[StoredEvent]], None]
# Judges an event before it is appended: (the project's earlier events in seq
# order, each with its seq and stage, and with its data and occurred_at if it
# is the latest of its stage or a correction (else {} and None); the event as
# it would be stored, without seq and hash)
# → the exception to answer with, or None to append it.
AppendCheck = Callable[[Sequence[Mapping[str, Any]], Mapping[str, Any]], Exception | None]
TopicStages = Mapping[str, frozenset[str] | None]


class AlreadyExists(Exception):
    """A project (its `once` event) or token with that name exists already."""


class IdempotencyConflict(Exception):
    """The key was used before for a different request."""


class StoreUnavailable(Exception):
    """The log could not be written (disk full, I/O error): nothing was appended."""


@dataclass(frozen=True)
class AppendRequest:
    project: Mapping[str, Any]  # the project record the event belongs to
    draft: Mapping[str, Any]  # validated stage, title, body, data, occurred_at
    idempotency_key: str | None = None
    fingerprint: str = ""  # digest of the request, to tell a true repeat from a reuse
    # Only the demo loader sets this, to lay out a history of past weeks in
    # time order; the API never does: a publication is stamped when committed.
    published_at: datetime | None = None
    # At most one event of this stage per project (a registration): the log
    # holding one already makes the append fail with AlreadyExists, decided
    # inside the writer's transaction, so of two racing requests one wins.
    once: bool = False
    # Checks before publishing (projects/checks.py), run like `once` inside the
    # writer's transaction against the project's events as the log holds them
    # there (with those appended earlier in the same batch): of two racing
    # publications that contradict each other, the second is refused.
    check: AppendCheck | None = None
    # What the check reads of the project's earlier events, by stage: "all"
    # of them or the "latest" (besides the latest event, the events the draft
    # names by seq and the key dates: store/sqlite.py `_project_logs`).
    check_reads: Mapping[str, str] | None = None


def as_published(
    project: Mapping[str, Any], draft: Mapping[str, Any], published_at: str
) -> dict[str, Any]:
    """The event `draft` makes in `project`, as the log stores it, but its seq and hash."""
    return {
        "project": project["id"],
        "category": project["category"],
        "agency": project["agency"],
        "region": project["region"],
        "stage": draft["stage"],
        "title": draft["title"],
        "body": draft["body"],
        "data": draft["data"],
        "occurred_at": draft["occurred_at"] or published_at,
        "published_at": published_at,
    }


@dataclass(frozen=True)
class AppendResult:
    event: StoredEvent
    created: bool


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    head: int
    first_bad_seq: int | None
    reason: str | None


class RecordWithLog(Protocol):
    """A record derived from the log and written in the same transaction as
    the events it derives from ("records written with the log")."""

    name: str

    async def open(self, conn: Any, head: int) -> None:
        """At the store's open, in a transaction: create or upgrade the record,
        and catch it up if its cursor is behind `head`."""
        ...

    async def write(self, conn: Any, events: Sequence[StoredEvent]) -> None:
        """Fold `events` in, inside the transaction that appends them."""
        ...


class EventStore(Protocol):
    head: int

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    def on_commit(self, listener: CommitListener) -> None: ...
    def write_with_log(self, record: RecordWithLog) -> None: ...

    async def append(self, request: AppendRequest) -> AppendResult: ...
    async def get_event(self, seq: int) -> StoredEvent | None: ...
    async def events_since(
        self, since: int, topics: TopicStages | None, limit: int
    ) -> list[StoredEvent]: ...
    async def newest(self, topics: TopicStages | None, limit: int) -> list[StoredEvent]:
        """The newest `limit` events on any of `topics` (None: all), newest first."""
        ...

    async def verify(self) -> VerifyReport: ...

    async def timeline(self, project_id: str) -> list[StoredEvent]: ...


def open_store(
    url: str,
    clock: Clock,
    *,
    synchronous: str = "FULL",
    readonly: bool = False,
    schema: str = "public",
) -> EventStore:
    """The store for `url`; `readonly` for a process that only reads the log
    another process writes (appends then raise StoreUnavailable). `schema`
    names the PostgreSQL schema (`SUNBID_DATABASE_SCHEMA`)."""
    scheme = url.partition(":")[0]
    if scheme == "sqlite":
        from server.store.sqlite import SQLiteStore

        return SQLiteStore(url, clock, synchronous=synchronous, readonly=readonly)
    if scheme in ("postgresql", "postgres"):
        from server.store.postgres import PostgresStore

        return PostgresStore(url, clock, schema=schema, readonly=readonly)
    raise ValueError(
        f"SUNBID_DATABASE_URL: unsupported scheme {scheme!r}"
        " (use sqlite:///path or postgresql://user@host/db)"
    )
