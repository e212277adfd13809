"""Topics a client follows, which of them an event belongs to, and who may follow them.

Pure functions and one small value class, shared by the hub (live fan-out),
the store (replay queries), both stream transports, the event listing and
Web Push. `refuse_unless_allowed` is the one place that decides which topic
needs which role: every way of following a topic asks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from server.core.errors import ApiError

MAX_CODE = 64
CODE = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_CODE}}}")
PUBLIC_KINDS = ("project", "category", "agency", "region")
# Followed only by notifications (Web Push, the channels), never by a stream
# or the event listing: no replay reads the log by it. `enquiry:<id>` is the
# one answer to one enquiry, for the device that asked it.
NOTIFY_KINDS = ("enquiry",)
ENQUIRY_ANSWER = "enquiry_answer"  # the stage whose events carry data.enquiry
SUPERVISION = "supervision"  # compliance warnings, for supervisors and admins

# Who may follow which topic; a topic not named here is public. Staff topics
# carry warnings, not events, and only to a signed-in WebSocket: every other
# way of following (SSE, the event listing, Web Push) has no token to show.
TOPIC_ROLES: Mapping[str, frozenset[str]] = {SUPERVISION: frozenset({"supervisor", "admin"})}
STAFF_TOPICS = frozenset(TOPIC_ROLES)


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
    keys: tuple[str, ...] = (
        "all",
        "project:" + event.project,
        "category:" + event.category,
        "agency:" + event.agency,
    )
    if event.region:
        keys = (*keys, "region:" + event.region)
    if event.stage == ENQUIRY_ANSWER:
        enquiry = _enquiry_of(event)
        if enquiry is not None:
            keys = (*keys, "enquiry:" + enquiry)
    return keys


def _enquiry_of(event: Routable) -> str | None:
    """The enquiry an answer answers (its stored JSON's data.enquiry)."""
    raw = getattr(event, "json", None)
    if raw is None:
        return None
    data = orjson.loads(raw).get("data")
    enquiry = data.get("enquiry") if isinstance(data, dict) else None
    return enquiry if isinstance(enquiry, str) and CODE.fullmatch(enquiry) else None


def required_roles(topic: str) -> frozenset[str] | None:
    """The roles that may follow `topic`; None: anyone."""
    return TOPIC_ROLES.get(topic)


def refuse_unless_allowed(topics: Iterable[str], role: str | None) -> None:
    """403 `forbidden` when `role` (None: no token) may not follow one of `topics`.

    403 rather than 401 even without a token: only the WebSocket takes one
    (`{"op":"auth"}`), so over HTTP no token would help; the message says
    where the topic is served.
    """
    for topic in topics:
        roles = TOPIC_ROLES.get(topic)
        if roles is not None and role not in roles:
            raise ApiError(
                403,
                "forbidden",
                f"the {topic} topic needs a {' or '.join(sorted(roles))} token: follow it on "
                '/ws after {"op":"auth","token":"…"}',
            )


def parse_topic(topic: object, categories: Iterable[str], *, notify: bool = False) -> str:
    """A topic a client may name; with `notify` (Web Push, the channels) also
    the topics only notifications follow."""
    if not isinstance(topic, str):
        raise ApiError(422, "invalid_topic", "a topic must be a string")
    if topic == "all" or topic in STAFF_TOPICS:
        return topic
    kind, sep, value = topic.partition(":")
    kinds = (*PUBLIC_KINDS, *NOTIFY_KINDS) if notify else PUBLIC_KINDS
    if not sep or kind not in kinds or not CODE.fullmatch(value):
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
