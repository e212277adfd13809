"""Statistics (统计分析), public: `GET /api/stats` (every figure as JSON) and
`GET /api/stats/{table}.csv` (one of its tables as CSV), with the same
filters: `year` (2000–2100), `month` (1–12, with a year), `category` (a
category of the vocabulary), `agency` (a code). docs/stats.md defines them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from server.api import JSONResponse, code_params, int_param, state_of
from server.core.errors import ApiError
from server.stats.figures import TABLES, Filters
from server.stats.tables import as_csv, filename

# Aggregates of public events: any cache may keep them a minute.
CACHED = {"Cache-Control": "public, max-age=60"}


def filters_of(request: Request) -> Filters:
    year = int_param(request, "year", 0, 2000, 2100) or None
    month = int_param(request, "month", 0, 1, 12) or None
    if month is not None and year is None:
        raise ApiError(422, "invalid_parameter", "month: give a year with it", {"field": "month"})
    codes = code_params(request, ("category", "agency"))
    category = codes.get("category")
    if category is not None and category not in state_of(request).domain.categories:
        raise ApiError(
            422,
            "invalid_parameter",
            f"category: {category} is not a category",
            {"field": "category"},
        )
    return Filters(year, month, category, codes.get("agency"))


async def _figures(request: Request, filters: Filters) -> dict:  # type: ignore[type-arg]
    state = state_of(request)
    if state.stats is None:
        raise ApiError(503, "unavailable", "the statistics are not ready yet")
    found = await state.stats.figures(
        filters,
        state.compliance.watchdog,
        state.respond.store if state.respond is not None else None,
        state.clock.now_us(),
    )
    return {"as_of": state.clock.now().isoformat(), **found}


async def stats(request: Request) -> Response:
    filters = filters_of(request)
    return JSONResponse(await _figures(request, filters), headers=CACHED)


async def table_csv(request: Request) -> Response:
    table = request.path_params["table"].replace("-", "_")
    if table not in TABLES:
        raise ApiError(
            404,
            "not_found",
            f"no table {request.path_params['table']!r}: one of {', '.join(TABLES)}",
        )
    filters = filters_of(request)
    found = await _figures(request, filters)
    return Response(
        as_csv(table, found[table]),
        media_type="text/csv; charset=utf-8",
        headers={
            **CACHED,
            "Content-Disposition": f'attachment; filename="{filename(table, found["filters"])}"',
        },
    )
