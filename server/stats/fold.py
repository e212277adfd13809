"""The statistics' facts as a fold of the log: no I/O, tested with lists of events.

Two records, both pure functions of the events in seq order:

- per project, what the figures need and the projects table does not hold
  (projects/fold.py has its category, agency, stage and budget): when the
  call for bids was first published (`noticed_us`), the month the project
  counts in, the award (when, how much), the latest number of bidders, and
  how the procedure ended (`awarded` or `failed`);
- per month (Beijing time, as the law counts days), category and agency,
  how many events were published: the disclosure activity by month.

Which stages are which is fixed here (docs/stats.md says why): the first of
`OPENING` is the notice, `award` the award, `failed` the failure; the
number of bidders is the latest `data.bidders` any event published; a
correction of the award's `amount` or of the `bidders` it counted replaces
the value. Amounts are yuan (server/facts.py: a number, or text such as
"1285万元", read here as 12,850,000).
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
UNITS = {"元": 1, "万元": 10_000, "亿元": 100_000_000}

# (month as YYYYMM, category, agency) → events published
MonthKey = tuple[int, str, str]


@dataclass
class ProjectFacts:
    id: str
    month: int  # YYYYMM: of the first notice, or of the project's first event until one
    noticed_us: int | None = None  # the first notice's occurred_at, epoch µs
    award_us: int | None = None  # the latest award's occurred_at
    award_seq: int | None = None
    award_amount: float | None = None  # yuan
    bidders: int | None = None
    bidders_seq: int | None = None
    outcome: str | None = None  # "awarded" or "failed": the latest of the two stages
    last_seq: int = 0

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


def whole(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    return None


def apply_events(
    records: MutableMapping[str, ProjectFacts],
    months: MutableMapping[MonthKey, int] | None,
    events: Iterable[StoredEvent],
) -> set[str]:
    """Fold `events` (ascending seq) into `records` (and count them in
    `months` unless None); return the ids of the projects changed."""
    changed: set[str] = set()
    for event in events:
        doc = orjson.loads(event.json)
        if months is not None:
            key = (month_of(doc["published_at"]), event.category, event.agency)
            months[key] = months.get(key, 0) + 1
        if apply_one(records, event, doc):
            changed.add(event.project)
    return changed


def apply_one(
    records: MutableMapping[str, ProjectFacts], event: StoredEvent, doc: dict[str, Any]
) -> bool:
    """Fold one event into its project's facts; whether they changed."""
    record = records.get(event.project)
    occurred = doc["occurred_at"]
    if record is None:
        record = records[event.project] = ProjectFacts(event.project, month_of(occurred))
    elif not matters(event.stage, doc["data"]):
        return False
    data = doc["data"] if isinstance(doc["data"], dict) else {}
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
    record.last_seq = event.seq
    return True


def matters(stage: str, data: object) -> bool:
    """Whether an event of a project already known can change its facts: the
    write path skips the others without reading the project's row."""
    return (
        stage in OPENING
        or stage in (AWARD, FAILED, CORRECTION)
        or (isinstance(data, dict) and "bidders" in data)
    )


class StatsFold:
    """The whole log's facts, as a `Projection` (rebuild and verify)."""

    name = NAME

    def __init__(self) -> None:
        self.records: dict[str, ProjectFacts] = {}
        self.months: Counter[MonthKey] = Counter()
        self.cursor = 0

    def apply(self, events: Sequence[StoredEvent]) -> None:
        apply_events(self.records, self.months, events)
        if events:
            self.cursor = events[-1].seq
