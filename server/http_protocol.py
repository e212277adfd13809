"""uvicorn's HTTP protocol (httptools) with a header timeout and a connection cap.

uvicorn closes a connection only when it has been idle for the keep-alive
timeout *after a response*: a connection that never sends anything, or sends
its headers a byte at a time (slowloris), is held open forever, one file
descriptor each. Here a timer runs from the moment a connection opens (and
again from the first byte of every later request on it) until the request's
headers are complete; if it fires, the connection is closed. Once the
headers are in, nothing here limits the connection any more: a WebSocket
(handed to another protocol on upgrade) or an SSE stream lives as long as
its own liveness checks allow.

uvicorn's `limit_concurrency` is not used for the cap: it lets every
WebSocket upgrade through while counting it, so streams could fill the cap
and leave only 503s for the page and the API, and its 503 is plain text.
Here every request, upgrades included, is refused with the API's error shape
once the server holds `max_connections` open connections (streams, requests
in progress and idle keep-alive connections alike).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("sunbid")

RETRY_AFTER_SECONDS = 5
REFUSAL = orjson.dumps(
    {
        "error": {
            "code": "unavailable",
            "message": "the server is at its connection limit; try again shortly",
        }
    }
)
# File descriptors the process needs beside client connections: SQLite files
# and their WAL, the push worker's pipes, logs, the listening socket.
RESERVED_FILES = 128


def protocol_class(header_timeout: float, max_connections: int) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's `http=`, with these two limits."""

    class Protocol(GuardedHttpProtocol):
        HEADER_TIMEOUT = header_timeout
        MAX_CONNECTIONS = max_connections

    return Protocol


class GuardedHttpProtocol(HttpToolsProtocol):
    HEADER_TIMEOUT = 10.0
    MAX_CONNECTIONS = 10_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # When the headers being read are due (None: none are being read), and
        # the timer that checks it. The timer is not moved for every request
        # (a timer per request costs the publishing path): when it fires early
        # it sets itself for the later deadline, and it stops when none is due.
        self._headers_due: float | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._full = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._headers_now_due()

    def on_message_begin(self) -> None:
        # The first byte of a later request on the connection (pipelined or
        # after a keep-alive wait): its headers are now due.
        super().on_message_begin()
        self._headers_now_due()

    def on_headers_complete(self) -> None:
        self._headers_due = None
        # This connection is in `connections` too: refuse beyond the cap.
        self._full = len(self.connections) > self.MAX_CONNECTIONS
        self.app = _refuse if self._full else self.config.loaded_app
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        if not self._full:
            # This protocol object is done with: its timer must not keep it
            # (and its parser) in memory beside the WebSocket's for seconds.
            self._stop_header_timer()
            super().handle_websocket_upgrade()
            return
        # An upgrade request has no body: answer and close, never upgrade.
        self.transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(REFUSAL)).encode() + b"\r\n"
            b"retry-after: " + str(RETRY_AFTER_SECONDS).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + REFUSAL
        )
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _stop_header_timer(self) -> None:
        self._headers_due = None
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_now_due(self) -> None:
        self._headers_due = self.loop.time() + self.HEADER_TIMEOUT
        if self._header_timer is None:
            self._header_timer = self.loop.call_at(self._headers_due, self._check_headers)

    def _check_headers(self) -> None:
        due, self._header_timer = self._headers_due, None
        if due is None:
            return  # the headers came: nothing to watch until the next request
        if self.loop.time() < due:
            self._header_timer = self.loop.call_at(due, self._check_headers)
        elif not self.transport.is_closing():
            self.transport.close()


async def _refuse(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(REFUSAL)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": REFUSAL})


def fit_open_files(max_connections: int) -> int:
    """Raise the open-file limit to hold `max_connections`, as far as the hard
    limit allows; the cap that fits (lowered, with a warning, if it must be).

    Without this the cap could be fiction: at a soft limit of 1024 (systemd's
    default) `accept` fails first, and so do the SQLite files' opens.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + RESERVED_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitted = max(16, soft - RESERVED_FILES)
        log.warning(
            "SUNBID_MAX_CONNECTIONS=%d needs %d open files but the limit is %d: "
            "capping connections at %d (raise LimitNOFILE / ulimit -n)",
            max_connections,
            wanted,
            soft,
            fitted,
        )
        return fitted
    return max_connections
