"""HTTP handlers, by audience: `public.py` (no token), `staff.py` (bearer token),
`compliance.py` (the catalogue and scorecard for all, warnings for supervisors),
`push.py` (Web Push subscriptions), `pages.py` (the app: pwa/ as it is served)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.core.errors import ApiError
from server.core.numbers import whole_number
from server.core.topics import CODE
from server.state import AppState
from server.stream.limits import client_address


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.sunbid
    return state


async def limit_subscribing(request: Request, message: str) -> None:
    """429 once this client address has asked for too many subscriptions or
    channels (SUNBID_SUBSCRIBE_BURST, shared by the deployment's processes)."""
    wait = await state_of(request).subscribe_limiter.check(client_address(request.scope))
    if wait:
        raise ApiError(
            429, "too_many_requests", message, headers={"Retry-After": str(int(wait) + 1)}
        )


async def read_json(request: Request) -> Any:
    """The request body as JSON: 415 if not JSON, 413 if too large, 400 if malformed."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "send Content-Type: application/json")
    limit = state_of(request).settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and (whole_number(declared, 0, limit) is None):
        raise ApiError(413, "too_large", f"the body may be at most {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "too_large", f"the body may be at most {limit} bytes")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "malformed", "the body is not valid JSON (UTF-8)") from None


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    value = whole_number(raw, low, high)
    if value is None:
        raise ApiError(
            422,
            "invalid_parameter",
            f"{name} must be a whole number from {low} to {high}",
            {"field": name},
        )
    return value


def code_params(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    """The query parameters among `names` that are given, each checked to be a code."""
    found = {}
    for name in names:
        value = request.query_params.get(name)
        if value:
            if not CODE.fullmatch(value):
                raise ApiError(
                    422, "invalid_parameter", f"{name}: not a valid code", {"field": name}
                )
            found[name] = value
    return found


def choice_param(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and value not in choices:
        raise ApiError(
            422, "invalid_parameter", f"{name}: one of {', '.join(choices)}", {"field": name}
        )
    return value
