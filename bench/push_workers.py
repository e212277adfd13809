"""Web Push with several workers on one PostgreSQL queue: deliveries/s, 1 worker vs 2.

A log and the push tables on a fresh schema of the test PostgreSQL
(SUNBID_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/test;
dropped at the end); N subscriptions of one project pointing at the local
push sink (bench/push_sink.py: 201 without decrypting, pinned to core 1) and
M notices published. Each run empties the deliveries, puts the cursor back
to 0 and starts K worker processes (`python -m push.process`, as `sunbid
worker` runs them) on the same queue: they derive the N×M deliveries (once)
and claim and send them (push/queue.py). Taken per run: N×M / (last - first
request at the sink), and that every delivery reached the sink exactly once.

    .venv/bin/python bench/push_workers.py [--subscribers 2000] [--events 5] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson
from common import PUSH_SUBJECT, PushKeys, PushSink

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from push.queue import PushQueue  # noqa: E402
from push.vapid import load_or_create_key  # noqa: E402
from tests.services import POSTGRES_URL, drop_schema, unique_name  # noqa: E402
from tests.test_store import log_store, new_project, request  # noqa: E402

PROJECT = "BENCH-W"


async def populate(queue: PushQueue, sink: PushSink, n: int) -> None:
    keys = PushKeys.new()
    now = "2026-12-01T09:00:00.000+08:00"
    topics = orjson.dumps([f"project:{PROJECT}"]).decode()
    async with queue.transaction():
        await queue.db.executemany(
            "INSERT INTO subscriptions (endpoint, p256dh, auth, topics, stages, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ',notice,', ?, ?)",
            [(sink.endpoint(i), keys.p256dh, keys.auth, topics, now, now) for i in range(n)],
        )
        await queue.db.execute(
            "INSERT INTO subscription_topics (topic, subscription_id)"
            " SELECT ?, id FROM subscriptions",
            (f"project:{PROJECT}",),
        )


async def publish(database: tuple[str, str], m: int) -> None:
    store = log_store(database)
    await store.open()
    try:
        project = await new_project(store, PROJECT)
        for _ in range(m):
            await store.append(request(project))
    finally:
        await store.close()


async def run_workers(
    k: int, queue: PushQueue, sink: PushSink, env: dict[str, str], n: int, m: int
) -> tuple[float, bool]:
    """(deliveries/s, each exactly once) for k workers sending n × m deliveries."""
    total = n * m
    log = (Path(env["SUNBID_DATA_DIR"]) / "workers.log").open("ab")
    async with queue.transaction():
        await queue.db.execute("DELETE FROM deliveries")
        await queue.db.execute("UPDATE cursor SET seq = 0 WHERE id = 1")
    start = await sink.count()
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "push.process",
            stdin=asyncio.subprocess.PIPE,
            stderr=log,  # a line per attempt, as in production: kept, not shown
            cwd=ROOT,
            env=env,
        )
        for _ in range(k)
    ]
    try:
        if not await sink.wait_count(start + total, timeout=60):
            raise SystemExit(f"{k} worker(s): only {await sink.count() - start} of {total} sent")
        await asyncio.sleep(0.5)  # a duplicate would arrive meanwhile
    finally:
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.close()
        for worker in workers:
            try:
                await asyncio.wait_for(worker.wait(), 10)
            except TimeoutError:
                worker.kill()
                await worker.wait()
        log.close()
    attempts = await sink.attempts(start)
    times = [float(a[1]) for a in attempts]
    # The sink knows subscribers, not events: each of the n got exactly m pushes.
    per_subscriber = Counter(a[0] for a in attempts)
    once = (
        len(attempts) == total and set(per_subscriber.values()) == {m} and len(per_subscriber) == n
    )
    return total / (max(times) - min(times)), once


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--events", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    schema = unique_name("sunbid_bench")
    database = (POSTGRES_URL, schema)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-push-workers-"))
    load_or_create_key(data_dir, subscriptions_exist=False)
    sink = await PushSink.start()
    queue = PushQueue(data_dir / "push.db", database_url=POSTGRES_URL, database_schema=schema)
    await queue.open()
    try:
        await populate(queue, sink, args.subscribers)
        await publish(database, args.events)
        env = {
            **os.environ,
            "SUNBID_DATA_DIR": str(data_dir),
            "SUNBID_DATABASE_URL": POSTGRES_URL,
            "SUNBID_DATABASE_SCHEMA": schema,
            "SUNBID_PUSH_ALLOWED_HOSTS": sink.origin,
            "SUNBID_VAPID_SUBJECT": PUSH_SUBJECT,
        }
        total = args.subscribers * args.events
        print(f"{args.subscribers} subscribers x {args.events} events = {total} deliveries")
        for repeat in range(args.repeats):
            for k in (1, 2):
                started = time.perf_counter()
                rate, once = await run_workers(k, queue, sink, env, args.subscribers, args.events)
                print(
                    f"run {repeat + 1}: {k} worker(s): {rate:8.0f} deliveries/s"
                    f"  exactly once: {once}  ({time.perf_counter() - started:.1f} s with start-up)"
                )
    finally:
        await queue.close()
        await sink.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        with contextlib.suppress(Exception):
            drop_schema(POSTGRES_URL, schema)


if __name__ == "__main__":
    asyncio.run(main())
