"""Endpoints for the operator's tools: `/metrics` (Prometheus) and `/readyz`.

`/healthz` (public.py) says the process answers: a liveness probe restarts
it when it does not. `/readyz` says whether it can serve right now: a load
balancer sends it traffic only then, and a deploy waits for it.
"""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import Response

from server.api import JSONResponse, state_of
from server.core.errors import ApiError
from server.metrics import CONTENT_TYPE
from server.state import AppState

STORE_READ_SECONDS = 2.0  # a log read slower than this means clients would wait too


async def metrics(request: Request) -> Response:
    state = state_of(request)
    _require_metrics_token(state, request.headers.get("authorization"))
    body = await state.metrics.exposition(state)
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


def _require_metrics_token(state: AppState, header: str | None) -> None:
    expected = state.settings.metrics_token
    if expected is None:
        return
    scheme, _, given = (header or "").partition(" ")
    # Compared in constant time, as bytes: how long a wrong guess took says
    # nothing about how much of it was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), expected.encode("ascii")
    ):
        raise ApiError(
            401,
            "unauthorized",
            "send Authorization: Bearer <SUNBID_METRICS_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def readyz(request: Request) -> Response:
    state = state_of(request)
    reasons = await not_ready(state)
    if reasons:
        raise ApiError(
            503,
            "not_ready",
            "not ready to serve: " + ", ".join(reasons),
            {"reasons": reasons},
            headers={"Retry-After": "5"},
        )
    answer: dict[str, object] = {"status": "ready", "head": state.store.head}
    if state.compliance.warnings.postgres:
        # Whether this process is the one storing compliance warnings (the
        # lease holder); a standby is ready all the same: it serves from memory.
        answer["compliance_active"] = state.compliance.active
    if degraded := degradations(state):
        answer["degraded"] = degraded
    return JSONResponse(answer)


def degradations(state: AppState) -> list[str]:
    """What does not work now but does not stop this process from serving.

    The push worker is restarted within a second and its queue waits for it:
    taking the one server out of rotation for it would stop the streams and
    the API as well, for everyone.
    """
    push = [] if state.push is not None and state.push.sending else ["push_worker_down"]
    # Redis down: the bus polls the database meanwhile, so streams go on.
    return push + state.bus.problems()


async def not_ready(state: AppState) -> list[str]:
    """Why this process should get no traffic now; empty when it is ready."""
    reasons = []
    if state.shutting_down:
        reasons.append("shutting_down")
    if not state.compliance.running:
        reasons.append("compliance_not_running")
    try:
        # One indexed read through the same reader as every API answer.
        await asyncio.wait_for(state.store.get_event(max(state.store.head, 1)), STORE_READ_SECONDS)
    except Exception:
        reasons.append("store_unreadable")
    # The bus's own view (server/bus/): e.g. not yet subscribed at start-up.
    reasons += state.bus.not_ready()
    return reasons
