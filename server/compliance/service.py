"""The watchdog at work in the server: rebuilt from the log, fed by commits,
woken by its timers, its warnings stored and streamed to supervisors.

Start-up reads the whole log before the server answers (about a second per
hundred thousand events; docs/benchmarks.md), so no request ever sees a
half-built picture. After that every commit goes through `observe` as it is
announced — after the publisher's 201, so checking never delays publishing
and never blocks it. Timers are not a periodic sweep of every project: one
task sleeps until the earliest deadline (at most a second, so a moved clock
is noticed), and a warning appears within about a second of becoming true.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

import orjson

from server.bus import Bus
from server.compliance.calendar import WORKDAYS_FILE, WorkCalendar
from server.compliance.catalog import CATALOG_FILE, Catalog
from server.compliance.rules import RULES_FILE, Rules
from server.compliance.warnings import WARNINGS_FILE, WarningStore
from server.compliance.watchdog import Fact, Warning, Watchdog
from server.core.clock import Clock
from server.core.events import StoredEvent
from server.core.frames import Message
from server.domain import Domain
from server.settings import Settings
from server.store import EventStore

log = logging.getLogger("sunbid.compliance")

REBUILD_PAGE = 10_000
MAX_SLEEP = 1.0  # seconds: how late a warning may be, and how soon a moved clock is seen


class Compliance:
    def __init__(
        self,
        rules: Rules,
        catalog: Catalog,
        watchdog: Watchdog,
        warnings: WarningStore,
        clock: Clock,
        broadcast: Callable[[Message], None],  # to every connection following `supervision`
    ) -> None:
        self.rules = rules
        self.catalog = catalog
        self.watchdog = watchdog
        self.warnings = warnings
        self.clock = clock
        self.broadcast = broadcast
        self._pending: list[Warning] = []  # to be stored
        self._wake = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None

    @classmethod
    def load(
        cls, settings: Settings, domain: Domain, clock: Clock, broadcast: Callable[[Message], None]
    ) -> Compliance:
        """Read and check the data files (a mistake stops the server, naming file,
        entry and field); nothing is opened yet."""
        rules = Rules.load(settings.rules_file or RULES_FILE, domain)
        calendar = WorkCalendar.load(settings.workdays_file or WORKDAYS_FILE)
        watchdog = Watchdog(rules, calendar, domain, lead_workdays=settings.warn_lead_workdays)
        return cls(
            rules,
            Catalog.load(settings.catalog_file or CATALOG_FILE, domain, rules),
            watchdog,
            WarningStore(settings.data_dir / WARNINGS_FILE),
            clock,
            broadcast,
        )

    async def open(self, store: EventStore, bus: Bus) -> None:
        """Rebuild from the whole log, then follow it and start the timers."""
        await self.warnings.open()
        try:
            await self._rebuild(store)
        except BaseException:
            await self.warnings.close()
            raise
        bus.subscribe(self.observe)
        self._ticker = asyncio.create_task(self._tick(), name="compliance-timers")

    @property
    def running(self) -> bool:
        """Rebuilt from the log and following it, its timers ticking."""
        return self._ticker is not None and not self._ticker.done()

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self._flush()
        await self.warnings.close()

    # --- following the log -------------------------------------------------------

    def observe(self, events: Sequence[StoredEvent]) -> None:
        """Commit listener: check the new events now, store and stream later."""
        changes: list[Warning] = []
        for event in events:
            if event.seq > self.watchdog.head:
                changes += self._check(event.seq, functools.partial(self.watchdog.fact, event))
        self._emit(changes)

    def _check(self, seq: int, fact: Callable[[], Fact]) -> list[Warning]:
        try:
            return self.watchdog.observe(fact())
        except Exception:
            # A bug in one rule must not stop the log, the others, or a restart.
            log.exception("compliance: checking event %d failed; it is skipped", seq)
            self.watchdog.head = seq
            return []

    async def _rebuild(self, store: EventStore) -> None:
        started = asyncio.get_running_loop().time()
        changes: list[Warning] = []
        # The rebuild only adds long-lived objects: collecting garbage while it
        # runs would rescan them again and again (seconds for a million events).
        # Read the next page (in the database's thread) while checking this one.
        keys, fact = self.watchdog.data_keys, self.watchdog.fact_of_row
        following = asyncio.ensure_future(
            store.event_times_since(self.watchdog.head, keys, REBUILD_PAGE)
        )
        gc.disable()
        try:
            while page := await following:
                following = asyncio.ensure_future(
                    store.event_times_since(page[-1][0], keys, REBUILD_PAGE)
                )
                for row in page:
                    changes += self._check(row[0], functools.partial(fact, row))
        finally:
            gc.enable()
            following.cancel()  # a failed rebuild leaves no read behind
        # What was built lives as long as the server: keep it out of every later
        # full collection, so those stay short pauses for the streams. (The
        # rebuild makes next to no cyclic garbage: no collection first.)
        gc.freeze()
        changes += self.watchdog.fire(self.clock.now())
        await self.warnings.save(changes)
        log.info(
            "compliance: %d events checked in %.2f s, %d warnings",
            self.watchdog.head,
            asyncio.get_running_loop().time() - started,
            await self.warnings.count(),
        )

    # --- timers, storing and streaming ---------------------------------------------

    async def _tick(self) -> None:
        while True:
            now = self.clock.now()
            self._emit(self.watchdog.fire(now))
            await self._flush()
            sleep = _seconds_until(self.watchdog.next_timer(), now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), sleep)
            self._wake.clear()

    def _emit(self, changes: list[Warning]) -> None:
        if not changes:
            return
        for warning in changes:
            doc = orjson.dumps({"op": "warning", "warning": warning.to_json()})
            self.broadcast({"type": "websocket.send", "text": doc.decode("utf-8")})
        self._pending += changes
        self._wake.set()  # the ticker stores them

    async def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            await self.warnings.save(batch)
        except Exception:
            log.exception("storing %d compliance warnings failed; retrying", len(batch))
            self._pending[:0] = batch


def _seconds_until(moment: datetime | None, now: datetime) -> float:
    if moment is None:
        return MAX_SLEEP
    return min(MAX_SLEEP, max(0.0, (moment - now).total_seconds()))
