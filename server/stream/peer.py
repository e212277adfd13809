"""The socket under a stream, for the one thing ASGI cannot do: cut a peer off.

ASGI lets an app send and close, and a close waits until the peer has read
what is queued. A peer that never reads would keep its socket, its buffers
and its per-address slot for as long as it likes. So a stream looks up the
transport under its connection once, at the start, and can:

- `abort()` it: the socket is reset at once (SO_LINGER 0 discards what the
  kernel still queues for it), the server sees a disconnect and frees all;
- bound the kernel's own patience: TCP_USER_TIMEOUT makes the kernel drop a
  connection whose sent data stays unacknowledged, or unsent behind a zero
  window, for the send timeout — also after the socket was closed, when no
  code of ours is watching any more.

The transport is found through the server's `send` (uvicorn's protocols keep
it as `.transport`). Under a server that hides it (a test client calling the
app in-process), `Peer` cannot abort: a stalled stream then only stops being
written to, and its socket is left to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any, Protocol

# What the stream layer stores in the ASGI scope (set by the app's entry point,
# where `send` is still the server's own, before any middleware wraps it).
SCOPE_KEY = "sunbid.transport"
_LINGER_RESET = struct.pack("ii", 1, 0)
# Not every platform has it (macOS has not): there the send timeout alone acts.
_TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", None)


class Transport(Protocol):
    """What is used of an asyncio transport (uvloop's are not its subclasses)."""

    def abort(self) -> None: ...
    def get_extra_info(self, name: str) -> Any: ...
    def get_write_buffer_size(self) -> int: ...


def transport_of(send: Callable[..., Any]) -> Transport | None:
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    needs = ("abort", "get_extra_info", "get_write_buffer_size")
    return transport if all(hasattr(transport, name) for name in needs) else None


class Peer:
    __slots__ = ("timeout", "transport")

    def __init__(self, transport: Transport | None, timeout: float) -> None:
        self.transport = transport
        self.timeout = timeout
        if _TCP_USER_TIMEOUT is not None:
            self._set(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT, int(timeout * 1000))

    @classmethod
    def of(cls, scope: Any, timeout: float) -> Peer:
        return cls(scope.get(SCOPE_KEY), timeout)

    def buffered(self) -> int:
        """Bytes written to the transport that it has not yet handed to the kernel."""
        transport = self.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def abort(self) -> None:
        """Reset the connection now, dropping whatever is queued for it."""
        if self.transport is not None:
            self._set(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            self.transport.abort()

    def _set(self, level: int, option: int, value: int | bytes) -> None:
        """Set a TCP socket option, if the socket is still there (the peer may be gone)."""
        if self.transport is None:
            return
        # uvloop raises ValueError for a closed socket, asyncio OSError.
        with contextlib.suppress(OSError, ValueError):
            sock = self.transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(level, option, value)

    def abort_later(self) -> None:
        """After a last message: whatever the peer does, its socket is gone in `timeout`.

        A peer that reads finishes the closing handshake long before; one that
        does not would otherwise keep the socket while the server waits to flush.
        """
        if self.transport is not None:
            asyncio.get_running_loop().call_later(self.timeout, self.abort)
