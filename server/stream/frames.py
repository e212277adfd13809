"""The wire form of one event, built once and shared by every recipient."""

from __future__ import annotations

from server.events import StoredEvent
from server.stream.sender import Message


class Frames:
    """Lazily built ASGI messages for an event, one per transport."""

    __slots__ = ("_sse", "_ws", "event")

    def __init__(self, event: StoredEvent) -> None:
        self.event = event
        self._ws: Message | None = None
        self._sse: Message | None = None

    def websocket(self) -> Message:
        if self._ws is None:
            text = '{"op":"event","event":' + self.event.json.decode("utf-8") + "}"
            self._ws = {"type": "websocket.send", "text": text}
        return self._ws

    def sse(self) -> Message:
        if self._sse is None:
            event = self.event
            body = b"id: %d\nevent: %s\ndata: %s\n\n" % (
                event.seq,
                event.stage.encode(),
                event.json,
            )
            self._sse = {"type": "http.response.body", "body": body, "more_body": True}
        return self._sse
