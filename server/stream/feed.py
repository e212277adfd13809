"""One client's subscription: replay from the log, then live, with no seam.

Resuming is the heart of the delivery guarantee. The feed registers with the
hub *before* it reads the log, and buffers what the hub hands it while the
replay runs; when the log is exhausted it flushes the buffer, skipping what
the replay already sent, and goes live — all without an `await` between the
last read and going live, so no event can slip between the two. If the
buffer outgrows its bound during a long replay it is dropped and the replay
simply reads further: every event is in the log anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from server.hub import Hub
from server.store import EventStore
from server.stream.frames import Frames
from server.stream.sender import Message, Send, Sender
from server.topics import TopicFilter

REPLAY_PAGE = 1000


class Feed:
    __slots__ = (
        "_buffer",
        "_buffer_dropped",
        "_closing",
        "_lagging",
        "_limit",
        "filter",
        "frame",
        "hub",
        "seen",
        "sender",
        "store",
    )

    def __init__(
        self,
        hub: Hub,
        store: EventStore,
        send: Send,
        frame: Callable[[Frames], Message],
        lagging: Message,
        limit: int,
    ) -> None:
        self.hub = hub
        self.store = store
        self.filter = TopicFilter()
        self.seen = 0
        self.frame = frame
        self.sender = Sender(send, limit, self._on_overflow)
        self._lagging = lagging
        self._limit = limit
        self._buffer: list[Frames] | None = None  # live events held back during a replay
        self._buffer_dropped = False
        self._closing: asyncio.Task[None] | None = None

    # --- called by the hub -----------------------------------------------

    def deliver(self, frames: Frames) -> None:
        if self._buffer is None:
            self.sender.offer(self.frame(frames))
        elif len(self._buffer) < self._limit:
            self._buffer.append(frames)
        else:
            self._buffer.clear()
            self._buffer_dropped = True

    # --- called by the connection ------------------------------------------

    async def follow(self, topics: Mapping[str, frozenset[str] | None], since: int | None) -> None:
        """Add topics; with `since`, first send every matching event after it."""
        earlier = TopicFilter(dict(self.filter.stages_by_topic))
        sent_live = self.seen  # what `earlier` topics have delivered so far
        for topic, stages in topics.items():
            self.filter.add([topic], stages)
        if since is None:
            self.hub.add(self, topics)
            return
        self._buffer = []
        self.hub.add(self, topics)
        try:
            last = await self._replay(since, earlier, sent_live)
            for frames in self._buffer:
                if frames.event.seq > last:
                    self.sender.offer(self.frame(frames))
                    last = frames.event.seq
        finally:
            self._buffer = None
        self.seen = max(self.seen, last)

    def unfollow(self, topics: list[str]) -> None:
        self.filter.remove(topics)
        self.hub.remove(self, topics)

    def stop(self) -> None:
        self.hub.remove(self, list(self.filter.stages_by_topic))
        self.filter = TopicFilter()

    async def close(self, message: Message) -> None:
        self.stop()
        await self.sender.close(message)

    async def _replay(self, since: int, earlier: TopicFilter, sent_live: int) -> int:
        """Send the log after `since` on every followed topic; return the last seq read.

        Topics followed before this call were live until now: what they already
        delivered (up to `sent_live`) is skipped; what arrived for them since is
        in the buffer, or in the log if the buffer was dropped, and is sent here
        in order with the rest.
        """
        last = since
        while True:
            page = await self.store.events_since(last, self.filter.public(), REPLAY_PAGE)
            for event in page:
                last = event.seq
                if event.seq <= sent_live and earlier.matches(event):
                    continue
                await self.sender.put(self.frame(Frames(event)))
                if self.sender.failed:
                    return last
            if len(page) == REPLAY_PAGE:
                continue
            if self._buffer_dropped:
                self._buffer_dropped = False
                continue
            return last

    def _on_overflow(self) -> None:
        # Called from inside the hub's loop: leave the hub later, not now.
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self.close(self._lagging))
