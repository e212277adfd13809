"""`/api/stream`: Server-Sent Events with the same guarantee as `/ws`.

`Last-Event-ID` (sent by browsers on reconnect) or `?since=` resumes exactly
like `since` on the WebSocket.
"""

from __future__ import annotations

import asyncio
from operator import attrgetter
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from server.core.errors import ApiError
from server.core.frames import Message
from server.core.topics import refuse_unless_allowed
from server.stream.feed import SHUTDOWN_SECONDS, Feed
from server.stream.limits import client_address
from server.stream.peer import Peer
from server.stream.request import parse_since, parse_stages, parse_topics, split_list

if TYPE_CHECKING:
    from server.state import AppState

HEARTBEAT_SECONDS = 15.0
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-content-type-options", b"nosniff"),  # as every /api/ answer (server/api/headers.py)
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
    # A stream that ends (lagging, shutdown) ends its connection too: an
    # EventSource reconnects anyway, and a cut-off client's socket can then be
    # aborted later without hitting a request that reused it.
    (b"connection", b"close"),
]


def _chunk(body: bytes, more: bool = True) -> Message:
    return {"type": "http.response.body", "body": body, "more_body": more}


def _closing(code: str, message: str) -> Message:
    data = orjson.dumps({"code": code, "message": message})
    return _chunk(b"event: error\ndata: " + data + b"\n\n", more=False)


SSE_FRAME = attrgetter("sse")
LAGGING = _closing("lagging", "too slow to keep up: reconnect with Last-Event-ID")
GOING_AWAY = _closing("going_away", "server shutting down: reconnect")


class SSEConnection:
    __slots__ = ("feed",)

    def __init__(self, state: AppState, send: Any, peer: Peer) -> None:
        self.feed = Feed(
            state.hub,
            state.store,
            send,
            peer,
            SSE_FRAME,
            LAGGING,
            state.settings.max_pending_bytes,
            state.stream_counters.sse,
        )

    async def shutdown(self) -> None:
        await self.feed.close(GOING_AWAY, SHUTDOWN_SECONDS)


class SSEStream:
    """The ASGI app for `GET /api/stream`."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def parse(self, scope: Any) -> tuple[list[str], frozenset[str] | None, int | None]:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        topics = parse_topics(
            split_list(query.get("topics", ["all"])[0]),
            self.state.domain,
            self.state.settings.max_topics_per_connection,
        )
        refuse_unless_allowed(topics, None)  # SSE takes no token
        stages = parse_stages(split_list(query.get("stages", [None])[0]), self.state.domain)
        last_id = dict(scope.get("headers", [])).get(b"last-event-id")
        if last_id:
            since = parse_since(last_id.decode("latin-1"), "Last-Event-ID")
        else:
            since = parse_since(query.get("since", [None])[0])
        return topics, stages, since

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        state = self.state
        topics, stages, since = self.parse(scope)  # ApiError → the app's error response
        address = client_address(scope)
        if not await state.limiter.acquire(address):
            raise ApiError(
                429,
                "too_many_connections",
                "too many connections from this address",
                headers={"Retry-After": "10"},
            )
        connection = SSEConnection(state, send, Peer.of(scope, state.settings.send_timeout))
        state.connections.add(connection)
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(connection.feed))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            head = orjson.dumps({"topics": topics, "head": state.store.head})
            connection.feed.sender.offer(
                _chunk(b"retry: 3000\nevent: subscribed\ndata: " + head + b"\n\n")
            )
            await connection.feed.follow(dict.fromkeys(topics, stages), since)
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            heartbeat.cancel()
            state.connections.discard(connection)
            connection.feed.stop()
            state.limiter.release(address)

    @staticmethod
    async def _heartbeat(feed: Feed) -> None:
        # Comments keep proxies from cutting an idle stream, and a write to a
        # dead peer is how we learn it is gone.
        while not feed.sender.failed:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            feed.sender.offer(_chunk(b": keepalive\n\n"))
