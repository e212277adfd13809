"""Writing to one client without ever waiting on it in the fan-out loop.

The fan-out loop hands each connection the same pre-built frame. While the
connection's socket accepts data, its ASGI `send` runs to completion right
here, synchronously: no queue, no task, no wake-up — that is what keeps the
cost per delivery close to a bare `websockets.broadcast()`. Only when the
socket pushes back (uvicorn's `send` would wait for the transport to drain)
does the suspended `send` move into a task, and later frames wait in a
bounded backlog until it has drained. A backlog that would exceed its bound
means the client cannot keep up: it is cut off (`on_overflow`), never
silently skipped, and never allowed to delay anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import types
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any

Message = dict[str, Any]  # an ASGI message
Send = Callable[[Message], Coroutine[Any, Any, None]]


_NOTHING: deque[Message] = deque(maxlen=0)  # the backlog of a stopped sender


class Sender:
    # Slots: one of these per connection, thousands per process.
    __slots__ = ("_backlog", "_drained", "_limit", "_on_overflow", "_send", "_task", "failed")

    def __init__(self, send: Send, limit: int, on_overflow: Callable[[], None]) -> None:
        self._send = send
        self._limit = limit
        self._on_overflow = on_overflow
        self._backlog: deque[Message] | None = None  # None while the socket keeps up
        self._drained: asyncio.Event | None = None  # exists while a backlog drains
        self._task: asyncio.Task[None] | None = None
        self.failed = False  # the peer is gone; nothing more will be written

    @property
    def backlog(self) -> int:
        return 0 if self._backlog is None else len(self._backlog)

    def offer(self, message: Message) -> None:
        """Send now if the socket takes it, else queue it; overflow cuts the client off."""
        backlog = self._backlog
        if backlog is None:  # the socket keeps up: write right here
            coroutine = self._send(message)
            try:
                blocked_on = coroutine.send(None)
            except StopIteration:
                return  # written: the common case
            except Exception:
                self._stop()  # the peer disconnected
                return
            self._backlog = deque()
            self._drained = asyncio.Event()
            self._task = asyncio.create_task(self._drain(coroutine, blocked_on))
        elif self.failed:
            return
        elif len(backlog) < self._limit:
            backlog.append(message)
        else:
            backlog.clear()
            self._stop()
            self._on_overflow()

    def _stop(self) -> None:
        """Accept nothing more (what is already queued may still be flushed)."""
        self.failed = True
        if self._backlog is None:
            self._backlog = _NOTHING

    async def put(self, message: Message) -> None:
        """Send with back-pressure: for replays, which may wait for the client."""
        self.offer(message)
        if self._drained is not None and self.backlog >= self._limit // 2:
            await self._drained.wait()

    async def drained(self) -> None:
        """Wait until nothing is queued for this client."""
        if self._drained is not None:
            await self._drained.wait()

    async def close(self, message: Message, timeout: float | None = None) -> None:
        """Send a last message after whatever is queued; nothing is sent after it.

        Without a timeout this waits as long as the client does: one that
        reads again gets the message; one that never does stops answering
        pings, and the keepalive drops it. With a timeout (server shutdown)
        it gives up and leaves the socket to the server's own shutdown.
        """
        self._stop()
        if self._task is not None and not self._task.done():
            done, _ = await asyncio.wait({self._task}, timeout=timeout)
            if not done:
                return
        with contextlib.suppress(Exception):  # the peer is already gone, or stalled
            await asyncio.wait_for(self._send(message), timeout)

    async def _drain(self, coroutine: Coroutine[Any, Any, None], blocked_on: Any) -> None:
        try:
            await _resume(coroutine, blocked_on)
            while self._backlog:
                await self._send(self._backlog.popleft())
        except Exception:
            self._stop()
        finally:
            if not self.failed:
                self._backlog = None
            if self._drained is not None:
                self._drained.set()
                self._drained = None


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, None], blocked_on: Any) -> Generator[Any, None, None]:
    """Finish a coroutine that was started by hand and suspended on `blocked_on`.

    Yielding `blocked_on` hands it to the running task exactly as the
    coroutine itself would have, so the task wakes when it is done; then the
    coroutine carries on from where it stopped.
    """
    try:
        yield blocked_on
    except BaseException:
        coroutine.close()
        raise
    yield from coroutine
