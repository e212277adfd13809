"""Connections: many concurrent subscribers held by one server process.

C subscribers connect (spread over source addresses 127.0.0.2-9), a few
events are published and every subscriber must get every one; the
connections are held for H seconds, then one more event must reach them all
and none may have been closed.

    .venv/bin/python bench/connections.py [--connections 10000] [--hold 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

from common import (
    LABELS,
    SERVERS,
    CpuWindow,
    Publisher,
    Tracker,
    WSConn,
    close_all,
    drive,
    fmt_table,
    open_subscribers,
    parse_servers,
    pin_self,
    print_machine,
    raise_nofile,
    run,
    save_results,
    start_server,
    wait_quiet,
)


async def bench(kind: str, n: int, events: int, hold: float) -> dict[str, Any]:
    server = await start_server(kind)
    subs: list[WSConn] = []
    try:
        rss0 = server.rss_kib()
        tracker = Tracker(n)
        t0 = time.perf_counter()
        subs = await open_subscribers(server, n, tracker.on_event, timeout=120)
        connect_s = time.perf_counter() - t0
        pub = await Publisher.open(server)
        await wait_quiet()
        window = CpuWindow(server)
        answers: list[float] = []
        first = await drive(pub, tracker, events, 1, 60, answers)
        fanout = window.stop()
        got = sum(s.count for s in subs)
        await asyncio.sleep(hold)
        tracker.reset(subs)
        t1 = time.perf_counter()
        last = await drive(pub, tracker, 1, 1, 60)
        last_s = time.perf_counter() - t1
        got += sum(s.count for s in subs)
        pub.close()
        return {
            "server": kind,
            "connections": n,
            "connect_s": connect_s,
            "connects_per_s": n / connect_s,
            "events": events + 1,
            "delivered": got,
            "lost": n * (events + 1) - got,
            "out_of_order": sum(s.errors for s in subs),
            "closed": sum(1 for s in subs if s.closed),
            "error_frames": sum(s.errors for s in subs),
            "ok": first and last and got == n * (events + 1),
            "ms_per_event_to_all": fanout["wall_s"] / events * 1e3,
            "server_us_per_delivery": fanout["server_cpu_s"] / (n * events) * 1e6,
            "publish_answer_ms": statistics.median(answers) * 1e3,
            "last_event_after_hold_ms": last_s * 1e3,
            "hold_s": hold,
            "rss_mib": server.rss_kib() / 1024,
            "rss_growth_kib_per_conn": (server.rss_kib() - rss0) / n,
            "server_alive": server.alive(),
        }
    finally:
        close_all(subs)
        server.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=3)
    parser.add_argument("--hold", type=float, default=10.0, help="seconds")
    parser.add_argument("--servers", default="", help=f"comma list of {', '.join(SERVERS)}")
    args = parser.parse_args()
    pin_self()
    limit = raise_nofile()
    print_machine()
    print(f"connections: {args.connections} subscribers, held {args.hold:g} s (nofile {limit})\n")
    results = []
    for kind in parse_servers(args.servers, SERVERS):
        print(f"- {LABELS[kind]} ...", flush=True)
        results.append(await bench(kind, args.connections, args.events, args.hold))
    rows = [["server", "connections", "connect s", "all got all", "lost", "closed"]]
    rows[0] += ["ms/event to all", "publish answered ms", "after hold ms", "RSS MiB"]
    for r in results:
        rows.append(
            [
                LABELS[r["server"]],
                f"{r['connections']:,}",
                f"{r['connect_s']:.1f}",
                "yes" if r["ok"] else "NO",
                str(r["lost"]),
                str(r["closed"]),
                f"{r['ms_per_event_to_all']:.0f}",
                f"{r['publish_answer_ms']:.1f}" if r["server"] != "websockets" else "-",
                f"{r['last_event_after_hold_ms']:.0f}",
                f"{r['rss_mib']:.0f}",
            ]
        )
    print()
    print(fmt_table(rows))
    save_results("connections", results)
    return 0 if all(r["ok"] and not r["closed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(run(main()))
