"""`/ws`: the WebSocket protocol of the contract, as a plain ASGI app.

It sits outside Starlette's middleware on purpose: the fan-out writes to
each connection's raw ASGI `send`, with nothing wrapped around it per frame.
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from server.core.errors import ApiError
from server.core.frames import Message
from server.core.topics import STAFF_TOPICS, refuse_unless_allowed
from server.stream.feed import SHUTDOWN_SECONDS, Feed
from server.stream.limits import client_address
from server.stream.peer import Peer
from server.stream.request import parse_since, parse_stages, parse_topics, split_list

if TYPE_CHECKING:
    from server.state import AppState

CLOSE_GOING_AWAY = 1001
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_LAGGING = 4008
CLOSE_TOO_MANY_CONNECTIONS = 4029


def _op(payload: dict[str, Any]) -> Message:
    return {"type": "websocket.send", "text": orjson.dumps(payload).decode()}


WEBSOCKET_FRAME = attrgetter("websocket")
LAGGING = {"type": "websocket.close", "code": CLOSE_LAGGING, "reason": "lagging"}
GOING_AWAY = {"type": "websocket.close", "code": CLOSE_GOING_AWAY, "reason": "server shutting down"}


class WebSocketConnection:
    __slots__ = ("feed", "role", "state")

    def __init__(self, state: AppState, send: Any, peer: Peer) -> None:
        self.state = state
        self.role: str | None = None
        self.feed = Feed(
            state.hub,
            state.store,
            send,
            peer,
            WEBSOCKET_FRAME,
            LAGGING,
            state.settings.max_pending_bytes,
            state.stream_counters.ws,
        )

    def reply(self, payload: dict[str, Any]) -> None:
        self.feed.sender.offer(_op(payload))

    def error(self, exc: ApiError) -> None:
        self.reply({"op": "error", "code": exc.code, "message": exc.message})

    def sign_out(self) -> None:
        """No role any more, and none of the topics that needed one."""
        self.role = None
        self.state.revocations.forget(self)
        staff = [topic for topic in self.feed.topics if topic in STAFF_TOPICS]
        if staff:
            self.feed.unfollow(staff)

    def token_revoked(self) -> None:
        """Called by the revocation watch: the token this connection signed in with is gone."""
        self.sign_out()
        self.reply(
            {
                "op": "error",
                "code": "token_revoked",
                "message": "the token was revoked: staff topics are no longer followed;"
                ' send {"op":"auth","token":"…"} with a valid token to follow them again',
            }
        )

    async def shutdown(self) -> None:
        await self.feed.close(GOING_AWAY, SHUTDOWN_SECONDS)

    async def handle(self, text: str | None) -> None:
        if text is None:
            raise ApiError(400, "binary_not_supported", "send JSON in text frames")
        if len(text) > self.state.settings.max_frame_bytes:
            raise ApiError(413, "frame_too_large", "the frame is too large")
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ApiError(400, "malformed", "a frame must be a JSON object") from None
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            raise ApiError(400, "malformed", 'a frame must be a JSON object with an "op"')
        op = message["op"]
        if op == "subscribe":
            await self.subscribe(message.get("topics"), message.get("stages"), message.get("since"))
        elif op == "unsubscribe":
            topics = parse_topics(
                message.get("topics"),
                self.state.domain,
                self.state.settings.max_topics_per_connection,
            )
            self.feed.unfollow(topics)
            self.reply({"op": "unsubscribed", "topics": topics})
        elif op == "ping":
            self.reply({"op": "pong", "head": self.state.store.head})
        elif op == "auth":
            secret = message.get("token")
            token = await self.state.auth.token(secret) if isinstance(secret, str) else None
            if token is None:
                self.sign_out()
                raise ApiError(
                    401,
                    "unauthorized",
                    "the token is unknown or revoked: signed out, staff topics dropped",
                )
            self.role = token.role
            self.state.revocations.watch(self, token.digest)
            # The agency lets a console show a publisher what it may publish for.
            self.reply({"op": "authed", "role": token.role, "agency": token.agency})
        else:
            raise ApiError(
                400,
                "unknown_op",
                f"unknown op {op[:40]!r}: use subscribe, unsubscribe, ping or auth",
            )

    async def subscribe(self, raw_topics: object, raw_stages: object, raw_since: object) -> None:
        settings = self.state.settings
        topics = parse_topics(raw_topics, self.state.domain, settings.max_topics_per_connection)
        stages = parse_stages(raw_stages, self.state.domain)
        since = parse_since(raw_since)
        if len(set(self.feed.topics) | set(topics)) > settings.max_topics_per_connection:
            raise ApiError(
                422,
                "too_many_topics",
                f"at most {settings.max_topics_per_connection} topics per connection",
            )
        refuse_unless_allowed(topics, self.role)
        # `head` and joining the hub happen with no await between them, so a
        # live-only client gets exactly the events after `head`.
        self.reply({"op": "subscribed", "topics": topics, "head": self.state.store.head})
        await self.feed.follow(dict.fromkeys(topics, stages), since)


class WebSocketStream:
    """The ASGI app for `/ws`."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        address = client_address(scope)
        state = self.state
        if not await state.limiter.acquire(address):
            await send({"type": "websocket.accept"})
            await send(
                _op(
                    {
                        "op": "error",
                        "code": "too_many_connections",
                        "message": "too many connections from this address",
                    }
                )
            )
            await send(
                {
                    "type": "websocket.close",
                    "code": CLOSE_TOO_MANY_CONNECTIONS,
                    "reason": "too_many_connections",
                }
            )
            return
        connection = WebSocketConnection(state, send, Peer.of(scope, state.settings.send_timeout))
        state.connections.add(connection)
        try:
            await send({"type": "websocket.accept"})
            await _subscribe_from_url(connection, scope)
            # This loop's frame lives as long as the connection: it keeps no
            # more than it needs (memory per idle connection is a budget).
            while (message := await receive())["type"] != "websocket.disconnect":
                try:
                    await connection.handle(message.get("text"))
                except ApiError as exc:
                    connection.error(exc)
        finally:
            state.connections.discard(connection)
            state.revocations.forget(connection)
            connection.feed.stop()
            state.limiter.release(address)


async def _subscribe_from_url(connection: WebSocketConnection, scope: Any) -> None:
    """`/ws?topics=a,b&stages=x&since=S` acts as a first subscribe."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if "topics" not in query:
        return
    try:
        await connection.subscribe(
            split_list(query["topics"][0]),
            split_list(query.get("stages", [None])[0]),
            query.get("since", [None])[0],
        )
    except ApiError as exc:
        connection.error(exc)
