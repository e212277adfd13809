"""Fan-out cost: server CPU time per delivered message.

N subscribers follow one topic and ~300-byte events are published in two
phases, each measured on its own:

- steady: R events/s for D seconds, on a fixed schedule (a realistic load:
  the server idles between events);
- saturated: E events with at most W in flight (published but not yet
  received by every subscriber), so the server runs flat out without an
  unbounded backlog; this also gives the fan-out throughput.

Server CPU (utime+stime of the server process, all threads, pinned to core 0)
is read from /proc between the first publish and the moment every subscriber
has every event; the load generator (this process) runs on core 1 and its own
CPU is reported too. Every subscriber must receive every event, in order.

The cost of one publication is also measured alone (no subscribers), so the
figure is given both with the publisher included and with it taken out.

    .venv/bin/python bench/fanout_cpu.py [--subscribers 1000] [--rate 10 --duration 15]
        [--events 200 --window 4] [--servers sunbid,websockets,socketio] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from common import (
    LABELS,
    SERVERS,
    CpuWindow,
    Publisher,
    Server,
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
    profile_summary,
    publish_at_rate,
    raise_nofile,
    run,
    save_results,
    start_profiler,
    start_server,
    wait_complete,
    wait_quiet,
)


async def publish_cost(server: Server, events: int) -> float:
    """Server CPU seconds per publication with nobody subscribed."""
    pub = await Publisher.open(server)
    for _ in range(5):
        await pub.publish()
    await asyncio.sleep(0.5)
    cpu0 = server.cpu()
    for _ in range(events):
        status, _ = await pub.publish()
        if status not in (0, 200, 201):
            raise RuntimeError(f"publish answered {status}")
    await asyncio.sleep(0.5)  # bare websockets does not answer: let it finish
    cost = (server.cpu() - cpu0) / events
    pub.close()
    return cost


def answer_times(answers: list[float], bad: list[int]) -> dict[str, Any]:
    return {
        "publish_p50_ms": percentile(answers, 50) * 1e3,
        "publish_p99_ms": percentile(answers, 99) * 1e3,
        "publish_max_ms": max(answers, default=0) * 1e3,
        "publish_errors": bad[:10],
    }


async def measure(
    server: Server, subs: list[WSConn], tracker: Tracker, phase: str, run_phase: Any
) -> dict[str, Any]:
    tracker.reset(subs)
    await wait_quiet()
    window = CpuWindow(server)
    events, complete, extra = await run_phase()
    cpu = window.stop()
    wall = cpu["wall_s"]
    got = sum(s.count for s in subs)
    deliveries = len(subs) * events
    return {
        "server": server.kind,
        "phase": phase,
        "subscribers": len(subs),
        "events": events,
        "frame_bytes": max(s.size for s in subs),
        "complete": complete and got == deliveries,
        "delivered": got,
        "expected": deliveries,
        "lost": deliveries - got,
        "out_of_order": sum(s.errors for s in subs),
        "closed": sum(1 for s in subs if s.closed),
        **cpu,
        "deliveries_per_s": got / wall,
        "us_per_delivery": cpu["server_cpu_s"] / max(got, 1) * 1e6,
        "client_us_per_delivery": cpu["client_cpu_s"] / max(got, 1) * 1e6,
        **extra,
    }


async def bench(kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    server = await start_server(kind)
    subs: list[WSConn] = []
    try:
        # Enough publishes for the 10 ms CPU tick to resolve the cheap ones.
        pub_cost = await publish_cost(server, 300 if kind == "sunbid" else 3000)
        tracker = Tracker(args.subscribers)
        subs = await open_subscribers(server, args.subscribers, tracker.on_event)
        pub = await Publisher.open(server)
        await drive(pub, tracker, 5, 1, 30)  # warm up: lazy imports, caches

        async def steady() -> tuple[int, bool, dict[str, Any]]:
            spy = start_profiler(server, args.duration) if args.profile else None
            sent, answers, bad = await publish_at_rate(server, args.rate, args.duration)
            complete = not bad and await wait_complete(tracker, sent, args.timeout)
            if spy is not None:
                spy.wait()
            return sent, complete, answer_times(answers, bad)

        async def saturated() -> tuple[int, bool, dict[str, Any]]:
            done = await drive(pub, tracker, args.events, args.window, args.timeout)
            return args.events, done, {}

        results = [
            await measure(server, subs, tracker, f"steady {args.rate:g} ev/s", steady),
            await measure(server, subs, tracker, f"saturated, {args.window} in flight", saturated),
        ]
        pub.close()
        for r in results:
            r["publish_us"] = pub_cost * 1e6
            r["us_per_delivery_excl_publish"] = (
                (r["server_cpu_s"] - pub_cost * r["events"]) / max(r["delivered"], 1) * 1e6
            )
        return results
    finally:
        close_all(subs)
        server.stop()


def report(results: list[dict[str, Any]]) -> None:
    rows = [
        [
            "server",
            "phase",
            "µs CPU/delivery",
            "excl. publish",
            "publish µs",
            "deliveries/s",
            "server util",
            "client util",
            "other util",
            "frame B",
            "lost",
            "out of order",
        ]
    ]
    for r in results:
        rows.append(
            [
                LABELS[r["server"]],
                r["phase"],
                f"{r['us_per_delivery']:.1f}",
                f"{r['us_per_delivery_excl_publish']:.1f}",
                f"{r['publish_us']:.0f}",
                f"{r['deliveries_per_s']:,.0f}",
                f"{r['server_util']:.0%}",
                f"{r['client_util']:.0%}",
                f"{r['other_util']:.0%}",
                str(r["frame_bytes"]),
                str(r["lost"]),
                str(r["out_of_order"]),
            ]
        )
    print(fmt_table(rows))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0, help="steady phase: events/s")
    parser.add_argument("--duration", type=float, default=15.0, help="steady phase: seconds")
    parser.add_argument("--events", type=int, default=200, help="saturated phase: events")
    parser.add_argument("--window", type=int, default=4, help="saturated phase: in flight")
    parser.add_argument("--timeout", type=float, default=60.0, help="per phase")
    parser.add_argument("--servers", default="", help=f"comma list of {', '.join(SERVERS)}")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy each server during the steady phase"
    )
    args = parser.parse_args()
    pin_self()
    raise_nofile()
    print_machine()
    print(
        f"fan-out: {args.subscribers} subscribers; steady {args.rate:g} events/s for "
        f"{args.duration:g} s, then {args.events} events with at most {args.window} in flight\n"
    )
    results = []
    for kind in parse_servers(args.servers, SERVERS):
        print(f"- {LABELS[kind]} ...", flush=True)
        for r in await bench(kind, args):
            print(
                f"  {r['phase']}: {r['delivered']:,}/{r['expected']:,} delivered in "
                f"{r['wall_s']:.1f}s, server {r['server_cpu_s']:.2f}s CPU, client "
                f"{r['client_cpu_s']:.2f}s CPU ({r['client_us_per_delivery']:.1f} µs/delivery), "
                f"closed {r['closed']}"
                + (
                    f", publish answered p50 {r['publish_p50_ms']:.1f} ms, "
                    f"max {r['publish_max_ms']:.1f} ms"
                    if "publish_p50_ms" in r and r["server"] != "websockets"
                    else ""
                ),
                flush=True,
            )
            results.append(r)
    print()
    report(results)
    if args.profile:
        for kind in dict.fromkeys(r["server"] for r in results):
            print()
            print(profile_summary(kind))
    save_results("fanout_cpu", results)
    return 0 if all(r["complete"] and not r["out_of_order"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(run(main()))
