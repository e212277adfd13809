"""Reads beside reads: does a slow kind of read hold up the others?

A log of N events (one in 100 a `penalty`) on project BENCH-1, and a small
project READ-1 (5 events). Timed:

1. `GET /api/events?stages=penalty` alone (one client, sequential);
2. `GET /api/projects/READ-1` alone;
3. `GET /api/projects/READ-1` again while C clients loop on the stage filter.

Each figure is the p50 / p99 of R requests over one keep-alive connection.
The server is pinned to core 0, the clients to core 1.

    .venv/bin/python bench/reads.py [--events 10000] [--clients 8] [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from common import (
    HttpConn,
    Publisher,
    Server,
    fmt_table,
    percentile,
    pin_self,
    print_machine,
    start_server,
    sunbid_post,
)

SMALL = "READ-1"
FILTER = "/api/events?stages=penalty"


async def fill(server: Server, events: int, publishers: int = 16) -> None:
    pubs = [await Publisher.open(server) for _ in range(publishers)]
    left = events

    async def loop(pub: Publisher) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            post = sunbid_post()
            if left % 100 == 0:
                post["stage"] = "penalty"
            assert pub.http is not None
            status, body = await pub.http.post_json(
                "/api/projects/BENCH-1/events", post, server.token
            )
            if status != 201:
                raise RuntimeError(f"publish: {status} {body[:200]!r}")

    await asyncio.gather(*(loop(p) for p in pubs))
    small = pubs[0]
    assert small.http is not None
    for _ in range(5):
        status, _ = await small.http.post_json(
            f"/api/projects/{SMALL}/events", sunbid_post(), server.token
        )
        assert status == 201
    for p in pubs:
        p.close()


async def timed(port: int, path: str, requests: int) -> list[float]:
    http = await HttpConn.open(port)
    times = []
    try:
        for _ in range(requests):
            start = time.perf_counter()
            status, _ = await http.get(path)
            times.append((time.perf_counter() - start) * 1000)
            if status != 200:
                raise RuntimeError(f"GET {path}: {status}")
    finally:
        http.close()
    return times


async def loop_filter(port: int, stop: asyncio.Event, counter: list[int]) -> None:
    http = await HttpConn.open(port)
    try:
        while not stop.is_set():
            status, _ = await http.get(FILTER)
            assert status == 200
            counter[0] += 1
    finally:
        http.close()


def row(label: str, times: list[float]) -> list[str]:
    return [label, f"{percentile(times, 50):.2f}", f"{percentile(times, 99):.2f}"]


async def main(args: argparse.Namespace) -> None:
    pin_self()
    print_machine()
    print(f"load average before: {os.getloadavg()}")
    server = await start_server("sunbid", projects=("BENCH-1", SMALL))
    try:
        started = time.perf_counter()
        await fill(server, args.events)
        print(f"filled {args.events} events in {time.perf_counter() - started:.1f} s")
        project = f"/api/projects/{SMALL}"
        await timed(server.port, project, 50)  # warm up
        await timed(server.port, FILTER, 20)
        alone_filter = await timed(server.port, FILTER, args.requests)
        alone_project = await timed(server.port, project, args.requests)
        stop, counter = asyncio.Event(), [0]
        loops = [
            asyncio.create_task(loop_filter(server.port, stop, counter))
            for _ in range(args.clients)
        ]
        await asyncio.sleep(0.5)
        counted, started = counter[0], time.perf_counter()
        busy_project = await timed(server.port, project, args.requests)
        rate = (counter[0] - counted) / (time.perf_counter() - started)
        stop.set()
        await asyncio.gather(*loops)
        print(
            fmt_table(
                [
                    ["request (ms)", "p50", "p99"],
                    row("stages=penalty, alone", alone_filter),
                    row(f"{project}, alone", alone_project),
                    row(f"{project}, {args.clients} clients on stages=penalty", busy_project),
                ]
            )
        )
        print(f"stage-filter requests/s served meanwhile: {rate:.0f}")
        print(f"load average after: {os.getloadavg()}")
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=300)
    asyncio.run(main(parser.parse_args()))
