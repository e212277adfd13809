"""Turning the log into push notifications, and sending them.

Two loops and a flusher share one aiohttp session:

- derive: after every commit (and at start), read the log past the queue's
  cursor and queue a delivery per matching subscription (push/queue.py);
- send: take due deliveries, encrypt each for its subscriber, POST it with
  bounded concurrency overall and per push service; never more than one
  attempt of a delivery in flight (with PostgreSQL, across every worker of
  the deployment: due rows are claimed, push/queue.py);
- flush: store outcomes in batches (every few ms), and only then let the
  send loop see those rows again.

Publishing never waits for any of this: the commit listener only sets an
event. A crash loses nothing: undelivered rows stay queued, and the cursor
lets the log be re-derived. What may repeat after a crash are the requests in
flight and those answered within the last flush interval — once each, and
the `Topic` header lets the push service collapse the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from push.channels import Result, Sent
from push.channels.dispatch import ChannelDispatch, Dropped, Later
from push.crypto import encrypt
from push.derive import DeliveryDerivation
from push.endpoints import AllowList, GuardedResolver
from push.metrics import DELIVERIES, outcome_label
from push.payload import build_payload, plaintext_limit
from push.policy import PushPolicy
from push.queue import Due, Outcome, PushQueue, State
from push.vapid import VapidSigner
from server.store import EventStore

log = logging.getLogger("sunbid.push")

DERIVE_PAGE = 500
DUE_PAGE = 1000
FLUSH_SECONDS = 0.01
DERIVE_DELAY = 0.02
# An attempt as a whole (waiting for a connection, connecting, sending, the
# answer) is cut at this many push timeouts: a claim (push/queue.py) must
# outlast it, so push/process.py makes the lease longer than that.
ATTEMPT_TIMEOUTS = 2
CHANNEL_STATES = {
    Result.DELIVERED: State.DELIVERED,
    Result.GONE: State.GONE,
    Result.FAILED: State.FAILED,
}


@dataclass(frozen=True)
class RetryPolicy:
    """429, 5xx and network errors are retried with exponential backoff and
    jitter (honouring `Retry-After`), at most `max_attempts` times and never
    after the message's TTL has run out."""

    max_attempts: int = 8
    base_seconds: float = 2.0
    cap_seconds: float = 600.0

    def delay(self, attempts: int, retry_after: float | None) -> float:
        backoff = min(self.cap_seconds, self.base_seconds * 2.0**attempts)
        backoff *= random.uniform(0.5, 1.5)
        return max(backoff, retry_after or 0.0)


@dataclass
class _Message:
    """What every subscriber of one event gets: built once per event (and size)."""

    build: Callable[[int], bytes]  # the payload fitted to a plaintext limit
    headers: Mapping[str, str]  # Urgency and Topic; TTL is computed per attempt
    payloads: dict[int, bytes] = field(default_factory=dict)

    def payload(self, endpoint: str) -> bytes:
        limit = plaintext_limit(endpoint)
        payload = self.payloads.get(limit)
        if payload is None:
            payload = self.payloads[limit] = self.build(limit)
        return payload


@dataclass(frozen=True)
class _Request:
    """A push ready to post: its encrypted body, and its headers but `TTL`."""

    body: bytes
    headers: Mapping[str, str]


class PushWorker:
    def __init__(
        self,
        queue: PushQueue,
        store: EventStore,
        signer: VapidSigner,
        policy: PushPolicy,
        allow: AllowList,
        *,
        clock: Callable[[], float] = time.time,
        concurrency: int = 256,
        per_host: int = 128,
        timeout: float = 15.0,
        retry: RetryPolicy = RetryPolicy(),
        stage_names: Mapping[str, str] | None = None,
        public_origin: str | None = None,
        channels: ChannelDispatch | None = None,
    ) -> None:
        self.queue = queue
        self.store = store
        self.signer = signer
        self.policy = policy
        self.derivation = DeliveryDerivation(lambda stage: policy.for_stage(stage).ttl)
        self.allow = allow
        self.clock = clock
        self.retry = retry
        self.stage_names = stage_names
        self.public_origin = public_origin  # for Safari's declarative `navigate`
        self.channels = channels  # SMS, e-mail, WeChat (push/channels/)
        self._events: dict[int, dict[str, Any]] = {}  # the documents messages are made from
        # Channels' messages handed to providers and not yet stored, per
        # (subscription, local day): the daily cap counts them too.
        self._sending: dict[tuple[int, str], int] = {}
        self._concurrency = concurrency
        self._per_host = per_host
        self._timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._derive_wanted = asyncio.Event()
        self._send_wanted = asyncio.Event()
        self._flush_wanted = asyncio.Event()
        self._in_flight: set[tuple[int, int]] = set()
        self._outcomes: list[Outcome] = []
        self._messages: dict[int, _Message] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    # --- life cycle --------------------------------------------------------

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._concurrency,
            limit_per_host=self._per_host,
            resolver=GuardedResolver(self.allow),
            ttl_dns_cache=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=attempt_timeout(self._timeout),
            skip_auto_headers=("User-Agent",),
        )
        self._derive_wanted.set()  # catch up with what was published while down
        self._send_wanted.set()
        for loop in (self._derive_loop, self._send_loop, self._flush_loop):
            self._tasks.append(asyncio.create_task(loop(), name=f"push-{loop.__name__}"))

    async def close(self) -> None:
        for task in [*self._tasks, *self._sends]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._sends, return_exceptions=True)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self._flush()
        if self._session is not None:
            await self._session.close()

    def notify(self, *_: object) -> None:
        """A commit happened: derive deliveries soon (never waits)."""
        self._derive_wanted.set()

    # --- derive ----------------------------------------------------------------

    async def _derive_loop(self) -> None:
        while True:
            await self._derive_wanted.wait()
            # A moment's delay costs a push nothing and lets a burst of
            # commits share one read of the log and one transaction.
            await asyncio.sleep(DERIVE_DELAY)
            self._derive_wanted.clear()
            try:
                while await self._derive_page():
                    pass
            except Exception:
                log.exception("deriving push deliveries failed; retrying in 1 s")
                await asyncio.sleep(1)
                self._derive_wanted.set()

    async def _derive_page(self) -> bool:
        """Derive one page of the log after the queue's cursor (push/derive.py);
        the rows and the cursor are written in one transaction."""
        derivation = self.derivation
        derivation.cursor = await self.queue.cursor()  # the stored cursor is the truth
        events = await self.store.events_since(derivation.cursor, None, DERIVE_PAGE)
        if not events:
            return False
        derivation.apply(events)
        rows = derivation.take()
        await self.queue.enqueue(rows, up_to=derivation.cursor, now=self.clock())
        # New events: rows to send, whether this worker or another (sharing
        # the queue on PostgreSQL) derived them.
        self._send_wanted.set()
        return len(events) == DERIVE_PAGE

    # --- send --------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            self._send_wanted.clear()
            try:
                started = await self._start_due()
            except Exception:
                log.exception("reading due push deliveries failed; retrying in 1 s")
                await asyncio.sleep(1)
                continue
            if started:
                continue
            next_at = await self.queue.next_due_at()
            if next_at is None:
                timeout = None  # nothing queued: sleep until woken
            else:
                # A row due now may be one in flight: its outcome's flush wakes
                # us; otherwise look again shortly.
                timeout = max(next_at - self.clock(), 0.05 if self._in_flight else 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._send_wanted.wait(), timeout)

    async def _start_due(self) -> int:
        """Start an attempt for each due delivery not already in flight."""
        limit = DUE_PAGE
        if self.queue.postgres:
            # Claim no more than can be sent at once: a claimed row waiting
            # for a slot would spend its lease (push/queue.py) waiting.
            limit = max(1, self._concurrency - len(self._sends))
        due = [
            d
            for d in await self.queue.due(self.clock(), limit)
            if (d.seq, d.subscription_id) not in self._in_flight
        ]
        # Claimed at once: a row read now must not be sent again after its
        # outcome is stored while this loop waits for a free slot.
        self._in_flight.update((d.seq, d.subscription_id) for d in due)
        batch: list[Due] = []
        for delivery in due:
            await self._slots.acquire()
            batch.append(delivery)
            if self._slots.locked():  # no slot left: send these, then wait for one
                await self._start_batch(batch)
                batch = []
        await self._start_batch(batch)
        return len(due)

    async def _start_batch(self, batch: list[Due]) -> None:
        """Prepare every attempt of `batch` (its slots taken), then start them.

        Encrypting is CPU work on this event loop: done inside each attempt,
        the first request's timeout ran while the loop encrypted the rest of
        the page (up to `concurrency` messages), and on a busy machine ran out
        just as the push service accepted it (see `attempt_timeout`).
        """
        prepared = [(due, await self._prepare(due)) for due in batch]
        for due, request in prepared:
            task = asyncio.create_task(self._attempt(due, request))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def _prepare(self, due: Due) -> _Request | Outcome | None:
        """A push's request made ready to post; an outcome already known (an
        expired message); None for a channel (its sender prepares its own)."""
        try:
            if self.clock() >= due.expires_at:
                return Outcome(due.seq, due.subscription_id, State.FAILED, None)
            if due.kind != "push":
                return None
            message = await self._message(due.seq)
            body = encrypt(message.payload(due.endpoint), due.p256dh, due.auth)
            headers = {
                **message.headers,
                **self.signer.headers_for(due.endpoint),
                "Content-Encoding": "aes128gcm",
                "Content-Type": "application/octet-stream",
            }
            return _Request(body, headers)
        except Exception:
            log.exception("preparing a push failed unexpectedly")
            return self._retry_or_fail(due, None, None)

    async def _attempt(self, due: Due, request: _Request | Outcome | None) -> None:
        try:
            if isinstance(request, Outcome):
                outcome = request
            elif request is None:
                outcome = await self._deliver_by_channel(due, self.clock())
            else:
                outcome = await self._post(due, request)
        except Exception:
            log.exception("push attempt failed unexpectedly")
            outcome = self._retry_or_fail(due, None, None)
        finally:
            self._slots.release()
        DELIVERIES.labels(outcome_label(outcome)).inc()  # a write to shared memory
        self._outcomes.append(outcome)
        self._flush_wanted.set()

    async def _post(self, due: Due, request: _Request) -> Outcome:
        now = self.clock()
        # TTL as of the send: a request may have waited for its batch.
        headers = {**request.headers, "TTL": str(max(1, int(due.expires_at - now)))}
        assert self._session is not None
        try:
            async with self._session.post(
                due.endpoint, data=request.body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"), now)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            _log(due, None, f"network: {type(exc).__name__}")
            return self._retry_or_fail(due, None, None)
        _log(due, status, "")
        if 200 <= status < 300:
            return Outcome(due.seq, due.subscription_id, State.DELIVERED, status)
        if status in (404, 410):
            return Outcome(due.seq, due.subscription_id, State.GONE, status)
        if status == 429 or status >= 500:
            return self._retry_or_fail(due, status, retry_after)
        return Outcome(due.seq, due.subscription_id, State.FAILED, status)

    async def _deliver_by_channel(self, due: Due, now: float) -> Outcome:
        """SMS, e-mail or WeChat (push/channels/dispatch.py decides and sends)."""
        event = await self._event(due.seq)
        if self.channels is None:
            _log_channel(due, "dropped", "not configured")
            return Outcome(due.seq, due.subscription_id, State.FAILED, None)
        stage = str(event["stage"])
        stage_name = (self.stage_names or {}).get(stage, stage)
        day = self.channels.day(now)
        # Counted before the send: deliveries of one channel sent at once each
        # see the others (the count is stored with the outcomes, in batches).
        counting = (due.subscription_id, day)
        sent_today = due.sent_on(day) + self._sending.get(counting, 0)
        self._sending[counting] = self._sending.get(counting, 0) + 1
        try:
            decided = await self.channels.deliver(due, event, stage_name, now, sent_today)
        except Exception as exc:  # a sender's bug: its message may hold the address
            log.error("%s seq=%d: sending failed: %s", due.kind, due.seq, type(exc).__name__)
            decided = Sent(Result.RETRY, detail=type(exc).__name__)
        delivered = isinstance(decided, Sent) and decided.result is Result.DELIVERED
        if not delivered:
            self._uncount(counting)
        if isinstance(decided, Later):
            if decided.at >= due.expires_at:
                return Outcome(due.seq, due.subscription_id, State.FAILED, None)
            return Outcome(
                due.seq,
                due.subscription_id,
                State.QUEUED,
                None,
                next_at=decided.at,
                attempted=False,
            )
        if isinstance(decided, Dropped):
            _log_channel(due, "dropped", decided.why)
            return Outcome(due.seq, due.subscription_id, State.FAILED, None)
        _log_channel(due, decided.result.value, decided.detail)
        if decided.result is Result.RETRY:
            return self._retry_or_fail(due, None, decided.retry_after)
        # Accepted by the provider: it counts towards the cap, and it is paid for.
        sent = (due.kind, day) if delivered else None
        return Outcome(
            due.seq, due.subscription_id, CHANNEL_STATES[decided.result], None, sent=sent
        )

    def _uncount(self, counting: tuple[int, str]) -> None:
        left = self._sending.get(counting, 0) - 1
        if left > 0:
            self._sending[counting] = left
        else:
            self._sending.pop(counting, None)

    async def _event(self, seq: int) -> dict[str, Any]:
        """The event's document, read once for all its deliveries (push and channels)."""
        event = self._events.get(seq)
        if event is None:
            stored = await self.store.get_event(seq)
            assert stored is not None, f"seq {seq} is queued but not in the log"
            if len(self._events) > 256:
                self._events.clear()
            event = self._events[seq] = orjson.loads(stored.json)
        return event

    def _retry_or_fail(self, due: Due, status: int | None, retry_after: float | None) -> Outcome:
        attempts = due.attempts + 1
        next_at = self.clock() + self.retry.delay(due.attempts, retry_after)
        if attempts >= self.retry.max_attempts or next_at >= due.expires_at:
            return Outcome(due.seq, due.subscription_id, State.FAILED, status)
        return Outcome(due.seq, due.subscription_id, State.QUEUED, status, next_at=next_at)

    async def _message(self, seq: int) -> _Message:
        message = self._messages.get(seq)
        if message is None:
            doc = await self._event(seq)
            message = _Message(
                build=functools.partial(
                    _fitted, doc, stage_names=self.stage_names, origin=self.public_origin
                ),
                headers={
                    k: v
                    for k, v in self.policy.headers(doc["stage"], doc["project"]).items()
                    if k != "TTL"
                },
            )
            if len(self._messages) > 256:
                self._messages.clear()
            self._messages[seq] = message
        return message

    # --- flush -----------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await self._flush_wanted.wait()  # idle servers do not wake up for nothing
            await asyncio.sleep(FLUSH_SECONDS)  # then gather a batch
            self._flush_wanted.clear()
            try:
                await self._flush()
            except Exception:
                log.exception("storing push outcomes failed; retrying")

    async def _flush(self) -> None:
        if not self._outcomes:
            return
        batch, self._outcomes = self._outcomes, []
        try:
            await self.queue.record(batch)
        except BaseException:
            self._outcomes[:0] = batch
            self._flush_wanted.set()
            raise
        for outcome in batch:
            self._in_flight.discard((outcome.seq, outcome.subscription_id))
            if outcome.sent is not None:  # stored now: the count is the queue's
                self._uncount((outcome.subscription_id, outcome.sent[1]))
        self._send_wanted.set()


def attempt_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """`seconds` for the push service to connect, and to answer once the request
    is written; the attempt as a whole is cut at ATTEMPT_TIMEOUTS times that.

    Not one `total` of `seconds` from the call: that clock also runs while the
    request waits for a pooled connection and while this event loop is busy
    encrypting the other attempts started with it (a page of up to
    `concurrency`), which on a loaded machine spent the whole budget before
    the request was even written. A request written just before its budget
    ran out was accepted by the push service and then timed out here, and its
    retry reached the subscriber a second time: a duplicate push without any
    crash, which the contract rules out. Timed from the write, a timeout means
    the push service was slow, not that this process was.
    """
    return aiohttp.ClientTimeout(
        total=ATTEMPT_TIMEOUTS * seconds, sock_connect=seconds, sock_read=seconds
    )


def _fitted(
    doc: Mapping[str, Any], limit: int, *, stage_names: Mapping[str, str] | None, origin: str | None
) -> bytes:
    return build_payload(doc, stage_names=stage_names, origin=origin, max_bytes=limit)


def _retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isascii() and value.strip().isdigit():
        return float(value.strip())
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    return None


def _log(due: Due, status: int | None, detail: str) -> None:
    """One line per attempt: origin and a digest of the endpoint, never keys or the full URL."""
    parts = urlsplit(due.endpoint)
    endpoint_id = hashlib.sha256(due.endpoint.encode()).hexdigest()[:12]
    log.info(
        "push seq=%d sub=%d origin=%s://%s endpoint=%s attempt=%d status=%s %s",
        due.seq,
        due.subscription_id,
        parts.scheme,
        parts.netloc,
        endpoint_id,
        due.attempts + 1,
        status,
        detail,
    )


def _log_channel(due: Due, result: str, detail: str) -> None:
    """One line per attempt by a channel: never its address or the text."""
    log.info(
        "%s seq=%d sub=%d attempt=%d result=%s %s",
        due.kind,
        due.seq,
        due.subscription_id,
        due.attempts + 1,
        result,
        detail,
    )
