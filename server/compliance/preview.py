"""The statutory warnings an event would raise, before it is published (`?dry_run=1`).

A watchdog of its own (same rules, calendar and lead as the running one)
follows the project's log as the running one did, timers included, up to
the moment the candidate would be published; then it takes the candidate.
What that creates, and had not been raised before, is what publishing the
event would raise: a notice whose bid deadline leaves less than the
statutory minimum (时限不足), a contract signed later than the award allows,
a time a rule needs that the event lacks. Nothing here touches the running
watchdog or the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.compliance.rules import Kind
from server.compliance.watchdog import Alert, Level, Watchdog
from server.core.events import StoredEvent

SHORT = "时限不足"  # an at_least period cut short: not late, too soon


def preview(running: Watchdog, earlier: Sequence[StoredEvent], candidate: StoredEvent) -> list[Any]:
    """The warnings `candidate` would raise after `earlier` (the project's events)."""
    watchdog = running.fresh()
    raised: set[str] = set()
    for event in earlier:
        fact = watchdog.fact(event)
        raised.update(alert.id for alert in watchdog.fire(fact.published_at))
        raised.update(alert.id for alert in watchdog.observe(fact))
    fact = watchdog.fact(candidate)
    raised.update(alert.id for alert in watchdog.fire(fact.published_at))
    return [as_warning(a) for a in watchdog.observe(fact) if a.id not in raised]


def as_warning(alert: Alert) -> dict[str, Any]:
    rule = alert.rule
    short = rule.kind is Kind.AT_LEAST and alert.level is Level.BREACH
    return {
        "rule": rule.id,
        "name": rule.name,
        "kind": str(rule.kind),
        "level": str(alert.level),
        "message": f"{SHORT}：{alert.message}" if short else alert.message,
        "due_at": alert.to_json()["due"],
        "basis": rule.basis,
        "confidence": str(rule.confidence),
        "advisory": rule.advisory,
    }
