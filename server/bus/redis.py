"""The scale-out bus: committed events travel between processes over Redis pub/sub.

Redis is the fast path, not the record: pub/sub keeps nothing, so a message
lost to a restart or a dropped connection is simply not there. The log is
the record. Every batch, whatever its source, goes through the `Sequencer`,
which reads any gap from the log; and whenever the channel has been quiet
for a second, or Redis cannot be reached, the database itself is polled
(a cheap indexed read that finds nothing most of the time). So Redis going
away slows nothing down by more than a poll interval, and nothing is lost
or doubled when it comes back. A silent subscription is pinged, so a hung
Redis is noticed (and reported by /readyz as `bus_unreachable`) as a dead one is.

Message: the batch's last seq in decimal and a newline, then a JSON array of
the batch's event documents, the exact bytes the store wrote
(`StoredEvent.json`). The receiver needs nothing else (no read per message:
that is the point of the bus), and a batch is what one commit produced, so
its size is bounded by the writer's batch. The seq in front lets a process
drop, unparsed, a message it has delivered already: its own commits, which
come back to it, and those a read of the log brought first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis.asyncio as redis

from server.bus import Deliver
from server.bus.sequencer import Log, Sequencer
from server.core.events import StoredEvent

log = logging.getLogger("sunbid.bus")

QUIET = 1.0  # poll the database once the channel has said nothing for this long
POLL = 0.5  # how often the poller looks (it polls while quiet or unsubscribed)
SILENCE = 3.0  # ping Redis after this long without a word on the subscription
PONG_WAIT = 2.0  # and count it unreachable when the answer takes longer
BACKOFF_MIN = 0.1
BACKOFF_MAX = 2.0
SEND_TIMEOUT = 1.0
POLL_PAGE = 1000
OUTBOX_MAX = 10_000  # batches waiting to be sent
CLOSE_SECONDS = 5.0


class RedisBus:
    def __init__(self, url: str, log_: Log, prefix: str = "sunbid") -> None:
        self.url = url
        self.channel = f"{prefix}:events"
        self._subscribers: list[Deliver] = []
        self.sequencer = Sequencer(log_, self._deliver_all)
        self._client: redis.Redis | None = self._connect()  # checks the URL first
        parts = urlsplit(url)
        # For log lines: never the password the URL may hold.
        self.where = f"{parts.hostname}:{parts.port or 6379}"
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._listening = False  # subscribed to the channel right now
        self._reached = False  # subscribed at least once since start (for /readyz)
        self._last_heard = 0.0  # monotonic time of the subscription's last word
        self._send_down_until = 0.0  # monotonic time before which sending is not tried
        self._reported_down = False
        self._reported_poll_error = False
        # Counters for metrics and tests.
        self.received = 0
        self.polls_found = 0
        self.bad_messages = 0
        self.dropped_sends = 0

    # --- the Bus protocol -------------------------------------------------------------------

    def subscribe(self, deliver: Deliver) -> None:
        self._subscribers.append(deliver)

    async def start(self) -> None:
        if self._started:
            return
        if self._client is None:  # closed and started again
            self._client = self._connect()
        self.sequencer.start()
        self._started = True
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="sunbid-bus-send"),
            asyncio.create_task(self._listen_loop(), name="sunbid-bus-listen"),
            # A task of its own: a listener stuck on a hung connection must not
            # hold up delivery from the database.
            asyncio.create_task(self._poll_loop(), name="sunbid-bus-poll"),
        ]

    def _connect(self) -> redis.Redis:
        """A client (connecting lazily); a URL it cannot use is a settings error, at once."""
        try:
            return redis.from_url(
                self.url, socket_connect_timeout=1, socket_timeout=SEND_TIMEOUT + 1
            )
        except ValueError as exc:
            raise ValueError(f"SUNBID_BUS_URL: {exc} (use redis://host[:port][/db])") from exc

    def publish(self, events: Sequence[StoredEvent]) -> None:
        if not self._started or not events:
            return
        # Local subscribers first, without waiting for a round trip through Redis.
        self.sequencer.offer(events)
        if self._outbox.qsize() >= OUTBOX_MAX:  # Redis slow but not failing: bound the memory
            self.dropped_sends += 1  # the others read these from the log
            return
        self._outbox.put_nowait(encode(events))

    async def close(self) -> None:
        self._started = False
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a shutdown must not hang on a connection whose closing
            # (in a task's `finally`) never finishes.
            _, stuck = await asyncio.wait(self._tasks, timeout=CLOSE_SECONDS)
            if stuck:
                log.warning("closing the bus: %d task(s) did not stop in time", len(stuck))
        self._tasks = []
        await self.sequencer.close()
        if self._client is not None:
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(self._client.aclose(), CLOSE_SECONDS)
            self._client = None
        self._subscribers.clear()

    # --- health -----------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self._listening and time.monotonic() >= self._send_down_until

    def not_ready(self) -> list[str]:
        """For /readyz: a process that has not reached Redis since it started is
        not ready (its start-up is not done); once it has, an outage is only a
        degradation (`problems`): every process would fail at once, taking the
        whole deployment out of rotation, while the database carries delivery."""
        return [] if self._reached or not self._started else ["bus_unreachable"]

    def problems(self) -> list[str]:
        """For /readyz: a degradation, not a reason to stop serving (the database
        carries delivery meanwhile, at most a poll interval later)."""
        return [] if self.healthy or not self._started else ["bus_unreachable"]

    def counters(self) -> dict[str, tuple[str, int]]:
        return {
            "sunbid_bus_messages_received": (
                "Messages received over Redis (this process's own come back too)",
                self.received,
            ),
            "sunbid_bus_messages_malformed": ("Messages on the channel ignored", self.bad_messages),
            "sunbid_bus_messages_dropped": (
                "Batches not sent to Redis because it was unreachable",
                self.dropped_sends,
            ),
            "sunbid_bus_gap_fills": (
                "Gaps in what arrived, read from the log",
                self.sequencer.gap_fills,
            ),
            "sunbid_bus_polls_found": (
                "Polls of the database that found events Redis had not brought",
                self.polls_found,
            ),
        }

    # --- inside -----------------------------------------------------------------------------

    def _deliver_all(self, events: Sequence[StoredEvent]) -> None:
        for deliver in self._subscribers:
            try:
                deliver(events)
            except Exception:  # one failing subscriber must not starve the others
                log.exception("a bus subscriber failed")

    def _down(self, what: str, exc: BaseException) -> None:
        if not self._reported_down:  # once per outage, not once per message
            self._reported_down = True
            log.warning(
                "Redis at %s is unreachable (%s: %s): delivering from the database",
                self.where,
                what,
                exc,
            )

    def _up(self) -> None:
        if self._reported_down:
            self._reported_down = False
            log.warning("Redis at %s is reachable again", self.where)

    async def _send_loop(self) -> None:
        assert self._client is not None
        while True:
            payload = await self._outbox.get()
            if time.monotonic() < self._send_down_until:
                # The others find these by polling the database, or as a gap.
                self.dropped_sends += 1
                continue
            try:
                await asyncio.wait_for(self._client.publish(self.channel, payload), SEND_TIMEOUT)
                if self._listening:
                    self._up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.dropped_sends += 1
                self._send_down_until = time.monotonic() + BACKOFF_MAX
                self._down("publishing", exc)

    async def _listen_loop(self) -> None:
        assert self._client is not None
        backoff = BACKOFF_MIN
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                # Subscribed first, then read the log once: what was committed
                # while not listening comes from there, what follows from Redis.
                self._last_heard = time.monotonic()
                self._listening = True
                self._reached = True
                self._send_down_until = 0.0
                self._up()
                backoff = BACKOFF_MIN
                await self._poll()
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._down("listening", exc)
            finally:
                self._listening = False
                with contextlib.suppress(Exception):  # the connection is gone already
                    await pubsub.aclose()
            await asyncio.sleep(backoff)  # the poller carries delivery meanwhile
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _listen(self, pubsub: Any) -> None:
        """Hand on what arrives until the connection fails or falls silent."""
        pinged_at: float | None = None
        while True:
            message = await pubsub.get_message(timeout=QUIET)
            now = time.monotonic()
            if message is not None:  # a pong too: the connection is alive
                self._last_heard, pinged_at = now, None
                if message.get("type") == "message":
                    self._receive(message.get("data"))
            elif pinged_at is not None and now - pinged_at > PONG_WAIT:
                # A hung server or a network that drops packets gives no error, only this.
                raise ConnectionError(f"no answer to a ping within {PONG_WAIT:g} s")
            elif pinged_at is None and now - self._last_heard > SILENCE:
                await asyncio.wait_for(pubsub.ping(), SEND_TIMEOUT)
                pinged_at = now

    async def _poll_loop(self) -> None:
        """Read the log while the channel is quiet or Redis is unreachable: a lost
        message, or an outage, delays an event by about a second, no more."""
        polled = 0.0
        while True:
            await asyncio.sleep(POLL)
            now = time.monotonic()
            quiet = now - self._last_heard >= QUIET and now - polled >= QUIET
            if not self._listening or quiet:
                polled = now
                await self._poll()

    async def _poll(self) -> None:
        try:
            while True:
                events = await self.sequencer.log.events_since(
                    self.sequencer.delivered, None, POLL_PAGE
                )
                if events:
                    self.polls_found += 1
                    self.sequencer.offer(events)
                if len(events) < POLL_PAGE or self.sequencer.filling:
                    break
            self._reported_poll_error = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store answers 503 meanwhile; streams wait
            if not self._reported_poll_error:
                self._reported_poll_error = True
                log.warning("polling the log for new events failed: %s", exc)

    def _receive(self, data: Any) -> None:
        if (
            isinstance(data, bytes)
            and (last := last_seq(data)) is not None
            and last <= self.sequencer.delivered
        ):  # delivered already (our own commit, or read from the log): not worth parsing
            self.received += 1
            return
        try:
            events = parse(data)
        except (ValueError, TypeError, KeyError) as exc:
            # Not ours or damaged: anything it held is read from the log as a gap.
            self.bad_messages += 1
            log.warning("ignoring a malformed message on %s: %s", self.channel, exc)
            return
        self.received += 1
        self.sequencer.offer(events)


def encode(events: Sequence[StoredEvent]) -> bytes:
    """One message: a batch of events, ascending."""
    return b"%d\n[%s]" % (events[-1].seq, b",".join(event.json for event in events))


def last_seq(data: bytes) -> int | None:
    """The seq a message names in front (None if it names none)."""
    head = data[: data.find(b"\n")]
    return int(head) if head.isdigit() and len(head) <= 19 else None


def parse(data: Any) -> list[StoredEvent]:
    """The events of one message, ascending; ValueError/TypeError/KeyError if it is not one."""
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, bytes):
        raise TypeError(f"a message of type {type(data).__name__}")
    last = last_seq(data)
    if last is None:
        raise ValueError("no seq in front")
    documents = orjson.loads(data[data.find(b"\n") + 1 :])
    if not isinstance(documents, list):
        raise ValueError("not a JSON array")
    events = []
    for document in documents:
        if not isinstance(document, dict):
            raise ValueError("an element is not an object")
        seq = document["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(f"bad seq {seq!r}")
        for field in ("project", "category", "agency", "stage"):
            if not isinstance(document[field], str):
                raise ValueError(f"bad {field}")
        if not isinstance(document["region"], str | None):
            raise ValueError("bad region")
        events.append(StoredEvent.from_dict(document))
    events.sort(key=lambda event: event.seq)
    if not events or events[-1].seq != last:
        raise ValueError(f"the seq in front, {last}, is not the batch's last")
    return events
