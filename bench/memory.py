"""Idle memory: server RSS growth per idle subscriber.

The server is warmed up (a few subscribers receive a few events, then leave),
its VmRSS is read from /proc/<pid>/status, S subscribers connect to one topic
and stay idle; after a settle period VmRSS is read again. The difference over
S is the memory one idle subscriber costs. One event is then published to
check that every subscriber is really live.

    .venv/bin/python bench/memory.py [--subscribers 5000] [--settle 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from common import (
    LABELS,
    SERVERS,
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
)


async def bench(kind: str, n: int, settle: float) -> dict[str, Any]:
    server = await start_server(kind)
    subs: list[WSConn] = []
    try:
        warm = Tracker(10)
        few = await open_subscribers(server, 10, warm.on_event)
        pub = await Publisher.open(server)
        await drive(pub, warm, 3, 1, 30)
        close_all(few)
        await asyncio.sleep(settle)
        before = server.rss_kib()

        tracker = Tracker(n)
        subs = await open_subscribers(server, n, tracker.on_event)
        await asyncio.sleep(settle)
        after = server.rss_kib()

        live = await drive(pub, tracker, 1, 1, 60)
        pub.close()
        return {
            "server": kind,
            "subscribers": n,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "kib_per_connection": (after - before) / n,
            "all_live": live and all(s.count == 1 for s in subs),
        }
    finally:
        close_all(subs)
        server.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before reading RSS")
    parser.add_argument("--servers", default="", help=f"comma list of {', '.join(SERVERS)}")
    args = parser.parse_args()
    pin_self()
    raise_nofile()
    print_machine()
    print(f"idle memory: {args.subscribers} idle subscribers, {args.settle:g} s settle\n")
    results = []
    for kind in parse_servers(args.servers, SERVERS):
        print(f"- {LABELS[kind]} ...", flush=True)
        results.append(await bench(kind, args.subscribers, args.settle))
    rows = [["server", "RSS before MiB", "RSS after MiB", "KiB/connection", "all live"]]
    for r in results:
        rows.append(
            [
                LABELS[r["server"]],
                f"{r['rss_before_kib'] / 1024:.1f}",
                f"{r['rss_after_kib'] / 1024:.1f}",
                f"{r['kib_per_connection']:.1f}",
                "yes" if r["all_live"] else "NO",
            ]
        )
    print()
    print(fmt_table(rows))
    save_results("memory", results)
    return 0 if all(r["all_live"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(run(main()))
