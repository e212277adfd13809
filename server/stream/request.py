"""Validating what a client asks to follow, for both stream transports."""

from __future__ import annotations

from server.core.errors import ApiError
from server.core.numbers import MAX_SEQ, whole_number
from server.core.topics import parse_topic
from server.domain import Domain


def parse_topics(raw: object, domain: Domain, limit: int, *, notify: bool = False) -> list[str]:
    """`notify`: for Web Push and the channels, which may also follow `enquiry:<id>`."""
    if not isinstance(raw, list) or not raw:
        raise ApiError(422, "invalid_topic", "topics must be a non-empty list")
    if len(raw) > limit:
        raise ApiError(422, "too_many_topics", f"at most {limit} topics per connection")
    return list(dict.fromkeys(parse_topic(t, domain.categories, notify=notify) for t in raw))


def parse_stages(raw: object, domain: Domain) -> frozenset[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise ApiError(422, "invalid_stage", "stages must be a list of stage codes")
    unknown = [s for s in raw if s not in domain.stages]
    if unknown:
        raise ApiError(
            422,
            "invalid_stage",
            f"unknown stage {unknown[0][:40]!r}",
            {"allowed": sorted(domain.stages)},
        )
    return frozenset(raw) if raw else None


def parse_since(raw: object, field: str = "since") -> int | None:
    """A seq to resume after: a JSON integer or, from a URL or header, its digits.

    `field` names where it came from (`since`, or SSE's `Last-Event-ID`).
    """
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = whole_number(raw, 0, MAX_SEQ)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_SEQ:
        raise ApiError(
            422,
            "invalid_since",
            f"{field} must be a seq: a whole number from 0 to {MAX_SEQ}",
            {"field": field},
        )
    return raw


def split_list(raw: str | None) -> list[str] | None:
    """`a,b,c` from a query string; None when absent."""
    if raw is None:
        return None
    return [part for part in raw.split(",") if part]
