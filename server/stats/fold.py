"""The statistics' facts as a fold of the log: no I/O, tested with lists of events.

Two records, both pure functions of the events in seq order:

- per project, everything a figure counts it by: its category and agency
  (those of its latest event, as the projects table has them), its stage
  (the latest lifecycle stage), its budget and currency (registered or last
  amended), when the call for bids was first published (`noticed_us`), the
  month the project counts in, the award (when, how much), the latest number
  of bidders, and how the procedure ended (`awarded` or `failed`);
- per month (Beijing time, as the law counts days), category and agency,
  how many events were published: the disclosure activity by month.

Which stages are which is fixed here (docs/stats.md says why): the first of
`OPENING` is the notice, `award` the award, `failed` the failure; the
number of bidders is the latest `data.bidders` any event published; a
correction of the award's `amount` or of the `bidders` it counted replaces
the value. Amounts are yuan (server/facts.py: a number, or text such as
"1285万元", read here as 12,850,000). Which stages move a project's stage
is the vocabulary's (`Domain.lifecycle_stages`), as for the projects table.

stats/cells.py sums these per-project facts into cells; the figures read
the cells, not the projects.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson

from server.compliance.calendar import LEGAL_TZ
from server.core.events import StoredEvent
from server.facts import AMOUNT_TEXT

NAME = "stats"
# The stages that call for bids, whichever a procedure publishes first: a
# prequalification notice, the tender or sale notice, a single-source publicity.
OPENING = frozenset({"prequalification", "notice", "single_source"})
AWARD = "award"
FAILED = "failed"
CORRECTION = "correction"
REGISTERED = "registered"
AMENDED = "amended"
UNITS = {"元": 1, "万元": 10_000, "亿元": 100_000_000}
# The fields after `id` that are facts (`last_seq` says which event last changed one).
FACTS = (
    "month",
    "category",
    "agency",
    "stage",
    "budget",
    "currency",
    "noticed_us",
    "award_us",
    "award_seq",
    "award_amount",
    "bidders",
    "bidders_seq",
    "outcome",
)

# (month as YYYYMM, category, agency) → events published
MonthKey = tuple[int, str, str]


@dataclass
class ProjectFacts:
    id: str
    month: int  # YYYYMM: of the first notice, or of the project's first event until one
    category: str = ""
    agency: str = ""
    stage: str | None = None  # the latest lifecycle stage published
    budget: float | None = None  # as registered or last amended, in `currency`
    currency: str | None = None
    noticed_us: int | None = None  # the first notice's occurred_at, epoch µs
    award_us: int | None = None  # the latest award's occurred_at
    award_seq: int | None = None
    award_amount: float | None = None  # yuan
    bidders: int | None = None
    bidders_seq: int | None = None
    outcome: str | None = None  # "awarded" or "failed": the latest of the two stages
    last_seq: int = 0

    def facts(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in FACTS)

    @property
    def budget_cny(self) -> float | None:
        """The budget as the figures add it: yuan only (never converted)."""
        return self.budget if self.currency == "CNY" else None

    @property
    def days_us(self) -> int | None:
        """From the first notice to the latest award, for an awarded project
        with a notice; None for an award dated before its notice (a data error)."""
        if self.outcome != "awarded" or self.noticed_us is None or self.award_us is None:
            return None
        took = self.award_us - self.noticed_us
        return took if took >= 0 else None

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def month_of(moment: str) -> int:
    """YYYYMM of an RFC 3339 time, in Beijing time."""
    if moment.endswith("+08:00"):  # written in Beijing time already, as the server writes
        return int(moment[0:4]) * 100 + int(moment[5:7])
    local = datetime.fromisoformat(moment).astimezone(LEGAL_TZ)
    return local.year * 100 + local.month


def epoch_us(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp() * 1_000_000)


def yuan(value: object) -> float | None:
    """An amount as publishing accepts it, in yuan; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 and value == value and value != float("inf") else None
    if isinstance(value, str) and (found := AMOUNT_TEXT.fullmatch(value)):
        unit = found.group(2)
        return float(value[: -len(unit)]) * UNITS[unit]
    return None


def number(value: object) -> float | None:
    """A budget as the projects table keeps it (a number), as a float."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def whole(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    return None


def apply_events(
    records: MutableMapping[str, ProjectFacts],
    months: MutableMapping[MonthKey, int] | None,
    events: Iterable[StoredEvent],
    lifecycle: frozenset[str],
) -> set[str]:
    """Fold `events` (ascending seq) into `records` (and count them in
    `months` unless None); return the ids of the projects changed."""
    changed: set[str] = set()
    for event in events:
        doc = orjson.loads(event.json)
        if months is not None:
            key = (month_of(doc["published_at"]), event.category, event.agency)
            months[key] = months.get(key, 0) + 1
        if apply_one(records, event, doc, lifecycle):
            changed.add(event.project)
    return changed


def apply_one(
    records: MutableMapping[str, ProjectFacts],
    event: StoredEvent,
    doc: dict[str, Any],
    lifecycle: frozenset[str],
) -> bool:
    """Fold one event into its project's facts; whether they changed."""
    record = records.get(event.project)
    occurred = doc["occurred_at"]
    if record is None:
        record = records[event.project] = ProjectFacts(event.project, month_of(occurred))
        before: tuple[Any, ...] | None = None
    else:
        before = record.facts()
    data = doc["data"] if isinstance(doc["data"], dict) else {}
    record.category, record.agency = event.category, event.agency
    if event.stage in lifecycle:
        record.stage = event.stage
    if event.stage == REGISTERED:
        _set_budget(record, data)
    elif event.stage == AMENDED and isinstance(changes := data.get("changes"), dict):
        _set_budget(record, changes)
    if event.stage in OPENING and record.noticed_us is None:
        record.noticed_us, record.month = epoch_us(occurred), month_of(occurred)
    if event.stage == AWARD:
        record.award_us, record.award_seq = epoch_us(occurred), event.seq
        record.award_amount = yuan(data.get("amount"))
        record.outcome = "awarded"
    elif event.stage == FAILED:
        record.outcome = "failed"
    if (count := whole(data.get("bidders"))) is not None:
        record.bidders, record.bidders_seq = count, event.seq
    if event.stage == CORRECTION:
        corrected, field = data.get("corrects"), data.get("field")
        if field == "amount" and corrected is not None and corrected == record.award_seq:
            record.award_amount = yuan(data.get("now"))
        elif field == "bidders" and corrected is not None and corrected == record.bidders_seq:
            record.bidders = whole(data.get("now"))
    if before is not None and record.facts() == before:
        return False
    record.last_seq = event.seq
    return True


def _set_budget(record: ProjectFacts, fields: dict[str, Any]) -> None:
    """What projects/fold.py sets of `budget` and `currency`, where given."""
    if "budget" in fields:
        record.budget = number(fields["budget"])
    if "currency" in fields:
        currency = fields["currency"]
        record.currency = currency if isinstance(currency, str) else None


class StatsFold:
    """The whole log's facts, as a `Projection` (rebuild and verify)."""

    name = NAME

    def __init__(self, lifecycle: frozenset[str]) -> None:
        self.lifecycle = lifecycle
        self.records: dict[str, ProjectFacts] = {}
        self.months: Counter[MonthKey] = Counter()
        self.cursor = 0

    def apply(self, events: Sequence[StoredEvent]) -> None:
        apply_events(self.records, self.months, events, self.lifecycle)
        if events:
            self.cursor = events[-1].seq
