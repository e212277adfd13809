"""The single-process bus: committed events go straight to the local subscribers."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from server.bus import Deliver
from server.bus.sequencer import Log
from server.core.events import StoredEvent

log = logging.getLogger("sunbid.bus")


class MemoryBus:
    def __init__(self, log_: Log | None = None) -> None:
        self._log = log_
        self._subscribers: list[Deliver] = []
        self._started = False

    def subscribe(self, deliver: Deliver) -> None:
        self._subscribers.append(deliver)

    async def start(self) -> None:
        self._started = True

    def publish(self, events: Sequence[StoredEvent]) -> None:
        if not self._started:
            return
        if self._log is not None and events:
            # One process: every commit is ours and comes in order. The SQLite
            # store moves `head` itself; a store that leaves it to the bus gets it here.
            self._log.head = max(self._log.head, events[-1].seq)
        for deliver in self._subscribers:
            try:
                deliver(events)
            except Exception:  # one failing subscriber must not starve the others
                log.exception("a bus subscriber failed")

    async def close(self) -> None:
        self._started = False
        self._subscribers.clear()

    def not_ready(self) -> list[str]:
        return []

    def problems(self) -> list[str]:
        return []

    def counters(self) -> dict[str, tuple[str, int]]:
        return {}
