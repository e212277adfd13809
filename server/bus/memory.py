"""The single-process bus: committed events go straight to the local hub."""

from __future__ import annotations

from collections.abc import Sequence

from server.bus import Deliver
from server.events import StoredEvent


class MemoryBus:
    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    def publish(self, events: Sequence[StoredEvent]) -> None:
        if self._deliver is not None:
            self._deliver(events)

    async def close(self) -> None:
        self._deliver = None
