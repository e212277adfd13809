"""The disclosure catalogue and scorecard (public) and the warnings (supervisors)."""

from __future__ import annotations

import re

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.api import JSONResponse, choice_param, code_params, int_param, state_of
from server.auth import STAFF_VIEW_ROLES, require_role
from server.compliance import items as drill_down
from server.core.errors import ApiError

PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
LEVELS = ("approaching", "breach", "data_incomplete")
STATES = ("open", "resolved")


async def catalog(request: Request) -> Response:
    compliance = state_of(request).compliance
    must_tender = compliance.rules.must_tender
    return JSONResponse(
        {
            "items": compliance.catalog.to_json(),
            "rules": compliance.rules.to_json(),
            "must_tender": None if must_tender is None else must_tender.to_json(),
        }
    )


def month_param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and not PERIOD.fullmatch(value):
        raise ApiError(
            422, "invalid_parameter", f"{name}: a month such as 2026-11", {"field": name}
        )
    return value


async def scorecard(request: Request) -> Response:
    """Per agency, worst first: disclosures due, on time, late, too short and open
    breaches, by category and month; `month` (or its older name `period`) keeps
    one month's figures."""
    state = state_of(request)
    filters = code_params(request, ("agency", "category"))
    period = month_param(request, "month") or month_param(request, "period")
    agencies = state.compliance.watchdog.scorecard(
        filters.get("agency"), filters.get("category"), period
    )
    return JSONResponse({"as_of": state.clock.now().isoformat(), "agencies": agencies})


async def warnings(request: Request) -> Response:
    state = state_of(request)
    token = await state.auth.from_header(request.headers.get("authorization"))
    require_role(token, STAFF_VIEW_ROLES)
    filters = code_params(request, ("agency", "category", "project"))
    level = choice_param(request, "level", LEVELS)
    if level is not None:
        filters["level"] = level
    chosen_state = choice_param(request, "state", STATES)
    limit = int_param(request, "limit", 50, 1, 500)
    cursor = request.query_params.get("cursor") or None
    try:
        items, next_cursor = await state.compliance.warnings.list(
            filters, chosen_state, cursor, limit
        )
    except ValueError:  # only the cursor is decoded in there
        raise ApiError(
            422, "invalid_parameter", "cursor: not a cursor this API gave out", {"field": "cursor"}
        ) from None
    return JSONResponse(
        {"items": [orjson.Fragment(doc) for doc in items], "next_cursor": next_cursor}
    )


async def items(request: Request) -> Response:
    """The statutory items behind the scorecard, late first (public, as the scorecard)."""
    state = state_of(request)
    filters = code_params(request, ("agency", "category", "project"))
    month = month_param(request, "month")
    status = choice_param(request, "status", drill_down.STATUSES)
    limit = int_param(request, "limit", 500, 1, 5000)
    project = filters.get("project")
    if status == "on_time" and project is None:
        raise ApiError(
            422,
            "invalid_parameter",
            "status: on_time is listed for one project: add project=",
            {"field": "status"},
        )
    watchdog = state.compliance.watchdog
    now = state.clock.now()
    if project is not None and status == "on_time":
        # The watchdog keeps no on-time items: the project's events replayed.
        watchdog = drill_down.replay(watchdog, await state.store.timeline(project), now)
    found = watchdog.items(project, filters.get("agency"), filters.get("category"), month)
    shown = drill_down.chosen(found, status)[:limit]
    titles = await state.projects.titles(item["project"] for item in shown)
    for item in shown:
        item["project_title"] = titles.get(item["project"])
    return JSONResponse({"items": shown, "as_of": now.isoformat()})
