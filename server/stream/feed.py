"""One client's subscription: replay from the log, then live, with no seam.

The feed joins the hub *before* it reads the log; while a replay runs, what
the hub hands it goes to the replay (replay.py), which decides what to read,
send, hold, drop and flush. The feed carries those decisions out: reads the
log, writes to the client, waits for the socket to drain, and goes live the
moment the replay is done, with no `await` in between, so no event can slip
between the last read and going live.

The live path (`deliver` outside a replay) is the fan-out's hot loop: one
test of `_replay` and a write, nothing more per delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from server.core.frames import Frames, Message
from server.core.topics import TopicFilter
from server.hub import Hub
from server.store import EventStore
from server.stream.counters import TransportCounters
from server.stream.peer import Peer
from server.stream.replay import Done, Read, Replay, Send
from server.stream.sender import Send as SendMessage
from server.stream.sender import Sender

# On server shutdown, how long a client may take to receive its close frame.
SHUTDOWN_SECONDS = 2.0


class Feed:
    __slots__ = (
        "_closing",
        "_lagging",
        "_limit",
        "_replay",
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
        send: SendMessage,
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
        self._replay: Replay | None = None  # while one runs, it holds the live events
        self._closing: asyncio.Task[None] | None = None
        self.counters = counters
        self.delivered = 0  # events sent, for /metrics (server/stream/counters.py)

    # --- called by the hub -----------------------------------------------

    def deliver(self, frames: Frames) -> None:
        replay = self._replay
        if replay is None:
            self.sender.offer(self.frame(frames))
            self.delivered += 1
        else:
            replay.hold(frames)

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
        replay = self._replay = Replay(since, topics, earlier, sent_live, self.topics, self._limit)
        self.hub.add(self, topics)
        try:
            await self._run(replay)
        finally:
            self._replay = None

    async def _run(self, replay: Replay) -> None:
        """Carry out what the replay decides, until it is done."""
        sender = self.sender
        while True:
            action = replay.next(sender.pending, sender.failed)
            if isinstance(action, Send):
                sender.offer(self.frame(action.frames))
                self.delivered += 1
            elif isinstance(action, Read):
                topics = self.following().public()
                replay.page(await self.store.events_since(action.after, topics, action.size))
            elif isinstance(action, Done):
                # Live from here: no await between the last read and this.
                for frames in action.flush:
                    sender.offer(self.frame(frames))
                self.delivered += len(action.flush)
                self.seen = max(self.seen, action.last)
                return
            else:
                await sender.drained()

    def following(self, exclude: Mapping[str, object] = {}) -> TopicFilter:
        """The followed topics with their stages (but those in `exclude`)."""
        return TopicFilter({t: s for t, (s, _) in self.topics.items() if t not in exclude})

    def unfollow(self, topics: list[str]) -> None:
        self.hub.remove(self, topics)
        for topic in topics:
            self.topics.pop(topic, None)

    def stop(self) -> None:
        self.hub.remove(self, list(self.topics))
        self.topics.clear()  # in place: a replay running reads the same map
        # Moved, not copied: stop may run twice (a close, then the connection's end).
        self.counters.closed_deliveries += self.delivered
        self.delivered = 0

    async def close(self, message: Message, timeout: float | None = None) -> None:
        self.stop()
        await self.sender.close(message, timeout)

    def _on_overflow(self) -> None:
        # Called from inside the hub's loop: leave the hub later, not now.
        if self._closing is None:
            self.counters.lagging_closes += 1
            self._closing = asyncio.get_running_loop().create_task(self.close(self._lagging))
