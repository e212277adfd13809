"""One client's subscription: replay from the log, then live, with no seam.

Resuming is the heart of the delivery guarantee. The feed registers with the
hub *before* it reads the log, and buffers what the hub hands it while the
replay runs; when the log is exhausted it flushes the buffer, skipping what
the replay already sent, and goes live — all without an `await` between the
last read and going live, so no event can slip between the two. If the
buffer outgrows its bound during a long replay it is dropped and the replay
simply reads further: every event is in the log anyway.

Memory per connection is bounded by bytes, not counts: the live buffer holds
at most `limit` bytes; a replay reads pages of about `limit / 4` bytes (sized
from the events it read last: an event may be 1 KB or 60 KB), and never holds
more than that of a page while it waits for the client: once half of `limit`
is unsent it waits for the client to take what it has, keeping the rest of
the page only if it is that small, else reading it again afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from server.core.events import StoredEvent
from server.core.frames import Frames, Message
from server.core.topics import TopicFilter
from server.hub import Hub
from server.store import EventStore
from server.stream.counters import TransportCounters
from server.stream.peer import Peer
from server.stream.sender import Send, Sender

# Events per read of the log: a small first read, then as many as fit in a
# quarter of the limit, growing at most fourfold a read, up to REPLAY_PAGE.
FIRST_PAGE, REPLAY_PAGE = 16, 1000
# On server shutdown, how long a client may take to receive its close frame.
SHUTDOWN_SECONDS = 2.0


class Feed:
    __slots__ = (
        "_buffer",
        "_buffer_bytes",
        "_buffer_dropped",
        "_closing",
        "_lagging",
        "_limit",
        "counters",
        "delivered",
        "frame",
        "hub",
        "seen",
        "sender",
        "store",
        "topics",
    )

    def __init__(
        self,
        hub: Hub,
        store: EventStore,
        send: Send,
        peer: Peer,
        frame: Callable[[Frames], Message],
        lagging: Message,
        limit: int,
        counters: TransportCounters,
    ) -> None:
        self.hub = hub
        self.store = store
        # topic → (stages wanted, the seq after which its events were or are being sent)
        self.topics: dict[str, tuple[frozenset[str] | None, int]] = {}
        self.seen = 0
        self.frame = frame
        self.sender = Sender(send, peer, limit, self._on_overflow)
        self._lagging = lagging
        self._limit = limit
        self._buffer: list[Frames] | None = None  # live events held back during a replay
        self._buffer_bytes = 0
        self._buffer_dropped = False
        self._closing: asyncio.Task[None] | None = None
        self.counters = counters
        self.delivered = 0  # events sent, for /metrics (server/stream/counters.py)

    # --- called by the hub -----------------------------------------------

    def deliver(self, frames: Frames) -> None:
        if self._buffer is None:
            self.sender.offer(self.frame(frames))
            self.delivered += 1
        elif self._buffer_bytes < self._limit:
            self._buffer.append(frames)
            self._buffer_bytes += len(frames.event.json)
        else:
            self._buffer.clear()
            self._buffer_bytes = 0
            self._buffer_dropped = True

    def notice(self, message: Message) -> None:
        """A message outside the log (a compliance warning): sent at once, even mid-replay."""
        self.sender.offer(message)

    # --- called by the connection ------------------------------------------

    async def follow(self, topics: Mapping[str, frozenset[str] | None], since: int | None) -> None:
        """Add topics; with `since`, first send every matching event after it."""
        earlier = self.following(exclude=topics)
        sent_live = self.seen  # the last event sent through `earlier` topics
        start = self.store.head if since is None else since
        for topic, stages in topics.items():
            self.topics[topic] = (stages, start)
        if since is None:
            self.hub.add(self, topics)  # no await since `head` was read: no gap
            return
        self._buffer = []
        self.hub.add(self, topics)
        try:
            last = await self._replay(since, topics, earlier, sent_live)
            for frames in self._buffer:
                if frames.event.seq > last:
                    self.sender.offer(self.frame(frames))
                    self.delivered += 1
                    last = frames.event.seq
        finally:
            self._buffer = None
            self._buffer_bytes = 0
        self.seen = max(self.seen, last)

    def following(self, exclude: Mapping[str, object] = {}) -> TopicFilter:
        """The followed topics with their stages (but those in `exclude`)."""
        return TopicFilter({t: s for t, (s, _) in self.topics.items() if t not in exclude})

    def unfollow(self, topics: list[str]) -> None:
        self.hub.remove(self, topics)
        for topic in topics:
            self.topics.pop(topic, None)

    def stop(self) -> None:
        self.hub.remove(self, list(self.topics))
        self.topics = {}
        # Moved, not copied: stop may run twice (a close, then the connection's end).
        self.counters.closed_deliveries += self.delivered
        self.delivered = 0

    async def close(self, message: Message, timeout: float | None = None) -> None:
        self.stop()
        await self.sender.close(message, timeout)

    async def _replay(
        self,
        since: int,
        topics: Mapping[str, frozenset[str] | None],
        earlier: TopicFilter,
        sent_live: int,
    ) -> int:
        """Send the log after `since`; return the last seq read.

        The connection may already follow other topics (`earlier`), live until
        this call. Their events up to `sent_live` were either sent already or
        never asked for; later ones are held in the buffer (or, if it was
        dropped, are in the log) and go out here, in order with the rest.
        """
        new = TopicFilter(dict(topics))
        last = min(since, sent_live) if earlier else since
        page_size = FIRST_PAGE
        while True:
            page = await self.store.events_since(last, self.following().public(), page_size)
            full = len(page) == page_size
            if page:
                fit = (self._limit // 4) * len(page) // sum(len(event.json) for event in page)
                page_size = max(1, min(REPLAY_PAGE, 4 * page_size, fit))
            taken = 0
            while taken < len(page):
                if self.sender.congested:
                    if sum(len(event.json) for event in page[taken:]) > self._limit // 4:
                        break  # too much to hold while the client catches up
                    await self.sender.drained()
                    if self.sender.failed:
                        return last
                    continue
                event = page[taken]
                taken += 1
                last = event.seq
                if self._wanted(event, since, new, earlier, sent_live):
                    self.sender.offer(self.frame(Frames(event)))
                    self.delivered += 1
                    if self.sender.failed:
                        return last
            if taken < len(page):  # let go of the rest, and read it again once it fits
                del page
                await self.sender.drained()
                if self.sender.failed:
                    return last
                continue
            if full:
                continue
            if self._buffer_dropped:
                self._buffer_dropped = False
                continue
            return last

    def _wanted(
        self,
        event: StoredEvent,
        since: int,
        new: TopicFilter,
        earlier: TopicFilter,
        sent_live: int,
    ) -> bool:
        seq = event.seq
        live_earlier = any(
            seq > self.topics[topic][1] for topic in earlier.matching(event) if topic in self.topics
        )
        if live_earlier and seq <= sent_live:
            return False  # sent live already
        return live_earlier or (seq > since and new.matches(event))

    def _on_overflow(self) -> None:
        # Called from inside the hub's loop: leave the hub later, not now.
        if self._closing is None:
            self.counters.lagging_closes += 1
            self._closing = asyncio.get_running_loop().create_task(self.close(self._lagging))
