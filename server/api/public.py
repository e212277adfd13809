"""Endpoints anyone may call: health, vocabulary, directory, projects, events."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.api import JSONResponse, choice_param, code_params, int_param, state_of
from server.core.errors import ApiError
from server.core.lease import node_name
from server.core.topics import CODE, refuse_unless_allowed
from server.stream.request import parse_since, parse_stages, parse_topics, split_list

MAX_QUERY = 100
MAX_WORDS = 10
STATUSES = ("open", "closing")
SORTS = ("activity", "closes")


NODE = node_name()  # which process answered, of a deployment's many


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "head": state_of(request).store.head, "node": NODE})


async def categories(request: Request) -> Response:
    return JSONResponse(state_of(request).domain.as_json())


async def directory(request: Request) -> Response:
    """Agencies' and regions' names: reference data that changes with a restart
    at most, so a client may keep it five minutes and then revalidate."""
    found = state_of(request).directory
    headers = {"ETag": found.etag, "Cache-Control": "public, max-age=300"}
    wanted = request.headers.get("if-none-match", "")
    if found.etag in (tag.strip().removeprefix("W/") for tag in wanted.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type="application/json", headers=headers)


async def list_projects(request: Request) -> Response:
    state = state_of(request)
    params = request.query_params
    filters = code_params(request, ("category", "agency", "region", "stage"))
    query = params.get("q") or ""
    if len(query) > MAX_QUERY:
        raise ApiError(
            422, "invalid_parameter", f"q: at most {MAX_QUERY} characters", {"field": "q"}
        )
    words = list(dict.fromkeys(query.split()))  # any run of white space separates words
    if len(words) > MAX_WORDS:
        raise ApiError(422, "invalid_parameter", f"q: at most {MAX_WORDS} words", {"field": "q"})
    status = choice_param(request, "status", STATUSES)
    sort = choice_param(request, "sort", SORTS) or "activity"
    limit = int_param(request, "limit", 20, 1, 100)
    try:
        items, next_cursor = await state.projects.list(
            filters,
            words,
            params.get("cursor") or None,
            limit,
            status=status,
            sort=sort,
        )
    except ValueError:
        raise ApiError(
            422, "invalid_parameter", "cursor: not a cursor this API gave out", {"field": "cursor"}
        ) from None
    return JSONResponse({"items": items, "next_cursor": next_cursor})


async def get_project(request: Request) -> Response:
    state = state_of(request)
    project_id = request.path_params["project_id"]
    project = await state.projects.get(project_id) if CODE.fullmatch(project_id) else None
    if project is None:
        raise ApiError(404, "not_found", f"no project {project_id[:64]!r}")
    timeline = await state.store.timeline(project_id)
    # Events are served as stored: their bytes are spliced in, not re-encoded.
    project["timeline"] = [orjson.Fragment(event.json) for event in timeline]
    project["deadlines"] = state.compliance.watchdog.deadlines(project_id, state.clock.now())
    return JSONResponse(project)


async def list_events(request: Request) -> Response:
    state = state_of(request)
    params = request.query_params
    since = parse_since(params.get("since") or "0") or 0
    raw_topics = split_list(params.get("topics"))
    topics = None
    if raw_topics:
        names = parse_topics(raw_topics, state.domain, state.settings.max_topics_per_connection)
        refuse_unless_allowed(names, None)
        stages = parse_stages(split_list(params.get("stages")), state.domain)
        topics = dict.fromkeys(names, stages)
    elif params.get("stages"):
        topics = {"all": parse_stages(split_list(params.get("stages")), state.domain)}
    limit = int_param(request, "limit", 100, 1, 1000)
    head = state.store.head
    events = await state.store.events_since(since, topics, limit)
    return JSONResponse({"items": [orjson.Fragment(e.json) for e in events], "head": head})
