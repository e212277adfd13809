"""Turning batches from several sources into one gapless, ascending delivery.

With several processes on one log, events reach a process three ways: its
own commits (`publish`), other processes' commits (Redis) and the database
itself (polling while Redis is quiet or down). They overlap, come in any
order and can miss events (a dropped message, a Redis outage). Subscribers
need every event exactly once, contiguous and ascending, so everything goes
through one `Sequencer`: it drops what was delivered, delivers what follows
on directly, and holds what comes after a gap until the gap is filled.

Most gaps fill themselves: two processes commit in turn, and a process often
hands on its own commit a moment before the other's earlier one arrives over
Redis. So a gap is given GRACE to close before it is read from the log
(a read per commit otherwise, on every process).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from server.core.events import StoredEvent

log = logging.getLogger("sunbid.bus")

PAGE = 1000
GRACE = 0.005  # seconds a gap may take to close by itself before the log is read
HELD_MAX = 10_000  # events held after a gap; beyond that they are read back from the log


class Log(Protocol):
    """What the sequencer needs of the store."""

    head: int

    async def events_since(self, since: int, topics: None, limit: int) -> list[StoredEvent]: ...


class Sequencer:
    def __init__(
        self, log: Log, deliver_all: Callable[[Sequence[StoredEvent]], None], page: int = PAGE
    ) -> None:
        self.log = log
        self._deliver_all = deliver_all
        self._page = page
        self.delivered = getattr(log, "head", 0)  # a store sets it in open(); see start()
        self._gap: asyncio.Task[None] | None = None
        self._held: dict[int, StoredEvent] = {}  # after a gap, by seq
        self._missed = False  # events were dropped rather than held: read the log for them
        self.gap_fills = 0  # gaps read from the log (for metrics and tests)
        self.filled_events = 0

    def start(self) -> None:
        """Begin at the log's head now: what came before was someone else's to deliver."""
        self.delivered = max(self.delivered, self.log.head)

    def offer(self, events: Sequence[StoredEvent]) -> None:
        """Take a batch in ascending seq order from any source (never raises)."""
        fresh = [event for event in events if event.seq > self.delivered]
        if not fresh:
            return
        if self._gap is None and fresh[0].seq == self.delivered + 1 and _contiguous(fresh):
            self._hand_on(fresh)
            return
        self._hold(fresh)
        if self._gap is None and (self._held or self._missed):
            self._gap = asyncio.create_task(self._fill(), name="sunbid-bus-gap")

    async def close(self) -> None:
        if self._gap is not None:
            self._gap.cancel()
            await asyncio.gather(self._gap, return_exceptions=True)
            self._gap = None

    @property
    def filling(self) -> bool:
        return self._gap is not None

    def _hand_on(self, events: Sequence[StoredEvent]) -> None:
        # `head` moves with no await before the subscribers run: a client that
        # reads `head` and then joins the hub misses nothing and gets nothing twice.
        self.delivered = events[-1].seq
        self.log.head = self.delivered
        try:
            self._deliver_all(events)
        except Exception:  # the subscribers guard themselves; this is the last line
            log.exception("delivering a batch failed")

    def _hold(self, events: Sequence[StoredEvent]) -> None:
        if len(self._held) + len(events) > HELD_MAX:  # the log is slow to answer: read it all
            self._held.clear()
            self._missed = True
            return
        self._held.update((event.seq, event) for event in events)
        self._release()

    def _release(self) -> None:
        """Hand on what the held events now continue; forget what was delivered."""
        run: list[StoredEvent] = []
        while (following := self._held.pop(self.delivered + 1 + len(run), None)) is not None:
            run.append(following)
        if run:
            self._hand_on(run)
        for seq in [seq for seq in self._held if seq <= self.delivered]:
            del self._held[seq]

    async def _fill(self) -> None:
        try:
            await asyncio.sleep(GRACE)
            while self._held or self._missed:
                self._missed = False
                self.gap_fills += 1
                while True:
                    events = await self.log.events_since(self.delivered, None, self._page)
                    fresh = [event for event in events if event.seq > self.delivered]
                    if fresh:
                        self.filled_events += len(fresh)
                        self._hand_on(fresh)
                    if len(events) < self._page:
                        break
                self._release()
                if self._held:  # offered during the read, committed after it began
                    await asyncio.sleep(GRACE)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The next batch or poll starts another fill, which retries.
            log.warning("reading the log after a gap failed: %s", exc)
        finally:
            self._gap = None


def _contiguous(events: Sequence[StoredEvent]) -> bool:
    return all(b.seq == a.seq + 1 for a, b in itertools.pairwise(events))
