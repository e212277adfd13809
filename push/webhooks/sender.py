"""Sending webhooks: one runner per webhook with work, all in the push worker process.

Each webhook gets its matching events one at a time, in seq order, so a
runner is a loop over the log after the webhook's cursor: read a page of
matching events (the log's own topic and stage indexes), POST the first,
store the outcome (a 2xx moves the cursor), then the next. A failure
schedules the next attempt (schedule.py) and ends the runner; the
scheduler starts it again when the attempt is due. Runners of different
webhooks run side by side, each request under its own timeout, so a
receiver that hangs holds only its own webhook, never publishing (another
process), streams (the web server) or another webhook.

The scheduler wakes on every commit (a byte from the web server, as for
push), when a retry is due, and every `POLL_SECONDS` (for changes made by
another process: a new webhook, a replay, a claim another worker let go).
It must not query the log once per webhook per commit: it reads each new
event once (`_fresh`) and remembers which idle webhooks are caught up to
which seq (`_caught_up`); only a webhook that a new event matches, or whose
place changed, gets a runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp

from push.endpoints import AllowList, GuardedResolver
from push.metrics import WEBHOOK_DELIVERIES
from push.webhooks.schedule import RetrySchedule
from push.webhooks.signing import event_body, message_id, secret_key, signed_headers
from push.webhooks.store import Attempt, Webhook, WebhookStore
from push.worker import _retry_after
from server.core.events import StoredEvent
from server.core.topics import TopicFilter
from server.store import EventStore

log = logging.getLogger("sunbid.webhooks")

PAGE = 100  # matching events read at a time by one runner
FRESH_PAGE = 1000  # new events the scheduler reads at a time
RECENT = 4000  # new events remembered, to tell whether a runner that ended is caught up
POLL_SECONDS = 2.0
WAKE_DELAY = 0.01  # a burst of commits shares one round
MAX_ANSWER = 64 * 1024  # of a receiver's answer, read no more (then the connection closes)
TRIM_EVERY = 100  # records of one webhook between trims to SUNBID_WEBHOOK_RECORDS_KEPT


class WebhookSender:
    def __init__(
        self,
        store: WebhookStore,
        log_store: EventStore,
        unseal: Callable[[bytes], str],
        allow: AllowList,
        schedule: RetrySchedule,
        *,
        timeout: float = 10.0,
        concurrency: int = 256,
        records_kept: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.log = log_store
        self.unseal = unseal
        self.allow = allow
        self.schedule = schedule
        self.timeout = timeout
        self.records_kept = records_kept
        self.clock = clock
        self._concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._caught_up: dict[str, tuple[int, TopicFilter]] = {}  # id → (its cursor, filter)
        self._seen: int | None = None  # the newest seq the scheduler has read
        self._recent: deque[StoredEvent] = deque(maxlen=RECENT)
        self._keys: dict[str, tuple[bytes, bytes]] = {}  # id → (sealed secret, key)
        self._recorded: dict[str, int] = {}
        # A runner that failed for a reason of this process's own (a secret its
        # key cannot open, a database error) stored no outcome, so its webhook
        # is still due: without a pause the next round would start it again
        # at once, every few milliseconds. id → (failures in a row, rest until).
        self._resting: dict[str, tuple[int, float]] = {}
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._concurrency,
            limit_per_host=0,  # each webhook has one request in flight at most
            resolver=GuardedResolver(self.allow),
            ttl_dns_cache=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            skip_auto_headers=("User-Agent",),
            headers={"User-Agent": "Sunbid-Webhooks"},
        )
        self._wake.set()
        self._task = asyncio.create_task(self._loop(), name="webhooks-scheduler")

    def notify(self, *_: object) -> None:
        """A commit happened, or a webhook changed (never waits)."""
        self._wake.set()

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # --- the scheduler -------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._round()
                timeout = await self._sleep_for()
            except Exception:
                log.exception("webhooks: a scheduling round failed; again in 1 s")
                timeout = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            await asyncio.sleep(WAKE_DELAY)

    async def _round(self) -> None:
        await self._read_fresh()
        now = self.clock()
        wanted = []
        for hook in await self.store.ready(now):
            if hook.id in self._running or self._rests(hook.id, now):
                continue
            idle = self._caught_up.get(hook.id)
            if idle is not None and idle[0] == hook.cursor:
                continue  # nothing new for it since its runner ended
            self._caught_up.pop(hook.id, None)
            wanted.append(hook.id)
        for hook in await self.store.claim(wanted, now):
            if hook.id not in self._running and hook.disabled_at is None:
                self._running[hook.id] = asyncio.create_task(
                    self._serve(hook), name=f"webhook-{hook.id}"
                )

    async def _read_fresh(self) -> None:
        """Read the events committed since the last round (a page at most):
        a caught-up webhook that one of them matches has work again."""
        if self._seen is None:
            self._seen = await _log_tip(self.log)
            return
        fresh = await self.log.events_since(self._seen, None, FRESH_PAGE)
        if not fresh:
            return
        self._recent.extend(fresh)
        self._seen = fresh[-1].seq
        if len(fresh) == FRESH_PAGE:  # more than a page behind: every webhook looks for itself
            self._caught_up.clear()
            self._wake.set()
            return
        for hook_id, (_, wanted) in list(self._caught_up.items()):
            if any(wanted.matches(event) for event in fresh):
                del self._caught_up[hook_id]

    def _rests(self, hook_id: str, now: float) -> bool:
        resting = self._resting.get(hook_id)
        return resting is not None and resting[1] > now

    async def _sleep_for(self) -> float:
        due = await self.store.next_attempt_at()
        if due is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(due - self.clock(), 0.0))

    def _failed_unexpectedly(self, hook_id: str) -> None:
        """Rest the webhook as a failed attempt would (the same schedule), in
        this process only: it is this process that could not send."""
        failures = self._resting.get(hook_id, (0, 0.0))[0] + 1
        self._resting[hook_id] = (failures, self.clock() + self.schedule.delay(failures))

    # --- one webhook's runner ---------------------------------------------------------

    async def _serve(self, hook: Webhook) -> None:
        """Send the webhook's events after its cursor, in order, until it is
        caught up, an attempt fails, or its place changed under it."""
        current: Webhook | None = hook
        try:
            while current is not None:
                seen = self._seen
                events = await self.log.events_since(current.cursor, current.filter, PAGE)
                if not events:
                    self._settle(current, seen)
                    return
                for event in events:
                    current = await self._deliver(current, event)
                    if current is None or current.attempts or current.disabled_at:
                        return
        except Exception:
            log.exception("webhook %s: sending failed unexpectedly", hook.id)
            self._failed_unexpectedly(hook.id)
        finally:
            del self._running[hook.id]
            with contextlib.suppress(Exception):
                await self.store.release(hook.id)
            self._wake.set()  # its retry, or work that came meanwhile

    def _settle(self, hook: Webhook, seen: int | None) -> None:
        """The runner found nothing after the cursor in a read that began when
        the scheduler had seen up to `seen`: caught up, unless an event the
        scheduler read since then is one for it (or it cannot tell)."""
        if seen is None or self._seen is None:
            return
        wanted = TopicFilter(hook.filter)
        later = [event for event in self._recent if event.seq > seen]
        if self._seen > seen and (not later or later[0].seq != seen + 1):
            return  # those events are no longer remembered
        if not any(wanted.matches(event) for event in later):
            self._caught_up[hook.id] = (hook.cursor, wanted)

    async def _deliver(self, hook: Webhook, event: StoredEvent) -> Webhook | None:
        attempt = await self._post(hook, event)
        now = self.clock()
        disable, next_at = False, 0.0
        if not attempt.delivered:
            failing_since = hook.failing_since if hook.failing_since is not None else now
            disable = self.schedule.gives_up(failing_since, now)
            next_at = now + self.schedule.delay(hook.attempts + 1, attempt.retry_after)
        outcome = "delivered" if attempt.delivered else "disabled" if disable else "retry"
        WEBHOOK_DELIVERIES.labels(outcome).inc()
        log.info(
            "webhook %s seq=%d attempt=%d status=%s %s %.1f ms",
            hook.id,
            event.seq,
            hook.attempts + 1,
            attempt.status,
            attempt.error or "",
            attempt.duration_ms,
        )
        stored = await self.store.record(
            hook, attempt, next_attempt_at=next_at, disable=disable, now=now
        )
        self._resting.pop(hook.id, None)  # it works again
        if disable:
            log.warning("webhook %s disabled: failing since %s", hook.id, hook.failing_since)
        await self._count_record(hook.id)
        return stored

    async def _post(self, hook: Webhook, event: StoredEvent) -> Attempt:
        assert self._session is not None
        body = event_body(event.json)
        key = self._key(hook)
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        async with self._slots:
            # Signed once a slot is free: the wait for one (every slot taken by
            # receivers that hang) must not age the timestamp receivers check.
            headers = signed_headers(key, message_id(hook.id, event.seq), int(self.clock()), body)
            started = time.perf_counter()
            try:
                async with self._session.post(
                    hook.url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    status = response.status
                    retry_after = _retry_after(response.headers.get("Retry-After"), self.clock())
                    await _drain(response)
            except TimeoutError:
                error = "timeout"
            except (aiohttp.ClientError, OSError):
                error = "connection"
            duration_ms = (time.perf_counter() - started) * 1000
        if status is not None and not 200 <= status < 300:
            error = "redirect" if 300 <= status < 400 else "status"
        return Attempt(event.seq, status, error, duration_ms, _now_iso(), retry_after)

    def _key(self, hook: Webhook) -> bytes:
        cached = self._keys.get(hook.id)
        if cached is None or cached[0] != hook.secret:
            cached = self._keys[hook.id] = (hook.secret, secret_key(self.unseal(hook.secret)))
        return cached[1]

    async def _count_record(self, hook_id: str) -> None:
        count = self._recorded.get(hook_id, 0) + 1
        self._recorded[hook_id] = count
        if count % TRIM_EVERY == 0:
            await self.store.trim(hook_id, self.records_kept)


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read the answer (which nobody needs) so the connection can be reused,
    but never more than MAX_ANSWER: a larger one closes the connection."""
    read = 0
    while read <= MAX_ANSWER:
        chunk = await response.content.readany()
        if not chunk:
            return
        read += len(chunk)
    response.close()


async def _log_tip(log_store: EventStore) -> int:
    """The newest seq in the log. The worker's store is a reader that keeps no
    head of its own; the log has no gaps, so an exponential then a binary
    search over `events_since` finds it in a few dozen indexed reads."""
    low, high = 0, 1
    while await log_store.events_since(high, None, 1):
        low, high = high, high * 2
    while high - low > 1:  # the event `low` exists (or low is 0), `high + 1` does not
        middle = (low + high) // 2
        if await log_store.events_since(middle, None, 1):
            low = middle
        else:
            high = middle
    found = await log_store.events_since(low, None, 1)
    return found[0].seq if found else low


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
