"""The wire form of one event, built once and shared by every recipient."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from server.core.events import StoredEvent

Message = dict[str, Any]  # an ASGI message

# A message may carry its size in bytes (ASGI servers ignore keys they do not
# know): an event's frame is sized once, not per slow client that queues it.
SIZE = "sunbid.size"


class Frames:
    """The ASGI messages for an event, one per transport (SSE's built on demand)."""

    __slots__ = ("_sse", "event", "websocket")

    def __init__(self, event: StoredEvent) -> None:
        self.event = event
        json = event.json
        text = '{"op":"event","event":' + json.decode("utf-8") + "}"
        self.websocket: Message = {"type": "websocket.send", "text": text, SIZE: len(json) + 23}
        self._sse: Message | None = None

    @property
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


def warning_frame(warning: Mapping[str, Any]) -> Message:
    """A compliance warning (its JSON as the API serves it) for a WebSocket
    following `supervision`: warnings are not events, so no seq, no SSE form."""
    text = orjson.dumps({"op": "warning", "warning": warning}).decode("utf-8")
    return {"type": "websocket.send", "text": text}
