"""Topics a client follows, and which of them an event belongs to.

Pure functions and one small value class, shared by the hub (live fan-out),
the store (replay queries) and both stream transports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from server.core.errors import ApiError

CODE = re.compile(r"[A-Za-z0-9._-]{1,64}")
PUBLIC_KINDS = ("project", "category", "agency", "region")
SUPERVISION = "supervision"  # compliance warnings, for supervisors and admins
STAFF_TOPICS = frozenset({SUPERVISION})


class Routable(Protocol):
    @property
    def project(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def agency(self) -> str: ...
    @property
    def region(self) -> str | None: ...
    @property
    def stage(self) -> str: ...


def topics_of(event: Routable) -> tuple[str, ...]:
    """Every topic an event is published on."""
    keys = (
        "all",
        "project:" + event.project,
        "category:" + event.category,
        "agency:" + event.agency,
    )
    if event.region:
        return (*keys, "region:" + event.region)
    return keys


def parse_topic(topic: object, categories: Iterable[str]) -> str:
    if not isinstance(topic, str):
        raise ApiError(422, "invalid_topic", "a topic must be a string")
    if topic == "all" or topic in STAFF_TOPICS:
        return topic
    kind, sep, value = topic.partition(":")
    if not sep or kind not in PUBLIC_KINDS or not CODE.fullmatch(value):
        raise ApiError(
            422,
            "invalid_topic",
            f"unknown topic {topic[:80]!r}: use all, project:<id>, category:<code>, "
            "agency:<code> or region:<code>",
        )
    if kind == "category" and value not in categories:
        raise ApiError(422, "invalid_topic", f"unknown category {value!r}")
    return topic


@dataclass(slots=True)
class TopicFilter:
    """Topics with, for each, the stages wanted (None: every stage)."""

    stages_by_topic: dict[str, frozenset[str] | None] = field(default_factory=dict)

    def matches(self, event: Routable) -> bool:
        return any(True for _ in self.matching(event))

    def matching(self, event: Routable) -> Iterator[str]:
        """The followed topics through which this event reaches the client."""
        wanted = self.stages_by_topic
        for topic in topics_of(event):
            if topic in wanted:
                stages = wanted[topic]
                if stages is None or event.stage in stages:
                    yield topic

    def public(self) -> Mapping[str, frozenset[str] | None]:
        """The topics that select events from the log (staff topics do not)."""
        return {t: s for t, s in self.stages_by_topic.items() if t not in STAFF_TOPICS}
