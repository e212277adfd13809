"""Endpoints for staff with a bearer token: creating projects, publishing events."""

from __future__ import annotations

import hashlib
import time

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.api import JSONResponse, read_json, state_of
from server.auth import require_publisher_of
from server.core.errors import ApiError, invalid
from server.core.topics import CODE
from server.store import AlreadyExists, AppendRequest, IdempotencyConflict, StoreUnavailable

MAX_IDEMPOTENCY_KEY = 200


async def create_project(request: Request) -> Response:
    state = state_of(request)
    token = await state.auth.from_header(request.headers.get("authorization"))
    project = state.domain.project_input(await read_json(request))
    require_publisher_of(token, project["agency"])
    try:
        created = await state.store.create_project(project)
    except AlreadyExists:
        raise ApiError(409, "project_exists", f"project {project['id']!r} already exists") from None
    return JSONResponse(
        created, status_code=201, headers={"Location": f"/api/projects/{project['id']}"}
    )


async def publish_event(request: Request) -> Response:
    started = time.perf_counter()
    state = state_of(request)
    token = await state.auth.from_header(request.headers.get("authorization"))
    project_id = request.path_params["project_id"]
    project = await state.store.get_project(project_id) if CODE.fullmatch(project_id) else None
    if project is None:
        raise ApiError(404, "not_found", f"no project {project_id[:64]!r}")
    require_publisher_of(token, project["agency"])
    draft = state.domain.event_input(
        await read_json(request),
        project["category"],
        state.settings.timezone,
        state.compliance.watchdog.time_fields,
    )
    if draft["stage"] == "correction":
        corrected = await state.store.get_event(draft["data"]["corrects"])
        if corrected is None or corrected.project != project_id:
            raise invalid("data.corrects", "the seq of an earlier event of this project")
    key = _idempotency_key(request)
    fingerprint = hashlib.sha256(orjson.dumps(draft, option=orjson.OPT_SORT_KEYS)).hexdigest()
    try:
        result = await state.store.append(
            AppendRequest(
                project=project,
                draft=draft,
                lifecycle=state.domain.is_lifecycle(draft["stage"]),
                idempotency_key=key,
                fingerprint=fingerprint,
            )
        )
    except IdempotencyConflict:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different event of this project",
        ) from None
    except StoreUnavailable:
        raise ApiError(
            503,
            "unavailable",
            "the event log cannot be written right now; nothing was published, try again",
            headers={"Retry-After": "5"},
        ) from None
    event = result.event
    if result.created:  # a repeat with the same Idempotency-Key publishes nothing
        state.metrics.observe_publish(time.perf_counter() - started)
    return Response(
        event.json,
        status_code=201 if result.created else 200,
        media_type="application/json",
        headers={"Location": f"/api/events?since={event.seq - 1}&limit=1"},
    )


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise ApiError(
            422,
            "invalid_parameter",
            "Idempotency-Key: 1-200 printable ASCII characters",
            {"field": "Idempotency-Key"},
        )
    return key
