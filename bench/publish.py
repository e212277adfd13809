"""Publishing: events/s through the HTTP API, and how long a publish takes.

P publishers (one keep-alive connection each, all in this process) post
events back to back for D seconds; one WebSocket subscriber follows the
topic. Counted: 201 answers per second, answer-time percentiles, and that
the subscriber saw every event. For Sunbid a 201 means durable, which is
checked: after the run the server is killed with SIGKILL, started again on
the same data directory, and `/healthz` must report every event that got a
201; `sunbid verify` must then accept the hash chain.

python-socketio is a reference only: its `POST /publish` stores nothing,
it only emits to the room. Bare websockets has no request/answer publish.

    .venv/bin/python bench/publish.py [--publishers 16] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from typing import Any

from common import (
    BIN,
    LABELS,
    ROOT,
    SERVERS,
    CpuWindow,
    Publisher,
    Server,
    Tracker,
    WSConn,
    close_all,
    fmt_table,
    healthz_head,
    open_subscribers,
    parse_servers,
    percentile,
    pin_self,
    print_machine,
    raise_nofile,
    run,
    save_results,
    start_server,
    wait_complete,
    wait_quiet,
)


async def publish_for(server: Server, publishers: int, duration: float) -> dict[str, Any]:
    pubs = [await Publisher.open(server) for _ in range(publishers)]
    times: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.monotonic() + duration

    async def loop(pub: Publisher) -> None:
        while time.monotonic() < stop:
            t = time.perf_counter()
            status, _ = await pub.publish()
            times.append(time.perf_counter() - t)
            statuses[status] = statuses.get(status, 0) + 1

    window = CpuWindow(server)
    await asyncio.gather(*(loop(p) for p in pubs))
    cpu = window.stop()
    for p in pubs:
        p.close()
    created = statuses.get(201, 0)
    return {
        "statuses": statuses,
        "created": created,
        "events_per_s": created / cpu["wall_s"],
        "p50_ms": percentile(times, 50) * 1e3,
        "p99_ms": percentile(times, 99) * 1e3,
        "max_ms": max(times, default=0) * 1e3,
        "server_us_per_event": cpu["server_cpu_s"] / max(created, 1) * 1e6,
        **cpu,
    }


async def check_durable(server: Server, head0: int, created: int) -> dict[str, Any]:
    """SIGKILL the server, start it again on the same files, count what survived."""
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    server.start()
    head = await healthz_head(server.port)
    verify = subprocess.run(
        [str(BIN / "sunbid"), "verify"],
        cwd=ROOT,
        env={**os.environ, **server.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return {
        "head_after_restart": head,
        "survived": head - head0,
        "durable": head - head0 == created,
        "verify_rc": verify.returncode,
        "verify_out": (verify.stdout + verify.stderr).strip()[-300:],
    }


async def bench(kind: str, publishers: int, duration: float) -> dict[str, Any]:
    server = await start_server(kind)
    subs: list[WSConn] = []
    try:
        tracker = Tracker(1)
        subs = await open_subscribers(server, 1, tracker.on_event)
        warm = await Publisher.open(server)
        for _ in range(5):
            await warm.publish()
        warm.close()
        await wait_complete(tracker, 5, 10)
        tracker.reset(subs)
        head0 = await healthz_head(server.port) if kind == "sunbid" else 0
        await wait_quiet()

        r = await publish_for(server, publishers, duration)
        streamed = await wait_complete(tracker, r["created"], 30)
        r |= {
            "server": kind,
            "publishers": publishers,
            "duration_s": duration,
            "streamed": subs[0].count,
            "all_streamed": streamed and subs[0].count == r["created"],
            # Only Sunbid numbers events itself: for python-socketio the generator
            # numbers them before sending, and 16 concurrent requests may be
            # handled in another order, so its order says nothing about the server.
            "out_of_order": subs[0].errors if kind == "sunbid" else None,
        }
        close_all(subs)
        subs = []
        if kind == "sunbid":
            r |= await check_durable(server, head0, r["created"])
        return r
    finally:
        close_all(subs)
        server.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publishers", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--servers", default="sunbid,socketio", help=f"comma list of {', '.join(SERVERS)}"
    )
    args = parser.parse_args()
    pin_self()
    raise_nofile()
    print_machine()
    print(f"publishing: {args.publishers} concurrent publishers for {args.duration:g} s\n")
    results = []
    for kind in parse_servers(args.servers, ["sunbid", "socketio"]):
        if kind == "websockets":
            print("- bare websockets has no request/answer publish; skipped")
            continue
        print(f"- {LABELS[kind]} ...", flush=True)
        r = await bench(kind, args.publishers, args.duration)
        print(f"  answers {r['statuses']}, streamed {r['streamed']}", flush=True)
        if "durable" in r:
            print(
                f"  after SIGKILL + restart: {r['survived']} of {r['created']} events present; "
                f"sunbid verify rc={r['verify_rc']}: {r['verify_out']}",
                flush=True,
            )
        results.append(r)
    rows = [["server", "events/s", "p50 ms", "p99 ms", "max ms", "server µs/event"]]
    rows[0] += ["server util", "client util", "other util", "all streamed", "durable"]
    for r in results:
        rows.append(
            [
                LABELS[r["server"]],
                f"{r['events_per_s']:,.0f}",
                f"{r['p50_ms']:.1f}",
                f"{r['p99_ms']:.1f}",
                f"{r['max_ms']:.1f}",
                f"{r['server_us_per_event']:.0f}",
                f"{r['server_util']:.0%}",
                f"{r['client_util']:.0%}",
                f"{r['other_util']:.0%}",
                "yes" if r["all_streamed"] else "NO",
                ("yes" if r["durable"] and r["verify_rc"] == 0 else "NO")
                if "durable" in r
                else "- (stores nothing)",
            ]
        )
    print()
    print(fmt_table(rows))
    save_results("publish", results)
    ok = all(r["all_streamed"] and r.get("durable", True) for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run(main()))
