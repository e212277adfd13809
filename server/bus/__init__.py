"""Carrying committed events to every server process's hub.

Chosen by `SUNBID_BUS_URL`'s scheme: `memory://` (default: one process, the
writer hands events straight to the hub) and, later, `redis://` (scale-out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from server.events import StoredEvent

Deliver = Callable[[Sequence[StoredEvent]], None]


class Bus(Protocol):
    async def start(self, deliver: Deliver) -> None: ...
    def publish(self, events: Sequence[StoredEvent]) -> None: ...
    async def close(self) -> None: ...


def open_bus(url: str) -> Bus:
    scheme = url.partition(":")[0]
    if scheme == "memory":
        from server.bus.memory import MemoryBus

        return MemoryBus()
    raise ValueError(f"SUNBID_BUS_URL: unsupported scheme {scheme!r} (use memory://)")
