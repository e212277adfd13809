"""OCDS 1.1 (docs/ocds.md): the release feed and a project's record package.

Public data, read from the log as stored (the event's JSON bytes, by seq
range) and transformed by server/interop/ocds.py. A page of the feed that
is not the last never changes (the log only grows), so a cache may keep it
for an hour; the last page and a record change with the next event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.api import JSONResponse, int_param, state_of
from server.core.errors import ApiError
from server.core.topics import CODE
from server.domain import format_time
from server.interop.ocds import (
    Context,
    Publication,
    corrected_seq,
    record_package,
    release_package,
)
from server.state import AppState
from server.stream.request import parse_since

PAGE = 100
MAX_PAGE = 1000
FULL_PAGE_CACHE = "public, max-age=3600"
LATEST_CACHE = "public, max-age=5"


async def releases(request: Request) -> Response:
    """`GET /api/ocds/releases?since=S&limit=L`: a release per event after S, ascending."""
    state = state_of(request)
    since = parse_since(request.query_params.get("since") or "0") or 0
    limit = int_param(request, "limit", PAGE, 1, MAX_PAGE)
    events = [orjson.loads(e.json) for e in await state.store.events_since(since, None, limit)]
    corrected = await _corrected(state, events)
    origin = _origin(request, state)
    more = bool(events) and events[-1]["seq"] < state.store.head
    next_page = _feed_url(origin, events[-1]["seq"], limit) if more else None
    package = release_package(
        events,
        corrected,
        _context(state),
        _publication(state, origin),
        uri=_feed_url(origin, since, limit),
        published=events[-1]["published_at"] if events else format_time(state.clock.now()),
        next_page=next_page,
    )
    cache = FULL_PAGE_CACHE if more else LATEST_CACHE
    return JSONResponse(package, headers={"Cache-Control": cache})


async def record(request: Request) -> Response:
    """`GET /api/ocds/records/{project_id}`: the project's releases and compiled release."""
    state = state_of(request)
    project_id = request.path_params["project_id"]
    timeline = await state.store.timeline(project_id) if CODE.fullmatch(project_id) else []
    if not timeline:
        raise ApiError(404, "not_found", f"no project {project_id[:64]!r}")
    events = [orjson.loads(event.json) for event in timeline]
    origin = _origin(request, state)
    package = record_package(
        events,
        _context(state),
        _publication(state, origin),
        uri=f"{origin}/api/ocds/records/{project_id}",
    )
    return JSONResponse(package, headers={"Cache-Control": LATEST_CACHE})


async def _corrected(
    state: AppState, events: list[dict[str, Any]]
) -> Mapping[int, Mapping[str, Any]]:
    """The earlier events the page's corrections build on: what each names, and
    the other corrections of the same event (a correction restates the facts
    with every earlier correction applied). Corrections are rare, and their
    projects' timelines short: each such project's is read whole."""
    found: dict[int, Mapping[str, Any]] = {event["seq"]: event for event in events}
    projects = {e["project"] for e in events if corrected_seq(e) is not None}
    for project_id in sorted(projects):
        for stored in await state.store.timeline(project_id):
            if stored.seq not in found:
                found[stored.seq] = orjson.loads(stored.json)
    return found


def _context(state: AppState) -> Context:
    names = {code: place.zh for code, place in state.directory.agencies.items()}
    return Context(state.settings.ocid_prefix, names, state.domain.facts)


def _publication(state: AppState, origin: str) -> Publication:
    # The disclosure catalogue (公开事项标准目录) is the publication policy:
    # what is published, by whom, within what time.
    settings = state.settings
    return Publication(settings.ocds_publisher, settings.ocds_license, f"{origin}/catalog")


def _origin(request: Request, state: AppState) -> str:
    return state.settings.public_url or f"{request.url.scheme}://{request.url.netloc}"


def _feed_url(origin: str, since: int, limit: int) -> str:
    return f"{origin}/api/ocds/releases?{urlencode({'since': since, 'limit': limit})}"
