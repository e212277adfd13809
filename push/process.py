"""The push worker runs in a process of its own, beside the web server.

Each notification costs about 90 µs of encryption and as much again of HTTP
client work. On the web server's event loop a 10,000-subscriber fan-out
would be two seconds of CPU in small slices, and every WebSocket frame would
wait its turn behind them. In its own process, at a lower scheduling
priority, the worker uses a second core where there is one and yields the
core to the web server where there is not (docs/benchmarks.md, "Push").

Nothing is handed over in memory: the worker reads the log and push.db
itself, so the web server only has to say "something was committed" — one
byte on the worker's stdin, and a lost or merged byte costs nothing. When
stdin closes (the server stopped, or was killed) the worker stores the
outcomes it has, drops what is in flight (still queued, sent again later)
and exits; it also checks every second that the server is still its parent.
It never outlives the server that started it.

    python -m push.process      # started by PushService; settings from SUNBID_*

This is the one place in `push/` that opens the store (`open_store` from
server/store/__init__.py, the store's interface module, which picks a backend
by the URL's scheme): the worker is a process of its own, so no opened store
or factory object can be handed to it, only the URL in its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable

from push.channels.contacts import ContactCipher
from push.channels.senders import dispatch_for
from push.endpoints import AllowList
from push.metrics import WorkerMetrics
from push.policy import PushPolicy
from push.queue import QUEUE_FILE, PushQueue
from push.settings import PushSettings
from push.vapid import VapidSigner, load_or_create_key
from push.webhooks.schedule import RetrySchedule
from push.webhooks.sender import WebhookSender
from push.webhooks.store import WEBHOOKS_FILE, WebhookStore
from push.worker import ATTEMPT_TIMEOUTS, PushWorker, RetryPolicy
from server.core.clock import Clock
from server.core.logs import configure_logging
from server.store import EventStore, open_store

log = logging.getLogger("sunbid.push")

NICENESS = 10  # below the web server: a shared core goes to the streams first
RESTART_DELAYS = (0.5, 1, 2, 5, 10, 30)  # after unexpected exits in a row
STOP_SECONDS = 5.0
PARENT_CHECK_SECONDS = 1.0  # to store outcomes after stdin closed, before a SIGKILL


class PushProcess:
    """The web server's handle on the worker process: start, wake, restart, stop."""

    def __init__(self, settings: PushSettings) -> None:
        self.settings = settings
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self.metrics = WorkerMetrics()

    @property
    def alive(self) -> bool:
        """The worker process is running (false while it is being restarted)."""
        process = self._process
        return process is not None and process.returncode is None

    async def start(self) -> None:
        try:
            await self._spawn()
        except BaseException:
            self.metrics.remove()
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="push-supervisor")

    def notify(self, *_: object) -> None:
        """A commit happened (store listener: never waits, never raises)."""
        process = self._process
        if process is None or process.stdin is None or process.returncode is not None:
            return
        stdin = process.stdin
        # One byte is enough however many commits it stands for: skip the
        # write while an earlier byte is still waiting to be read.
        if not stdin.is_closing() and stdin.transport.get_write_buffer_size() == 0:
            with contextlib.suppress(ConnectionError, RuntimeError):
                stdin.write(b".")

    async def close(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        try:
            await self._stop()
        finally:
            self.metrics.remove()

    async def _stop(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the worker's signal to finish
        try:
            await asyncio.wait_for(process.wait(), STOP_SECONDS)
        except TimeoutError:
            log.warning("push worker did not stop in %.0f s; killing it", STOP_SECONDS)
            process.kill()
            await process.wait()

    async def _spawn(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "push.process",
            stdin=asyncio.subprocess.PIPE,
            env={**os.environ, **self.settings.environ, **self.metrics.environ()},
        )
        log.info("push worker started (pid %d)", self._process.pid)

    async def _supervise(self) -> None:
        """Start the worker again if it dies: queued deliveries wait in push.db meanwhile."""
        failures = 0
        while True:
            assert self._process is not None
            started = asyncio.get_running_loop().time()
            code = await self._process.wait()
            if asyncio.get_running_loop().time() - started > 60:
                failures = 0  # it ran fine for a while: this is a new problem
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            failures += 1
            log.error("push worker exited with code %s; starting it again in %s s", code, delay)
            await asyncio.sleep(delay)
            await self._spawn()
            self.notify()  # whatever was committed meanwhile


# --- the worker process ------------------------------------------------------------


async def _run(settings: PushSettings) -> None:
    store = open_store(
        settings.database_url,
        Clock(settings.timezone),
        readonly=True,
        schema=settings.database_schema,
    )
    queue = PushQueue(
        settings.data_dir / QUEUE_FILE,
        database_url=settings.database_url,
        database_schema=settings.database_schema,
        # A claim must outlast any attempt (cut at ATTEMPT_TIMEOUTS push
        # timeouts) and the storing of its outcome: a live worker's rows stay its own.
        lease=max(settings.push_claim_seconds, (ATTEMPT_TIMEOUTS + 1) * settings.push_timeout),
    )
    async with contextlib.AsyncExitStack() as stack:
        await store.open()
        stack.push_async_callback(store.close)
        await queue.open()
        stack.push_async_callback(queue.close)
        # The web server created the key before starting us: a missing one
        # here is an error, never a reason to make another.
        key = load_or_create_key(settings.data_dir, subscriptions_exist=True)
        channels = dispatch_for(settings)
        if channels is not None:
            stack.push_async_callback(channels.close)
        worker = PushWorker(
            queue,
            store,
            VapidSigner(key, settings.vapid_subject),
            PushPolicy.load(),
            AllowList.from_entries(settings.push_allowed_hosts),
            concurrency=settings.push_concurrency,
            per_host=max(1, settings.push_concurrency // 2),
            timeout=settings.push_timeout,
            retry=RetryPolicy(settings.push_max_attempts, settings.push_retry_base),
            public_origin=settings.public_url,
            channels=channels,
        )
        await worker.start()
        stack.push_async_callback(worker.close)
        webhooks = await _open_webhooks(settings, store, stack)
        await _follow_commits(worker, webhooks)


async def _open_webhooks(
    settings: PushSettings, store: EventStore, stack: contextlib.AsyncExitStack
) -> WebhookSender:
    """Webhooks are sent from this process too (push/webhooks/sender.py): the
    same reasons keep their requests off the web server's event loop."""
    webhook_store = WebhookStore(
        settings.data_dir / WEBHOOKS_FILE,
        database_url=settings.database_url,
        database_schema=settings.database_schema,
        # A claim must outlast any attempt (and the storing of its outcome).
        lease=max(settings.push_claim_seconds, 3 * settings.webhook_timeout),
    )
    await webhook_store.open()
    stack.push_async_callback(webhook_store.close)
    sender = WebhookSender(
        webhook_store,
        store,
        _secrets(settings),
        AllowList.from_entries(settings.webhook_allowed_hosts),
        RetrySchedule(settings.webhook_retry_base, settings.webhook_disable_after_days * 86_400),
        timeout=settings.webhook_timeout,
        concurrency=settings.webhook_concurrency,
        records_kept=settings.webhook_records_kept,
    )
    await sender.start()
    stack.push_async_callback(sender.close)
    return sender


def _secrets(settings: PushSettings) -> Callable[[bytes], str]:
    """Unseal webhook secrets with the data directory's key, read when the first
    is needed (the web server writes the key when it stores the first webhook)."""
    ciphers: list[ContactCipher] = []

    def unseal(sealed: bytes) -> str:
        if not ciphers:
            ciphers.append(ContactCipher.load_or_create(settings.data_dir))
        return ciphers[0].open(sealed)

    return unseal


async def _follow_commits(worker: PushWorker, webhooks: WebhookSender) -> None:
    """Wake the worker for every byte on stdin; return at end of file, or
    once the web server is gone (adopted by another parent), whichever is seen
    first: a missed end of file must not leave a worker sending on its own."""
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )

    async def read() -> None:
        while await reader.read(4096):
            worker.notify()
            webhooks.notify()

    async def orphaned(parent: int) -> None:
        while os.getppid() == parent:
            await asyncio.sleep(PARENT_CHECK_SECONDS)

    watches = [asyncio.ensure_future(read()), asyncio.ensure_future(orphaned(os.getppid()))]
    try:
        await asyncio.wait(watches, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for watch in watches:
            watch.cancel()


def main() -> None:
    # Ctrl-C in a terminal, `timeout` and systemd signal the whole process
    # group: the web server decides when the worker stops, by closing stdin
    # once its own shutdown is under way (a SIGKILL of the server closes it too).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    settings = PushSettings.from_env()
    configure_logging(settings.log_format)
    try:
        import uvloop  # as uvicorn uses for the web server, when installed

        uvloop.run(_run(settings))
    except ImportError:
        asyncio.run(_run(settings))


if __name__ == "__main__":
    main()
