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

Several processes (PostgreSQL). Every process keeps the whole watchdog in
memory and follows the log: /api/compliance, its items and deadlines and the
publish dry-run are answered from memory, by whichever process a request
reaches, and each process hands warnings to its own connected supervisors
(a supervisor is connected to one process, so gets each warning once, and no
warning crosses between processes). The stored record, though, must be
written by one: two writers would race on progress and snapshot. So exactly
one process is *active*, the holder of the `compliance` lease
(server/core/lease.py: a row in the database, by the database's clock; a
dead holder's lease expires and another takes over within 15 s). Only the
active process stores warnings, progress and snapshots; each of its writes
checks the lease inside its transaction, so one that lost it stops at once.

A standby keeps what it would have stored (`_unsaved`, by warning id) and
drops what the active process has stored (its `progress` covers the moment
and seq the warning was made at: the watchdog is deterministic, so the same
warning was made there). On becoming active it first stores everything it
kept (upsert by id: nothing doubles), so nothing the dead holder had not yet
flushed is lost; then it goes on as the only writer. With SQLite (one
process) there is no lease: the process is always active, as before.
Processes that are not lease candidates (`settings.background` off) only
ever stand by.
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
from server.core import lease as leases
from server.core.clock import Clock
from server.core.events import StoredEvent
from server.core.projection import Follower, LogReader
from server.directory import DIRECTORY_FILE, Directory
from server.domain import CATEGORIES_FILE, Domain
from server.settings import Settings

log = logging.getLogger("sunbid.compliance")

MAX_SLEEP = 1.0  # seconds: how late a warning may be, and how soon a moved clock is seen
LEASE = "compliance"
PRUNE_SECONDS = 2.0  # a standby reads the stored progress this often

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
        lease: leases.Lease | None = None,  # PostgreSQL: the turn to write
        candidate: bool = True,  # may write at all (always, with SQLite)
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
        self._lease = lease
        # SQLite: one process, always the writer. PostgreSQL: a candidate with a lease.
        self._candidate = not warnings.postgres or (candidate and lease is not None)
        self._active = False  # storing: the lease held and the standby's warnings stored
        self._replace = False  # built from the whole log: the record is replaced on activation
        self._other_rules = False  # the stored snapshot was discarded (other rules, code, log)
        # A standby's warnings not known to be stored, with the (seq, moment) they were made by.
        self._unsaved: dict[str, tuple[Alert, int, datetime]] = {}
        self._pruned_at = 0.0
        if lease is not None:
            lease.on_change = self._lease_changed

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
        warnings = WarningStore(
            settings.data_dir / WARNINGS_FILE,
            database_url=settings.database_url,
            database_schema=settings.database_schema,
        )
        lease = None
        if warnings.postgres and settings.background:
            lease = leases.Lease(settings.database_url, settings.database_schema, LEASE)
        return cls(
            rules,
            Catalog.load(files[2], domain, rules),
            watchdog,
            warnings,
            clock,
            notify,
            fingerprint=snapshot.fingerprint(files, settings.warn_lead_workdays),
            snapshot_events=settings.compliance_snapshot_events,
            lease=lease,
            candidate=settings.background,
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
            if self._lease is not None:
                await self._lease.open()  # tried once: a lone process is active at once
                self.warnings.fence = (self._lease.name, self._lease.holder)
            await self._start(store)
        except BaseException:
            if self._lease is not None:
                await self._lease.close()
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

    @property
    def active(self) -> bool:
        """This process stores the warnings (always, with SQLite); otherwise it
        stands by, answering from memory and warning its own supervisors."""
        if self._lease is not None and not self._lease.active:
            return False
        return self._active

    def _lease_changed(self, held: bool) -> None:
        if not held:
            self._active = False  # no write starts from now on
        self._wake.set()  # the ticker stores what it kept, or stands by

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
            if not self.active:
                pass  # the active process stores what this one knows
            elif self.watchdog.head != self.snapshot_cursor:
                await self._snapshot()
            else:
                await self._flush()
        finally:
            try:
                if self._lease is not None:
                    await self._lease.close()  # given up: another takes over at once
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
        # Rebuilt from the whole log (no snapshot, or one made with other
        # rules): what was stored before is replaced, not added to, so that a
        # warning today's rules no longer yield does not linger.
        self._replace = whole_log
        self._other_rules = whole_log and stored is not None
        self._pending += changes  # stored, not sent: nobody was following yet
        await self._take_turn()  # a long replay is snapshotted by the ticker, soon
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
            if not self.active or self._unsaved:
                # (Kept warnings while active: the lease lapsed for a moment
                # and came back without changing hands; they are stored now.)
                await self._take_turn()
            elif (
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

    async def _take_turn(self) -> None:
        """Become active if this process may and holds the lease; stand by otherwise."""
        if self._candidate and (self._lease is None or self._lease.active):
            await self._activate()
        if not self.active:
            self._keep_pending()
            await self._prune()

    async def _activate(self) -> None:
        """Store every warning kept while standing by, and those pending, with
        the progress they reach (replacing the record after a whole-log
        rebuild): from then on this process is the one writing."""
        kept = [alert for alert, _, _ in self._unsaved.values()]
        batch = [*kept, *self._pending]
        try:
            await self.warnings.save(
                batch, Progress(self.watchdog.head, self.fired_until), replace=self._replace
            )
        except Exception as exc:
            if isinstance(exc, leases.LeaseLost):
                log.info("compliance: the lease was lost before its warnings were stored")
            else:
                log.exception("compliance: storing %d warnings failed; retrying", len(batch))
            return
        # Those that came while storing stay pending (stored at the next flush).
        self._pending = self._pending[len(batch) - len(kept) :]
        self._unsaved.clear()
        self._replace = False
        # Stored under the lease (fenced); if it went meanwhile, stand by again.
        was_active, self._active = self._active, self._lease is None or self._lease.active
        if self._lease is not None and self._active and not was_active:
            log.info("compliance: active, %d warnings stored on taking over", len(batch))

    def _keep_pending(self) -> None:
        """Standing by: what would have been stored is kept until the active
        process has stored it (or this one takes over)."""
        for alert in self._pending:
            self._unsaved[alert.id] = (alert, self.watchdog.head, self.fired_until)
        self._pending = []

    async def _prune(self) -> None:
        """Drop the kept warnings the active process has stored: made by a seq
        and moment its stored progress covers. Not while this process's record
        would replace the stored one (its snapshot was made with other rules)
        until a snapshot with today's rules shows that the record was replaced."""
        now = asyncio.get_running_loop().time()
        if not self._unsaved or now - self._pruned_at < PRUNE_SECONDS:
            return
        self._pruned_at = now
        try:
            if self._other_rules:
                rows = await self.warnings.rows("SELECT fingerprint FROM snapshot")
                if not rows or rows[0][0] != self.fingerprint:
                    return
                self._other_rules = False
            stored = await self.warnings.progress()
        except Exception as exc:
            log.warning("compliance: reading the stored progress failed: %s", exc)
            return
        if stored is None:
            return
        # Pruned, this process's warnings are no longer all: they can add to
        # the stored record, never replace it.
        self._replace = False
        self._unsaved = {
            key: kept
            for key, kept in self._unsaved.items()
            if kept[1] > stored.cursor or kept[2] > stored.fired_until
        }

    async def _flush(self, *, force: bool = False) -> None:
        if not self.active:
            self._keep_pending()
            return
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
        if not self.active:
            self._snapshot_base = self.watchdog.head  # the active process takes them
            await self._flush()
            return
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
