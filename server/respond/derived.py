"""respond.db as `sunbid verify` and `sunbid rebuild` see it (a DerivedRecord).

The cases are a source of their own (what the public filed and staff did),
not derived from the log; two things about them are, and are checked:

- answers: every `enquiry_answer` event in the log closes the enquiry it
  names, with its seq, and every enquiry closed by an answer of its own
  names an event of the log that answers it;
- warnings: what `case_warnings` holds is what the cases yield
  (server/respond/deadlines.py): each stored warning is one they yield now,
  with the same level, due time and resolution, and each warning that was
  true by the time the timer last recorded (`case_progress`) is stored.

`rebuild` closes the enquiries whose answer is in the log and recomputes
every warning from the cases.
"""

from __future__ import annotations

from typing import Any

import orjson

from server.core.events import StoredEvent
from server.core.projection import LogReader
from server.core.topics import ENQUIRY_ANSWER
from server.respond.deadlines import from_us, iso, to_us
from server.respond.service import Respond

PAGE = 1000
COMPARED = ("rule", "level", "due", "resolved_at", "created_at")


class RespondRecord:
    name = "respond"
    note: str | None = None

    def __init__(self, respond: Respond) -> None:
        self.respond = respond  # not opened: its store, rules and calendar
        self.store = respond.store

    async def check(self, log_reader: LogReader) -> str | None:
        if not self.store.postgres and not self.store.path.exists():
            answers = await _answers(log_reader)
            if answers:
                seq = min(answers)
                return f"{self.name}: {self.store.path.name} is missing; seq {seq} answers a case"
            return None
        await self.store.open()
        try:
            return await self._check_answers(log_reader) or await self._check_warnings()
        finally:
            await self.store.close()

    async def _check_answers(self, log_reader: LogReader) -> str | None:
        in_log = await _answers(log_reader)
        stored = await self.store.answered_seqs()
        for seq in sorted(in_log.keys() | stored.keys()):
            if in_log.get(seq) == stored.get(seq):
                continue
            if seq not in stored:
                return f"{self.name}: seq {seq} answers enquiry {in_log[seq]}, not closed by it"
            if seq not in in_log:
                return f"{self.name}: enquiry {stored[seq]} is closed by seq {seq}, no answer"
            return f"{self.name}: seq {seq} answers enquiry {in_log[seq]}, not {stored[seq]}"
        return None

    async def _check_warnings(self) -> str | None:
        respond = self.respond
        now = respond.clock.now()
        fired = await self.store.fired_until()
        until = from_us(fired) if fired is not None else None
        derived: dict[str, dict[str, Any]] = {}
        for case in await self.store.all_cases():
            for alert in respond.alerts_now(case, now):
                derived[alert.id] = alert.to_json()
        stored = await self.store.all_warnings()
        for warning_id in sorted(derived.keys() | stored.keys()):
            mine, theirs = stored.get(warning_id), derived.get(warning_id)
            if mine is None:
                assert theirs is not None
                if until is not None and theirs["created_at"] <= iso(until):
                    return f"{self.name}: warning {warning_id} is missing; the cases yield it"
                continue  # true since the timer last looked: it fires at the next round
            if theirs is None:
                return f"{self.name}: warning {warning_id} is stored; the cases do not yield it"
            for field in COMPARED:
                if mine[field] != theirs[field]:
                    return (
                        f"{self.name}: warning {warning_id} {field} {mine[field]!r} != "
                        f"{theirs[field]!r} (the cases)"
                    )
        return None

    async def rebuild(self, log_reader: LogReader) -> None:
        if not self.store.postgres and not self.store.path.exists():
            return
        await self.store.open()
        try:
            respond = self.respond
            cases = await self.store.all_cases()
            by_id = {case.id: case for case in cases}
            closed = 0
            for seq, case_id in (await _answers(log_reader)).items():
                case = by_id.get(case_id)
                if case is not None and case.answer_seq != seq:
                    await respond.answered(case, await _event(log_reader, seq), None)
                    closed += 1
            if closed:
                cases = await self.store.all_cases()
            now = respond.clock.now()
            alerts, next_alerts = [], {}
            for case in cases:
                found, next_us = respond.plan(case, now)
                alerts += found
                if next_us != case.alert_us:
                    next_alerts[case.id] = next_us
            await self.store.replace_warnings(alerts, next_alerts, to_us(now))
        finally:
            await self.store.close()


async def _answers(log_reader: LogReader) -> dict[int, str]:
    """seq → the enquiry it answers, for every enquiry_answer event of the log."""
    found: dict[int, str] = {}
    since = 0
    wanted = {"all": frozenset({ENQUIRY_ANSWER})}
    while events := await log_reader.events_since(since, wanted, PAGE):
        for event in events:
            data = orjson.loads(event.json).get("data") or {}
            found[event.seq] = str(data.get("enquiry"))
        since = events[-1].seq
    return found


async def _event(log_reader: LogReader, seq: int) -> StoredEvent:
    events = await log_reader.events_since(seq - 1, None, 1)
    assert events and events[0].seq == seq
    return events[0]
