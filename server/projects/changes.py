"""The events that register a project and amend its details.

Both go through the log like any publication (seq, hash, every subscriber
sees them); neither moves the project's `stage`. Their `title` is what a
person reads in a timeline: the project's title for a registration,
"项目信息变更：<reason>" for an amendment (cut to the title's limit; the
reason in full is the event's `body` and `data.reason`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from server.domain import MAX_TITLE, PROJECT_FIELDS
from server.projects.fold import AMENDED, REGISTERED
from server.store import AppendRequest

AMENDED_PREFIX = "项目信息变更："


def registration(
    project: Mapping[str, Any],
    occurred_at: str | None = None,
    published_at: datetime | None = None,
) -> AppendRequest:
    """The `registered` event of a validated new project (Domain.project_input).

    `occurred_at`: when the project came to be, if not now (the migration
    registers old projects at their old `created_at`); it becomes the
    project's `created_at`. `published_at`: only for the demo's history.
    """
    return AppendRequest(
        project=project,
        draft={
            "stage": REGISTERED,
            "title": project["title"],
            "body": "",
            "data": {name: project[name] for name in PROJECT_FIELDS},
            "occurred_at": occurred_at,
        },
        published_at=published_at,
        once=True,
    )


def amendment(project: Mapping[str, Any], changes: Mapping[str, Any], reason: str) -> AppendRequest:
    """The `amended` event of `project` (as it is now: the event is routed
    to its followers, old region included) changing `changes`."""
    title = AMENDED_PREFIX + reason
    if len(title) > MAX_TITLE:
        title = title[: MAX_TITLE - 1] + "…"
    return AppendRequest(
        project=project,
        draft={
            "stage": AMENDED,
            "title": title,
            "body": reason,
            "data": {"changes": dict(changes), "reason": reason},
            "occurred_at": None,
        },
    )
