"""Signed webhooks (admin): register, list, delete, read deliveries, replay
(CONTRACT.md "Interoperability"). The rules live in push/webhooks/; these
handlers check the token and read the request. Every answer carries staff
data: `Cache-Control: no-store` (server/api/headers.py, by the path)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from server.api import JSONResponse, int_param, read_json, state_of
from server.auth import require_role
from server.core.errors import ApiError, invalid
from server.core.topics import STAFF_TOPICS
from server.domain import format_time
from server.state import Webhooks
from server.stream.request import parse_since, parse_stages, parse_topics

ADMIN = frozenset({"admin"})


async def _webhooks(request: Request) -> Webhooks:
    """The admin's token first (401/403), then whether webhooks run here."""
    state = state_of(request)
    token = await state.auth.from_header(request.headers.get("authorization"))
    require_role(token, ADMIN)
    if state.webhooks is None:
        raise ApiError(503, "unavailable", "webhooks are not running")
    return state.webhooks


async def collection(request: Request) -> Response:
    webhooks = await _webhooks(request)
    if request.method == "GET":
        return JSONResponse({"items": await webhooks.all()})
    state = state_of(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid("body", 'an object: {"url", "topics", "stages"?, "description"?}')
    topics = parse_topics(
        body.get("topics"), state.domain, state.settings.max_topics_per_connection
    )
    if staff := [topic for topic in topics if topic in STAFF_TOPICS]:
        raise invalid("topics", f"{staff[0]} carries warnings, not events: no webhook gets it")
    stages = parse_stages(body.get("stages"), state.domain)
    created = await webhooks.create(
        body.get("url"),
        topics,
        None if stages is None else sorted(stages),
        body.get("description"),
        format_time(state.clock.now()),
        state.store.head,
    )
    return JSONResponse(created, status_code=201)


async def one(request: Request) -> Response:
    webhooks = await _webhooks(request)
    now = format_time(state_of(request).clock.now())
    await webhooks.delete(request.path_params["webhook_id"], now)
    return Response(status_code=204)


async def deliveries(request: Request) -> Response:
    webhooks = await _webhooks(request)
    limit = int_param(request, "limit", 50, 1, 1000)
    return JSONResponse(await webhooks.deliveries(request.path_params["webhook_id"], limit))


async def replay(request: Request) -> Response:
    """Send again every matching event after `since`; enables a disabled webhook."""
    webhooks = await _webhooks(request)
    state = state_of(request)
    body = await read_json(request)
    raw = body.get("since") if isinstance(body, dict) else None
    since = parse_since(raw) if raw is not None else None
    if since is None or isinstance(raw, str):
        raise invalid("since", "a seq: a whole number from 0 to the log's head")
    if since > state.store.head:
        raise invalid("since", f"the log's head is {state.store.head}")
    now = format_time(state.clock.now())
    return JSONResponse(await webhooks.replay(request.path_params["webhook_id"], since, now))
