"""Endpoints for staff with a bearer token: registering and amending projects, publishing events."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.api import JSONResponse, read_json, state_of
from server.auth import require_publisher_of
from server.core.errors import ApiError, invalid
from server.core.topics import CODE
from server.projects.changes import amendment, registration
from server.state import AppState
from server.store import (
    AlreadyExists,
    AppendRequest,
    AppendResult,
    IdempotencyConflict,
    StoreUnavailable,
)

MAX_IDEMPOTENCY_KEY = 200


async def create_project(request: Request) -> Response:
    """Register a project: its `registered` event, then the project as it now is."""
    state = state_of(request)
    token = await state.auth.from_header(request.headers.get("authorization"))
    project = state.domain.project_input(await read_json(request))
    require_publisher_of(token, project["agency"])
    try:
        await _append(state, registration(project))
    except AlreadyExists:
        raise ApiError(409, "project_exists", f"project {project['id']!r} already exists") from None
    created = await state.projects.get(project["id"])
    assert created is not None  # written in the transaction that appended the event
    return JSONResponse(
        created, status_code=201, headers={"Location": f"/api/projects/{project['id']}"}
    )


async def amend_project(request: Request) -> Response:
    """Amend a project's details: its `amended` event, then the project as it now is.

    Naming a field with its current value is allowed (a form may send every
    field), but at least one named field must change: an amendment that
    changes nothing is a 422, not an event.
    """
    state = state_of(request)
    token = await state.auth.from_header(request.headers.get("authorization"))
    project = await _project(state, request.path_params["project_id"])
    require_publisher_of(token, project["agency"])
    changes, reason = state.domain.amendment_input(await read_json(request))
    if all(project[name] == value for name, value in changes.items()):
        raise ApiError(
            422,
            "no_change",
            "every field named already has that value: nothing to amend",
            {"fields": sorted(changes)},
        )
    await _append(state, amendment(project, changes, reason))
    amended = await state.projects.get(project["id"])
    assert amended is not None
    return JSONResponse(amended)


async def publish_event(request: Request) -> Response:
    started = time.perf_counter()
    state = state_of(request)
    token = await state.auth.from_header(request.headers.get("authorization"))
    project = await _project(state, request.path_params["project_id"])
    require_publisher_of(token, project["agency"])
    draft = state.domain.event_input(
        await read_json(request),
        project["category"],
        state.settings.timezone,
        state.compliance.watchdog.time_fields,
    )
    if draft["stage"] == "correction":
        corrected = await state.store.get_event(draft["data"]["corrects"])
        if corrected is None or corrected.project != project["id"]:
            raise invalid("data.corrects", "the seq of an earlier event of this project")
    key = _idempotency_key(request)
    fingerprint = hashlib.sha256(orjson.dumps(draft, option=orjson.OPT_SORT_KEYS)).hexdigest()
    try:
        result = await state.store.append(
            AppendRequest(
                project=project,
                draft=draft,
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
        raise _unavailable() from None
    event = result.event
    if result.created:  # a repeat with the same Idempotency-Key publishes nothing
        state.metrics.observe_publish(time.perf_counter() - started)
    return Response(
        event.json,
        status_code=201 if result.created else 200,
        media_type="application/json",
        headers={"Location": f"/api/events?since={event.seq - 1}&limit=1"},
    )


async def _project(state: AppState, project_id: str) -> dict[str, Any]:
    project = await state.projects.get(project_id) if CODE.fullmatch(project_id) else None
    if project is None:
        raise ApiError(404, "not_found", f"no project {project_id[:64]!r}")
    return project


async def _append(state: AppState, request: AppendRequest) -> AppendResult:
    """Append a registration or amendment; 503 if the log cannot be written."""
    try:
        return await state.store.append(request)
    except StoreUnavailable:
        raise _unavailable() from None


def _unavailable() -> ApiError:
    return ApiError(
        503,
        "unavailable",
        "the event log cannot be written right now; nothing was published, try again",
        headers={"Retry-After": "5"},
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
