"""Webhooks as an attacker or a strict receiver sees them: the sender in this
process against a real receiver on loopback (tests/webhook_receiver.py,
which checks every request with the reference `standardwebhooks`
verifier), on a real SQLite log and a real webhooks.db."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from push.channels.contacts import ContactCipher
from push.endpoints import AllowList
from push.webhooks.schedule import RetrySchedule
from push.webhooks.sender import WebhookSender
from push.webhooks.signing import new_secret
from push.webhooks.store import Attempt, WebhookStore
from server.core.clock import FrozenClock
from server.domain import Domain
from server.projects import open_projects
from server.projects.changes import registration
from server.store import open_store
from tests.webhook_receiver import WebhookReceiver

DOMAIN = Domain.load()
TZ = ZoneInfo("Asia/Shanghai")
CLOCK = FrozenClock(TZ, datetime(2026, 12, 1, 9, 30, tzinfo=TZ))


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver.in_thread() as running:
        yield running
        assert running.bad == [], "a request failed the standardwebhooks verifier"


class Deployment:
    """A log, webhooks.db and a sender, as the worker process has them."""

    def __init__(self, tmp_path: Path, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self.log = open_store(f"sqlite:///{tmp_path / 'log.db'}", CLOCK)
        open_projects(self.log, DOMAIN)
        self.hooks = WebhookStore(tmp_path / "webhooks.db")
        self.cipher = ContactCipher.load_or_create(tmp_path)
        self.allow = AllowList.from_entries([f"http://127.0.0.1:{receiver.port}"])

    async def register(self, name: str, topics: list[str]) -> str:
        secret = new_secret()
        self.receiver.secret(name, secret)
        return await self.hooks.create(
            self.receiver.url(name),
            topics,
            None,
            "",
            self.cipher.seal(secret),
            "2026-12-01T09:30:00+08:00",
            self.log.head,
        )

    async def publish(self, project_id: str) -> int:
        project = DOMAIN.project_input(
            {"id": project_id, "title": "项目", "category": "construction", "agency": "YW-GGZY"}
        )
        return (await self.log.append(registration(project))).event.seq

    @asynccontextmanager
    async def sending(
        self,
        unseal: Callable[[bytes], str] | None = None,
        **options: Any,
    ) -> AsyncIterator[WebhookSender]:
        sender = WebhookSender(
            self.hooks,
            self.log,
            unseal or self.cipher.open,
            self.allow,
            RetrySchedule(base=5.0),
            **options,
        )
        await sender.start()
        try:
            yield sender
        finally:
            await sender.close()


@asynccontextmanager
async def deployment(tmp_path: Path, receiver: WebhookReceiver) -> AsyncIterator[Deployment]:
    made = Deployment(tmp_path, receiver)
    await made.log.open()
    await made.hooks.open()
    try:
        yield made
    finally:
        await made.hooks.close()
        await made.log.close()


async def eventually(condition: Callable[[], Any], seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s")
        await asyncio.sleep(0.02)
    return value


# --- the retry schedule --------------------------------------------------------------------


def test_the_retry_delay_stays_at_its_cap_however_many_failures_came_before() -> None:
    """2.0 ** n overflows past n = 1024: a webhook failing for weeks (a long
    SUNBID_WEBHOOK_DISABLE_AFTER_DAYS, or a short retry base) must keep its
    hourly retries, not crash its runner on every attempt."""
    schedule = RetrySchedule(base=5.0, disable_after=60 * 86_400.0)
    for failures in (1025, 1100, 10**6):
        assert 0.75 * schedule.cap <= schedule.delay(failures) <= 1.25 * schedule.cap
        assert schedule.delay(failures, retry_after=float("inf")) <= 1.25 * schedule.cap


# --- a runner that fails for a reason of its own -------------------------------------------


def test_a_webhook_whose_runner_fails_unexpectedly_is_not_restarted_in_a_tight_loop(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """A secret this process cannot open (a deployment whose processes do not
    share contacts.key) fails every runner before it sends anything: it
    must be tried again after a pause, not every scheduling round."""
    tries: list[str] = []

    async def run() -> None:
        async with deployment(tmp_path, receiver) as made:
            locked = await made.hooks.get(await made.register("locked", ["all"]))
            await made.register("fine", ["all"])
            assert locked is not None

            def unseal(sealed: bytes) -> str:
                if sealed == locked.secret:
                    tries.append(locked.id)
                    raise ValueError("this process's contacts.key does not open the secret")
                return made.cipher.open(sealed)

            async with made.sending(unseal=unseal) as sender:
                seq = await made.publish("L-1")
                sender.notify()
                await eventually(lambda: receiver.seqs("fine") == [seq])
                await asyncio.sleep(1.0)
        assert 1 <= len(tries) <= 2, f"tried {len(tries)} times in a second"
        assert receiver.hits.get("locked", 0) == 0

    asyncio.run(run())


# --- Standard Webhooks: the timestamp ----------------------------------------------------


def test_the_timestamp_is_that_of_the_request_not_of_its_wait_for_a_slot(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """Receivers refuse a `webhook-timestamp` too far from their clock (the
    reference verifier: 5 minutes). With every slot of
    SUNBID_WEBHOOK_CONCURRENCY taken by hanging receivers, a request waits;
    it must be signed when it goes out, not when it began to wait."""

    async def run() -> None:
        async with deployment(tmp_path, receiver) as made:
            await made.register("hang", ["project:H-1"])
            await made.register("waits", ["project:W-1"])
            receiver.set_mode("hang", "hang")
            async with made.sending(concurrency=1, timeout=2.5) as sender:
                await made.publish("H-1")
                sender.notify()
                await eventually(lambda: receiver.hits.get("hang"))
                await made.publish("W-1")
                sender.notify()
                [got] = await eventually(lambda: receiver.got("waits"))
        assert got.wall - got.timestamp < 1.5, "signed 2.5 s before it was sent"

    asyncio.run(run())


# --- what a disabled webhook's warning tells supervisors -----------------------------------


def test_the_disabled_warning_names_the_receivers_origin_never_its_path_or_query(
    tmp_path: Path,
) -> None:
    """Many receivers' URLs are their own credential (a DingTalk or WeCom
    robot's `?access_token=`, a chat hook's path). The URL is admin data;
    the warning goes to supervisors too, live and in
    /api/supervision/warnings, and is kept: it names the origin only."""
    url = "https://oapi.dingtalk.com/robot/send?access_token=4f2c9e-receiver-credential"

    async def run() -> None:
        store = WebhookStore(tmp_path / "webhooks.db")
        await store.open()
        try:
            hook_id = await store.create(
                url, ["all"], None, "", b"sealed", "2026-12-01T09:30:00+08:00", 0
            )
            hook = await store.get(hook_id)
            assert hook is not None
            failed = Attempt(1, 500, "status", 1.0, "2026-12-04T09:30:00Z")
            await store.record(hook, failed, next_attempt_at=0, disable=True, now=1.0)
            [(_, _, doc)] = await store.list_warnings("open", None, 10)
            [(_, streamed)] = await store.warnings_changed_after(0)
        finally:
            await store.close()
        for shown in (doc, streamed):
            assert b"access_token" not in shown and b"4f2c9e" not in shown
            assert b"/robot/send" not in shown
        warning = orjson.loads(doc)
        assert warning["webhook"] == {"id": hook_id, "origin": "https://oapi.dingtalk.com"}
        assert hook_id in warning["message"] and "https://oapi.dingtalk.com" in warning["message"]

    asyncio.run(run())
