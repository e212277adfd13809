"""Resume: how long a client that was away takes to catch up on K events.

A subscriber sees one event (seq L) and leaves; K events are published
(16 concurrent publishers) while it is away; then it connects again with
`/ws?topics=project:BENCH-1&since=L` and the time is taken from the start of
the connection until it holds all K events, each exactly once, in seq order
with no gap. One more event must then arrive live (replay hands over to
live without a seam). Repeated a few times; the same catch-up is also timed
over SSE (`/api/stream?since=L`) and over HTTP paging
(`/api/events?since=…&limit=1000`).

Sunbid only: the two baselines keep no log, so they cannot resume at all.

    .venv/bin/python bench/resume.py [--events 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

import orjson
from common import (
    HOST,
    TOPIC,
    CpuWindow,
    HttpConn,
    Publisher,
    Server,
    Tracker,
    WSConn,
    close_all,
    drive,
    fmt_table,
    open_subscribers,
    pin_self,
    print_machine,
    publish_many,
    raise_nofile,
    run,
    save_results,
    start_server,
    sunbid_available,
)


class CatchUp:
    """Checks a resumed stream: seq L+1, L+2, … each once; notes when K arrived."""

    def __init__(self, since: int, target: int) -> None:
        self.expected = since + 1
        self.target = target
        self.count = 0
        self.errors = 0
        self.done_at = 0.0
        self.done = asyncio.Event()
        self.live = asyncio.Event()

    def on_event(self, conn: WSConn, ev: dict[str, Any]) -> None:
        self.seen(ev["seq"])

    def seen(self, seq: int) -> None:
        if seq != self.expected:
            self.errors += 1
        self.expected = seq + 1
        self.count += 1
        if self.count == self.target:
            self.done_at = time.perf_counter()
            self.done.set()
        elif self.count > self.target:
            self.live.set()


async def ws_resume(server: Server, since: int, k: int, timeout: float) -> dict[str, Any]:
    catch = CatchUp(since, k)
    window = CpuWindow(server)
    subs = await open_subscribers(server, 1, catch.on_event, since=since)
    try:
        await asyncio.wait_for(catch.done.wait(), timeout)
        seconds = catch.done_at - window.t0
        cpu = window.stop()
        pub = await Publisher.open(server)
        await pub.publish()
        pub.close()
        await asyncio.wait_for(catch.live.wait(), 10)
    except TimeoutError:
        seconds, cpu = float("nan"), window.stop()
    finally:
        close_all(subs)
    return {
        "seconds": seconds,
        "events_per_s": k / seconds,
        "received": catch.count,
        "gaps_or_repeats": catch.errors,
        "closed_early": subs[0].closed and subs[0].close_code is not None,
        "close_code": subs[0].close_code,
        "live_after": catch.live.is_set(),
        "server_cpu_s": cpu["server_cpu_s"],
        "ok": catch.errors == 0 and catch.count == k + 1,
    }


async def sse_resume(server: Server, since: int, k: int, timeout: float) -> dict[str, Any]:
    catch = CatchUp(since, k)
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(HOST, server.port)
    writer.write(
        f"GET /api/stream?topics={TOPIC}&since={since} HTTP/1.1\r\nHost: {HOST}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )

    async def read() -> None:
        while catch.count < k:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"id:"):
                catch.seen(int(line[3:]))

    try:
        await asyncio.wait_for(read(), timeout)
        seconds = catch.done_at - t0 if catch.count >= k else float("nan")
    except TimeoutError:
        seconds = float("nan")
    finally:
        writer.close()
    return {"seconds": seconds, "received": catch.count, "gaps_or_repeats": catch.errors}


async def http_resume(server: Server, since: int, k: int) -> dict[str, Any]:
    catch = CatchUp(since, k)
    http = await HttpConn.open(server.port)
    t0 = time.perf_counter()
    last = since
    while catch.count < k:
        status, body = await http.get(f"/api/events?since={last}&topics={TOPIC}&limit=1000")
        items = orjson.loads(body)["items"] if status == 200 else []
        if not items:
            break
        for ev in items:
            catch.seen(ev["seq"])
        last = items[-1]["seq"]
    http.close()
    seconds = catch.done_at - t0 if catch.count >= k else float("nan")
    return {"seconds": seconds, "received": catch.count, "gaps_or_repeats": catch.errors}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    pin_self()
    raise_nofile()
    print_machine()
    if not sunbid_available():
        print("sunbid is not installed in this venv", file=sys.stderr)
        return 2
    k = args.events
    server = await start_server("sunbid")
    try:
        tracker = Tracker(1)
        first = await open_subscribers(server, 1, tracker.on_event)
        pub = await Publisher.open(server)
        await drive(pub, tracker, 1, 1, 10)
        pub.close()
        since = first[0].last
        close_all(first)

        t0 = time.perf_counter()
        bad = await publish_many(server, k)
        publish_s = time.perf_counter() - t0
        print(f"resume: {k} events published while away in {publish_s:.1f} s (bad: {bad[:5]})")
        print(f"        the client had seen seq {since}\n")

        runs = []
        for i in range(args.repeat):
            # Each run adds one live event: start one later so K remain to replay.
            r = await ws_resume(server, since + i, k, args.timeout)
            print(
                f"  WebSocket #{i + 1}: {r['seconds']:.3f} s, {r['received'] - 1} replayed + "
                f"{int(r['live_after'])} live, gaps/repeats {r['gaps_or_repeats']}, "
                f"close code {r['close_code']}, server {r['server_cpu_s']:.2f} s CPU",
                flush=True,
            )
            runs.append(r)
        since += args.repeat
        sse = await sse_resume(server, since, k, args.timeout)
        print(f"  SSE: {sse['seconds']:.3f} s, gaps/repeats {sse['gaps_or_repeats']}")
        http = await http_resume(server, since, k)
        print(f"  HTTP paging: {http['seconds']:.3f} s, gaps/repeats {http['gaps_or_repeats']}")
    finally:
        server.stop()

    median = statistics.median(r["seconds"] for r in runs)
    rows = [["how", "events", "seconds", "events/s", "in order, no gap"]]
    rows.append(["WebSocket since= (median)", f"{k:,}", f"{median:.3f}", f"{k / median:,.0f}"])
    rows[-1].append("yes" if all(r["ok"] for r in runs) else "NO")
    for name, r in (("SSE since=", sse), ("HTTP /api/events pages", http)):
        ok = r["gaps_or_repeats"] == 0 and r["received"] == k
        rows.append([name, f"{k:,}", f"{r['seconds']:.3f}", f"{k / r['seconds']:,.0f}"])
        rows[-1].append("yes" if ok else "NO")
    print()
    print(fmt_table(rows))
    save_results(
        "resume",
        {
            "events": k,
            "published_in_s": publish_s,
            "ws": runs,
            "ws_median_s": median,
            "sse": sse,
            "http": http,
        },
    )
    ok = all(r["ok"] for r in runs) and sse["received"] == k and http["received"] == k
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run(main()))
