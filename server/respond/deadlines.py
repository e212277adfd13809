"""When a case is due, and the warnings it has by a given moment: pure
functions of the case's record, the calendar and the time (no I/O).

A case has one period, or two once a disclosure request was extended: the
first from its receipt to the first due time (ended by the extension), the
second from the extension to the new due time. In each, like a stage
deadline (server/compliance/watchdog.py), the watchdog warns `approaching`
at the start of the working day `lead` working days before the last day
(not when that comes before the period starts), and `breach` once the last
day is over. A warning is resolved when its period ends: the case closed,
or the period extended. Its id is made of what caused it (rule, case,
period, level) and its `created_at` is the moment it became true, so that
whoever computes it (a timer, a restart catching up, `sunbid rebuild`)
finds the same warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

from server.compliance.calendar import LEGAL_TZ, WorkCalendar
from server.respond.rules import CaseKind, ResponseRule

AFTER = timedelta(microseconds=1)  # from a period's last instant to its breach
APPROACHING = "approaching"
BREACH = "breach"
CASE_WORDS = {CaseKind.ENQUIRY: "咨询", CaseKind.DISCLOSURE_REQUEST: "依申请公开申请"}


@dataclass(frozen=True, slots=True)
class CaseClock:
    """What a case's warnings follow from (a row of the cases table)."""

    id: str
    kind: CaseKind
    agency: str
    project: str | None
    category: str | None
    rule: ResponseRule
    received: datetime
    first_due: datetime  # the due time it was received with
    due: datetime  # the due time now: first_due, or the extended one
    extended: datetime | None  # when the period was extended (once at most)
    closed: datetime | None


@dataclass(frozen=True, slots=True)
class CaseAlert:
    id: str
    case: CaseClock
    level: str
    due: datetime
    created_at: datetime
    resolved_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The warning as supervisors get every other one, with the case it is about."""
        rule, case = self.rule, self.case
        return {
            "id": self.id,
            "rule": rule.id,
            "project": case.project,
            "agency": case.agency,
            "category": case.category,
            "due": iso(self.due),
            "basis": rule.basis,
            "basis_en": rule.basis_en,
            "rule_name": {"zh": rule.name, "en": rule.name_en},
            "advisory": rule.advisory,
            "level": self.level,
            "state": "overdue" if self.level == BREACH else self.level,
            "message": self.message(),
            "created_at": iso(self.created_at),
            "resolved_at": iso(self.resolved_at),
            "case": {"kind": str(case.kind), "id": case.id},
        }

    @property
    def rule(self) -> ResponseRule:
        return self.case.rule

    def message(self) -> str:
        """Says which case and by when, never what it asks or who asked."""
        case = self.case
        what = CASE_WORDS[case.kind] + " " + case.id
        if case.project is not None:
            what += f"（项目 {case.project}）"
        day = beijing(self.due).date().isoformat()
        rule = f"「{self.rule.name}」（{self.rule.basis}）"
        if self.level == BREACH:
            return f"{what}已超过答复期限 {day}：{rule}"
        return f"{what}应于 {day} 前答复：{rule}"


def approaching_at(
    calendar: WorkCalendar, start: datetime, due: datetime, lead: int
) -> datetime | None:
    """The start of the working day `lead` working days before the last day;
    None if that is not after the period's start (too short to warn ahead)."""
    if lead <= 0:
        return None
    last_day = beijing(due).date()
    warn_day = calendar.shift_workdays(last_day, -lead)
    moment = datetime.combine(warn_day, time.min, LEGAL_TZ)
    return moment if moment > start else None


def periods(case: CaseClock) -> list[tuple[int, datetime, datetime, datetime | None]]:
    """(number, start, due, end or None while it runs) of each period."""
    if case.extended is None:
        return [(0, case.received, case.due, case.closed)]
    return [
        (0, case.received, case.first_due, case.extended),
        (1, case.extended, case.due, case.closed),
    ]


def moments(
    calendar: WorkCalendar, lead: int, start: datetime, due: datetime
) -> list[tuple[str, datetime]]:
    """When a period's warnings become true, in order."""
    found = []
    approaching = approaching_at(calendar, start, due, lead)
    if approaching is not None:
        found.append((APPROACHING, approaching))
    found.append((BREACH, due + AFTER))
    return found


def alerts(case: CaseClock, calendar: WorkCalendar, lead: int, now: datetime) -> list[CaseAlert]:
    """Every warning the case has by `now`, resolved or not, in time order."""
    found = []
    for number, start, due, end in periods(case):
        for level, moment in moments(calendar, lead, start, due):
            if moment > now or (end is not None and end <= moment):
                continue
            resolved = end if end is not None and end <= now else None
            found.append(
                CaseAlert(
                    f"{case.rule.id}/{case.id}/{number}/{level}", case, level, due, moment, resolved
                )
            )
    return found


def next_alert(
    case: CaseClock, calendar: WorkCalendar, lead: int, after: datetime
) -> datetime | None:
    """The first moment after `after` at which a warning of the running period
    becomes true; None once the case is closed or both have come."""
    if case.closed is not None:
        return None
    _, start, due, _ = periods(case)[-1]
    for _, moment in moments(calendar, lead, start, due):
        if moment > after:
            return moment
    return None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EIGHT_HOURS = timedelta(hours=8)
BEIJING = timezone(EIGHT_HOURS)


def to_us(moment: datetime) -> int:
    """Epoch microseconds, exactly (the cases table's times)."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_us(at_us: int) -> datetime:
    """Beijing time, as a fixed +08:00 (China has kept one offset, without
    summer time, since 1991): a tenth of the cost of the zone's rules, read
    for every case at a rebuild."""
    seconds, micro = divmod(at_us, 1_000_000)
    return datetime.fromtimestamp(seconds, BEIJING).replace(microsecond=micro)


def iso(moment: datetime | None) -> str | None:
    """Beijing time in milliseconds, as every compliance time is (they sort as text)."""
    if moment is None:
        return None
    return beijing(moment).isoformat(timespec="milliseconds")


def beijing(moment: datetime) -> datetime:
    """The same instant in Beijing time (as it is, when it already is)."""
    return moment if moment.utcoffset() == EIGHT_HOURS else moment.astimezone(BEIJING)
