"""The periodic task that forgets what is only kept for a while.

Two kinds of rows would otherwise grow with the log forever, though nobody
needs them after a time:

- idempotency keys (SUNBID_IDEMPOTENCY_KEEP_HOURS, default 168 h = 7 days):
  a retry comes within minutes, or after an outage; a week covers the
  longest holiday (the 7-day national holidays) an agency's queued
  publications might wait out. A repeat of a pruned key makes a new event.
- finished push deliveries (SUNBID_DELIVERY_KEEP_DAYS, default 30 days):
  queued rows are never pruned; delivered, failed and gone ones are kept for
  staff to look at (`/api/events/{seq}/deliveries`), whose counts for an
  older event then fall to 0.

It runs in the web server, at start and then every hour. Pruning is not
derived from the log (nothing in it says when to forget), so `sunbid verify`
does not ask for pruned rows, and `sunbid rebuild` does not bring them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from server.core.clock import Clock
from server.store.pruning import KeyHome, prune_keys

log = logging.getLogger("sunbid.pruning")
EVERY = 3600.0  # seconds between runs


UNCONFIRMED_SECONDS = 3600.0


class FinishedDeliveries(Protocol):
    """The push queue, as far as pruning needs it."""

    async def prune_finished(self, before: float) -> int: ...
    async def prune_unconfirmed(self, before: float) -> int: ...


@dataclass(frozen=True)
class Pruned:
    keys: int
    deliveries: int


class Pruner:
    def __init__(
        self,
        keys: KeyHome | None,  # where the keys are (store/pruning.py key_home); None: none
        deliveries: FinishedDeliveries | None,
        clock: Clock,
        *,
        keep_keys: timedelta,
        keep_deliveries: timedelta,
        every: float = EVERY,
    ) -> None:
        self.keys = keys
        self.deliveries = deliveries
        self.clock = clock
        self.keep_keys = keep_keys
        self.keep_deliveries = keep_deliveries
        self.every = every
        self._task: asyncio.Task[None] | None = None

    async def prune_once(self) -> Pruned:
        now = self.clock.now()
        keys = deliveries = 0
        if self.keys is not None:
            keys = await prune_keys(self.keys, now - self.keep_keys)
        if self.deliveries is not None:
            before = (now - self.keep_deliveries).timestamp()
            deliveries = await self.deliveries.prune_finished(before)
            # Channels never confirmed: their addresses go once their codes are long dead.
            await self.deliveries.prune_unconfirmed(now.timestamp() - UNCONFIRMED_SECONDS)
        if keys or deliveries:
            log.info("pruned %d idempotency keys and %d finished deliveries", keys, deliveries)
        return Pruned(keys, deliveries)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sunbid-pruning")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.prune_once()
            except Exception:  # a failed run is retried at the next one
                log.exception("pruning failed")
            await asyncio.sleep(self.every)
