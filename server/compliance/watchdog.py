"""The compliance watchdog: statutory deadlines and warnings, derived from the log.

Everything here is a function of the events (in seq order) and the time: no
I/O, no clock of its own. `observe` takes each event once; `fire` takes the
current time and returns the warnings that became true by then. The same
code rebuilds the state from the whole log at start-up and follows it live,
and every warning gets an id made of what caused it (rule, project, the
events involved, level) and the moment it became true as `created_at` — so
a rebuild finds exactly the warnings a running server found, and a restart
neither loses nor doubles one.

Two kinds of rule (rules.py):

- `due_within`: an event opens a deadline; the awaited stage closes it. The
  period counts from the rule's `start` (rules.py: the event's publication,
  or its occurred_at where the statute counts from a real-world moment). The
  watchdog warns `approaching` at the start of the working day `lead`
  working days before the last day, and `breach` once the last day is over.
  Both are resolved when the awaited stage is published. What is already
  true when the trigger is published (a late-published evaluation whose
  period ran out) is found with it, dated by that publication: a breach at
  once, not a timer's.
  A `failed` event (流标, 终止) voids the project's open deadlines.
- `at_least`: checked when both moments are known (usually when the later
  one is published); a violation is a `breach` with no due time. It stays
  open: publishing cannot undo it, a supervisor has to look at it.

A rule that applies only where some facts hold (rules.py, `applies_when`)
is judged by the facts the log holds when the rule is checked: a project's
own (`must_tender`, `method` …: the latest value its events carry, learnt
before the event's rules are checked) and its agency's (the directory's).

Advisory rules (local practice, not law) are tallied apart: the public
scorecard's figures count only the law, and show the advisory ones beside.

An event missing a time a rule needs (`notice.data.deadline`, …) is still a
disclosure: it gets a `data_incomplete` warning, resolved when a later event
of that stage brings the time.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import orjson

from server.compliance.calendar import LEGAL_TZ, WorkCalendar
from server.compliance.rules import AGENCY_FACTS, ANY, PROJECT_FACTS, Kind, Ref, Rule, Rules
from server.core.events import StoredEvent
from server.domain import Domain

YEARS = (1990, 2199)  # data times outside these are mistakes, reported as data_incomplete
AFTER = timedelta(microseconds=1)  # from a period's last instant to the breach
NOTHING: frozenset[str] = frozenset()
NO_DATA: Mapping[str, Any] = MappingProxyType({})  # shared by the many events without rule data
ENDED = "failed"  # the stage that ends a transaction early: its deadlines are void
AMENDED = "amended"  # the project's own fields changed: data.changes holds them
CORRECTION = "correction"  # a published fact corrected: data.field, data.was, data.now
BEIJING = timedelta(hours=8)  # China has kept one offset, without summer time, since 1991


class Level(StrEnum):
    APPROACHING = "approaching"
    BREACH = "breach"
    DATA_INCOMPLETE = "data_incomplete"


TIMED = frozenset((Level.APPROACHING, Level.BREACH))  # what a deadline fires


class Incomplete(ValueError):
    """An event lacks a time a rule needs, or has one that is not a time."""


@dataclass(slots=True)  # not frozen: frozen dataclasses are slow to build, a million at start-up
class Fact:
    """What the watchdog keeps of one event: its moments and the data times rules read."""

    seq: int
    project: str
    category: str
    agency: str
    stage: str
    published_at: datetime
    occurred_at: datetime
    data: Mapping[str, Any]

    @classmethod
    def of(cls, event: StoredEvent, keep: frozenset[str] = frozenset()) -> Fact:
        doc = orjson.loads(event.json)
        published = datetime.fromisoformat(doc["published_at"])
        occurred = doc.get("occurred_at")
        data = doc.get("data")
        if occurred == doc["published_at"]:
            occurred = None  # the common case: one parse is enough
        if event.stage == AMENDED and isinstance(data, dict):
            data = data.get("changes")
        return cls(
            seq=event.seq,
            project=event.project,
            category=event.category,
            agency=event.agency,
            stage=event.stage,
            published_at=published,
            occurred_at=datetime.fromisoformat(occurred) if occurred else published,
            data=_kept(data, keep, event.stage == AMENDED),
        )

    def moment(self, ref: Ref) -> datetime:
        """The time `ref` names in this event; Incomplete if the data lacks it."""
        if ref.field == "published_at":
            return self.published_at
        if ref.field == "occurred_at":
            return self.occurred_at
        key = ref.data_key
        assert key is not None, ref
        return _parse_time(self.data.get(key), f"{self.stage}.data.{key}")


@dataclass(slots=True, eq=False)
class Alert:
    """A compliance warning (the API's word; the class name keeps clear of the builtin)."""

    id: str
    rule: Rule
    project: str
    agency: str
    category: str
    level: Level
    due: datetime | None
    message: str
    created_at: datetime
    resolved_at: datetime | None = None

    @property
    def state(self) -> str:
        """What the warning says in words the app shows: a minimum period left
        too short (时限不足) is not a deadline passed (已超期)."""
        if self.level is not Level.BREACH:
            return str(self.level)
        return "too_short" if self.rule.kind is Kind.AT_LEAST else "overdue"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule.id,
            "project": self.project,
            "agency": self.agency,
            "category": self.category,
            "due": _iso(self.due),
            "basis": self.rule.basis,
            "basis_en": self.rule.basis_en,
            "rule_name": {"zh": self.rule.name, "en": self.rule.name_en},
            "advisory": self.rule.advisory,
            "level": str(self.level),
            "state": self.state,
            "message": self.message,
            "created_at": _iso(self.created_at),
            "resolved_at": _iso(self.resolved_at),
        }


@dataclass(slots=True, eq=False)
class Deadline:
    """An open `due_within` obligation: the awaited stage has not come yet."""

    rule: Rule
    project: _Project
    trigger_seq: int
    due: datetime  # the last instant of the last day
    estimated: bool
    approaching_at: datetime | None
    fired: dict[Level, Alert] = field(default_factory=dict)
    closed: bool = False

    def to_json(self, now: datetime) -> dict[str, Any]:
        status = "open"
        if now > self.due:
            status = "overdue"
        elif self.approaching_at is not None and now >= self.approaching_at:
            status = "approaching"
        return {
            **_rule_json(self.rule),
            "trigger": self.trigger_seq,
            "due": _iso(self.due),
            "not_before": None,
            "estimated": self.estimated,
            "status": status,
        }


@dataclass(slots=True)
class Outcome:
    """A statutory item settled by a publication (or voided past its due time):
    what the compliance drill-down lists besides the open breaches."""

    rule: Rule
    trigger_seq: int
    target_seq: int | None  # None: voided (流标, 终止) after it was overdue
    due: datetime | None  # due_within: the last instant allowed; at_least: the earliest
    done: datetime | None
    state: str  # "on_time", "late" (done after its due time) or "too_short" (时限不足)
    counted: datetime  # the moment whose month the scorecard counts it in


@dataclass(slots=True)
class _Project:
    id: str
    category: str
    agency: str
    # Settled items that were not on time (all of them where the watchdog keeps
    # on-time ones too: a replay of one project for the drill-down).
    # None until the first (most projects meet every limit: no list for each).
    settled: list[Outcome] | None = None
    # The latest event of each stage an `at_least` rule may read later.
    latest: dict[str, Fact] = field(default_factory=dict)
    # Open deadlines per rule id, oldest first (each objection awaits its reply).
    open: dict[str, list[Deadline]] = field(default_factory=dict)
    # data_incomplete warnings per (rule id, stage), until that stage brings the time.
    incomplete: dict[tuple[str, str], Alert] = field(default_factory=dict)
    # The facts `applies_when` reads, as the latest event carrying each said
    # them. None until the first (most projects never state one).
    facts: dict[str, Any] | None = None
    # The latest event of another stage restating a time an at_least rule
    # measures against (a clarification that postpones the bid deadline).
    values: dict[str, Fact] | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    at_once: tuple[Rule, ...]  # due_within with both moments in the event itself
    closes: tuple[Rule, ...]  # due_within deadlines the event may close
    at_least: tuple[Rule, ...]  # minimum intervals the event is one end of
    opens: tuple[Rule, ...]  # due_within deadlines the event opens
    remember: bool  # an at_least rule reads this stage later


@dataclass(slots=True)
class Tally:
    """One agency's record in one category and month: the public scorecard's cells."""

    on_time: int = 0
    late: int = 0  # done after the time limit
    open_breaches: int = 0  # overdue and not done
    too_short: int = 0  # a minimum period left too short (时限不足): done, not late


class Watchdog:
    def __init__(
        self,
        rules: Rules,
        calendar: WorkCalendar,
        domain: Domain,
        *,
        lead_workdays: int = 1,
        keep_on_time: bool = False,
        agencies: Mapping[str, Mapping[str, Any]] = NO_DATA,
    ) -> None:
        self.rules = rules
        self.agencies = agencies  # agency code → its facts (AGENCY_FACTS), from the directory
        # Whether to keep the items met on time as well (one a rule and event:
        # as many as the log's events; only for a replay of one project).
        self.keep_on_time = keep_on_time
        self.calendar = calendar
        self.domain = domain
        self.lead = lead_workdays
        self.head = 0  # the last seq observed
        self._projects: dict[str, _Project] = {}
        self._timers: list[tuple[datetime, int, Deadline, Level]] = []
        self._counter = itertools.count()
        self.tallies: dict[tuple[str, str, int], Tally] = {}  # (agency, category, YYYYMM)
        self.advisory_tallies: dict[tuple[str, str, int], Tally] = {}  # the same, advisory rules
        # What to keep of each stage's events: the data keys rules read, and
        # whether an `at_least` rule reads the stage after its event passed.
        self._keep: dict[str, set[str]] = {}
        self._remembered: set[tuple[str, str]] = set()  # (category, stage)
        self._at_least: dict[str, list[Rule]] = {}  # category → its at_least rules
        # The data times rules read, by stage (the API accepts only RFC 3339 there).
        times: dict[str, set[str]] = {}
        for rule in rules:
            for ref in (rule.trigger, rule.target):
                if ref.data_key is not None:
                    times.setdefault(ref.stage, set()).add(ref.data_key)
                    self._keep.setdefault(ref.stage, set()).add(ref.data_key)
        # The project facts some rule's applies_when reads, by the stages stating them.
        facts: dict[str, set[str]] = {}
        for rule in rules:
            for fact, _ in rule.applies_when:
                for stage in PROJECT_FACTS[fact][1] if fact in PROJECT_FACTS else ():
                    facts.setdefault(stage, set()).add(fact)
                    self._keep.setdefault(stage, set()).add(fact)
        self._facts = {stage: frozenset(keys) for stage, keys in facts.items()}
        for code in domain.categories:
            for rule in rules:
                if rule.kind is Kind.AT_LEAST and rule.category in (code, "all"):
                    self._at_least.setdefault(code, []).append(rule)
                    for ref in (rule.trigger, rule.target):
                        self._remembered.add((code, ref.stage))
        # The times at_least rules measure against (data key → the stages the
        # rules read it in): read from whichever event states them last,
        # whatever its stage, as the checks before publishing read a deadline
        # a clarification moved.
        moving: dict[str, set[str]] = {}
        for rule in rules:
            if rule.kind is Kind.AT_LEAST and rule.target.data_key is not None:
                moving.setdefault(rule.target.data_key, set()).add(rule.target.stage)
        self._moving = frozenset(moving)
        self._moved_in = {key: frozenset(stages) for key, stages in moving.items()}
        if moving:  # a correction of such a time (field = the key, now = the value)
            self._keep.setdefault(CORRECTION, set()).update(("field", "now"))
        stages = {*self._keep, *domain.stages}
        self._keep_frozen = {
            stage: frozenset(self._keep.get(stage, ())) | self._moving for stage in stages
        }
        self._time_fields = {
            stage: frozenset(times.get(stage, ())) | self._moving for stage in stages
        }
        self._data_keys = tuple(sorted(set().union(self._moving, *self._keep.values())))
        # How SQLite writes the data keys of an event that has none (logread).
        self._no_values = "[" + ",".join(["null"] * max(2, len(self._data_keys))) + "]"
        self._plans: dict[tuple[str, str], _Plan] = {}
        self._agency_ok: dict[tuple[str, str], bool] = {}  # (rule id, agency): _agency_holds

    def fresh(self, *, keep_on_time: bool = False) -> Watchdog:
        """An empty watchdog judging as this one does (rules, calendar, lead, agencies)."""
        return Watchdog(
            self.rules,
            self.calendar,
            self.domain,
            lead_workdays=self.lead,
            keep_on_time=keep_on_time,
            agencies=self.agencies,
        )

    def state(self) -> tuple[Any, ...]:
        """Everything the log and the timers built, for a snapshot (snapshot.py);
        what the rules and calendar decide is not in it."""
        return (
            self.head,
            self._projects,
            self._timers,
            self._counter_value(),
            (self.tallies, self.advisory_tallies),
        )

    def restore(self, state: tuple[Any, ...]) -> None:
        """Take up a `state()` made with the same rules, calendar and lead."""
        self.head, self._projects, self._timers, counter, tallies = state
        self.tallies, self.advisory_tallies = tallies
        self._counter = itertools.count(counter)

    def _counter_value(self) -> int:
        value = next(self._counter)
        self._counter = itertools.count(value)  # reading it must not move it
        return value

    def fact(self, event: StoredEvent) -> Fact:
        return Fact.of(event, self._keep_frozen.get(event.stage, self._moving))

    @property
    def no_values(self) -> str:
        """The data keys' values of an event that has none, as `fact_of_row` expects them."""
        return self._no_values

    @property
    def data_keys(self) -> tuple[str, ...]:
        """Every data field some rule reads: what a rebuild asks the store for."""
        return self._data_keys

    @property
    def time_fields(self) -> Mapping[str, frozenset[str]]:
        """Stage → the data fields rules read as times in its events: the API
        accepts only RFC 3339 times there (not the facts `applies_when` reads,
        nor a correction's `field` and `now`, kept too)."""
        return self._time_fields

    def fact_of_row(self, row: Sequence[Any]) -> Fact:
        """A Fact from a row of `logread.Rows.page`: seq, project, category, agency,
        stage, published_at, occurred_at, the values of `data_keys` as a JSON array
        (text), then an amendment's `data.changes` (JSON text; None for other events)."""
        seq, project, category, agency, stage, published, occurred, values = row[:8]
        published_at = datetime.fromisoformat(published)
        data: Mapping[str, Any] = NO_DATA
        if values != self._no_values:  # most events carry none of them: no parse
            # (Fewer than two keys are read with a path repeated: strict=False.)
            parsed = orjson.loads(values)
            data = {k: v for k, v in zip(self._data_keys, parsed, strict=False) if v is not None}
        if row[8] is not None:  # an amendment: the facts it changes, nulls included
            changes = orjson.loads(row[8])
            stated = self._facts.get(AMENDED, NOTHING)
            if isinstance(changes, dict):
                data = {k: changes[k] for k in stated if k in changes}
        return Fact(
            seq=seq,
            project=project,
            category=category,
            agency=agency,
            stage=stage,
            published_at=published_at,
            occurred_at=published_at
            if occurred is None or occurred == published
            else datetime.fromisoformat(occurred),
            data=data,
        )

    def _plan(self, category: str, stage: str) -> _Plan:
        """Which rules an event of this category and stage concerns, and how: worked
        out once per pair, since every event asks (a million at start-up)."""
        answers = self.rules.targeting(category, stage)
        starts = self.rules.triggered_by(category, stage)
        at_once: list[Rule] = []
        closes: list[Rule] = []
        opens: list[Rule] = []
        at_least: list[Rule] = []
        for rule in answers:
            if rule.kind is Kind.DUE_WITHIN:
                (at_once if rule.trigger.stage in (stage, ANY) else closes).append(rule)
        for rule in dict.fromkeys((*answers, *starts)):
            if rule.kind is Kind.AT_LEAST:
                at_least.append(rule)
        for rule in starts:
            if rule.kind is Kind.DUE_WITHIN and rule.target.stage not in (stage, ANY):
                opens.append(rule)
        plan = _Plan(
            tuple(at_once),
            tuple(closes),
            tuple(at_least),
            tuple(opens),
            (category, stage) in self._remembered,
        )
        self._plans[category, stage] = plan
        return plan

    # --- following the log -------------------------------------------------------

    def observe(self, fact: Fact) -> list[Alert]:
        """Take one event (in seq order); return the warnings it created or resolved."""
        self.head = fact.seq
        project = self._projects.get(fact.project)
        if project is None:
            project = self._projects[fact.project] = _Project(
                fact.project, fact.category, fact.agency
            )
        changes: list[Alert] = []
        if fact.data:
            if fact.stage in self._facts:
                self._learn(project, fact)
            for key in self._moving.intersection(fact.data):
                if fact.stage not in self._moved_in[key]:  # a restatement elsewhere
                    self._restated(project, key, fact)
            if fact.stage == CORRECTION and fact.data.get("field") in self._moving:
                key = fact.data["field"]
                if fact.data.get("now") is not None:  # as the checks read a corrected time
                    self._restated(
                        project, key, dataclasses.replace(fact, data={key: fact.data["now"]})
                    )
        plan = self._plans.get((fact.category, fact.stage)) or self._plan(fact.category, fact.stage)
        for rule in plan.at_once:
            self._check_at_once(rule, project, fact, changes)
        for rule in plan.closes:
            self._close(rule, project, fact, changes)
        for rule in plan.at_least:
            self._check_at_least(rule, project, fact, changes)
        if fact.stage == ENDED and project.open:
            self._void(project, fact, changes)
        for rule in plan.opens:
            self._open(rule, project, fact, changes)
        if plan.remember:
            project.latest[fact.stage] = fact
        return changes

    def fire(self, now: datetime) -> list[Alert]:
        """The timers due by `now`: warnings that became true, in time order."""
        fired: list[Alert] = []
        while self._timers and self._timers[0][0] <= now:
            at, _, deadline, level = heapq.heappop(self._timers)
            if not deadline.closed and level not in deadline.fired:
                fired.append(self._fire(deadline, level, at))
        return fired

    def next_timer(self) -> datetime | None:
        while self._timers and self._timers[0][2].closed:
            heapq.heappop(self._timers)  # closed already: nothing to fire
        return self._timers[0][0] if self._timers else None

    # --- what the API shows --------------------------------------------------------

    def deadlines(self, project_id: str, now: datetime) -> list[dict[str, Any]]:
        """Open deadlines of one project: awaited stages (due) and earliest allowed ones."""
        project = self._projects.get(project_id)
        if project is None:
            return []
        shown = [d.to_json(now) for ds in project.open.values() for d in ds]
        for rule in self._at_least.get(project.category, ()):
            pending = self._not_before(rule, project)
            if pending is not None:
                shown.append(pending)
        shown.sort(key=lambda d: d["due"] or d["not_before"])
        return shown

    def cutoffs(self, project_id: str) -> list[dict[str, Any]]:
        """The last moments the stages an `at_least` rule measures against a
        stated time may still come: a clarification at least 15 days before
        the bid deadline the log states last (its cut-off, 澄清截止), as the
        rule would count it. What a bidder plans by, not a warning."""
        project = self._projects.get(project_id)
        if project is None:
            return []
        shown = []
        for rule in self._at_least.get(project.category, ()):
            target = rule.target
            if (
                target.data_key is None
                or rule.trigger.data_key is not None
                or rule.trigger.stage in (ANY, target.stage)
            ):
                continue  # a period inside one event, or one that needs no planning
            if rule.applies_when and not self._applies(rule, project):
                continue
            source = project.latest.get(target.stage)
            stated = project.values.get(target.data_key) if project.values else None
            if stated is not None and (source is None or stated.seq > source.seq):
                source = stated
            if source is None:
                continue
            try:
                moment = source.moment(target)
            except Incomplete:
                continue
            cutoff = self.calendar.latest_start(moment, rule.amount, rule.unit, rule.after_period)
            shown.append(
                {
                    **_rule_json(rule),
                    "trigger_stage": rule.trigger.stage,
                    "amount": rule.amount,
                    "unit": str(rule.unit),
                    "latest": _iso(cutoff.at),
                    "before": _iso(moment),
                    "source": source.seq,
                    "estimated": cutoff.estimated,
                }
            )
        shown.sort(key=lambda c: c["latest"])
        return shown

    def project_ids(self, agency: str | None = None, category: str | None = None) -> list[str]:
        """The projects the watchdog follows, of one agency or category (or all)."""
        return [
            p.id
            for p in self._projects.values()
            if (agency is None or p.agency == agency)
            and (category is None or p.category == category)
        ]

    def scorecard(
        self, agency: str | None = None, category: str | None = None, period: str | None = None
    ) -> list[dict[str, Any]]:
        """Per agency: totals, by category and by month (the public scorecard).
        The figures count the law; advisory rules are counted apart."""
        agencies: dict[str, dict[str, Any]] = {}
        keys = sorted(self.tallies.keys() | self.advisory_tallies.keys())
        for a, c, month in keys:
            p = f"{month // 100:04d}-{month % 100:02d}"
            if (agency and a != agency) or (category and c != category) or (period and p != period):
                continue
            entry = agencies.setdefault(
                a, {"agency": a, "totals": _Score(), "by_category": {}, "by_period": {}}
            )
            for total in (
                entry["totals"],
                entry["by_category"].setdefault(c, _Score()),
                entry["by_period"].setdefault(p, _Score()),
            ):
                total.add(self.tallies.get((a, c, month)), self.advisory_tallies.get((a, c, month)))
        shown = [
            {
                "agency": a,
                **entry["totals"].to_json(),
                "by_category": [
                    {"category": c, **t.to_json()} for c, t in entry["by_category"].items()
                ],
                "by_period": [{"period": p, **t.to_json()} for p, t in entry["by_period"].items()],
            }
            for a, entry in agencies.items()
        ]
        # Worst first: most items missed (late, too short, overdue), then the
        # lowest on-time rate (none due: last), then by agency.
        shown.sort(
            key=lambda a: (
                -(a["late"] + a["too_short"] + a["open_breaches"]),
                2.0 if a["on_time_rate"] is None else a["on_time_rate"],
                a["agency"],
            )
        )
        return shown

    # --- due_within ------------------------------------------------------------------

    def _open(self, rule: Rule, project: _Project, fact: Fact, changes: list[Alert]) -> None:
        if rule.applies_when and not self._applies(rule, project):
            return
        try:
            start = fact.moment(rule.start)
        except Incomplete as exc:
            self._incomplete(rule, project, fact, rule.trigger, exc, changes)
            return
        self._complete(rule, project, fact, rule.trigger, changes)
        due = self.calendar.due(start, rule.amount, rule.unit)
        approaching_at = None
        if self.lead > 0:
            last_day = due.at.astimezone(LEGAL_TZ).date()
            warn_day = self.calendar.shift_workdays(last_day, -self.lead)
            approaching_at = _start_of(warn_day)
            if approaching_at <= start:
                approaching_at = None  # too short a period to warn ahead of it
        deadline = Deadline(rule, project, fact.seq, due.at, due.estimated, approaching_at)
        project.open.setdefault(rule.id, []).append(deadline)
        # Anchored at occurred_at, a trigger may be published when its period
        # has (nearly) run out: what is true already is found with the event,
        # dated by its publication (nothing was known before), not by a timer.
        published = fact.published_at
        if due.at < published:
            changes.append(self._fire(deadline, Level.BREACH, published))
            return
        if approaching_at is not None:
            if approaching_at <= published:
                changes.append(self._fire(deadline, Level.APPROACHING, published))
            else:
                self._timer(approaching_at, deadline, Level.APPROACHING)
        self._timer(due.at + AFTER, deadline, Level.BREACH)

    def _close(self, rule: Rule, project: _Project, fact: Fact, changes: list[Alert]) -> None:
        try:
            done: datetime | None = fact.moment(rule.target)
            self._complete(rule, project, fact, rule.target, changes)
        except Incomplete as exc:
            # Kept past the `except` (reported below, once a deadline awaits
            # it): without its traceback, or the exception → traceback → this
            # frame → `missing` cycle keeps the frames down to logread's page
            # loop (the fact, the row, the whole page of rows) until a
            # collection, and replay runs with the collector off: +500 MiB
            # over a million events. Only its message is used.
            done, missing = None, exc.with_traceback(None)
        waiting = project.open.get(rule.id)
        if not waiting:
            return  # nothing awaited it (a contract with no award in the log …)
        deadline = waiting.pop(0)
        if not waiting:
            del project.open[rule.id]
        if done is None:
            self._incomplete(rule, project, fact, rule.target, missing, changes)
            done = fact.published_at  # done no later than it was published
        # Warnings that became true before the stage was published, found only
        # now (while rebuilding, or within the timer's last second): judged by
        # the publication, as the timers were, so a rebuild finds what a
        # running server found.
        published = fact.published_at
        warn_at = deadline.approaching_at
        fired = deadline.fired
        if warn_at is not None and warn_at <= published and not fired.keys() & TIMED:
            # (A breach found at once, with its trigger, had no approaching.)
            self._fire(deadline, Level.APPROACHING, warn_at)
        if deadline.due < published and Level.BREACH not in deadline.fired:
            self._fire(deadline, Level.BREACH, deadline.due + AFTER)
        deadline.closed = True
        tally = self._tally(project, deadline.due, deadline.rule)
        if Level.BREACH in deadline.fired:
            tally.open_breaches -= 1
        # Whether the obligation was met is the data's word (signed on time,
        # published a day later, is on time); the warnings above stand anyway.
        on_time = done <= deadline.due
        if on_time:
            tally.on_time += 1
        else:
            tally.late += 1
        self._settle(
            project,
            deadline.rule,
            deadline.trigger_seq,
            fact.seq,
            deadline.due,
            done,
            "on_time" if on_time else "late",
            deadline.due,
        )
        for warning in deadline.fired.values():
            warning.resolved_at = published
            changes.append(warning)

    def _void(self, project: _Project, fact: Fact, changes: list[Alert]) -> None:
        """The transaction ended (流标, 终止): nothing it awaited will come now.

        Its open deadlines close without counting as met; one already overdue
        stays counted as late. Their warnings are resolved by the publication.
        """
        for deadline in (d for waiting in project.open.values() for d in waiting):
            deadline.closed = True
            if Level.BREACH in deadline.fired:
                tally = self._tally(project, deadline.due, deadline.rule)
                tally.open_breaches -= 1
                tally.late += 1
                self._settle(
                    project,
                    deadline.rule,
                    deadline.trigger_seq,
                    None,
                    deadline.due,
                    None,
                    "late",
                    deadline.due,
                )
            for warning in deadline.fired.values():
                warning.resolved_at = fact.published_at
                changes.append(warning)
        project.open.clear()

    def _check_at_once(
        self, rule: Rule, project: _Project, fact: Fact, changes: list[Alert]
    ) -> None:
        """Both moments are in this event (e.g. contract.data.signed_at → contract)."""
        if rule.applies_when and not self._applies(rule, project):
            return
        try:
            start, done = fact.moment(rule.start), fact.moment(rule.target)
        except Incomplete as exc:
            ref = rule.trigger if rule.trigger.data_key else rule.target
            self._incomplete(rule, project, fact, ref, exc, changes)
            return
        if rule.trigger.data_key is not None:
            self._complete(rule, project, fact, rule.trigger, changes)
        if rule.trigger.stage == ANY and done - start <= timedelta(days=rule.amount):
            # Within `amount` × 24 h is within `amount` days of any kind: the
            # common case for the rule on every event, without the calendar.
            self._tally(project, done, rule).on_time += 1
            if self.keep_on_time:
                due_at = self.calendar.due(start, rule.amount, rule.unit).at
                self._settle(project, rule, fact.seq, fact.seq, due_at, done, "on_time", done)
            return
        due = self.calendar.due(start, rule.amount, rule.unit)
        if done <= due.at:
            self._tally(project, due.at, rule).on_time += 1
            self._settle(project, rule, fact.seq, fact.seq, due.at, done, "on_time", due.at)
            return
        self._tally(project, due.at, rule).late += 1
        self._settle(project, rule, fact.seq, fact.seq, due.at, done, "late", due.at)
        warning = self._warning(
            rule,
            project,
            f"{fact.seq}",
            Level.BREACH,
            due.at,
            fact.published_at,
            f"{self._what(rule)}：应于 {_day(due.at)} 前完成，实际 {_day(done)}",
        )
        warning.resolved_at = fact.published_at  # late, but done: nothing left to await
        changes.append(warning)

    def _fire(self, deadline: Deadline, level: Level, at: datetime) -> Alert:
        rule, project = deadline.rule, deadline.project
        if level is Level.BREACH:
            self._tally(project, deadline.due, deadline.rule).open_breaches += 1
            message = f"{self._what(rule)}：已超过期限 {_day(deadline.due)}，尚未发布"
        else:
            message = f"{self._what(rule)}：将于 {_day(deadline.due)} 到期，尚未发布"
        warning = self._warning(
            rule, project, f"{deadline.trigger_seq}", level, deadline.due, at, message
        )
        deadline.fired[level] = warning
        return warning

    # --- at_least --------------------------------------------------------------------

    def _check_at_least(
        self, rule: Rule, project: _Project, fact: Fact, changes: list[Alert]
    ) -> None:
        if rule.applies_when and not self._applies(rule, project):
            return
        moments = []
        for ref, counted in ((rule.trigger, rule.start), (rule.target, rule.target)):
            source = fact if ref.stage == fact.stage else project.latest.get(ref.stage)
            if ref is rule.target and source is not fact and project.values:
                # The time as stated last: a clarification may have moved it.
                stated = project.values.get(ref.data_key or "")
                if stated is not None and (source is None or stated.seq > source.seq):
                    source = stated
            if source is None:
                return  # the other moment is not known yet: checked when it comes
            try:
                moments.append((source, source.moment(counted)))
            except Incomplete as exc:
                if source is fact:
                    self._incomplete(rule, project, fact, ref, exc, changes)
                return  # an earlier event's gap was reported when it came
            if source is fact:
                self._complete(rule, project, fact, ref, changes)
        (first, start), (second, end) = moments
        check = self.calendar.at_least_met(start, end, rule.amount, rule.unit, rule.after_period)
        tally = self._tally(project, fact.published_at, rule)
        # Done, but too early: 时限不足, neither late nor an open (overdue) breach.
        status = "on_time" if check.met else "too_short"
        if check.met:
            tally.on_time += 1
        else:
            tally.too_short += 1
        self._settle(
            project, rule, first.seq, second.seq, check.earliest, end, status, fact.published_at
        )
        if check.met:
            return
        changes.append(
            self._warning(
                rule,
                project,
                f"{first.seq}-{second.seq}",
                Level.BREACH,
                None,
                fact.published_at,
                f"时限不足：{self._what(rule)}：最早应为 {_day(check.earliest)}，实际 {_day(end)}",
            )
        )

    def _not_before(self, rule: Rule, project: _Project) -> dict[str, Any] | None:
        """An at_least rule whose trigger came and whose target stage is awaited."""
        trigger = project.latest.get(rule.trigger.stage)
        if trigger is None or rule.target.data_key is not None or rule.target.stage == ANY:
            return None
        if rule.applies_when and not self._applies(rule, project):
            return None
        target = project.latest.get(rule.target.stage)
        if target is not None and target.seq > trigger.seq:
            return None
        try:
            start = trigger.moment(rule.start)
        except Incomplete:
            return None
        check = self.calendar.at_least_met(start, start, rule.amount, rule.unit, rule.after_period)
        return {
            **_rule_json(rule),
            "trigger": trigger.seq,
            "due": None,
            "not_before": _iso(check.earliest),
            "estimated": check.estimated,
            "status": "open",
        }

    # --- data_incomplete -------------------------------------------------------------

    def _incomplete(
        self,
        rule: Rule,
        project: _Project,
        fact: Fact,
        ref: Ref,
        reason: Incomplete,
        changes: list[Alert],
    ) -> None:
        if rule.if_stated:
            return  # checked only where the time is stated: its absence is no gap
        key = (rule.id, ref.stage)
        if key in project.incomplete:
            return  # one open warning per rule and stage is enough
        warning = self._warning(
            rule,
            project,
            f"{fact.seq}",
            Level.DATA_INCOMPLETE,
            None,
            fact.published_at,
            f"{self._what(rule)}：无法检查，{reason}",
        )
        project.incomplete[key] = warning
        changes.append(warning)

    def _complete(
        self, rule: Rule, project: _Project, fact: Fact, ref: Ref, changes: list[Alert]
    ) -> None:
        """`fact` has the time `ref` names: resolve the stage's data_incomplete warning."""
        if ref.data_key is None or not project.incomplete:
            return
        warning = project.incomplete.pop((rule.id, ref.stage), None)
        if warning is not None:
            warning.resolved_at = fact.published_at
            changes.append(warning)

    # --- the drill-down -----------------------------------------------------------------

    def items(
        self,
        project_id: str | None = None,
        agency: str | None = None,
        category: str | None = None,
        month: str | None = None,
    ) -> list[dict[str, Any]]:
        """The statutory items behind the scorecard: settled ones (those kept) and
        open breaches, of one project or all, in the scorecard's month."""
        if project_id is not None:
            found = self._projects.get(project_id)
            projects: Iterable[_Project] = () if found is None else (found,)
        else:
            projects = self._projects.values()
        shown = []
        for project in projects:
            if (agency and project.agency != agency) or (category and project.category != category):
                continue
            for outcome in project.settled or ():
                if month is None or _month(outcome.counted) == month:
                    shown.append(_item(project, outcome))
            for deadlines in project.open.values():
                for deadline in deadlines:
                    if Level.BREACH in deadline.fired and (
                        month is None or _month(deadline.due) == month
                    ):
                        shown.append(_open_item(project, deadline))
        return shown

    def _settle(
        self,
        project: _Project,
        rule: Rule,
        trigger_seq: int,
        target_seq: int | None,
        due: datetime | None,
        done: datetime | None,
        state: str,
        counted: datetime,
    ) -> None:
        if state == "on_time" and not self.keep_on_time:
            return
        outcome = Outcome(rule, trigger_seq, target_seq, due, done, state, counted)
        if project.settled is None:
            project.settled = [outcome]
        else:
            project.settled.append(outcome)

    # --- helpers ---------------------------------------------------------------------

    def _timer(self, at: datetime, deadline: Deadline, level: Level) -> None:
        heapq.heappush(self._timers, (at, next(self._counter), deadline, level))

    def _tally(self, project: _Project, moment: datetime, rule: Rule) -> Tally:
        # Once per event at start-up: the month as a number, and no zone
        # conversion for the common case of a time already in Beijing time.
        local = _beijing(moment)
        key = (project.agency, project.category, local.year * 100 + local.month)
        tallies = self.advisory_tallies if rule.advisory else self.tallies
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = Tally()
        return tally

    def _restated(self, project: _Project, key: str, fact: Fact) -> None:
        if project.values is None:
            project.values = {}
        project.values[key] = fact

    def _agency_holds(self, rule: Rule, agency: str) -> bool:
        for fact, values in rule.applies_when:
            if fact in AGENCY_FACTS:
                value = self.agencies.get(agency, NO_DATA).get(fact)
                # An agency the directory gives no kind is held to the rule.
                if value is not None and value not in values:
                    return False
        return True

    def _learn(self, project: _Project, fact: Fact) -> None:
        """Keep the facts `applies_when` reads that this event states."""
        for key in self._facts[fact.stage]:
            if key in fact.data:
                if project.facts is None:
                    project.facts = {}
                project.facts[key] = fact.data[key]

    def _applies(self, rule: Rule, project: _Project) -> bool:
        """Whether every fact the rule's applies_when names holds for the project."""
        key = (rule.id, project.agency)
        agency_ok = self._agency_ok.get(key)
        if agency_ok is None:  # the directory does not change: once per rule and agency
            agency_ok = self._agency_ok[key] = self._agency_holds(rule, project.agency)
        if not agency_ok:
            return False
        for fact, values in rule.applies_when:
            if fact in AGENCY_FACTS:
                continue
            value = None if project.facts is None else project.facts.get(fact)
            if not isinstance(value, str | int) or value not in values:
                return False
        return True

    def _warning(
        self,
        rule: Rule,
        project: _Project,
        cause: str,
        level: Level,
        due: datetime | None,
        created_at: datetime,
        message: str,
    ) -> Alert:
        return Alert(
            id=f"{rule.id}/{project.id}/{cause}/{level}",
            rule=rule,
            project=project.id,
            agency=project.agency,
            category=project.category,
            level=level,
            due=due,
            message=message,
            created_at=created_at,
        )

    def _what(self, rule: Rule) -> str:
        return f"「{rule.name}」（{rule.basis}）"


def empty_score() -> dict[str, Any]:
    """The scorecard's figures of an agency with nothing due (yet)."""
    return _Score().to_json()


def iter_open(watchdog: Watchdog) -> Iterable[Deadline]:
    """Every open deadline (for tests and diagnostics)."""
    for project in watchdog._projects.values():
        for deadlines in project.open.values():
            yield from deadlines


def _kept(data: object, keep: frozenset[str], nulls: bool) -> dict[str, Any]:
    """The `keep` keys of an event's data; a null is no value (as SQLite reads
    it), except in an amendment, where it unsets a fact."""
    if not isinstance(data, dict):
        return {}
    return {k: data[k] for k in keep if k in data and (nulls or data[k] is not None)}


def _parse_time(value: object, name: str) -> datetime:
    if value is None:
        raise Incomplete(f"缺少 {name}")
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            # A bare date or a time without offset is a Beijing time.
            moment = moment if moment.tzinfo else moment.replace(tzinfo=LEGAL_TZ)
            if YEARS[0] <= moment.year <= YEARS[1]:
                return moment
            # Year 1 or 9999 would overflow the day arithmetic: it is a typo anyway.
            raise Incomplete(f"{name} 不在 {YEARS[0]}–{YEARS[1]} 年之间")
    raise Incomplete(f"{name} 不是时间（应为 RFC 3339，如 2026-12-21T09:30:00+08:00）")


def _month(moment: datetime) -> str:
    local = _beijing(moment)
    return f"{local.year:04d}-{local.month:02d}"


STATUS_OF = {"on_time": "on_time", "late": "late", "too_short": "late", "overdue": "open"}


def _item(project: _Project, outcome: Outcome) -> dict[str, Any]:
    return _item_json(
        project,
        outcome.rule,
        outcome.trigger_seq,
        outcome.target_seq,
        outcome.due,
        outcome.done,
        outcome.state,
    )


def _open_item(project: _Project, deadline: Deadline) -> dict[str, Any]:
    return _item_json(
        project, deadline.rule, deadline.trigger_seq, None, deadline.due, None, "overdue"
    )


def _item_json(
    project: _Project,
    rule: Rule,
    trigger_seq: int,
    target_seq: int | None,
    due: datetime | None,
    done: datetime | None,
    state: str,
) -> dict[str, Any]:
    return {
        "project": project.id,
        "agency": project.agency,
        "category": project.category,
        "rule": rule.id,
        "rule_name": {"zh": rule.name, "en": rule.name_en},
        "basis": rule.basis,
        "basis_en": rule.basis_en,
        "kind": str(rule.kind),
        "due_at": _iso(due),
        "done_at": _iso(done),
        "status": STATUS_OF[state],
        "state": state,
        "advisory": rule.advisory,
        "trigger_seq": trigger_seq,
        "target_seq": target_seq,
    }


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, LEGAL_TZ)


def _iso(moment: datetime | None) -> str | None:
    """Beijing time, as statutory days are, in milliseconds as event times are:
    every compliance time sorts as text."""
    if moment is None:
        return None
    return _beijing(moment).isoformat(timespec="milliseconds")


def _day(moment: datetime) -> str:
    local = _beijing(moment)
    return f"{local.year:04d}-{local.month:02d}-{local.day:02d}"


def _beijing(moment: datetime) -> datetime:
    """The same instant in Beijing time; as it is when already at +08:00 (the
    usual case, and tens of thousands of calls at start-up)."""
    return moment if moment.utcoffset() == BEIJING else moment.astimezone(LEGAL_TZ)


def _rule_json(rule: Rule) -> dict[str, Any]:
    return {
        "rule": rule.id,
        "name": rule.name,
        "name_en": rule.name_en,
        "kind": str(rule.kind),
        "target": str(rule.target),
        "basis": rule.basis,
        "basis_en": rule.basis_en,
        "confidence": str(rule.confidence),
        "advisory": rule.advisory,
    }


@dataclass(slots=True)
class _Score:
    """A scorecard cell: the legal tally, and the advisory one beside it."""

    legal: Tally = field(default_factory=Tally)
    advisory: Tally = field(default_factory=Tally)

    def add(self, legal: Tally | None, advisory: Tally | None) -> None:
        for total, tally in ((self.legal, legal), (self.advisory, advisory)):
            if tally is not None:
                total.on_time += tally.on_time
                total.late += tally.late
                total.open_breaches += tally.open_breaches
                total.too_short += tally.too_short

    def to_json(self) -> dict[str, Any]:
        legal, advisory = self.legal, self.advisory
        due = legal.on_time + legal.late + legal.too_short + legal.open_breaches
        return {
            "due": due,
            "on_time": legal.on_time,
            "late": legal.late,
            "too_short": legal.too_short,
            "open_breaches": legal.open_breaches,
            "on_time_rate": None if due == 0 else round(legal.on_time / due, 4),
            "completed": legal.on_time + legal.late + legal.too_short,
            # Local practice, not law: done late or too short, and overdue.
            "advisory_late": advisory.late + advisory.too_short,
            "advisory_open": advisory.open_breaches,
        }
