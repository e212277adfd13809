"""The compliance drill-down: one row per statutory item behind the scorecard.

The watchdog keeps the items that were not met (late, too short) and knows
the open breaches; the items met on time are one per rule and event (as many
as the log's events), so it keeps none of those: for one project they are
found by replaying its events through a watchdog of its own that keeps them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from server.compliance import logread
from server.compliance.watchdog import Watchdog
from server.core.events import StoredEvent

STATUSES = ("late", "open", "on_time")
UNMET = ("late", "open")  # what the list shows unless a status is asked for


def replay(watchdog: Watchdog, events: Sequence[StoredEvent], now: datetime) -> Watchdog:
    """A watchdog like `watchdog` (same rules, calendar, lead) that has seen only
    `events` (one project's, in seq order, up to what `watchdog` has seen) and
    kept every item, on time too."""
    fresh = watchdog.fresh(keep_on_time=True)
    for event in events:
        if event.seq > watchdog.head:
            break
        logread.check(fresh, event.seq, functools.partial(fresh.fact, event))
    fresh.fire(now)
    return fresh


def chosen(items: list[dict[str, Any]], status: str | None) -> list[dict[str, Any]]:
    """The items of `status` (late and open ones if None): late first, then
    open, then on time; the latest due first within each."""
    wanted = UNMET if status is None else (status,)
    shown = [item for item in items if item["status"] in wanted]
    shown.sort(key=lambda i: (i["due_at"] or "", i["project"], i["rule"]), reverse=True)
    shown.sort(key=lambda i: STATUSES.index(i["status"]))
    return shown
