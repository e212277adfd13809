"""Latency: publish-to-receive time at a sustained rate, with zero loss.

S subscribers follow one topic; R events/s are published on a fixed schedule
for D seconds (a small pool of publisher connections so a slow answer never
delays the schedule). Each event carries `data.t` = time.time_ns() taken just
before its publish request is written; each subscriber computes now - t when
the frame is decoded (same machine, same clock). The figure therefore
includes the publish request, the server's work, the kernel and the load
generator's own queueing while it decodes the burst of S frames.

    .venv/bin/python bench/latency.py [--subscribers 2000] [--rate 10] [--duration 30]
"""

from __future__ import annotations

import argparse
import sys
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
    percentile,
    pin_self,
    print_machine,
    publish_at_rate,
    raise_nofile,
    run,
    save_results,
    start_server,
    wait_complete,
    wait_quiet,
)


async def bench(kind: str, n: int, rate: float, duration: float) -> dict[str, Any]:
    server = await start_server(kind)
    subs: list[WSConn] = []
    try:
        tracker = Tracker(n, latency=True)
        subs = await open_subscribers(server, n, tracker.on_event)
        warm = await Publisher.open(server)
        await drive(warm, tracker, 3, 1, 30)
        warm.close()
        tracker.reset(subs)
        await wait_quiet()
        window = CpuWindow(server)
        sent, answered, bad = await publish_at_rate(server, rate, duration)
        complete = await wait_complete(tracker, sent, 30.0)
        cpu = window.stop()

        lat = [x / 1e6 for x in tracker.latencies or []]
        got = sum(s.count for s in subs)
        return {
            "server": kind,
            "subscribers": n,
            "rate": rate,
            "duration_s": duration,
            "events": sent,
            "complete": complete and got == n * sent and not bad,
            "delivered": got,
            "lost": n * sent - got,
            "out_of_order": sum(s.errors for s in subs),
            "closed": sum(1 for s in subs if s.closed),
            "publish_errors": bad[:10],
            "p50_ms": percentile(lat, 50),
            "p90_ms": percentile(lat, 90),
            "p99_ms": percentile(lat, 99),
            "p999_ms": percentile(lat, 99.9),
            "max_ms": max(lat) if lat else float("nan"),
            "publish_p50_ms": percentile(answered, 50) * 1e3,
            "publish_p99_ms": percentile(answered, 99) * 1e3,
            **cpu,
        }
    finally:
        close_all(subs)
        server.stop()


def report(results: list[dict[str, Any]]) -> None:
    head = ["server", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "lost", "out of order"]
    head += ["publish p50/p99 ms", "server util", "client util", "other util"]
    rows = [head]
    for r in results:
        rows.append(
            [
                LABELS[r["server"]],
                *(f"{r[k]:.1f}" for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")),
                str(r["lost"]),
                str(r["out_of_order"]),
                f"{r['publish_p50_ms']:.1f} / {r['publish_p99_ms']:.1f}"
                if r["server"] != "websockets"
                else "- (no answer)",
                f"{r['server_util']:.0%}",
                f"{r['client_util']:.0%}",
                f"{r['other_util']:.0%}",
            ]
        )
    print(fmt_table(rows))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=10.0, help="events per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds, for Sunbid")
    parser.add_argument("--baseline-duration", type=float, default=15.0)
    parser.add_argument("--servers", default="", help=f"comma list of {', '.join(SERVERS)}")
    args = parser.parse_args()
    pin_self()
    raise_nofile()
    print_machine()
    print(f"latency: {args.subscribers} subscribers, {args.rate:g} events/s\n")
    results = []
    for kind in parse_servers(args.servers, SERVERS):
        duration = args.duration if kind == "sunbid" else args.baseline_duration
        print(f"- {LABELS[kind]}, {duration:g} s ...", flush=True)
        r = await bench(kind, args.subscribers, args.rate, duration)
        print(
            f"  {r['delivered']:,} delivered, lost {r['lost']}, closed {r['closed']}, "
            f"publish errors {r['publish_errors']}",
            flush=True,
        )
        results.append(r)
    print()
    report(results)
    save_results("latency", results)
    return 0 if all(r["complete"] and not r["out_of_order"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(run(main()))
