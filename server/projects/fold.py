"""The project record as a fold of the log: no I/O, tested with lists of events.

A project is what its events say: the `registered` event gives its own
fields (title, budget, currency, region, must_tender) and its `created_at`
(the event's `occurred_at`), each `amended` event changes some of them,
every lifecycle event moves its `stage`, and every event counts as activity
(`updated_at`, the list's order). Category, agency and region are those of
the latest event, as each event carries the project's routing fields.

The fold gives the same record whether `registered` comes first (every
project since registration became an event) or after the project's other
events (a project created before, registered by the migration with
`occurred_at` = its old `created_at`): the registration's activity is its
`occurred_at`, not the moment it was appended, and a project's activity is
its latest moment, not its latest event's.

What bidders look for is folded too (the vocabulary says which data keys
hold such dates, `Domain.key_date_fields`): each key date's latest value
(a clarification or correction with a new deadline replaces the notice's),
`closes_at` (the latest value of a field that ends the bidding window),
and whether a concluding stage (award, contract, failed) came. (Not the
text a search looks in: that is the events' own titles and bodies, read
from the log, table.py. Carried in the row, it made every write of a busy
project rewrite all of its text.)
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import orjson

from server.core.events import StoredEvent
from server.domain import RFC3339, Domain

REGISTERED = "registered"
AMENDED = "amended"
NAME = "projects"

# As the API serves a project, in this order (`activity_us` is internal: the list order).
PUBLIC_FIELDS = (
    "id",
    "title",
    "category",
    "agency",
    "region",
    "budget",
    "currency",
    "must_tender",
    "stage",
    "created_at",
    "updated_at",
    "last_seq",
    "key_dates",
    "closes_at",
)


@dataclass(frozen=True)
class FoldRules:
    """What the vocabulary tells the fold: which stages move a project's stage
    (not oversight, not the record's own) and which conclude it, which data
    keys are key dates and which of them close the bidding window."""

    lifecycle: frozenset[str]
    concluding: frozenset[str] = frozenset()
    key_dates: frozenset[str] = frozenset()
    closing: frozenset[str] = frozenset()

    @classmethod
    def of(cls, domain: Domain) -> FoldRules:
        return cls(
            domain.lifecycle_stages,
            domain.concluding_stages,
            frozenset(domain.key_date_fields),
            domain.closing_fields,
        )

    def dates_in(self, stage: str, data: object) -> dict[str, str]:
        """The key dates an event's data publishes: its own key-date fields, or
        the one a correction corrects (`field` and its value `now`). Only
        times with an offset count: anything else is not a date one can sort."""
        if not isinstance(data, dict) or not self.key_dates:
            return {}
        found = {k: data[k] for k in self.key_dates if k in data}
        if stage == "correction" and data.get("field") in self.key_dates and "now" in data:
            found[data["field"]] = data["now"]
        return {k: v for k, v in found.items() if _is_time(v)}


@dataclass
class ProjectRecord:
    id: str
    category: str
    agency: str
    region: str | None
    title: str | None = None  # None until the project's `registered` event
    budget: float | None = None
    currency: str | None = None
    must_tender: bool | None = None
    stage: str | None = None  # the latest lifecycle stage reached
    created_at: str | None = None  # the registration's occurred_at
    updated_at: str | None = None  # the latest activity, as written in its event
    activity_us: int = 0  # the same moment in epoch µs: the list's order
    last_seq: int = 0
    # [{"field", "at", "stage", "seq"}], ascending by `at` (then field)
    key_dates: list[dict[str, Any]] = field(default_factory=list)
    closes_at: str | None = None
    closes_us: int | None = None  # the same moment in epoch µs: the `closes` order
    concluded: bool = False  # an award, contract or failed event came

    @property
    def registered(self) -> bool:
        return self.created_at is not None

    def public(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in PUBLIC_FIELDS}

    def is_open(self, now_us: int) -> bool:
        """Still taking bids at `now_us`: it closes later and nothing concluded it."""
        return not self.concluded and self.closes_us is not None and self.closes_us > now_us

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def apply_events(
    records: MutableMapping[str, ProjectRecord],
    events: Iterable[StoredEvent],
    rules: FoldRules,
) -> set[str]:
    """Fold `events` (ascending seq) into `records`; return the ids changed."""
    changed: set[str] = set()
    for event in events:
        record = records.get(event.project)
        if record is None:
            record = records[event.project] = ProjectRecord(
                event.project, event.category, event.agency, event.region
            )
        doc = orjson.loads(event.json)
        record.category, record.agency, record.region = event.category, event.agency, event.region
        moment = doc["published_at"]
        if event.stage == REGISTERED:
            _set_fields(record, doc["data"])
            record.created_at = moment = doc["occurred_at"]
        elif event.stage == AMENDED:
            _set_fields(record, doc["data"].get("changes", {}))
        elif event.stage in rules.lifecycle:
            record.stage = event.stage
        if event.stage in rules.concluding:
            record.concluded = True
        if dates := rules.dates_in(event.stage, doc["data"]):
            _set_dates(record, dates, event.stage, event.seq, rules.closing)
        activity = epoch_us(moment)
        if activity >= record.activity_us:
            record.activity_us, record.updated_at = activity, moment
        record.last_seq = max(record.last_seq, event.seq)
        changed.add(event.project)
    return changed


def epoch_us(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp() * 1_000_000)


def _is_time(value: object) -> bool:
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        return False
    try:
        epoch_us(value)
    except (ValueError, OverflowError):
        return False
    return True


def _set_dates(
    record: ProjectRecord, dates: dict[str, str], stage: str, seq: int, closing: frozenset[str]
) -> None:
    by_field = {d["field"]: d for d in record.key_dates}
    for key, at in dates.items():
        by_field[key] = {"field": key, "at": at, "stage": stage, "seq": seq}
    record.key_dates = sorted(by_field.values(), key=lambda d: (epoch_us(d["at"]), d["field"]))
    closes = [at for key, at in dates.items() if key in closing]
    if closes:
        record.closes_us, record.closes_at = max((epoch_us(at), at) for at in closes)


def _set_fields(record: ProjectRecord, fields: dict[str, Any]) -> None:
    for name in ("title", "budget", "currency", "region", "must_tender"):
        if name in fields:
            setattr(record, name, fields[name])


class ProjectFold:
    """Every project the log yields, as a `Projection` (rebuild and verify)."""

    name = NAME

    def __init__(self, rules: FoldRules) -> None:
        self.rules = rules
        self.records: dict[str, ProjectRecord] = {}
        self.cursor = 0

    def apply(self, events: Sequence[StoredEvent]) -> None:
        apply_events(self.records, events, self.rules)
        if events:
            self.cursor = events[-1].seq

    def registered(self) -> list[ProjectRecord]:
        """The records that are projects (registered), by id."""
        return sorted((r for r in self.records.values() if r.registered), key=lambda r: r.id)
