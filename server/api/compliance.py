"""The disclosure catalogue and scorecard (public) and the warnings (supervisors)."""

from __future__ import annotations

import re

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.api import JSONResponse, choice_param, code_params, int_param, state_of
from server.auth import STAFF_VIEW_ROLES, require_role
from server.compliance import items as drill_down
from server.compliance.records import decode_cursor, encode_cursor
from server.compliance.watchdog import empty_score
from server.core.errors import ApiError
from server.respond import scorecard as response_figures

PERIOD = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")  # [0-9], not \d: no other scripts' digits
LEVELS = ("approaching", "breach", "data_incomplete")
STATES = ("open", "resolved")


async def catalog(request: Request) -> Response:
    state = state_of(request)
    compliance = state.compliance
    must_tender = compliance.rules.must_tender
    return JSONResponse(
        {
            "items": compliance.catalog.to_json(),
            # The stage rules, then the answer windows of the public's cases.
            "rules": compliance.rules.to_json()
            + (state.respond.rules.to_json() if state.respond is not None else []),
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
    one month's figures. Beside them, how the agency answers the public:
    `enquiries` and `disclosure_requests` (received, answered on time, late,
    open, median days; satisfaction for enquiries), counted by when a case
    was received (a `category` counts only enquiries, which name a project)."""
    state = state_of(request)
    filters = code_params(request, ("agency", "category"))
    period = month_param(request, "month") or month_param(request, "period")
    agency, category = filters.get("agency"), filters.get("category")
    agencies = state.compliance.watchdog.scorecard(agency, category, period)
    if state.respond is not None:  # the public's cases: how agencies answer them
        responses = await state.respond.scorecard(agency, category, period)
        shown = {entry["agency"] for entry in agencies}
        agencies += [
            {"agency": code, **empty_score(), "by_category": [], "by_period": []}
            for code in sorted(responses.keys() - shown)
        ]
        for entry in agencies:  # both kinds, received or not
            entry.update(responses.get(entry["agency"]) or response_figures.none())
    return JSONResponse({"as_of": state.clock.now().isoformat(), "agencies": agencies})


async def warnings(request: Request) -> Response:
    """Newest first: the watchdog's warnings on stages, those on the public's
    cases (server/respond/) and disabled webhooks, merged on (created_at, id)."""
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
        after = decode_cursor(cursor) if cursor is not None else None
    except ValueError:
        raise ApiError(
            422, "invalid_parameter", "cursor: not a cursor this API gave out", {"field": "cursor"}
        ) from None
    docs, stage_cursor = await state.compliance.warnings.list(filters, chosen_state, cursor, limit)
    found = [(_key(doc), doc) for doc in docs]
    more = stage_cursor is not None
    if state.respond is not None and level != "data_incomplete":
        cases = await state.respond.store.list_warnings(filters, chosen_state, after, limit)
        found += [((created_at, warning_id), doc) for created_at, warning_id, doc in cases]
        more = more or len(cases) == limit
    # A disabled webhook (push/webhooks/): about no project, agency or category.
    if state.webhooks is not None and level in (None, "breach") and not filters:
        hooks = await state.webhooks.list_warnings(chosen_state, after, limit)
        found += [((created_at, warning_id), doc) for created_at, warning_id, doc in hooks]
        more = more or len(hooks) == limit
    found.sort(key=lambda item: item[0], reverse=True)
    shown = found[:limit]  # what is left of either comes again after the cursor
    next_cursor = None
    if shown and (more or len(found) > limit):
        next_cursor = encode_cursor(*shown[-1][0])
    return JSONResponse(
        {"items": [orjson.Fragment(doc) for _, doc in shown], "next_cursor": next_cursor}
    )


def _key(doc: bytes) -> tuple[str, str]:
    parsed = orjson.loads(doc)
    return parsed["created_at"], parsed["id"]


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
