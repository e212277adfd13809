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
from server.compliance.preview import preview
from server.core.errors import ApiError
from server.core.events import StoredEvent
from server.core.topics import CODE
from server.projects.changes import amendment, registration
from server.projects.checks import READS, refusal
from server.state import AppState
from server.store import (
    AlreadyExists,
    AppendRequest,
    AppendResult,
    IdempotencyConflict,
    StoreUnavailable,
    as_published,
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
    """Publish an event, unless it lacks a required fact or contradicts the log
    (422); with `?dry_run=1`, show it as it would be published and the
    statutory warnings it would raise, and append nothing."""
    started = time.perf_counter()
    state = state_of(request)
    dry_run = _dry_run(request)
    token = await state.auth.from_header(request.headers.get("authorization"))
    project_id = request.path_params["project_id"]
    project = await state.projects.identity(project_id) if CODE.fullmatch(project_id) else None
    if project is None:
        raise _no_project(project_id)
    require_publisher_of(token, project["agency"])
    draft = state.domain.event_input(
        await read_json(request),
        project["category"],
        state.settings.timezone,
        state.compliance.watchdog.time_fields,
    )
    if dry_run:
        return await _dry_run_answer(state, await _project(state, project_id), draft)
    key = idempotency_key(request)
    fingerprint = hashlib.sha256(orjson.dumps(draft, option=orjson.OPT_SORT_KEYS)).hexdigest()
    domain = state.domain
    try:
        result = await state.store.append(
            AppendRequest(
                project=project,
                draft=draft,
                idempotency_key=key,
                fingerprint=fingerprint,
                check=lambda earlier, event: refusal(domain, earlier, event),
                check_reads=READS,
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


async def _dry_run_answer(
    state: AppState, project: dict[str, Any], draft: dict[str, Any]
) -> Response:
    """The event as it would be published now (no seq, no hash), judged by the
    same checks against the log as it is, and the warnings it would raise."""
    published = state.clock.now().isoformat(timespec="milliseconds")
    event = as_published(project, draft, published)
    timeline = await state.store.timeline(project["id"])
    refused = refusal(state.domain, [e.as_dict() for e in timeline], event)
    if refused is not None:
        raise refused
    seq = (timeline[-1].seq if timeline else 0) + 1  # for the watchdog only: not shown
    candidate = StoredEvent.from_dict({"seq": seq, **event})
    warnings = preview(state.compliance.watchdog, timeline, candidate)
    return JSONResponse({"event": event, "warnings": warnings})


def _dry_run(request: Request) -> bool:
    value = request.query_params.get("dry_run")
    if value is None or value in ("0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise ApiError(
        422,
        "invalid_parameter",
        "dry_run: 1 (or true) to preview, 0 to publish",
        {"field": "dry_run"},
    )


async def _project(state: AppState, project_id: str) -> dict[str, Any]:
    project = await state.projects.get(project_id) if CODE.fullmatch(project_id) else None
    if project is None:
        raise _no_project(project_id)
    return project


def _no_project(project_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no project {project_id[:64]!r}")


async def _append(state: AppState, request: AppendRequest) -> AppendResult:
    """Append a registration or amendment; 503 if the log cannot be written."""
    try:
        return await state.store.append(request)
    except StoreUnavailable:
        raise _unavailable() from None


def _unavailable() -> ApiError:
    return ApiError(
        503,
        "store_unavailable",
        "the event log cannot be written right now; nothing was published, try again",
        headers={"Retry-After": "5"},
    )


def idempotency_key(request: Request) -> str | None:
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
