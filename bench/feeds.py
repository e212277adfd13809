"""Feeds and calendars as subscribers poll them: what a new version costs, and an unchanged one.

A log of N events on project BENCH-1 (construction), and P construction projects of
agency YW-GGZY, each with a notice whose bid deadline is 30 days ahead (key dates and a
clarification cut-off in the calendars). Timed, R requests each, p50 / p99 in ms:

- `GET /api/feed.atom?topics=category:construction`: after a new event (read the newest
  50, render), unchanged (the rendering kept), and with If-None-Match (304);
- the simplest alternative a feed tool might pick without it: page through
  `GET /api/events?topics=category:construction&limit=1000` from 0 and keep the last 50;
- `GET /api/projects/{id}/deadlines.ics` after an event of that project, and 304;
- `GET /api/deadlines.ics?agency=YW-GGZY` (P projects): rendered (a host not asked for
  before), after an event (a rendering is kept up to 60 s), and 304.

The server is pinned to core 0, the client to core 1; `other util` is the rest of the
machine. Each figure is the median over `--runs` runs.

    .venv/bin/python bench/feeds.py [--events 20000] [--projects 300] [--requests 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from common import (
    ROOT,
    CpuWindow,
    Server,
    fmt_table,
    percentile,
    pin_self,
    print_machine,
    start_server,
)
from reads import fill

FEED = "/api/feed.atom?topics=category:construction"
EVENTS = "/api/events?topics=category:construction&limit=1000"
AGENCY = "/api/deadlines.ics?agency=YW-GGZY"
BEIJING = timezone(timedelta(hours=8))


async def projects(client: httpx.AsyncClient, count: int) -> list[str]:
    deadline = (datetime.now(BEIJING) + timedelta(days=30)).replace(microsecond=0).isoformat()
    made = []
    for i in range(count):
        project = f"CAL-{i}"
        body = {
            "id": project,
            "title": f"基准日历项目 {i}",
            "category": "construction",
            "agency": "YW-GGZY",
            "must_tender": True,
        }
        answer = await client.post("/api/projects", json=body)
        assert answer.status_code == 201, answer.text
        notice = {"stage": "notice", "title": "招标公告", "data": {"deadline": deadline}}
        answer = await client.post(f"/api/projects/{project}/events", json=notice)
        assert answer.status_code == 201, answer.text
        made.append(project)
    return made


async def after_event(
    staff: httpx.AsyncClient, client: httpx.AsyncClient, project: str, path: str, n: int
) -> list[float]:
    """GET `path` right after each of `n` new events of `project` (the publication untimed)."""
    times = []
    for _ in range(n):
        answer = await staff.post(
            f"/api/projects/{project}/events", json={"stage": "performance", "title": "履约"}
        )
        assert answer.status_code == 201, answer.text
        start = time.perf_counter()
        got = await client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert got.status_code == 200, got.text
    return times


async def repeated(client: httpx.AsyncClient, path: str, n: int, etag: bool) -> list[float]:
    first = await client.get(path)
    headers = {"If-None-Match": first.headers["ETag"]} if etag else {}
    times = []
    for _ in range(n):
        start = time.perf_counter()
        got = await client.get(path, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
        assert got.status_code == (304 if etag else 200), got.status_code
    return times


async def first_renderings(client: httpx.AsyncClient, n: int) -> list[float]:
    """The agency's calendar rendered: each request names another host (the
    server's origin without SUNBID_PUBLIC_URL), so none is kept yet."""
    times = []
    for i in range(n):
        start = time.perf_counter()
        got = await client.get(AGENCY, headers={"Host": f"h{i}-{time.monotonic_ns()}.bench"})
        times.append((time.perf_counter() - start) * 1000)
        assert got.status_code == 200, got.text
    return times


async def paged_newest(client: httpx.AsyncClient, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start, since, kept = time.perf_counter(), 0, []
        while True:
            page = (await client.get(f"{EVENTS}&since={since}")).json()["items"]
            if not page:
                break
            kept = (kept + page)[-50:]
            since = page[-1]["seq"]
        times.append((time.perf_counter() - start) * 1000)
        assert len(kept) == 50
    return times


async def one_run(server: Server, made: list[str], requests: int) -> dict[str, list[float]]:
    base = f"http://127.0.0.1:{server.port}"
    auth = {"Authorization": f"Bearer {server.token}"}
    async with (
        httpx.AsyncClient(base_url=base, timeout=60) as client,
        httpx.AsyncClient(base_url=base, timeout=60, headers=auth) as staff,
    ):
        one = f"/api/projects/{made[0]}/deadlines.ics"
        return {
            "feed, after a new event": await after_event(staff, client, "BENCH-1", FEED, requests),
            "feed, unchanged": await repeated(client, FEED, requests, etag=False),
            "feed, If-None-Match (304)": await repeated(client, FEED, requests, etag=True),
            "baseline: page /api/events, keep last 50": await paged_newest(client, 5),
            "project .ics, after its event": await after_event(
                staff, client, made[0], one, requests
            ),
            "project .ics, 304": await repeated(client, one, requests, etag=True),
            f"agency .ics ({len(made)} projects), rendered": await first_renderings(client, 5),
            "agency .ics, after an event (kept up to 60 s)": await after_event(
                staff, client, made[1], AGENCY, max(5, requests // 10)
            ),
            "agency .ics, 304": await repeated(client, AGENCY, requests, etag=True),
        }


async def main(args: argparse.Namespace) -> None:
    pin_self()
    print_machine()
    print(f"load average before: {os.getloadavg()}")
    # This checkout's server, whichever checkout the venv's `sunbid` was installed from.
    server = await start_server(
        "sunbid",
        {"PYTHONPATH": str(ROOT)},
        projects=("BENCH-1", "READ-1"),  # fill() uses both
    )
    try:
        started = time.perf_counter()
        await fill(server, args.events)
        base = f"http://127.0.0.1:{server.port}"
        auth = {"Authorization": f"Bearer {server.token}"}
        async with httpx.AsyncClient(base_url=base, timeout=60, headers=auth) as staff:
            made = await projects(staff, args.projects)
        print(
            f"filled {args.events} events, {args.projects} projects "
            f"in {time.perf_counter() - started:.1f} s"
        )
        runs: list[dict[str, list[float]]] = []
        for _ in range(args.runs):
            window = CpuWindow(server)
            runs.append(await one_run(server, made, args.requests))
            cpu = window.stop()
            print(
                f"  run {len(runs)}: other util {cpu['other_util']:.0%}, "
                f"server util {cpu['server_util']:.0%}"
            )
        rows = [["request (ms), median of runs", "p50", "p99"]]
        for label in runs[0]:
            p50 = statistics.median(percentile(r[label], 50) for r in runs)
            p99 = statistics.median(percentile(r[label], 99) for r in runs)
            rows.append([label, f"{p50:.2f}", f"{p99:.2f}"])
        print(fmt_table(rows))
        print(f"load average after: {os.getloadavg()}")
    finally:
        server.stop()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--projects", type=int, default=300)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    run_args: Any = parse()
    asyncio.run(main(run_args))
