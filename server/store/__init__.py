"""The event log and the records beside it, behind one small interface.

A backend is chosen by the database URL's scheme: `sqlite:///path` (default,
one machine) and, later, `postgresql://` (scale-out). Every backend passes
the same contract tests (tests/test_store.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from server.core.clock import Clock
from server.core.events import StoredEvent

CommitListener = Callable[[Sequence[StoredEvent]], None]
TopicStages = Mapping[str, frozenset[str] | None]


class AlreadyExists(Exception):
    """A project or token with that name exists already."""


class IdempotencyConflict(Exception):
    """The key was used before for a different request."""


class StoreUnavailable(Exception):
    """The log could not be written (disk full, I/O error): nothing was appended."""


@dataclass(frozen=True)
class AppendRequest:
    project: Mapping[str, Any]  # the project record the event belongs to
    draft: Mapping[str, Any]  # validated stage, title, body, data, occurred_at
    lifecycle: bool  # whether the stage moves the project's `stage`
    idempotency_key: str | None = None
    fingerprint: str = ""  # digest of the request, to tell a true repeat from a reuse
    # Only the demo loader sets this, to lay out a history of past weeks in
    # time order; the API never does: a publication is stamped when committed.
    published_at: datetime | None = None


@dataclass(frozen=True)
class AppendResult:
    event: StoredEvent
    created: bool


@dataclass(frozen=True)
class Token:
    name: str
    role: str
    agency: str | None
    created_at: str
    revoked_at: str | None
    digest: str = ""  # filled only where a token is checked, never listed


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    head: int
    first_bad_seq: int | None
    reason: str | None


class EventStore(Protocol):
    head: int

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    def on_commit(self, listener: CommitListener) -> None: ...

    async def append(self, request: AppendRequest) -> AppendResult: ...
    async def get_event(self, seq: int) -> StoredEvent | None: ...
    async def events_since(
        self, since: int, topics: TopicStages | None, limit: int
    ) -> list[StoredEvent]: ...
    async def verify(self) -> VerifyReport: ...

    async def create_project(self, project: Mapping[str, Any]) -> dict[str, Any]: ...
    async def get_project(self, project_id: str) -> dict[str, Any] | None: ...
    async def list_projects(
        self, filters: Mapping[str, str], query: str | None, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]: ...
    async def timeline(self, project_id: str) -> list[StoredEvent]: ...
    async def count_projects(self) -> int: ...

    async def add_token(self, name: str, role: str, agency: str | None, digest: str) -> None: ...
    async def list_tokens(self) -> list[Token]: ...
    async def revoke_token(self, name: str) -> bool: ...
    async def token_by_digest(self, digest: str) -> Token | None: ...
    async def live_digests(self, digests: Collection[str]) -> set[str]: ...


def open_store(
    url: str, clock: Clock, *, synchronous: str = "FULL", readonly: bool = False
) -> EventStore:
    """The store for `url`; `readonly` for a process that only reads the log
    another process writes (appends then raise StoreUnavailable)."""
    scheme = url.partition(":")[0]
    if scheme == "sqlite":
        from server.store.sqlite import SQLiteStore

        return SQLiteStore(url, clock, synchronous=synchronous, readonly=readonly)
    raise ValueError(f"SUNBID_DATABASE_URL: unsupported scheme {scheme!r} (use sqlite:///path)")
