"""Headers every API answer gets, set in one place rather than by each handler.

- `X-Content-Type-Options: nosniff` on every `/api/` answer: a browser never
  guesses a type other than the one given (JSON shown as HTML, say).
- `Cache-Control: no-store` on every `/api/` answer that may carry staff
  data: anything asked with an `Authorization` header, anything but GET and
  HEAD (staff POST answers, subscriptions), and the staff-only paths even
  when refused. No shared cache (a proxy, a CDN) or browser cache keeps them.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The event stream sets its own (server/stream/sse.py): wrapping its `send`
# would add a coroutine to every event sent to every SSE client.
STREAM_PATH = "/api/stream"
STAFF_PATH_PREFIXES = ("/api/supervision/",)
STAFF_PATH_SUFFIXES = ("/deliveries",)


class ApiHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/") or path == STREAM_PATH:
            await self.app(scope, receive, send)
            return
        no_store = _private(scope, path)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != b"x-content-type-options"
                    and not (no_store and name.lower() == b"cache-control")
                ]
                headers.append((b"x-content-type-options", b"nosniff"))
                if no_store:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _private(scope: Scope, path: str) -> bool:
    if scope.get("method") not in ("GET", "HEAD"):
        return True
    if path.startswith(STAFF_PATH_PREFIXES) or path.endswith(STAFF_PATH_SUFFIXES):
        return True
    return any(name == b"authorization" for name, _ in scope.get("headers", []))
