"""The public's cases at work in the server: filing, answering, the due-time
warnings and their timer, erasure, and the scorecard's response figures.

An answer is an `enquiry_answer` event in the log, appended by the API
(server/api/respond.py) between two steps here: `begin_answer` marks the
case (`answering_us`), the event is appended (the log refuses a second
answer to the same enquiry inside its transaction), and `answered` closes
the case with the event's seq. A process that dies between the append and
the close leaves the mark: the next start finds the event in the project's
timeline and closes the case (`repair`), or clears a mark whose append never
happened.

Timers. Every process that does background work (`settings.background`)
fires the warnings that came due (`CaseStore.fire`: whichever process gets
there first stores them, once) and erases closed cases' private text once
their time is up. Every process tails the stored warnings and hands each to
its own supervisors on `supervision`, within about a second.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson

from server.compliance.calendar import WorkCalendar
from server.core.clock import Clock
from server.core.errors import ApiError
from server.core.events import StoredEvent
from server.core.topics import ENQUIRY_ANSWER
from server.respond import deadlines, scorecard
from server.respond.cases import CaseRow, CaseStore
from server.respond.deadlines import CaseAlert, CaseClock, from_us, to_us
from server.respond.rules import CaseKind, ResponseRule, ResponseRules

log = logging.getLogger("sunbid.respond")

MAX_SLEEP = 1.0  # seconds between rounds: how late a warning or a tailed one may be
ERASE_EVERY = 5.0  # seconds between looks for cases whose private text is due to go
REPAIR_EVERY = 60.0  # seconds between looks for answers left half done
PROGRESS_EVERY = 60.0  # seconds: how often an idle timer records that it looked
FIRE_BATCH = 500
SCORECARD_SECONDS = 5.0
# An answer's mark this old is taken over: its append ended (or died) long ago.
STALE_ANSWER_US = 60_000_000  # another process's cases show in the scorecard this soon
ID_PREFIX = {CaseKind.ENQUIRY: "q", CaseKind.DISCLOSURE_REQUEST: "r"}
OPEN = {CaseKind.ENQUIRY: ("open",), CaseKind.DISCLOSURE_REQUEST: ("received", "extended")}
STATUSES = {
    CaseKind.ENQUIRY: ("open", "answered", "declined"),
    CaseKind.DISCLOSURE_REQUEST: ("received", "extended", "replied"),
}

Notify = Callable[[dict[str, Any]], None]


class Sealer(Protocol):
    """AES-GCM with the data directory's key (push/channels/contacts.py ContactCipher)."""

    def seal(self, address: str) -> bytes: ...
    def open(self, sealed: bytes) -> str: ...


class CaseNotFound(Exception):
    """No such case, or not the right ticket: the two are not told apart."""


class CaseConflict(ApiError):
    """The case is not in a state that allows this (409; its code says why)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(409, code, message)


@dataclass(frozen=True)
class Filed:
    case: CaseRow
    ticket: str
    created: bool = True  # False: a repeat of a filing with the same Idempotency-Key


@dataclass(frozen=True)
class Retry:
    """A filing's Idempotency-Key and what was filed with it: a repeat (a
    phone that lost the 201) gets the same case and ticket back, not a second."""

    key: str
    fingerprint: str


class Respond:
    def __init__(
        self,
        store: CaseStore,
        rules: ResponseRules,
        calendar: WorkCalendar,
        clock: Clock,
        sealer: Sealer,
        notify: Notify,
        *,
        lead_workdays: int = 1,
        keep: timedelta = timedelta(days=30),
        background: bool = True,
    ) -> None:
        self.store = store
        self.rules = rules
        self.calendar = calendar
        self.clock = clock
        self.sealer = sealer
        self.notify = notify
        self.lead = lead_workdays
        self.keep = keep
        self.background = background
        self._last_n = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._ticking = asyncio.Lock()
        self._closing = False
        self._erased_at = 0.0
        self._progress_at = 0.0
        self._repaired_at = time.monotonic()
        self._timeline: Callable[[str], Any] = _no_timeline
        self._scorecards: dict[tuple[Any, ...], tuple[float, dict[str, dict[str, Any]]]] = {}

    # --- start and stop --------------------------------------------------------------

    async def open(self, timeline: Callable[[str], Any]) -> None:
        """Open the store, settle answers a dead process left half done, start the timer."""
        self._timeline = timeline
        await self.store.open()
        try:
            await self.repair()
            if self.background:
                await self.redate_estimated()
            self._last_n = await self.store.last_warning_number()
            if self.background:
                await self._fire(self.clock.now())  # what came due while no one was running
        except BaseException:
            await self.store.close()
            raise
        self._task = asyncio.create_task(self._run(), name="respond-timers")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.store.close()

    async def repair(self) -> None:
        """Settle the answers whose process died (or lost its database) between
        marking the case and closing it: the log says whether the answer was
        appended. Marks younger than a minute are left to the process that
        made them, which may still be appending."""
        stale = self.clock.now_us() - STALE_ANSWER_US
        for case in await self.store.half_answered(stale):
            events: list[StoredEvent] = await self._timeline(case.project or "")
            answer = next((e for e in events if answers(e, case.id)), None)
            if answer is not None:
                await self.answered(case, answer, None)
                log.info("respond: enquiry %s was answered by seq %d", case.id, answer.seq)
            elif case.answering_us is not None:
                await self.store.forget_answering(case.id, case.answering_us)

    # --- filing ----------------------------------------------------------------------

    async def ask(
        self,
        project: Mapping[str, Any],
        question: str,
        contact: str | None,
        retry: Retry | None = None,
    ) -> Filed:
        private = {"question": question, "contact": contact}
        return await self._file(
            CaseKind.ENQUIRY, project["agency"], project["id"], project["category"], private, retry
        )

    async def request(
        self, agency: str, subject: str, description: str, contact: str, retry: Retry | None = None
    ) -> Filed:
        private = {"subject": subject, "description": description, "contact": contact}
        return await self._file(CaseKind.DISCLOSURE_REQUEST, agency, None, None, private, retry)

    async def _file(
        self,
        kind: CaseKind,
        agency: str,
        project: str | None,
        category: str | None,
        private: dict[str, Any],
        retry: Retry | None = None,
    ) -> Filed:
        retry_digest = _digest(f"{kind}:{retry.key}") if retry is not None else None
        now = self.clock.now()
        rule = self.rules.for_case(kind, category)
        due = self.calendar.due(now, rule.amount, rule.unit)
        ticket = secrets.token_urlsafe(32)
        if retry is not None:
            private = {**private, "ticket": ticket}  # for a repeat to be given again
        draft = CaseRow(
            id="",
            kind=str(kind),
            agency=agency,
            project=project,
            category=category,
            rule=rule.id,
            status=OPEN[kind][0],
            received_us=to_us(now),
            first_due_us=to_us(due.at),
            due_us=to_us(due.at),
            due_estimated=int(due.estimated),
            extended_us=None,
            closed_us=None,
            alert_us=None,
            answering_us=None,
            answer_seq=None,
            linked=False,
            outcome=None,
            score=None,
            rated_us=None,
            ticket_digest=_digest(ticket),
            private=self._seal(private),
            erased_us=None,
            retry_digest=retry_digest,
            retry_fingerprint=retry.fingerprint if retry is not None else None,
        )
        draft = replace(draft, alert_us=self.next_alert_us(draft, now))
        for _ in range(3):  # 60 random bits: a clash is all but impossible, but cheap to handle
            case = replace(draft, id=ID_PREFIX[kind] + _random_id())
            if await self.store.insert(case):
                self._changed()
                return Filed(case, ticket)
            if retry is not None and retry_digest is not None:
                earlier = await self.store.by_retry(retry_digest)
                if earlier is not None:  # filed before with this key: that case
                    return self._repeat(earlier, retry)
        raise RuntimeError("no free case id after three tries")

    def _repeat(self, earlier: CaseRow, retry: Retry) -> Filed:
        if earlier.retry_fingerprint != retry.fingerprint:
            raise CaseConflict(
                "idempotency_key_reused", "this Idempotency-Key was used to file something else"
            )
        ticket = self.private(earlier).get("ticket")
        if ticket is None:  # erased since: the ticket cannot be given again
            raise CaseConflict(
                "idempotency_key_reused", "this Idempotency-Key's case was closed and erased"
            )
        return Filed(earlier, ticket, created=False)

    # --- the asker's and requester's view --------------------------------------------

    async def find(self, kind: CaseKind, case_id: str, ticket: str | None) -> CaseRow:
        """The case if `ticket` is its ticket; CaseNotFound otherwise, whichever is wrong."""
        case = await self.store.get(case_id) if case_id.startswith(ID_PREFIX[kind]) else None
        wanted = case.ticket_digest if case is not None else _digest("")
        given = _digest(ticket or "")
        if not hmac.compare_digest(given, wanted) or case is None or not ticket:
            raise CaseNotFound(case_id)
        return case

    async def staff_get(self, kind: CaseKind, case_id: str) -> CaseRow:
        case = await self.store.get(case_id) if case_id.startswith(ID_PREFIX[kind]) else None
        if case is None or case.kind != kind:
            raise CaseNotFound(case_id)
        return case

    def private(self, case: CaseRow) -> dict[str, Any]:
        """What the person wrote (and staff's words to them); {} once erased."""
        if case.private is None:
            return {}
        parsed: dict[str, Any] = orjson.loads(self.sealer.open(case.private))
        return parsed

    def clock_of(self, case: CaseRow) -> CaseClock:
        return CaseClock(
            id=case.id,
            kind=CaseKind(case.kind),
            agency=case.agency,
            project=case.project,
            category=case.category,
            rule=self.rules[case.rule] if case.rule in self.rules else self._lost_rule(case),
            received=from_us(case.received_us),
            first_due=from_us(case.first_due_us),
            due=from_us(case.due_us),
            extended=_moment(case.extended_us),
            closed=_moment(case.closed_us),
        )

    def _lost_rule(self, case: CaseRow) -> ResponseRule:
        """A rule renamed or removed in the file since the case was received:
        the case keeps its due time and its rule's id (its warnings' ids do
        not change); they cite the kind's rule of today for the rest."""
        return replace(self.rules.for_case(CaseKind(case.kind), case.category), id=case.rule)

    # --- staff -----------------------------------------------------------------------

    async def begin_answer(self, case: CaseRow) -> int:
        now = self.clock.now_us()
        if not await self.store.begin_answer(case.id, now, now - STALE_ANSWER_US):
            fresh = await self.store.get(case.id)
            if fresh is not None and fresh.status == "open":
                raise CaseConflict("being_answered", "another answer is being published")
            raise _not_open(fresh or case)
        return now

    async def answered(self, case: CaseRow, event: StoredEvent, actor: str | None) -> None:
        """Close the enquiry with the event that answers it: the log is the
        truth, so nothing else closes a case while its answer is appended."""
        closed = datetime.fromisoformat(orjson.loads(event.json)["published_at"])
        if await self._close(
            case,
            "answered",
            closed,
            ("answered", actor, {"seq": event.seq}),
            answer_seq=event.seq,
            outcome="answered",
        ):
            return
        now = await self.store.get(case.id)
        if now is None or now.answer_seq != event.seq:
            log.error(
                "respond: enquiry %s is answered by seq %d but could not be closed by it (%s)",
                case.id,
                event.seq,
                now.status if now else "gone",
            )

    async def link(self, case: CaseRow, earlier: CaseRow, actor: str) -> None:
        if earlier.project != case.project or earlier.answer_seq is None or earlier.id == case.id:
            raise ApiError(
                422,
                "not_answered",
                f"same_as: enquiry {earlier.id} is not an answered enquiry of this project",
                {"field": "same_as"},
            )
        await self._close_unmarked(
            case,
            "answered",
            ("linked", actor, {"seq": earlier.answer_seq, "same_as": earlier.id}),
            answer_seq=earlier.answer_seq,
            linked=True,
            outcome="answered",
        )

    async def decline(self, case: CaseRow, reason: str, actor: str) -> CaseRow:
        await self._close_unmarked(
            case,
            "declined",
            ("declined", actor, None),
            outcome="declined",
            write={"reason": reason},
        )
        return await self.staff_get(CaseKind.ENQUIRY, case.id)

    async def reply(
        self, case: CaseRow, outcome: str, text: str, basis: str | None, actor: str
    ) -> CaseRow:
        await self._close_unmarked(
            case,
            "replied",
            ("replied", actor, {"outcome": outcome}),
            outcome=outcome,
            write={"reply": {"text": text, "basis": basis}},
        )
        return await self.staff_get(CaseKind.DISCLOSURE_REQUEST, case.id)

    async def _close_unmarked(
        self,
        case: CaseRow,
        status: str,
        history: tuple[str, str | None, dict[str, Any] | None],
        *,
        write: dict[str, Any] | None = None,
        **closing: Any,
    ) -> None:
        """Close a case as staff decide (not by an answer's event): only as it
        was read, so that what changed meanwhile (an extension's reason in
        the sealed document) is kept — read again and tried once more — and
        never while an answer to it is being appended."""
        for _ in range(2):
            if case.status not in OPEN[CaseKind(case.kind)]:
                raise _not_open(case)
            private = {**self.private(case), **write} if write is not None else None
            if await self._close(
                case, status, self.clock.now(), history, private=private, unmarked=True, **closing
            ):
                return
            fresh = await self.store.get(case.id)
            if fresh is None:
                raise _not_open(case)
            if fresh.answering_us is not None and fresh.closed_us is None:
                raise CaseConflict("being_answered", "an answer to it is being published")
            case = fresh
        raise CaseConflict("changed", "the case changed meanwhile: reload it")

    async def extend(self, case: CaseRow, reason: str, actor: str) -> CaseRow:
        rule = self.clock_of(case).rule
        if case.status != "received":
            if case.status == "extended":
                raise CaseConflict("already_extended", "the period was extended once already")
            raise _not_open(case)
        if not rule.extension:
            raise CaseConflict("not_extendable", f"rule {rule.id} allows no extension")
        now = self.clock.now()
        if to_us(now) > case.due_us:
            raise CaseConflict(
                "overdue", "the period has run out: it may be extended only before it ends"
            )
        new_due = self.calendar.due(from_us(case.due_us), rule.extension, rule.unit)
        extended = replace(
            case, extended_us=to_us(now), due_us=to_us(new_due.at), status="extended"
        )
        private = {**self.private(case), "extension": reason}
        done = await self.store.extend_case(
            case.id,
            extended_us=to_us(now),
            due_us=to_us(new_due.at),
            due_estimated=new_due.estimated,
            alert_us=self.next_alert_us(extended, now),
            private=self._seal(private) if case.private is not None else None,
            due=self.alerts_now(case, now),
            actor=actor,
        )
        if not done:
            raise CaseConflict("already_extended", "the case changed meanwhile: reload it")
        self._changed()
        return await self.staff_get(CaseKind.DISCLOSURE_REQUEST, case.id)

    async def rate(self, case: CaseRow, score: int, comment: str | None) -> None:
        if case.status != "answered":
            raise CaseConflict("not_answered", "an enquiry is rated once it is answered")
        if comment and case.private is None:
            raise CaseConflict("erased", "this case was erased: rate it without a comment")
        private = {**self.private(case), "comment": comment} if comment else None
        sealed = self._seal(private) if private is not None else None
        if not await self.store.rate(case.id, score, sealed, self.clock.now_us()):
            raise CaseConflict("already_rated", "this answer was rated already")
        self._changed()

    async def _close(
        self,
        case: CaseRow,
        status: str,
        closed: datetime,
        history: tuple[str, str | None, dict[str, Any] | None],
        *,
        answer_seq: int | None = None,
        linked: bool = False,
        outcome: str | None = None,
        private: dict[str, Any] | None = None,
        unmarked: bool = False,
    ) -> bool:
        done = await self.store.close_case(
            case.id,
            expect=case.status,
            status=status,
            closed_us=to_us(closed),
            private=self._seal(private) if private is not None and case.private else None,
            due=self.alerts_now(case, closed),
            history=history,
            answer_seq=answer_seq,
            linked=linked,
            outcome=outcome,
            unmarked=unmarked,
        )
        if done:
            self._changed()
        return done

    async def redate_estimated(self) -> int:
        """Count again the due times that counted days the calendar did not
        know then (next year's holidays, before the State Council announced
        them), for the open cases that have warned nobody yet: the calendar
        may know them now."""
        redated = 0
        now = self.clock.now()
        for case in await self.store.estimated_open():
            rule = self.clock_of(case).rule
            first = self.calendar.due(from_us(case.received_us), rule.amount, rule.unit)
            due, estimated = first.at, first.estimated
            if case.extended_us is not None and rule.extension:
                extended = self.calendar.due(first.at, rule.extension, rule.unit)
                due, estimated = extended.at, first.estimated or extended.estimated
            fixed = replace(
                case,
                first_due_us=to_us(first.at),
                due_us=to_us(due),
                due_estimated=int(estimated),
            )
            fixed = replace(fixed, alert_us=self.next_alert_us(fixed, now))
            if fixed != case and await self.store.redate(case, fixed):
                redated += 1
        if redated:
            log.info("respond: %d due times counted again with today's calendar", redated)
        return redated

    # --- the scorecard ---------------------------------------------------------------

    async def scorecard(
        self, agency: str | None, category: str | None, month: str | None
    ) -> dict[str, dict[str, Any]]:
        """Per agency: `enquiries` and `disclosure_requests` figures (a
        category names projects, so with one only enquiries are counted);
        kept a few seconds, and forgotten when this process changes a case."""
        key = (agency, category, month)
        cached = self._scorecards.get(key)
        if cached is not None and time.monotonic() - cached[0] < SCORECARD_SECONDS:
            return cached[1]
        tallies, taken = await self.store.tallies(
            self.clock.now_us(), agency, category, scorecard.month_range(month)
        )
        figures = scorecard.figures(tallies, taken)
        if len(self._scorecards) > 1000:
            self._scorecards.clear()
        self._scorecards[key] = (time.monotonic(), figures)
        return figures

    # --- the timer -------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self.tick()
            except Exception:
                log.exception("respond: a round of timers failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), MAX_SLEEP)
            self._wake.clear()

    async def tick(self) -> None:
        """One round: fire what came due, erase what is due to go, hand new
        and resolved warnings to this process's supervisors."""
        async with self._ticking:  # one round at a time (the timer task, a test)
            now = self.clock.now()
            if self.background:
                await self._fire(now)
                await self._erase(now)
                if time.monotonic() - self._repaired_at >= REPAIR_EVERY:
                    self._repaired_at = time.monotonic()
                    await self.repair()
            await self._tail()

    async def _fire(self, now: datetime) -> None:
        now_us = to_us(now)
        while True:
            due = await self.store.due_alerts(now_us, FIRE_BATCH)
            if not due:
                break
            batch = []
            for case in due:
                alerts, next_us = self.plan(case, now)
                batch.append((case, next_us, alerts))
            await self.store.fire(batch, now_us)
            self._progress_at = time.monotonic()
            if len(due) < FIRE_BATCH:
                return
        if time.monotonic() - self._progress_at >= PROGRESS_EVERY:
            await self.store.mark_progress(now_us)
            self._progress_at = time.monotonic()

    async def _erase(self, now: datetime) -> None:
        if time.monotonic() - self._erased_at >= ERASE_EVERY:
            self._erased_at = time.monotonic()
            await self.erase_due(now)

    async def erase_due(self, now: datetime) -> int:
        """Erase what people wrote in the cases closed longer than `keep` ago."""
        erased = await self.store.erase_closed(to_us(now - self.keep), to_us(now))
        if erased:
            log.info("respond: erased what people wrote in %d closed cases", erased)
        return erased

    async def _tail(self) -> None:
        while True:
            rows = await self.store.warnings_after(self._last_n)
            for n, doc in rows:
                self._last_n = n
                self.notify(orjson.loads(doc))
            if len(rows) < 500:
                return

    def _changed(self) -> None:
        self._scorecards.clear()
        self._wake.set()  # its warnings' resolutions go to supervisors now

    def _seal(self, private: Mapping[str, Any]) -> bytes:
        return self.sealer.seal(orjson.dumps(private).decode())

    # --- what derived.py and the API share -----------------------------------------

    def alerts_now(self, case: CaseRow, now: datetime) -> list[CaseAlert]:
        return deadlines.alerts(self.clock_of(case), self.calendar, self.lead, now)

    def next_alert_us(self, case: CaseRow, now: datetime) -> int | None:
        return _us(deadlines.next_alert(self.clock_of(case), self.calendar, self.lead, now))

    def plan(self, case: CaseRow, now: datetime) -> tuple[list[CaseAlert], int | None]:
        """The case's warnings by `now`, and when its next one becomes true."""
        clock = self.clock_of(case)
        return (
            deadlines.alerts(clock, self.calendar, self.lead, now),
            _us(deadlines.next_alert(clock, self.calendar, self.lead, now)),
        )


async def _no_timeline(project: str) -> list[StoredEvent]:
    return []  # before open(): no answer is looked for


def answers(event: StoredEvent, case_id: str) -> bool:
    """Whether `event` is the published answer to enquiry `case_id`."""
    if event.stage != ENQUIRY_ANSWER:
        return False
    data = orjson.loads(event.json).get("data")
    return isinstance(data, dict) and data.get("enquiry") == case_id


def _not_open(case: CaseRow) -> CaseConflict:
    return CaseConflict("not_open", f"the case is {case.status} already")


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode("utf-8", "surrogatepass")).hexdigest()


def _random_id() -> str:
    return base64.b32encode(secrets.token_bytes(8)).decode("ascii").lower()[:12]


def _us(moment: datetime | None) -> int | None:
    return None if moment is None else to_us(moment)


def _moment(at_us: int | None) -> datetime | None:
    return None if at_us is None else from_us(at_us)
