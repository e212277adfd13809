"""The watchdog at work in the server: a projection of the log, started from
its snapshot, following the bus, woken by its timers, its warnings stored
and handed on to supervisors.

Start-up loads the latest snapshot (if the same rules, calendar, catalogue,
categories and code made it) and replays only the log after its cursor; with
no usable snapshot it replays the whole log (about a second per hundred
thousand events, docs/benchmarks.md). Either way no request sees a
half-built picture. After that `Follower` feeds it the bus's events, after
the publisher's 201: checking never delays publishing. Timers are not a
periodic sweep of every project: one task sleeps until the earliest deadline
(at most a second, so a moved clock is noticed), and a warning appears
within about a second of becoming true.

The state is snapshotted, with its cursor and the warnings so far, every
`compliance_snapshot_events` events and at shutdown. It is pickled a chunk of
projects at a time, the event loop running in between (the streams must not
wait for a million events' worth of state); meanwhile the state must not
change, so the timer task (which takes the snapshot) does not fire, and
events the bus brings are held and applied right after. A warning is the
same object before and after a snapshot, its id made of what caused it:
stored once, restarts included.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from server.bus import Bus
from server.compliance import logread, snapshot
from server.compliance.calendar import WORKDAYS_FILE, WorkCalendar
from server.compliance.catalog import CATALOG_FILE, Catalog
from server.compliance.records import WARNINGS_FILE, Progress, Snapshot, WarningStore
from server.compliance.rules import RULES_FILE, Rules
from server.compliance.watchdog import Alert, Watchdog
from server.core.clock import Clock
from server.core.events import StoredEvent
from server.core.projection import Follower, LogReader
from server.directory import DIRECTORY_FILE, Directory
from server.domain import CATEGORIES_FILE, Domain
from server.settings import Settings

log = logging.getLogger("sunbid.compliance")

MAX_SLEEP = 1.0  # seconds: how late a warning may be, and how soon a moved clock is seen

Notify = Callable[[dict[str, Any]], None]  # a warning's JSON, to every supervisor following


class Compliance:
    """The watchdog as a projection (`name`, `cursor`, `apply`) and its runner."""

    name = "compliance"

    def __init__(
        self,
        rules: Rules,
        catalog: Catalog,
        watchdog: Watchdog,
        warnings: WarningStore,
        clock: Clock,
        notify: Notify,
        *,
        fingerprint: str = "",
        snapshot_events: int = 0,  # 0: only at shutdown
    ) -> None:
        self.rules = rules
        self.catalog = catalog
        self.watchdog = watchdog
        self.warnings = warnings
        self.clock = clock
        self.notify = notify
        self.fingerprint = fingerprint
        self.snapshot_events = snapshot_events
        # The last seq applied (`watchdog.head`); while a snapshot is taken, the last one held.
        self.cursor = 0
        self.snapshot_cursor = 0  # the cursor of the stored snapshot
        self._snapshot_base = 0  # the next is due this many events after it (failures too)
        self.fired_until: datetime = clock.now()  # timers due by then have fired
        self._pending: list[Alert] = []  # to be stored
        self._held: list[StoredEvent] = []  # arrived while a snapshot was being taken
        self._freezing = False
        self._follower: Follower | None = None
        self._log: LogReader | None = None  # once open
        self._wake = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._closing = False

    @classmethod
    def load(cls, settings: Settings, domain: Domain, clock: Clock, notify: Notify) -> Compliance:
        """Read and check the data files (a mistake stops the server, naming file,
        entry and field); nothing is opened yet."""
        files = (
            settings.rules_file or RULES_FILE,
            settings.workdays_file or WORKDAYS_FILE,
            settings.catalog_file or CATALOG_FILE,
            CATEGORIES_FILE,
            settings.directory_file or DIRECTORY_FILE,  # the agencies' kinds
        )
        rules = Rules.load(files[0], domain)
        calendar = WorkCalendar.load(files[1])
        agencies = {
            code: {"agency_kind": agency.kind}
            for code, agency in Directory.load(files[4]).agencies.items()
            if agency.kind is not None
        }
        watchdog = Watchdog(
            rules,
            calendar,
            domain,
            lead_workdays=settings.warn_lead_workdays,
            agencies=agencies,
        )
        return cls(
            rules,
            Catalog.load(files[2], domain, rules),
            watchdog,
            WarningStore(settings.data_dir / WARNINGS_FILE),
            clock,
            notify,
            fingerprint=snapshot.fingerprint(files, settings.warn_lead_workdays),
            snapshot_events=settings.compliance_snapshot_events,
        )

    # --- the projection ------------------------------------------------------------

    def apply(self, events: Sequence[StoredEvent]) -> None:
        """Check new events now; store and hand on their warnings soon after."""
        fresh = [e for e in events if e.seq > self.cursor]
        if self._freezing:
            self._held += fresh
            self.cursor = self._held[-1].seq if self._held else self.cursor
            return
        changes: list[Alert] = []
        for event in fresh:
            fact = functools.partial(self.watchdog.fact, event)
            changes += logread.check(self.watchdog, event.seq, fact)
        self.cursor = self.watchdog.head
        self._emit(changes)
        if (
            self.snapshot_events
            and self.watchdog.head - self._snapshot_base >= self.snapshot_events
        ):
            self._wake.set()  # the ticker takes it

    # --- the runner ------------------------------------------------------------------

    async def open(self, store: LogReader, bus: Bus) -> None:
        """Start from the snapshot (or from nothing), catch up with the log,
        then follow the bus and start the timers."""
        self._log = store
        await self.warnings.open()
        try:
            await self._start(store)
        except BaseException:
            await self.warnings.close()
            raise
        self._follower = Follower(self, store)
        bus.subscribe(self._follower.deliver)
        await self._follower.catch_up()  # what was committed before the subscription
        self._ticker = asyncio.create_task(self._tick(), name="compliance-timers")

    @property
    def running(self) -> bool:
        """Caught up with the log and following it, its timers ticking."""
        return self._ticker is not None and not self._ticker.done()

    async def close(self) -> None:
        if self._ticker is not None:
            # Stopped between two rounds, not cancelled: a cancelled write could
            # leave its transaction open on the connection.
            self._closing = True
            self._wake.set()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self._follower is not None:
            await self._follower.close()
        try:
            if self.watchdog.head != self.snapshot_cursor:
                await self._snapshot()
            else:
                await self._flush()
        finally:
            await self.warnings.close()

    async def _start(self, store: LogReader) -> None:
        started = asyncio.get_running_loop().time()
        stored = await self.warnings.snapshot()
        source = "the whole log"
        whole_log = True
        if (
            stored is not None
            and stored.fingerprint == self.fingerprint
            and stored.cursor <= store.head
            and stored.chain == await logread.chain_at(store, stored.cursor)
        ):
            try:
                gc.disable()  # only long-lived objects: no point in scanning them
                try:
                    snapshot.load(self.watchdog, stored.state)
                finally:
                    gc.enable()
                self.snapshot_cursor = self._snapshot_base = stored.cursor
                source = f"the snapshot at {stored.cursor} and the log after it"
                whole_log = False
            except Exception:
                log.exception("compliance: the snapshot could not be read; rebuilding from the log")
                self._reset()
        elif stored is not None:
            log.info("compliance: the snapshot was made with other rules, code or log; discarded")
        loaded = asyncio.get_running_loop().time()
        changes = await logread.replay(self.watchdog, store)
        self.cursor = self.watchdog.head
        # What was built lives as long as the server: keep it out of every later
        # full collection, so those stay short pauses for the streams.
        gc.freeze()
        self.fired_until = self.clock.now()
        changes += self.watchdog.fire(self.fired_until)
        if whole_log:
            # Rebuilt from the whole log (no snapshot, or one made with other
            # rules): what was stored before is replaced, not added to, so that
            # a warning today's rules no longer yield does not linger.
            await self.warnings.clear()
        self._pending += changes  # stored, not sent: nobody was following yet
        await self._flush(force=True)  # a long replay is snapshotted by the ticker, soon
        log.info(
            "compliance: ready from %s in %.2f s (snapshot %.2f s), %d events, %d warnings",
            source,
            asyncio.get_running_loop().time() - started,
            loaded - started,
            self.watchdog.head,
            await self.warnings.count(),
        )

    def _reset(self) -> None:
        self.watchdog.restore(self.watchdog.fresh().state())
        self.snapshot_cursor = self._snapshot_base = 0

    # --- timers, storing, snapshots and handing on ---------------------------------

    async def _tick(self) -> None:
        while not self._closing:
            now = self.clock.now()
            self._emit(self.watchdog.fire(now))
            self.fired_until = now
            if (
                self.snapshot_events
                and self.watchdog.head - self._snapshot_base >= self.snapshot_events
            ):
                await self._snapshot()
            else:
                await self._flush()
            sleep = _seconds_until(self.watchdog.next_timer(), now)
            if self._closing:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), sleep)
            self._wake.clear()

    def _emit(self, changes: list[Alert]) -> None:
        if not changes:
            return
        for warning in changes:
            self.notify(warning.to_json())
        self._pending += changes
        self._wake.set()  # the ticker stores them

    async def _flush(self, *, force: bool = False) -> None:
        if not self._pending and not force:
            return
        batch, self._pending = self._pending, []
        try:
            await self.warnings.save(batch, Progress(self.watchdog.head, self.fired_until))
        except Exception:
            log.exception("storing %d compliance warnings failed; retrying", len(batch))
            self._pending[:0] = batch

    async def _snapshot(self) -> None:
        """Store the state with its cursor and the warnings so far, in one
        transaction; nothing changes the state while it is pickled."""
        self._freezing = True
        try:
            cursor = self.watchdog.head
            assert self._log is not None, "not open"
            chain = await logread.chain_at(self._log, cursor)
            steps = snapshot.dumping(self.watchdog)
            while True:  # a chunk at a time, letting the streams run in between
                try:
                    next(steps)
                except StopIteration as done:
                    blob: bytes = done.value
                    break
                await asyncio.sleep(0)
            batch, self._pending = self._pending, []
            try:
                await self.warnings.save(
                    batch,
                    Progress(cursor, self.fired_until),
                    Snapshot(cursor, self.fingerprint, chain, blob),
                )
            except BaseException:
                self._pending[:0] = batch
                raise
            self.snapshot_cursor = self._snapshot_base = cursor
        except Exception:
            log.exception("compliance: taking a snapshot failed; the next start replays more")
            self._snapshot_base = self.watchdog.head  # not again at every tick
        finally:
            self._freezing = False
            held, self._held = self._held, []
            self.cursor = self.watchdog.head
            if held:
                self.apply(held)


def _seconds_until(moment: datetime | None, now: datetime) -> float:
    if moment is None:
        return MAX_SLEEP
    return min(MAX_SLEEP, max(0.0, (moment - now).total_seconds()))
