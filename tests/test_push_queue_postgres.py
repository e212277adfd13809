"""Several push workers on one PostgreSQL queue: each delivery sent by exactly one.

In-process first (two PushQueue instances on one schema, as two worker
processes have): deriving is done once whatever the interleaving, claims are
disjoint, a claim holds for its lease and then passes to another worker, and
only the holder stores an outcome. Then real worker processes
(`python -m push.process`) against the loopback push service, which decrypts
every push: with two of them each delivery arrives exactly once, and the rows
of a worker killed mid-send are sent by the other once its claims run out.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from push.derive import DeliveryDerivation, Pending
from push.queue import Outcome, PushQueue, State
from push.record import PushRecord
from push.vapid import load_or_create_key
from tests.conftest import ROOT, ServerProcess
from tests.push_service import Answer, PushService
from tests.services import postgres_schema, redis_url, unique_name
from tests.test_push_e2e import Push, messages, push_env, start_push_server, stop, wait_until
from tests.test_store import log_store, new_project, request

NOW = 1_800_000_000.0
SUBJECT = "mailto:ops@sunbid.example"


@pytest.fixture
def database() -> Iterator[tuple[str, str]]:
    with postgres_schema() as (url, schema):
        yield url, schema


@pytest.fixture
async def queues(database: tuple[str, str], tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Opens PushQueues on the test's schema (each as another worker would)."""
    url, schema = database
    opened: list[PushQueue] = []

    async def open_queue(lease: float = 60.0) -> PushQueue:
        queue = PushQueue(
            tmp_path / "unused.db", database_url=url, database_schema=schema, lease=lease
        )
        await queue.open()
        opened.append(queue)
        return queue

    yield open_queue
    for queue in opened:
        await queue.close()


def event(seq: int) -> Pending:
    return Pending(seq, ("all", "project:P1"), "notice", expires_at=NOW + 3600)


async def subscribe(queue: PushQueue, n: int) -> int:
    sub_id, _ = await queue.upsert(
        f"https://push.example/{n}", b"k" * 65, b"a" * 16, ["all"], None, "2026-12-01"
    )
    return sub_id


async def test_a_stale_page_is_not_derived_again(queues: Callable[..., Any]) -> None:
    first, second = await queues(), await queues()
    await subscribe(first, 1)
    assert await first.enqueue([event(s) for s in range(1, 6)], up_to=5, now=NOW) == 5
    # A subscriber arrives; the other worker then writes a page it read before
    # the first moved the cursor: nothing of it is derived again (the newcomer
    # gets no event from before it subscribed) and the cursor stays.
    late = await subscribe(second, 2)
    assert await second.enqueue([event(s) for s in range(1, 4)], up_to=3, now=NOW) == 0
    assert await second.cursor() == 5
    # A page overlapping the cursor: only the events past it are derived.
    assert await second.enqueue([event(s) for s in range(4, 8)], up_to=7, now=NOW) == 4
    assert await first.cursor() == 7
    rows = await first.rows("SELECT seq FROM deliveries WHERE subscription_id = ?", (late,))
    assert sorted(r[0] for r in rows) == [6, 7]


async def test_concurrent_derives_write_each_row_once(queues: Callable[..., Any]) -> None:
    workers = [await queues() for _ in range(4)]
    for n in range(20):
        await subscribe(workers[0], n)
    page = [event(s) for s in range(1, 51)]
    added = await asyncio.gather(*(w.enqueue(page, up_to=50, now=NOW) for w in workers))
    assert sorted(added) == [0, 0, 0, 1000], "one worker derives the page, the others skip it"
    assert await workers[1].depth() == 1000
    assert await workers[2].cursor() == 50


async def test_concurrent_claims_are_disjoint(queues: Callable[..., Any]) -> None:
    workers = [await queues() for _ in range(4)]
    for n in range(50):
        await subscribe(workers[0], n)
    await workers[0].enqueue([event(s) for s in range(1, 7)], up_to=6, now=NOW)  # 300 rows

    claims = await asyncio.gather(*(w.due(NOW, 100) for w in workers))
    keys = [(d.seq, d.subscription_id) for claim in claims for d in claim]
    assert len(keys) == len(set(keys)) == 300, "every row claimed, none by two workers"
    # Claimed rows are nobody else's while the claims hold.
    assert await workers[0].due(NOW + 1, 100) == []
    assert await workers[0].depth() == 300, "claimed rows are still queued"


async def test_a_claim_passes_on_after_its_lease_and_only_the_holder_records(
    queues: Callable[..., Any],
) -> None:
    first, second = await queues(lease=30), await queues(lease=30)
    sub = await subscribe(first, 1)
    await first.enqueue([event(1), event(2)], up_to=2, now=NOW)

    assert [d.seq for d in await first.due(NOW, 10)] == [1, 2]
    assert await second.due(NOW + 29, 10) == []
    assert await second.next_due_at() == NOW + 30  # when the claims run out
    # The first worker stalled past its lease: the second takes the rows.
    assert [d.seq for d in await second.due(NOW + 31, 10)] == [1, 2]
    await first.record([Outcome(1, sub, State.DELIVERED, 201), Outcome(2, sub, State.GONE, 410)])
    assert await first.counts(1) == {"queued": 1, "delivered": 0, "failed": 0, "gone": 0}
    assert await first.count() == 1, "an outcome not stored is not acted on either"
    await second.record([Outcome(1, sub, State.DELIVERED, 201)])
    assert await first.counts(1) == {"queued": 0, "delivered": 1, "failed": 0, "gone": 0}
    # A retry stored by the holder is free for any worker when it is due.
    await second.record([Outcome(2, sub, State.QUEUED, 500, next_at=NOW + 40)])
    assert await first.next_due_at() == NOW + 40
    assert [d.seq for d in await first.due(NOW + 40, 10)] == [2]


async def test_verify_and_rebuild_hold_the_tables_to_the_log(
    database: tuple[str, str], queues: Callable[..., Any]
) -> None:
    store = log_store(database)
    await store.open()
    try:
        project = await new_project(store, "P1")
        published = [(await store.append(request(project))).event for _ in range(3)]
        queue = await queues()
        sub = await subscribe(queue, 1)
        derivation = DeliveryDerivation(lambda stage: 3600)
        derivation.apply(published)
        await queue.enqueue(derivation.take(), up_to=derivation.cursor, now=NOW)
        record = PushRecord(queue)
        assert await record.check(store) is None
        # A row past the cursor (as no derivation makes): found, then removed.
        await queue.db.execute(
            "INSERT INTO deliveries (seq, subscription_id, next_at, expires_at)"
            " VALUES (?, ?, ?, ?)",
            (derivation.cursor + 5, sub, NOW, NOW + 60),
        )
        problem = await record.check(store)
        assert problem is not None and "not one the cursor" in problem
        await record.rebuild(store)
        assert await record.check(store) is None
        assert await queue.depth() == 3
    finally:
        await store.close()


# --- real worker processes -----------------------------------------------------------


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Deployment:
    """A log and push tables on the test's schema, and worker processes on them."""

    def __init__(self, database: tuple[str, str], data_dir: Path, service: PushService) -> None:
        self.database = database
        self.data_dir = data_dir
        self.service = service
        self.key = load_or_create_key(data_dir, subscriptions_exist=False)
        self.workers: list[asyncio.subprocess.Process] = []

    def environ(self, **extra: str) -> dict[str, str]:
        url, schema = self.database
        return {
            **os.environ,
            "SUNBID_DATA_DIR": str(self.data_dir),
            "SUNBID_DATABASE_URL": url,
            "SUNBID_DATABASE_SCHEMA": schema,
            "SUNBID_PUSH_ALLOWED_HOSTS": self.service.origin,
            "SUNBID_VAPID_SUBJECT": SUBJECT,
            "SUNBID_PUSH_TIMEOUT_SECONDS": "1",
            "SUNBID_PUSH_RETRY_BASE_SECONDS": "0.2",
            **extra,
        }

    async def subscribers(self, n: int) -> list[str]:
        url, schema = self.database
        queue = PushQueue(self.data_dir / "push.db", database_url=url, database_schema=schema)
        await queue.open()
        endpoints = []
        try:
            for _ in range(n):
                sub = self.service.new_subscriber(
                    application_server_key=self.key.application_server_key
                )
                keys = sub["keys"]
                await queue.upsert(
                    sub["endpoint"],
                    _b64(keys["p256dh"]),
                    _b64(keys["auth"]),
                    ["project:P-1"],
                    ["notice"],
                    "2026-12-01T09:00:00+08:00",
                )
                endpoints.append(sub["endpoint"])
        finally:
            await queue.close()
        return endpoints

    async def publish(self, m: int) -> list[int]:
        store = log_store(self.database)
        await store.open()
        try:
            project = await new_project(store, "P-1")
            results = [await store.append(request(project)) for _ in range(m)]
        finally:
            await store.close()
        return [r.event.seq for r in results]

    async def start_worker(self, **extra: str) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "push.process",
            stdin=asyncio.subprocess.PIPE,
            env=self.environ(**extra),
        )
        self.workers.append(process)
        return process

    async def close(self) -> None:
        for process in self.workers:
            if process.returncode is None:
                assert process.stdin is not None
                process.stdin.close()  # the worker's signal to stop
        for process in self.workers:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest.fixture
async def deployment(database: tuple[str, str], tmp_path: Path) -> AsyncIterator[Deployment]:
    async with PushService() as service:
        deployed = Deployment(database, tmp_path, service)
        try:
            yield deployed
        finally:
            await deployed.close()


def received(service: PushService) -> Counter[tuple[str, int]]:
    return Counter((m.subscriber, m.payload["event"]["seq"]) for m in list(service.messages))


async def test_two_worker_processes_send_each_delivery_exactly_once(
    deployment: Deployment,
) -> None:
    n, m = 30, 20
    endpoints = await deployment.subscribers(n)
    seqs = await deployment.publish(m)
    # Both start at once on a queue with nothing derived: they race to derive
    # the same events and to claim the same rows.
    await asyncio.gather(deployment.start_worker(), deployment.start_worker())
    service = deployment.service
    await service.wait_for(lambda: len(service.messages) >= n * m, timeout=30)
    await asyncio.sleep(1)  # a duplicate would arrive meanwhile
    got = received(service)
    wanted = {(e.rsplit("/", 1)[1], s) for e in endpoints for s in seqs}
    assert set(got) == wanted
    assert max(got.values()) == 1, [k for k, v in got.items() if v > 1][:5]
    assert service.rejections == []


async def test_a_request_kept_waiting_by_the_worker_is_not_timed_out_by_the_wait(
    deployment: Deployment,
) -> None:
    """The push timeout is the push service's time to answer a request once
    written, not time the request spent waiting in the worker (for a pooled
    connection here; for the event loop, encrypting the rest of its page, on a
    busy machine). Counted from the call, it ran out on a request the service
    had accepted, and the retry was a second push with no crash at all."""
    timeout = 3
    endpoints = await deployment.subscribers(2)
    [seq] = await deployment.publish(1)
    service = deployment.service
    service.answer(Answer(hang=True))
    # Two sending slots, so one connection to the service: the second request
    # waits for the first one's connection.
    await deployment.start_worker(
        SUNBID_PUSH_CONCURRENCY="2", SUNBID_PUSH_TIMEOUT_SECONDS=str(timeout)
    )
    await service.wait_for(lambda: service.hanging == 1, timeout=15)
    first_sent = time.monotonic()
    await asyncio.sleep(timeout / 2)
    service.release()  # answered in half the timeout; the second is written now
    await service.wait_for(lambda: len(service.messages) == 1 and service.hanging == 1)
    # Answered well within the timeout of its write, but after a timeout from
    # when the worker began with it (no later than the first was written).
    await asyncio.sleep(max(0.0, first_sent + timeout + 0.5 - time.monotonic()))
    service.answer(Answer())
    service.release()
    await service.wait_for(lambda: len(service.messages) >= 2, timeout=10)
    await asyncio.sleep(1)  # a retry would arrive meanwhile
    assert received(service) == {(e.rsplit("/", 1)[1], seq): 1 for e in endpoints}
    assert len(service.attempts) == 2, "no attempt timed out, none was retried"


async def test_a_killed_workers_rows_are_sent_by_another_after_the_lease(
    deployment: Deployment,
) -> None:
    n, m, lease = 10, 3, 6
    endpoints = await deployment.subscribers(n)
    seqs = await deployment.publish(m)
    service = deployment.service
    # The first worker's requests hang (and would be refused if ever answered):
    # it claims every row and dies with all of them in flight.
    service.answer(Answer(500, hang=True))
    doomed = await deployment.start_worker(SUNBID_PUSH_CLAIM_SECONDS=str(lease))
    await service.wait_for(lambda: service.hanging == n * m, timeout=15)
    killed_at = time.time()
    doomed.kill()
    await doomed.wait()
    service.answer(Answer())
    service.release()

    await deployment.start_worker(SUNBID_PUSH_CLAIM_SECONDS=str(lease))
    await service.wait_for(lambda: len(service.messages) >= n * m, timeout=lease + 15)
    await asyncio.sleep(0.5)
    got = received(service)
    assert set(got) == {(e.rsplit("/", 1)[1], s) for e in endpoints for s in seqs}
    assert max(got.values()) == 1
    # Not before the dead worker's claims ran out (claimed before it was killed).
    first = min(msg.received_at for msg in service.messages)
    assert first >= killed_at + lease - 1.0 - 0.5


def pushed_once(push: Push, service: PushService, project: str) -> None:
    """A subscription to `project` taken, a notice published, and its push
    received once and counted delivered, whichever process sent it."""
    push.staff.project(project)
    subscription = service.new_subscriber(application_server_key=push.key)
    response = push.request(
        "POST",
        "/api/push/subscriptions",
        json={"subscription": subscription, "topics": [f"project:{project}"]},
    )
    assert response.status_code == 201, response.text
    event = push.publish(project, "notice")

    # (The project's registration may be pushed too: the subscription can come
    # before the worker derives it.)
    def sent() -> list[int]:
        return [m.payload["event"]["seq"] for m in messages(service, subscription["endpoint"])]

    wait_until(lambda: event["seq"] in sent(), "the push")
    push.settled(event["seq"], delivered=1)
    assert sent().count(event["seq"]) == 1


def test_a_server_on_postgresql_takes_subscriptions_and_its_worker_sends(tmp_path: Path) -> None:
    """The whole path on PostgreSQL: `sunbid serve` takes the subscription into
    the schema's push tables, its worker derives and sends, and the staff
    delivery counts read them back."""
    with postgres_schema() as (url, name), PushService.in_thread() as service:
        push = start_push_server(
            tmp_path / "data", service, SUNBID_DATABASE_URL=url, SUNBID_DATABASE_SCHEMA=name
        )
        try:
            pushed_once(push, service, "PG-PUSH-1")
        finally:
            stop(push)


def test_web_processes_without_workers_and_a_sunbid_worker_deliver(tmp_path: Path) -> None:
    """The deployment's recommended shape: `serve --no-worker` takes the
    subscription and the publication, `sunbid worker` (no HTTP) derives and
    sends the push; the web process starts no push worker of its own."""
    with postgres_schema() as (url, name), PushService.in_thread() as service:
        env = push_env(
            service,
            SUNBID_DATABASE_URL=url,
            SUNBID_DATABASE_SCHEMA=name,
            SUNBID_BUS_URL=redis_url(),
            SUNBID_BUS_PREFIX=unique_name("bus"),
        )
        web = ServerProcess(tmp_path / "data", **env)
        web.args = ["--no-worker"]
        web.start()
        worker = subprocess.Popen(
            [sys.executable, "-m", "server", "worker"],
            cwd=ROOT,
            env=web.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        push = Push(web, web.token("push-admin"))
        try:
            assert web.process is not None
            children = Path(f"/proc/{web.process.pid}/task/{web.process.pid}/children")
            assert children.read_text().strip() == "", "the web process runs no push worker"
            pushed_once(push, service, "PG-WORKER-1")
            assert worker.poll() is None
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        finally:
            push.close()
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            if web.process is not None:
                web.stop()
