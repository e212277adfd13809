"""The one shape of every record derived from the log.

A projection is a pure function of the events: `apply` folds a run of
events, in seq order, into its state, and `cursor` is the last seq folded
in. It does no I/O of its own, so its logic is tested with a list of events.
Where its state is kept (a table, a side file, memory) is the business of
the projection's owner, which stores `cursor` in the same transaction as the
state it covers: after a crash the two agree, and catching up resumes from
the cursor.

`Follower` is the small runner around one: it catches the projection up from
the log at start, then follows the bus. The bus may hand over events the
projection has (skipped) or arrive after a gap (a lost message, a restart of
the bus): the gap is read from the log, so the projection sees every event
exactly once, in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from server.core.events import StoredEvent

log = logging.getLogger("sunbid.projection")

CATCH_UP_PAGE = 1000


class Projection(Protocol):
    name: str  # as `sunbid verify` and `sunbid rebuild` name it
    cursor: int  # the last seq applied

    def apply(self, events: Sequence[StoredEvent]) -> None:
        """Fold `events` (ascending, each seq > cursor) in; move `cursor`."""
        ...


class LogReader(Protocol):
    """What a follower needs of the store: the log, in order."""

    head: int

    async def events_since(
        self, since: int, topics: Mapping[str, frozenset[str] | None] | None, limit: int
    ) -> list[StoredEvent]: ...


class Follower:
    """Keeps one projection up with the log: catch up, then follow the bus."""

    def __init__(self, projection: Projection, log_reader: LogReader) -> None:
        self.projection = projection
        self.log = log_reader
        self._gap: asyncio.Task[None] | None = None
        self._missed = False  # events arrived while a gap was being read

    async def catch_up(self, page: int = CATCH_UP_PAGE) -> None:
        """Apply every event after the cursor that the log holds now."""
        while events := await self.log.events_since(self.projection.cursor, None, page):
            self.projection.apply(events)

    def deliver(self, events: Sequence[StoredEvent]) -> None:
        """Bus subscriber: apply what is new; read a gap from the log."""
        if self._gap is not None:  # the catch-up running reads these too
            self._missed = True
            return
        cursor = self.projection.cursor
        if events and events[0].seq > cursor + 1:
            self._gap = asyncio.create_task(self._fill_gap(), name=f"{self.projection.name}-gap")
            return
        fresh = [e for e in events if e.seq > cursor]
        if fresh:
            self.projection.apply(fresh)

    async def close(self) -> None:
        if self._gap is not None:
            self._gap.cancel()
            await asyncio.gather(self._gap, return_exceptions=True)
            self._gap = None

    async def _fill_gap(self) -> None:
        try:
            self._missed = True
            while self._missed:  # a read may have begun just before their commit
                self._missed = False
                await self.catch_up()
        except Exception:
            log.exception("%s: reading the log after a gap failed", self.projection.name)
        finally:
            self._gap = None


class DerivedRecord(Protocol):
    """A stored projection as `sunbid verify` and `sunbid rebuild` see it."""

    name: str
    # Set by a `check` that found nothing wrong but could not compare either
    # (a record made with other rules, to be rebuilt): what `verify` says instead.
    note: str | None

    async def check(self, log_reader: LogReader) -> str | None:
        """None if the stored record equals what the log yields; otherwise a
        message naming the first entry that differs (and how)."""
        ...

    async def rebuild(self, log_reader: LogReader) -> None:
        """Recompute the stored record from the log alone."""
        ...
