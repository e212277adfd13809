"""Demo projects for an empty database, so a newcomer sees a living system.

Dates in `data/demo.json` are relative (`{"$day": -3, "$time": "09:30"}`:
three days before today, 09:30 local time), so the demo always looks current.
The events go into the log in time order, each published when it occurred,
as if the log had grown over the past weeks: the compliance watchdog then
judges the demo's history as it would a real one (on time, mostly; one
contract late, on purpose).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import orjson

from server.domain import Domain, format_time
from server.projects.changes import registration
from server.projects.checks import READS, refusal
from server.projects.table import ProjectTable
from server.store import AppendRequest, EventStore

DEMO_FILE = Path(__file__).parent / "data" / "demo.json"
log = logging.getLogger("sunbid.demo")


async def load_demo(
    store: EventStore, projects: ProjectTable, domain: Domain, now: datetime
) -> int:
    """Load the demo projects if the database has none; return how many were loaded."""
    if await projects.count() > 0:
        return 0
    demo = orjson.loads(DEMO_FILE.read_bytes())
    # (published, project index, event index (-1: its registration), project, event).
    history: list[tuple[datetime, int, int, dict[str, Any], dict[str, Any] | None]] = []
    for p, entry in enumerate(demo["projects"]):
        project = domain.project_input({k: v for k, v in entry.items() if k != "events"})
        events = [_resolve_dates(raw_event, now) for raw_event in entry["events"]]
        times = [_published(event, now) for event in events]
        # Registered when its first event occurred, and before it (event -1).
        history.append((min(times, default=now), p, -1, project, None))
        history += [
            (t, p, e, project, event)
            for e, (t, event) in enumerate(zip(times, events, strict=True))
        ]
    seqs: dict[tuple[int, int], int] = {}  # (project, event) in the file → seq
    for published, p, e, project, event in sorted(history, key=lambda h: (h[0], h[1], h[2])):
        if event is None:
            await store.append(registration(project, format_time(published), published))
            continue
        corrects = event.get("data", {}).pop("corrects_event", None)
        if corrects is not None:
            event["data"]["corrects"] = seqs[(p, corrects)]
        draft = domain.event_input(event, project["category"], now.tzinfo)  # type: ignore[arg-type]
        # Checked as a publication is: the demo shows nothing staff could not publish.
        result = await store.append(
            AppendRequest(
                project=project,
                draft=draft,
                published_at=published,
                check=lambda earlier, event: _refused(domain, earlier, event),
                check_reads=READS,
            )
        )
        seqs[(p, e)] = result.event.seq
    log.info("loaded %d demo projects", len(demo["projects"]))
    return len(demo["projects"])


def _refused(
    domain: Domain, earlier: Sequence[Mapping[str, Any]], event: Mapping[str, Any]
) -> Exception | None:
    refused = refusal(domain, earlier, event)
    if refused is None:
        return None
    return ValueError(f"{DEMO_FILE}: {event['project']} {event['stage']}: {refused.message}")


def _published(event: dict[str, Any], now: datetime) -> datetime:
    """When a demo event is published: when it occurred (as format_time wrote
    it), or now if that is in the future."""
    occurred = event.get("occurred_at")
    return min(datetime.fromisoformat(occurred), now) if occurred else now


def _resolve_dates(value: Any, now: datetime) -> Any:
    if isinstance(value, dict):
        if "$day" in value:
            hour, minute = (int(part) for part in value.get("$time", "09:00").split(":"))
            day = now.date() + timedelta(days=value["$day"])
            return format_time(datetime.combine(day, time(hour, minute), now.tzinfo))
        return {k: _resolve_dates(v, now) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_dates(v, now) for v in value]
    return value
