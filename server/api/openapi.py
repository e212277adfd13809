"""`GET /api/openapi.json`: the HTTP API described for clients and tools."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server import __version__
from server.api import JSONResponse

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Sunbid", "version": __version__},
    "paths": {},
}


async def openapi(_: Request) -> Response:
    return JSONResponse(SPEC)
