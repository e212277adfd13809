"""The replay/live seam of one subscription, as a state machine with no I/O.

Resuming is the heart of the delivery guarantee: a client that follows
topics with `since` gets every matching event after it, once, in order, and
then the live ones, with none lost at the seam. The feed (feed.py) joins
the hub *before* it reads the log, so live events that arrive during the
replay are handed here (`hold`) and kept; when the log is exhausted they are
flushed, skipping what the replay already sent, and the feed goes live.

Everything that decides anything lives here; the feed only carries out the
answers of `next`, which are:

    Read(after, size)   read up to `size` events after `after`, give them to `page`
    Send(frames)        write this event to the client
    DRAIN               wait until the client has taken some of what waits for it
    Done(flush, last)   write `flush`, then go live: nothing is read or sent
                        by the replay after this (the feed must not await in
                        between, or a live event could slip past)

`next` takes the socket's state as it is now: `pending` (bytes written for
the client that it has not taken yet) and `failed` (the client is gone or
was cut off as lagging). An event is sent only while it leaves at most half
the pending limit waiting (or nothing waits at all): the other half is room
for live events and replies, so a client that reads, however slowly, is
never cut off by its own replay. Memory stays bounded by bytes, not counts:
held live events at most `limit / 4` bytes (past that they are dropped, and
the replay simply reads further: every event is in the log); pages of about
`limit / 4` bytes, sized from the events read last; and while the client
has no room, the rest of a page is kept only if it is that small, else let
go and read again once the client has caught up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from server.core.events import StoredEvent
from server.core.frames import Frames
from server.core.topics import TopicFilter

# Events per read of the log: a small first read, then as many as fit in a
# quarter of the limit, growing at most fourfold a read, up to REPLAY_PAGE.
FIRST_PAGE, REPLAY_PAGE = 16, 1000

# topic → (stages wanted, the seq after which its events were or are being sent)
Followed = Mapping[str, tuple[frozenset[str] | None, int]]


@dataclass(frozen=True, slots=True)
class Read:
    after: int
    size: int


@dataclass(frozen=True, slots=True)
class Send:
    frames: Frames


@dataclass(frozen=True, slots=True)
class Drain:
    pass


DRAIN = Drain()


@dataclass(frozen=True, slots=True)
class Done:
    flush: list[Frames]  # held live events the replay did not reach, in seq order
    last: int  # the last seq read or sent: the feed's `seen` from here on


Action = Read | Send | Drain | Done


class Replay:
    """One replay of the log after `since` for `topics`, and the live events held meanwhile.

    The connection may already follow other topics (`earlier`), live until
    this replay began. Their events up to `sent_live` were either sent
    already or never asked for; later ones are held here (or, if the held
    events were dropped, are in the log) and go out in order with the rest.
    `followed` is the feed's own map, read as it is at each event, so a
    topic given up during the replay is not sent any more.
    """

    __slots__ = (
        "_dropped",
        "_earlier",
        "_full",
        "_held",
        "_held_bytes",
        "_limit",
        "_new",
        "_page",
        "_page_size",
        "_reading",
        "_sent_live",
        "_since",
        "_taken",
        "done",
        "followed",
        "last",
    )

    def __init__(
        self,
        since: int,
        topics: Mapping[str, frozenset[str] | None],
        earlier: TopicFilter,
        sent_live: int,
        followed: Followed,
        limit: int,
    ) -> None:
        self._since = since
        self._new = TopicFilter(dict(topics))
        self._earlier = earlier
        self._sent_live = sent_live
        self.followed = followed
        self._limit = limit
        self.last = min(since, sent_live) if earlier.stages_by_topic else since
        self._page_size = FIRST_PAGE
        self._page: Sequence[StoredEvent] = ()
        self._taken = 0
        self._full = False
        self._reading = True  # the next step is a read of the log
        self._held: list[Frames] = []
        self._held_bytes = 0
        self._dropped = False  # held events were let go: read the log further
        self.done = False

    # --- inputs ------------------------------------------------------------

    def hold(self, frames: Frames) -> None:
        """A live event from the hub, while the replay runs.

        At most a quarter of the byte cap is held, as of a page: what is held
        is handed to the sender in one go when the replay ends, and the socket
        may still be backed up then. Beyond that, the held events are let go
        and read again from the log, in pages that wait for room.
        """
        size = len(frames.event.json)
        if not self._dropped and self._held_bytes + size <= self._limit // 4:
            self._held.append(frames)
            self._held_bytes += size
        else:
            self._held.clear()
            self._held_bytes = 0
            self._dropped = True

    def page(self, events: Sequence[StoredEvent]) -> None:
        """The answer to the last `Read`."""
        self._page, self._taken, self._reading = events, 0, False
        self._full = len(events) == self._page_size
        if events:
            fit = (self._limit // 4) * len(events) // sum(len(e.json) for e in events)
            self._page_size = max(1, min(REPLAY_PAGE, 4 * self._page_size, fit))

    # --- the next step ---------------------------------------------------------

    def next(self, pending: int, failed: bool) -> Action:
        """What to do now, given the socket's state."""
        if failed or self.done:
            return self._finish()
        if self._reading:
            return Read(self.last, self._page_size)
        page = self._page
        while self._taken < len(page):
            event = page[self._taken]
            wanted = self._wanted(event)
            if wanted and pending and pending + len(event.json) > self._limit // 2:
                rest = page[self._taken :]
                if sum(len(event.json) for event in rest) > self._limit // 4:
                    # Too much to hold while the client catches up: let go of
                    # the rest and read it again once it fits.
                    self._page, self._reading = (), True
                return DRAIN
            self._taken += 1
            self.last = event.seq
            if wanted:
                return Send(Frames(event))
        self._page = ()
        if self._full:
            self._reading = True
        elif self._dropped:  # held events were let go: they are in the log
            self._dropped, self._reading = False, True
        else:
            return self._finish()
        return Read(self.last, self._page_size)

    def _finish(self) -> Done:
        self.done = True
        last = self.last
        flush = []
        for frames in self._held:
            if frames.event.seq > last:
                flush.append(frames)
                last = frames.event.seq
        self._held, self._held_bytes, self.last = [], 0, last
        return Done(flush, last)

    def _wanted(self, event: StoredEvent) -> bool:
        seq, followed = event.seq, self.followed
        live_earlier = any(
            seq > followed[topic][1] for topic in self._earlier.matching(event) if topic in followed
        )
        if live_earlier and seq <= self._sent_live:
            return False  # sent live already
        return live_earlier or (seq > self._since and self._new.matches(event))
