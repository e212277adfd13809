"""Checks before publishing: what a new event may not say, given the project's log.

The log is immutable, so what cannot be true is refused before it is
written, not corrected after. Pure functions over the project's earlier
events (dicts as stored, in seq order) and the candidate event (as it would
be stored, without seq and hash): the store runs them inside the
transaction that would append it (store/sqlite.py), so two publications
racing each other are judged one after the other and cannot both pass.

What the vocabulary states is data (categories.toml): which facts a stage
requires (checked here, not with the input, so that a request repeated with
its Idempotency-Key still gets the event it made before these checks
existed), and which published time it may not come before (`not_before`).
The rules of the lifecycle itself are here, each with a short id the API
names as `details.rule`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from server.core.errors import ApiError, invalid
from server.domain import Category, Domain
from server.facts import Kind

Event = Mapping[str, Any]

# What the checks read of a project's earlier events in the append's
# transaction (AppendRequest.check_reads): every award and correction (the
# standing award), the latest notice and failure. The store adds the latest
# event, the events the candidate names by seq, and each key date's latest
# value (what `not_before` compares with).
READS: Mapping[str, str] = MappingProxyType(
    {"award": "all", "correction": "all", "notice": "latest", "failed": "latest"}
)


@dataclass(frozen=True)
class Contradiction:
    """The candidate contradicts an earlier event of the log."""

    rule: str  # a short id: opening_before_deadline, second_award, …
    event: int  # the seq of the earlier event it contradicts
    message: str

    def error(self) -> ApiError:
        return ApiError(422, "contradicts", self.message, {"event": self.event, "rule": self.rule})


def refusal(domain: Domain, earlier: Sequence[Event], event: Event) -> ApiError | None:
    """Why `event` may not follow `earlier` in its project's log, or None if it may."""
    missing = domain.missing_fact(event["category"], event["stage"], _data(event))
    if missing is not None:
        return missing
    category = domain.categories[event["category"]]
    bad = _unknown_reference(domain, earlier, event)
    if bad is not None:
        return bad
    found = contradiction(domain, category, earlier, event)
    return None if found is None else found.error()


def contradiction(
    domain: Domain, category: Category, earlier: Sequence[Event], event: Event
) -> Contradiction | None:
    stage = event["stage"]
    use = category.uses[stage]
    if not use.oversight:
        ended = _last(earlier, "failed")
        if ended is not None:
            name = category.uses["failed"].zh
            return Contradiction(
                "after_failed",
                ended["seq"],
                f"本项目已发布{name}（第{ended['seq']}号），之后只能发布异议、投诉、处罚或更正"
                f"等监督信息，不能再发布{use.zh}。"
                " The transaction has ended (failed or terminated); only oversight stages "
                "may follow.",
            )
    if stage == "award":
        found = _award(category, earlier)
        if found is not None:
            return found
    if stage == "contract" and _last(earlier, "award") is None:
        return Contradiction(
            "contract_before_award",
            earlier[-1]["seq"] if earlier else 0,
            f"尚未发布{category.uses['award'].zh}，不能发布{use.zh}。"
            " A contract cannot come before the award.",
        )
    for key, rule in use.not_before.items():
        found = _before(domain, category, earlier, event, key, rule)
        if found is not None:
            return found
    return None


def _award(category: Category, earlier: Sequence[Event]) -> Contradiction | None:
    name = category.uses["award"].zh
    if _last(earlier, "notice") is None:
        return Contradiction(
            "award_before_notice",
            earlier[-1]["seq"] if earlier else 0,
            f"尚未发布{category.uses['notice'].zh}，不能发布{name}。"
            " An award cannot come before any notice.",
        )
    corrected = {
        e["data"].get("corrects") for e in earlier if e["stage"] == "correction" and _data(e)
    }
    standing = [e for e in earlier if e["stage"] == "award" and e["seq"] not in corrected]
    if standing:
        first = standing[-1]
        return Contradiction(
            "second_award",
            first["seq"],
            f"本项目已发布{name}（第{first['seq']}号）。如需改正，请先发布更正（更正第"
            f"{first['seq']}号），再发布新的结果。"
            " The project has an award already: publish a correction of it first.",
        )
    return None


def _before(
    domain: Domain,
    category: Category,
    earlier: Sequence[Event],
    event: Event,
    key: str,
    rule: str,
) -> Contradiction | None:
    """The event occurs before the latest published value of `key`."""
    latest = latest_value(earlier, key)
    if latest is None:
        return None  # nothing recorded to contradict (the watchdog reports what is missing)
    value, seq = latest
    limit, at = _time(value), _time(event["occurred_at"])
    if limit is None or at is None or at >= limit:
        return None
    fact = domain.facts[key]
    return Contradiction(
        rule,
        seq,
        f"{category.uses[event['stage']].zh}时间 {_shown(at)} 早于第{seq}号公告的{fact.zh}"
        f" {_shown(limit)}。 It occurs before the {fact.en.lower()} published in event {seq}.",
    )


def latest_value(earlier: Sequence[Event], key: str) -> tuple[Any, int] | None:
    """The latest value of data `key` in the log, and the seq that published it: a
    clarification that states a new value, or a correction of that field
    (`field` = key, `now` = the value), replaces what came before. (In the
    store's transaction not every event comes, `READS`: each key date is added
    to the event that stated its latest value, as the projects record holds it.)"""
    found = None
    for e in earlier:
        data = _data(e)
        if data.get(key) is not None:
            found = (data[key], e["seq"])
        elif e["stage"] == "correction" and data.get("field") == key and data.get("now"):
            found = (data["now"], e["seq"])
    return found


def _unknown_reference(domain: Domain, earlier: Sequence[Event], event: Event) -> ApiError | None:
    """An `event` field must name an earlier event of the same project."""
    seqs = {e["seq"] for e in earlier}
    for key, value in _data(event).items():
        fact = domain.facts.get(key)
        if fact is not None and fact.kind is Kind.EVENT and value not in (None, *seqs):
            return invalid(f"data.{key}", "the seq of an earlier event of this project")
    return None


def _last(earlier: Sequence[Event], stage: str) -> Event | None:
    return next((e for e in reversed(earlier) if e["stage"] == stage), None)


def _data(event: Event) -> Mapping[str, Any]:
    data = event.get("data")
    return data if isinstance(data, dict) else {}


def _time(value: object) -> datetime | None:
    """A stored time; None for one that cannot be compared (no offset, not a time)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _shown(moment: datetime) -> str:
    """A time as the app writes it (2026年12月18日 09:30), at the offset it was given with."""
    return f"{moment.year}年{moment.month}月{moment.day}日 {moment:%H:%M}"
