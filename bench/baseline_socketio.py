"""python-socketio fan-out server (ASGI on uvicorn), the common alternative.

- Subscribers connect with the WebSocket transport only
  (`/socket.io/?EIO=4&transport=websocket&room=project:BENCH-1`) and are put in
  the room named by `room` when they join the default namespace.
- Publishing: `POST /publish` with an event as JSON; the route calls
  `sio.emit("event", event, room="project:BENCH-1")` and answers 201 once the
  emit returns. Nothing is stored.

Library defaults otherwise (stdlib json, 25 s engine.io pings).

    .venv/bin/uvicorn bench.baseline_socketio:app --port 8002 --ws websockets-sansio \\
        --ws-per-message-deflate false --no-access-log --log-level warning
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson
import socketio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ROOM = "project:BENCH-1"

sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket"], cors_allowed_origins=[])


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    room = parse_qs(environ.get("QUERY_STRING", "")).get("room", [ROOM])[0]
    await sio.enter_room(sid, room)


async def publish(request: Request) -> Response:
    await sio.emit("event", orjson.loads(await request.body()), room=ROOM)
    return Response(status_code=201)


app = socketio.ASGIApp(
    sio, other_asgi_app=Starlette(routes=[Route("/publish", publish, methods=["POST"])])
)
