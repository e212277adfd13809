"""compliance.db as `sunbid verify` and `sunbid rebuild` see it (a DerivedRecord).

What "equal to the log" means for warnings: a warning's facts are what the
log and the passing of time determine — its id (rule, project, the events
that caused it, level), rule, project, level, due, and whether it is
resolved. `check` replays the log up to the cursor stored with the warnings,
fires the timers due by the moment stored with them (`progress`), and
compares each warning's facts, naming the first that differs (by id). Its
`created_at`/`resolved_at` are not compared: they follow from the same
facts, and a record made before a rule was edited keeps the times it was
raised with. The snapshot is checked too: its cursor must not run ahead of
the warnings or the log, and a snapshot the server would trust (today's
fingerprint) must hold the state a replay to its cursor builds (tallies and
open deadlines). A snapshot with another fingerprint is not wrong, only
stale: a start discards it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.compliance import logread, snapshot
from server.compliance.records import Progress, Snapshot, WarningStore
from server.compliance.service import Compliance
from server.compliance.watchdog import Alert, Watchdog, iter_open
from server.core.clock import Clock
from server.core.projection import LogReader
from server.domain import Domain
from server.settings import Settings

WarningFacts = tuple[str, str, str, Any, bool]  # rule, project, level, due, resolved
FACT_NAMES = ("rule", "project", "level", "due", "resolved")


class ComplianceRecord:
    name = "compliance"
    note: str | None = None

    def __init__(self, compliance: Compliance) -> None:
        self.compliance = compliance  # loaded, not opened: its rules, files and store
        self.clock: Clock = compliance.clock

    @classmethod
    def load(cls, settings: Settings, domain: Domain, clock: Clock) -> ComplianceRecord:
        return cls(Compliance.load(settings, domain, clock, lambda warning: None))

    @property
    def store(self) -> WarningStore:
        return self.compliance.warnings

    def _fresh(self) -> Watchdog:
        return self.compliance.watchdog.fresh()

    async def check(self, log_reader: LogReader) -> str | None:
        if not self.store.postgres and not self.store.path.exists():
            if log_reader.head == 0:
                return None
            return f"{self.name}: {self.store.path.name} is missing"
        await self.store.open()
        try:
            return await self._check(log_reader)
        finally:
            await self.store.close()

    async def _check(self, log_reader: LogReader) -> str | None:
        progress = await self.store.progress()
        stored_snapshot = await self.store.snapshot()
        # No progress: an empty record, or one by a version that kept none
        # (left to the next start below); either is read up to the log's head.
        until = progress or Progress(log_reader.head, self.clock.now())
        if until.cursor > log_reader.head:
            return (
                f"{self.name}: warnings cover seq {until.cursor}, past the log's head "
                f"{log_reader.head}"
            )
        if stored_snapshot is not None and stored_snapshot.cursor > until.cursor:
            return (
                f"{self.name}: snapshot cursor {stored_snapshot.cursor} is past the warnings' "
                f"cursor {until.cursor}"
            )
        other_rules = (
            stored_snapshot is not None
            and stored_snapshot.fingerprint != self.compliance.fingerprint
        )
        older_version = stored_snapshot is None and progress is None and until.cursor > 0
        if other_rules or older_version:
            # Made with other rules, data files or code, or by a version that
            # kept neither progress nor snapshot: today's rules cannot judge it,
            # and the next start, finding no snapshot of today's to trust,
            # rebuilds the record from the whole log and replaces it. (A record
            # with progress and no snapshot yet, a server stopped early, is
            # compared as usual.)
            self.note = "was made with other rules, data files or code: the next start rebuilds it"
            return None
        dog = self._fresh()
        changes = await logread.replay(dog, log_reader, until.cursor)
        changes += dog.fire(until.fired_until)
        derived = {w.id: _facts(w) for w in changes}
        stored = {
            row[0]: (row[1], row[2], row[3], row[4], row[5]) for row in await self.store.all_facts()
        }
        for warning_id in sorted(derived.keys() | stored.keys()):
            mine, theirs = stored.get(warning_id), derived.get(warning_id)
            if mine == theirs:
                continue
            if theirs is None:
                return f"{self.name}: warning {warning_id} is stored; the log does not yield it"
            if mine is None:
                return f"{self.name}: warning {warning_id} is missing; the log yields it"
            for name, a, b in zip(FACT_NAMES, mine, theirs, strict=True):
                if a != b:
                    return f"{self.name}: warning {warning_id} {name} {a!r} != {b!r} (log)"
        if stored_snapshot is not None:  # made with today's rules (above)
            return await self._check_snapshot(log_reader, stored_snapshot)
        return None

    async def _check_snapshot(self, log_reader: LogReader, stored: Snapshot) -> str | None:
        if stored.chain != await logread.chain_at(log_reader, stored.cursor):
            return f"{self.name}: snapshot at seq {stored.cursor} was made from another log"
        kept = self._fresh()
        try:
            snapshot.load(kept, stored.state)
        except Exception as exc:
            return f"{self.name}: snapshot at seq {stored.cursor} cannot be read ({exc})"
        if kept.head != stored.cursor:
            return f"{self.name}: snapshot cursor {stored.cursor} != {kept.head} (its state)"
        dog = self._fresh()
        await logread.replay(dog, log_reader, stored.cursor)
        taken_at = await self.store.rows("SELECT taken_at FROM snapshot")
        dog.fire(datetime.fromisoformat(taken_at[0][0]))
        for what, mine, theirs in (
            ("tally", _tallies(kept), _tallies(dog)),
            ("open deadline", _deadlines(kept), _deadlines(dog)),
        ):
            for key in sorted(mine.keys() | theirs.keys()):
                if mine.get(key) != theirs.get(key):
                    return (
                        f"{self.name}: snapshot at seq {stored.cursor}: {what} {key} "
                        f"{mine.get(key)!r} != {theirs.get(key)!r} (log)"
                    )
        return None

    async def rebuild(self, log_reader: LogReader) -> None:
        """Warnings, progress and snapshot anew from the log, timers fired up to now."""
        await self.store.open()
        try:
            dog = self._fresh()
            changes = await logread.replay(dog, log_reader)
            now = self.clock.now()
            changes += dog.fire(now)
            state = snapshot.dump(dog)
            chain = await logread.chain_at(log_reader, dog.head)
            await self.store.clear()
            await self.store.save(
                {w.id: w for w in changes}.values(),
                Progress(dog.head, now),
                Snapshot(dog.head, self.compliance.fingerprint, chain, state),
            )
        finally:
            await self.store.close()


def _facts(warning: Alert) -> WarningFacts:
    doc = warning.to_json()
    return (doc["rule"], doc["project"], doc["level"], doc["due"], doc["resolved_at"] is not None)


def _tallies(dog: Watchdog) -> dict[str, Any]:
    return {
        "/".join(map(str, (*key, kind))): (t.on_time, t.late, t.open_breaches, t.too_short)
        for kind, tallies in (("legal", dog.tallies), ("advisory", dog.advisory_tallies))
        for key, t in tallies.items()
    }


def _deadlines(dog: Watchdog) -> dict[str, Any]:
    return {
        f"{d.rule.id}/{d.project.id}/{d.trigger_seq}": (d.due.isoformat(), sorted(d.fired))
        for d in iter_open(dog)
    }
