"""Writing to one client without ever waiting on it in the fan-out loop.

The fan-out loop hands each connection the same pre-built frame. While the
connection's socket accepts data, its ASGI `send` runs to completion right
here, synchronously: no queue, no task, no wake-up — that is what keeps the
cost per delivery close to a bare `websockets.broadcast()`. Only when the
socket pushes back (uvicorn's `send` would wait for the transport to drain)
does the suspended `send` move into a task, and later frames wait in a
backlog until it has drained.

Two bounds keep one client from costing the server more than its share:

- bytes: what waits for the client (the backlog, the suspended frame and the
  transport's buffer) never exceeds `limit` bytes. One more frame means the
  client cannot keep up: it is cut off (`on_overflow`), never silently
  skipped, and never allowed to delay anyone else;
- time: a socket that accepts no data for the peer's timeout is aborted, so
  a client that stopped reading frees its memory and its slot.
"""

from __future__ import annotations

import asyncio
import types
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from server.core.frames import SIZE, Message
from server.stream.peer import Peer

Send = Callable[[Message], Coroutine[Any, Any, None]]


# How often, per send timeout, a draining connection is looked at: a socket
# that stalls is aborted between 1 and 1 + 1/WATCHES timeouts after it stalled.
WATCHES = 4
# How often a replay waiting on the transport's own buffer looks at it again.
BUFFER_POLL_SECONDS = 0.01
_NOTHING: deque[tuple[Message, int]] = deque(maxlen=0)  # the backlog of a stopped sender


def size_of(message: Message) -> int:
    """The bytes a message puts on the wire, near enough (frame headers aside)."""
    size = message.get(SIZE)
    if size is not None:
        return int(size)
    text = message.get("text")
    if text is not None:
        return len(text) if text.isascii() else len(text.encode())
    body = message.get("body")
    return len(body) if body else 0


class Sender:
    # Slots: one of these per connection, thousands per process; what only a
    # draining connection needs lives in its `_Drain`, made when needed.
    __slots__ = (
        "_backlog",
        "_drain",
        "_limit",
        "_on_overflow",
        "_queued",
        "_send",
        "failed",
        "peer",
    )

    def __init__(self, send: Send, peer: Peer, limit: int, on_overflow: Callable[[], None]) -> None:
        self._send = send
        self.peer = peer
        self._limit = limit
        self._on_overflow = on_overflow
        self._backlog: deque[tuple[Message, int]] | None = None  # None while the socket keeps up
        self._queued = 0  # bytes of the backlog and of the suspended frame
        self._drain: _Drain | None = None  # exists while a backlog drains
        self.failed = False  # the peer is gone; nothing more will be written

    @property
    def backlog(self) -> int:
        """Frames queued behind the one in flight."""
        return 0 if self._backlog is None else len(self._backlog)

    @property
    def pending(self) -> int:
        """Bytes written for this client that it has not taken yet (in user space)."""
        return self._queued + self.peer.buffered()

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
            size = size_of(message)
            self._backlog, self._queued = deque(), size
            drain = self._drain = _Drain(self)
            drain.task = asyncio.create_task(self._run_drain(drain, coroutine, blocked_on, size))
        elif self.failed:
            return
        else:
            size = size_of(message)
            if self.pending + size <= self._limit:
                backlog.append((message, size))
                self._queued += size
            else:
                backlog.clear()
                self._stop()
                self._on_overflow()

    def _stop(self) -> None:
        """Accept nothing more (what is already queued may still be flushed)."""
        self.failed = True
        if self._backlog is None:
            self._backlog = _NOTHING

    async def drained(self) -> None:
        """Wait until the client has taken something of what waits for it.

        With a send suspended, until the backlog is written out. Without one,
        what waits sits in the transport's buffer below its high-water mark,
        and the transport tells no one as it empties: look again shortly. (A
        client that stops reading there is dropped by the kernel after the
        send timeout: see TCP_USER_TIMEOUT in peer.py.)
        """
        if self._drain is not None:
            await self._drain.done.wait()
        elif self.peer.buffered():
            await asyncio.sleep(BUFFER_POLL_SECONDS)

    async def close(self, message: Message, timeout: float | None = None) -> None:
        """Send a last message after whatever is queued; nothing is sent after it.

        A client that reads gets the message. One whose socket takes nothing
        is aborted by the drain's watch (the send timeout); the close itself
        waits at most `timeout` (shorter at server shutdown) for what is
        queued, and once the message is written the socket is aborted after
        the send timeout in any case (`Peer.abort_later`).
        """
        self._stop()
        timeout = self.peer.timeout if timeout is None else min(timeout, self.peer.timeout)
        if self._drain is not None:
            done, _ = await asyncio.wait({self._drain.task}, timeout=timeout)
            if not done:
                return
        try:
            await asyncio.wait_for(self._send(message), timeout)
        except TimeoutError:
            self.peer.abort()  # it would not even take the close
        except Exception:
            return  # the peer is already gone
        else:
            self.peer.abort_later()

    def _stalled(self) -> None:
        """The socket took nothing for the send timeout: cut the client off."""
        if self._backlog:
            self._backlog.clear()
        self._stop()
        self.peer.abort()
        if self._drain is not None:
            self._drain.task.cancel()  # also where the transport cannot be aborted

    async def _run_drain(
        self, drain: _Drain, coroutine: Coroutine[Any, Any, None], blocked_on: Any, size: int
    ) -> None:
        try:
            await _resume(coroutine, blocked_on)
            self._queued -= size
            drain.written += size
            while self._backlog:
                message, size = self._backlog.popleft()
                await self._send(message)
                self._queued -= size
                drain.written += size
        except Exception:
            self._stop()
        finally:
            drain.finish()
            self._drain = None
            if not self.failed:
                self._backlog = None
                self._queued = 0


class _Drain:
    """A backlog being written out, and the watch on the socket's progress."""

    __slots__ = ("done", "progress", "progress_at", "sender", "task", "watch", "written")

    task: asyncio.Task[None]  # the drain itself, set right after

    def __init__(self, sender: Sender) -> None:
        loop = asyncio.get_running_loop()
        self.sender = sender
        self.done = asyncio.Event()
        self.written = 0  # bytes handed to the transport by this drain
        # Bytes the transport had passed on to the kernel at the last look, and
        # when that last grew.
        self.progress, self.progress_at = -sender.peer.buffered(), loop.time()
        self.watch: asyncio.TimerHandle | None = loop.call_later(
            sender.peer.timeout / WATCHES, self.look
        )

    def look(self) -> None:
        loop = asyncio.get_running_loop()
        progress = self.written - self.sender.peer.buffered()
        if progress > self.progress:
            self.progress, self.progress_at = progress, loop.time()
        if loop.time() - self.progress_at < self.sender.peer.timeout:
            self.watch = loop.call_later(self.sender.peer.timeout / WATCHES, self.look)
        else:
            self.watch = None
            self.sender._stalled()

    def finish(self) -> None:
        if self.watch is not None:
            self.watch.cancel()
        self.done.set()


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
