"""Signed webhooks: deliveries per second, and what they cost publishers.

A receiver (bench/webhook_sink.py: 204 at once, counting) runs in its own
process pinned to core 1; the server (`sunbid serve` and its worker process,
which sends the webhooks) is pinned to core 0; this process publishes from
core 1. Every delivery is signed (HMAC-SHA256, Standard Webhooks) by the
server as always.

1. Throughput. N events are published first; then W webhooks are created
   and each is replayed from the seq before its share, so the sender has
   N_total deliveries to make at once: deliveries/s from the replays to the
   last arrival. W = 1 (one webhook: one request at a time, in order) and
   W = 100 (100 receivers side by side).
2. Publishing while 100 webhooks receive a burst: the publisher's 201
   latency (p50/p99) at a steady rate with no webhooks, then again with 100
   webhooks that are each replaying 200 events (20,000 deliveries) while
   also getting every new event.
3. The simplest alternative: a plain aiohttp loop in this process that signs
   and POSTs the same deliveries itself (sequential for one webhook, 100
   tasks for 100): a ceiling for one Python process, and what sending on the
   publish path would add to each 201 (one POST per webhook, awaited).

    .venv/bin/python bench/webhooks.py [--events 3000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import aiohttp
import orjson
from common import (
    BENCH,
    CLIENT_CORE,
    CpuWindow,
    HttpConn,
    Publisher,
    Server,
    fmt_table,
    free_port,
    percentile,
    pin_self,
    print_machine,
    start_server,
    wait_quiet,
)

sys.path.insert(0, str(BENCH.parent))
from push.webhooks.signing import event_body, new_secret, secret_key, signed_headers


class Sink:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "webhook_sink.py"), "--port", str(self.port)],
            preexec_fn=lambda: os.sched_setaffinity(0, {CLIENT_CORE}),
        )

    async def total(self, session: aiohttp.ClientSession) -> int:
        async with session.get(f"http://127.0.0.1:{self.port}/count") as response:
            return int((await response.json())["total"])

    async def wait_for(self, session: aiohttp.ClientSession, target: int, timeout: float) -> float:
        """Seconds until the sink has counted `target` (monotonic clock)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.total(session) >= target:
                return time.monotonic()
            await asyncio.sleep(0.01)
        raise RuntimeError(f"the sink did not get {target} deliveries in {timeout} s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()


async def api(server: Server, method: str, path: str, body: Any = None) -> Any:
    http = await HttpConn.open(server.port)
    try:
        if method == "POST":
            status, answer = await http.post_json(path, body, server.token)
        else:
            # A 204 has no length: the connection's end marks the end of the answer.
            headers = {"Authorization": f"Bearer {server.token}", "Connection": "close"}
            status, answer = await http.request(method, path, headers=headers)
    finally:
        http.close()
    if status not in (200, 201, 204):
        raise RuntimeError(f"{method} {path} -> {status}: {answer[:300]!r}")
    return orjson.loads(answer) if answer else None


async def publish_many(server: Server, count: int) -> int:
    publishers = [await Publisher.open(server) for _ in range(8)]
    done = 0

    async def one(p: Publisher) -> None:
        nonlocal done
        while done < count:
            done += 1
            status, _ = await p.publish()
            assert status == 201, status

    await asyncio.gather(*(one(p) for p in publishers))
    last = max(p.last.get("seq", 0) for p in publishers)
    for p in publishers:
        p.close()
    return int(last)


async def make_webhooks(server: Server, sink: Sink, count: int, tag: str) -> list[str]:
    ids = []
    for i in range(count):
        created = await api(
            server,
            "POST",
            "/api/webhooks",
            {"url": f"http://127.0.0.1:{sink.port}/r/{tag}{i}", "topics": ["project:BENCH-1"]},
        )
        ids.append(created["id"])
    return ids


async def throughput(
    server: Server, sink: Sink, session: aiohttp.ClientSession, hooks: int, per_hook: int
) -> dict[str, float]:
    head = await publish_many(server, per_hook)  # the newest `per_hook` events of the project
    ids = await make_webhooks(server, sink, hooks, f"t{time.monotonic_ns()}-")
    before = await sink.total(session)
    await wait_quiet()
    window = CpuWindow(server)
    began = time.monotonic()
    for hook_id in ids:
        await api(server, "POST", f"/api/webhooks/{hook_id}/replay", {"since": head - per_hook})
    ended = await sink.wait_for(session, before + hooks * per_hook, 120)
    cpu = window.stop()
    for hook_id in ids:
        await api(server, "DELETE", f"/api/webhooks/{hook_id}")
    return {"rate": hooks * per_hook / (ended - began), **cpu}


async def publish_latencies(server: Server, rate: float, seconds: float) -> list[float]:
    publisher = await Publisher.open(server)
    latencies = []
    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        wait = start + n / rate - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        t0 = time.perf_counter()
        status, _ = await publisher.publish()
        latencies.append((time.perf_counter() - t0) * 1000)
        assert status == 201
    publisher.close()
    return latencies


async def during_burst(
    server: Server, sink: Sink, session: aiohttp.ClientSession, burst: bool
) -> dict[str, float]:
    ids: list[str] = []
    if burst:
        head = await publish_many(server, 200)
        ids = await make_webhooks(server, sink, 100, f"b{time.monotonic_ns()}-")
    await wait_quiet()
    window = CpuWindow(server)
    for hook_id in ids:
        await api(server, "POST", f"/api/webhooks/{hook_id}/replay", {"since": head - 200})
    latencies = await publish_latencies(server, 50, 8)
    cpu = window.stop()
    for hook_id in ids:
        await api(server, "DELETE", f"/api/webhooks/{hook_id}")
    return {
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        **cpu,
    }


async def plain_loop(
    sink: Sink, session: aiohttp.ClientSession, hooks: int, per_hook: int
) -> float:
    """The simplest alternative: sign and POST each delivery from one Python loop."""
    event = orjson.dumps({"seq": 1, "project": "BENCH-1", "body": "x" * 300})
    key = secret_key(new_secret())
    body = event_body(event)

    async def one_hook(i: int) -> None:
        for seq in range(per_hook):
            headers = signed_headers(key, f"msg_{i}_{seq}", int(time.time()), body)
            async with session.post(
                f"http://127.0.0.1:{sink.port}/r/plain{i}", data=body, headers=headers
            ) as response:
                await response.read()

    began = time.monotonic()
    await asyncio.gather(*(one_hook(i) for i in range(hooks)))
    return hooks * per_hook / (time.monotonic() - began)


async def main(args: argparse.Namespace) -> None:
    pin_self()
    print_machine()
    sink = Sink()
    sink.start()
    rows: dict[str, list[dict[str, float]]] = {}
    plain: dict[str, list[float]] = {"1": [], "100": []}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.sleep(0.5)
        for repeat in range(args.repeats):
            server = await start_server(
                "sunbid",
                {
                    "SUNBID_WEBHOOK_ALLOWED_HOSTS": f"http://127.0.0.1:{sink.port}",
                    # This checkout's code, whichever one the venv's `sunbid` names.
                    "PYTHONPATH": str(BENCH.parent),
                },
            )
            try:
                for name, hooks, per_hook in (
                    ("1 webhook", 1, args.events),
                    ("100 webhooks", 100, args.events // 10),
                ):
                    row = await throughput(server, sink, session, hooks, per_hook)
                    rows.setdefault(name, []).append(row)
                    print(
                        f"  [{repeat}] {name}: {row['rate']:.0f} deliveries/s, "
                        f"server {row['server_util']:.0%}, other util {row['other_util']:.0%}"
                    )
                for name, burst in (("201, no webhooks", False), ("201, 100 webhooks", True)):
                    row = await during_burst(server, sink, session, burst)
                    rows.setdefault(name, []).append(row)
                    print(
                        f"  [{repeat}] {name}: p50 {row['p50']:.2f} ms p99 {row['p99']:.2f} ms,"
                        f" other util {row['other_util']:.0%}"
                    )
            finally:
                server.stop()
            plain["1"].append(await plain_loop(sink, session, 1, args.events))
            plain["100"].append(await plain_loop(sink, session, 100, args.events // 10))
            print(
                f"  [{repeat}] plain aiohttp loop: {plain['1'][-1]:.0f} (1) "
                f"{plain['100'][-1]:.0f} (100) deliveries/s"
            )
    sink.stop()
    table = [["measure", "median", "runs", "other util (median)"]]
    for name in ("1 webhook", "100 webhooks"):
        rates = [r["rate"] for r in rows[name]]
        other = statistics.median(r["other_util"] for r in rows[name])
        table.append(
            [
                f"Sunbid, {name} (deliveries/s)",
                f"{statistics.median(rates):.0f}",
                " ".join(f"{r:.0f}" for r in rates),
                f"{other:.0%}",
            ]
        )
    for name in ("1", "100"):
        table.append(
            [
                f"plain aiohttp loop, {name} (deliveries/s)",
                f"{statistics.median(plain[name]):.0f}",
                " ".join(f"{r:.0f}" for r in plain[name]),
                "-",
            ]
        )
    for name in ("201, no webhooks", "201, 100 webhooks"):
        for p in ("p50", "p99"):
            values = [r[p] for r in rows[name]]
            other = statistics.median(r["other_util"] for r in rows[name])
            table.append(
                [
                    f"{name} {p} (ms)",
                    f"{statistics.median(values):.2f}",
                    " ".join(f"{v:.2f}" for v in values),
                    f"{other:.0%}",
                ]
            )
    print(fmt_table(table))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
