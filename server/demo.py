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
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import orjson

from server.domain import Domain, format_time
from server.store import AppendRequest, EventStore

DEMO_FILE = Path(__file__).parent / "data" / "demo.json"
log = logging.getLogger("sunbid.demo")


async def load_demo(store: EventStore, domain: Domain, now: datetime) -> int:
    """Load the demo projects if the database has none; return how many were loaded."""
    if await store.count_projects() > 0:
        return 0
    demo = orjson.loads(DEMO_FILE.read_bytes())
    history: list[tuple[datetime, int, int, dict[str, Any], dict[str, Any]]] = []
    for p, entry in enumerate(demo["projects"]):
        raw = {k: v for k, v in entry.items() if k != "events"}
        project = await store.create_project(domain.project_input(raw))
        for e, raw_event in enumerate(entry["events"]):
            event = _resolve_dates(raw_event, now)
            occurred = event.get("occurred_at")  # as format_time wrote it
            published = min(datetime.fromisoformat(occurred), now) if occurred else now
            history.append((published, p, e, project, event))
    seqs: dict[tuple[int, int], int] = {}  # (project, event) in the file → seq
    for published, p, e, project, event in sorted(history, key=lambda h: (h[0], h[1], h[2])):
        corrects = event.get("data", {}).pop("corrects_event", None)
        if corrects is not None:
            event["data"]["corrects"] = seqs[(p, corrects)]
        draft = domain.event_input(event, project["category"], now.tzinfo)  # type: ignore[arg-type]
        result = await store.append(
            AppendRequest(
                project=project,
                draft=draft,
                lifecycle=domain.is_lifecycle(draft["stage"]),
                published_at=published,
            )
        )
        seqs[(p, e)] = result.event.seq
    log.info("loaded %d demo projects", len(demo["projects"]))
    return len(demo["projects"])


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
