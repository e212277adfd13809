"""Headers every API answer gets, set in one place rather than by each handler.

- `X-Content-Type-Options: nosniff` on every `/api/` answer: a browser never
  guesses a type other than the one given (JSON shown as HTML, say).
- `Cache-Control: no-store` on every `/api/` answer that may carry staff
  data: anything asked with an `Authorization` header, anything but GET and
  HEAD (staff POST answers, subscriptions), and the staff-only paths even
  when refused. No shared cache (a proxy, a CDN) or browser cache keeps them.
- Public JSON answers gzipped for clients that accept it, once they are worth
  it (`COMPRESS_FROM` bytes): on a phone's slow network the vocabulary
  (15 KB) and a project (7 KB) are most of the wait before the first page,
  and JSON shrinks to a fifth or less. Staff answers stay as they are (no
  compressed secrets beside attacker-chosen text: BREACH), and so do answers
  with an `ETag` (a strong ETag names one representation, RFC 9110 8.8.3).
"""

from __future__ import annotations

import asyncio
import gzip

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.pages import accepts_gzip

# The event stream sets its own (server/stream/sse.py): wrapping its `send`
# would add a coroutine to every event sent to every SSE client.
STREAM_PATH = "/api/stream"
STAFF_PATH_PREFIXES = ("/api/supervision/", "/api/webhooks")
STAFF_PATH_SUFFIXES = ("/deliveries",)
# Below this, gzip's own framing and the CPU buy next to nothing.
COMPRESS_FROM = 1024
# Above this, compressing would hold the event loop for a millisecond or more
# (zlib lets go of the GIL while it works): a thread does it.
COMPRESS_IN_THREAD_FROM = 64 * 1024
# Level 1: on the app's JSON within 15 % of level 6's size at half its CPU
# (the vocabulary: 14,824 → 1,495 bytes in about 0.2 ms; docs/operations.md).
COMPRESS_LEVEL = 1


class ApiHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/") or path == STREAM_PATH:
            await self.app(scope, receive, send)
            return
        no_store = _private(scope, path)
        gzip_accepted = accepts_gzip(_header(scope, b"accept-encoding"))
        held: Message | None = None  # the start of a compressible answer, until its body is known

        async def send_with_headers(message: Message) -> None:
            nonlocal held
            if held is not None and message["type"] == "http.response.body":
                start, held = held, None
                await _send_compressed(send, start, message)
                return
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
                if not no_store and _compressible(headers):
                    headers.append((b"vary", b"Accept-Encoding"))  # caches keep the two apart
                    if gzip_accepted:
                        held = {**message, "headers": headers}
                        return
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _private(scope: Scope, path: str) -> bool:
    if scope.get("method") not in ("GET", "HEAD"):
        return True
    if path.startswith(STAFF_PATH_PREFIXES) or path.endswith(STAFF_PATH_SUFFIXES):
        return True
    return any(name == b"authorization" for name, _ in scope.get("headers", []))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _compressible(headers: list[tuple[bytes, bytes]]) -> bool:
    names = {name.lower(): value for name, value in headers}
    return (
        names.get(b"content-type", b"").startswith(b"application/json")
        and b"content-encoding" not in names
        and b"etag" not in names
        and b"vary" not in names
    )


async def _send_compressed(send: Send, start: Message, body: Message) -> None:
    """One whole JSON body, gzipped when that is worth it; a streamed one as it comes."""
    data: bytes = body.get("body", b"")
    if body.get("more_body") or len(data) < COMPRESS_FROM:
        await send(start)
        await send(body)
        return
    if len(data) >= COMPRESS_IN_THREAD_FROM:
        packed = await asyncio.to_thread(gzip.compress, data, COMPRESS_LEVEL, mtime=0)
    else:
        packed = gzip.compress(data, COMPRESS_LEVEL, mtime=0)
    headers = [(n, v) for n, v in start["headers"] if n.lower() != b"content-length"]
    headers += [(b"content-encoding", b"gzip"), (b"content-length", str(len(packed)).encode())]
    await send({**start, "headers": headers})
    await send({**body, "body": packed})
