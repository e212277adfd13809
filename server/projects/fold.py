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
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, MutableMapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson

from server.core.events import StoredEvent

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
)


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

    @property
    def registered(self) -> bool:
        return self.created_at is not None

    def public(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in PUBLIC_FIELDS}

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def apply_events(
    records: MutableMapping[str, ProjectRecord],
    events: Iterable[StoredEvent],
    lifecycle: Collection[str],
) -> set[str]:
    """Fold `events` (ascending seq) into `records`; return the ids changed.

    `lifecycle`: the stages that move a project's `stage` (not oversight,
    not the record's own stages).
    """
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
        elif event.stage in lifecycle:
            record.stage = event.stage
        activity = epoch_us(moment)
        if activity >= record.activity_us:
            record.activity_us, record.updated_at = activity, moment
        record.last_seq = max(record.last_seq, event.seq)
        changed.add(event.project)
    return changed


def epoch_us(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp() * 1_000_000)


def _set_fields(record: ProjectRecord, fields: dict[str, Any]) -> None:
    for name in ("title", "budget", "currency", "region", "must_tender"):
        if name in fields:
            setattr(record, name, fields[name])


class ProjectFold:
    """Every project the log yields, as a `Projection` (rebuild and verify)."""

    name = NAME

    def __init__(self, lifecycle: Collection[str]) -> None:
        self.lifecycle = frozenset(lifecycle)
        self.records: dict[str, ProjectRecord] = {}
        self.cursor = 0

    def apply(self, events: Sequence[StoredEvent]) -> None:
        apply_events(self.records, events, self.lifecycle)
        if events:
            self.cursor = events[-1].seq

    def registered(self) -> list[ProjectRecord]:
        """The records that are projects (registered), by id."""
        return sorted((r for r in self.records.values() if r.registered), key=lambda r: r.id)
