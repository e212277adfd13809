"""Carrying committed events to every server process's followers.

Chosen by `SUNBID_BUS_URL`'s scheme: `memory://` (default: one process, the
writer hands events straight to the subscribers) and `redis://` (scale-out:
server/bus/redis.py, with the database as the fallback). The store's commits
reach the rest of the server only through the bus: the hub, the compliance
watchdog, the projects record and the push worker's wake-up are all
subscribers, so a second process sees what the first one does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from server.bus.sequencer import Log
from server.core.events import StoredEvent

Deliver = Callable[[Sequence[StoredEvent]], None]


class Bus(Protocol):
    def subscribe(self, deliver: Deliver) -> None:
        """Call `deliver` with every batch published from now on (never raises into the bus)."""
        ...

    async def start(self) -> None: ...
    def publish(self, events: Sequence[StoredEvent]) -> None: ...
    async def close(self) -> None: ...

    def not_ready(self) -> list[str]:
        """Why /readyz should answer 503 (empty when this process may take traffic)."""
        ...

    def problems(self) -> list[str]:
        """What /readyz reports as degraded (empty when all is well)."""
        ...

    def counters(self) -> dict[str, tuple[str, int]]:
        """For /metrics: name -> (help, count since start); empty for the memory bus."""
        ...


def open_bus(url: str, log: Log, *, prefix: str = "sunbid") -> Bus:
    """The bus for `url`; `log` is the store, whose `head` the bus moves
    as it hands events on, and from which it reads what it missed."""
    scheme = url.partition(":")[0]
    if scheme == "memory":
        from server.bus.memory import MemoryBus

        return MemoryBus(log)
    if scheme in ("redis", "rediss"):
        from server.bus.redis import RedisBus

        return RedisBus(url, log, prefix)
    raise ValueError(
        f"SUNBID_BUS_URL: unsupported scheme {scheme!r} (use memory:// or redis://host[:port][/db])"
    )
