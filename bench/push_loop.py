"""Event-loop responsiveness: live WebSocket latency while a push fan-out runs.

500 WebSocket subscribers follow `project:LIVE` (bench/wire.py clients, as in
latency.py) and an event is published to LIVE 10 times a second; each
subscriber times publish-request-written to frame-decoded. That is measured
for `--duration` seconds with no push work (idle), then for as long again
while the server sends Web Push notifications to 10,000 subscriptions of
`project:BENCH-PUSH`: one event to BENCH-PUSH is published, the window opens
once its first push reached the push service, and another BENCH-PUSH event
follows every `--push-every` seconds until the window closes, so the
fan-out never runs dry. The push service (tests/push_service.py in `fast`
mode, bench/push_sink.py) is its own process on core 1 at nice 10, so the
load generator's timing goes first on that core.

Idle and during windows alternate `--repeats` times (after each during
window, every push of its events is waited for). Reported: p50/p99/max per
window, p99(during) / p99(idle) per pair and its median (the target is at
most 2), and the pushes the service received within each window.

    .venv/bin/python bench/push_loop.py [--subscribers 500] [--push-subscribers 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    CLIENT_CORE,
    CpuWindow,
    Publisher,
    PushKeys,
    PushSink,
    Server,
    Tracker,
    WSConn,
    close_all,
    drive,
    fmt_table,
    open_subscribers,
    percentile,
    pin_self,
    prepopulate_push,
    print_machine,
    publish_at_rate,
    push_env,
    raise_nofile,
    run,
    save_results,
    spread,
    start_server,
    subscribe_http,
    sunbid_available,
    wait_complete,
    wait_quiet,
)

LIVE = "LIVE"
LIVE_TOPIC = f"project:{LIVE}"
PUSH_PROJECT = "BENCH-PUSH"
PUSH_TOPIC = f"project:{PUSH_PROJECT}"
SINK_NICE = 10


async def window(
    server: Server,
    sink: PushSink,
    subs: list[WSConn],
    tracker: Tracker,
    rate: float,
    duration: float,
) -> dict[str, Any]:
    """Publish to LIVE at `rate` for `duration` s; latencies as every subscriber saw them."""
    tracker.reset(subs)
    pushes0 = await sink.count()
    cpu = CpuWindow(server, also={"push_service": sink.cpu}, split=True)
    t0 = time.time()
    sent, answered, bad = await publish_at_rate(server, rate, duration, publishers=4, project=LIVE)
    t1 = time.time()
    complete = await wait_complete(tracker, sent, 30.0)
    usage = cpu.stop()
    lat = [x / 1e6 for x in tracker.latencies or []]
    got = sum(s.count for s in subs)
    n = len(subs)
    rows = await sink.attempts(pushes0)
    inside = sorted(r[1] for r in rows if t0 <= r[1] < t1)
    gaps = [b - a for a, b in zip([t0, *inside], [*inside, t1], strict=True)]
    return {
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
        "max_ms": max(lat) if lat else float("nan"),
        "publish_p50_ms": percentile(answered, 50) * 1e3,
        "publish_p99_ms": percentile(answered, 99) * 1e3,
        "pushes_in_window": len(inside),
        "pushes_per_s": len(inside) / (t1 - t0),
        "longest_push_gap_s": max(gaps),
        **usage,
    }


async def while_pushing(
    server: Server, sink: PushSink, subs: list[WSConn], tracker: Tracker, args: argparse.Namespace
) -> dict[str, Any]:
    """The same window while a push fan-out runs: one event to the push topic,
    the window opens at its first push, another event every `push_every` s
    until it closes; then every push of those events is waited for."""
    n = args.push_subscribers
    pusher = await Publisher.open(server, PUSH_PROJECT)
    events: list[int] = []
    stop = asyncio.Event()

    async def publish_push() -> None:
        status, seq = await pusher.publish()
        if status != 201:
            raise RuntimeError(f"publishing to {PUSH_PROJECT} answered {status}")
        events.append(seq)

    async def more_push_events() -> None:
        while True:
            try:
                await asyncio.wait_for(stop.wait(), args.push_every)
                return
            except TimeoutError:
                await publish_push()

    start = await sink.count()
    await publish_push()
    if not await sink.wait_count(start + 1, 30.0, poll=0.005):
        raise RuntimeError("no push reached the push service within 30 s")
    more = asyncio.create_task(more_push_events())
    try:
        during = await window(server, sink, subs, tracker, args.rate, args.duration)
    finally:
        stop.set()
        await more
        pusher.close()
    t = time.monotonic()
    drained = await sink.wait_count(start + n * len(events), 120.0, poll=0.05)
    rows = await sink.attempts(start)
    return {
        **during,
        "push_events": len(events),
        "pushes_total": len(rows),
        "pushes_expected": n * len(events),
        "drained": drained and len(rows) == n * len(events),
        "drained_after_s": time.monotonic() - t,
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    keys = PushKeys.new()
    sink = await PushSink.start(nice=SINK_NICE)
    server: Server | None = None
    subs: list[WSConn] = []
    try:
        endpoints = [sink.endpoint(i) for i in range(args.push_subscribers)]
        populated: dict[str, Any] = {}

        async def prepare(s: Server) -> None:
            if args.populate == "db":
                populated.update(
                    await prepopulate_push(
                        Path(s.env["SUNBID_DATA_DIR"]), endpoints, PUSH_TOPIC, keys
                    )
                )

        server = await start_server(
            "sunbid", push_env(sink), prepare=prepare, projects=(LIVE, PUSH_PROJECT)
        )
        if args.populate == "http":
            populated = await subscribe_http(server, endpoints, PUSH_TOPIC, keys)
        print(
            f"  server pid {server.pid}, push service pid {sink.pid}; "
            f"{args.push_subscribers:,} push subscriptions via {populated['via']} in "
            f"{populated['seconds']:.1f} s",
            flush=True,
        )
        tracker = Tracker(args.subscribers, latency=True, gaps_ok=True)
        subs = await open_subscribers(server, args.subscribers, tracker.on_event, topic=LIVE_TOPIC)
        warm = await Publisher.open(server, LIVE)
        await drive(warm, tracker, 3, 1, 30)
        warm.close()

        pairs = []
        for i in range(args.repeats):
            await wait_quiet()
            idle = await window(server, sink, subs, tracker, args.rate, args.duration)
            print(
                f"  {i + 1}. idle:   p50 {idle['p50_ms']:.1f} ms, p99 {idle['p99_ms']:.1f} ms, "
                f"max {idle['max_ms']:.1f} ms; {idle['pushes_in_window']} pushes",
                flush=True,
            )
            await wait_quiet()
            during = await while_pushing(server, sink, subs, tracker, args)
            print(
                f"  {i + 1}. during: p50 {during['p50_ms']:.1f} ms, p99 {during['p99_ms']:.1f} ms,"
                f" max {during['max_ms']:.1f} ms; {during['pushes_in_window']:,} pushes in the "
                f"window ({during['pushes_per_s']:,.0f}/s, longest gap "
                f"{during['longest_push_gap_s']:.2f} s), {during['push_events']} push events, "
                f"all {during['pushes_total']:,} sent {during['drained_after_s']:.1f} s after the "
                f"window; other util {idle['other_util']:.0%} / {during['other_util']:.0%}",
                flush=True,
            )
            pairs.append(
                {
                    "idle": idle,
                    "during": during,
                    "p99_ratio": during["p99_ms"] / idle["p99_ms"],
                    "p50_ratio": during["p50_ms"] / idle["p50_ms"],
                }
            )
        return {
            "subscribers": args.subscribers,
            "rate": args.rate,
            "duration_s": args.duration,
            "push_subscribers": args.push_subscribers,
            "push_every_s": args.push_every,
            "populate": populated,
            "pairs": pairs,
            "idle_p99_ms": spread([p["idle"]["p99_ms"] for p in pairs]),
            "during_p99_ms": spread([p["during"]["p99_ms"] for p in pairs]),
            "p99_ratio": spread([p["p99_ratio"] for p in pairs]),
            "p50_ratio": spread([p["p50_ratio"] for p in pairs]),
        }
    finally:
        close_all(subs)
        if server is not None:
            server.stop()
        await sink.stop()


def report(res: dict[str, Any]) -> None:
    print(
        f"\nSunbid: {res['subscribers']} WebSocket subscribers, {res['rate']:g} events/s for "
        f"{res['duration_s']:g} s, idle and during a push fan-out to "
        f"{res['push_subscribers']:,} subscriptions (a new push event every "
        f"{res['push_every_s']:g} s), {len(res['pairs'])} pairs of windows"
    )
    head = ["window", "p50 ms", "p90 ms", "p99 ms", "max ms", "lost", "out of order"]
    head += ["publish p50/p99 ms", "pushes", "server util", "of it children"]
    head += ["push service util", "client util", "other util"]
    rows = [head]
    for i, pair in enumerate(res["pairs"], 1):
        for name in ("idle", "during"):
            r = pair[name]
            rows.append(
                [
                    f"{i}. {name}",
                    *(f"{r[k]:.1f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
                    str(r["lost"]),
                    str(r["out_of_order"]),
                    f"{r['publish_p50_ms']:.1f} / {r['publish_p99_ms']:.1f}",
                    f"{r['pushes_in_window']:,}",
                    f"{r['server_util']:.0%}",
                    f"{r['server_children_cpu_s'] / r['wall_s']:.0%}",
                    f"{r['push_service_util']:.0%}",
                    f"{r['client_util']:.0%}",
                    f"{r['other_util']:.0%}",
                ]
            )
    print(fmt_table(rows))
    ratio = res["p99_ratio"]
    verdict = "within" if ratio["median"] <= 2 else "over"
    print(
        f"p99 idle {res['idle_p99_ms']['median']:.1f} ms, "
        f"during {res['during_p99_ms']['median']:.1f} ms (medians); "
        f"p99 during / idle = {ratio['median']:.2f} "
        f"({ratio['min']:.2f}–{ratio['max']:.2f}; {verdict} the 2x target), "
        f"p50 ratio {res['p50_ratio']['median']:.2f}"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=500, help="WebSocket subscribers")
    parser.add_argument("--rate", type=float, default=10.0, help="LIVE events per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per window")
    parser.add_argument("--push-subscribers", type=int, default=10_000)
    parser.add_argument("--push-every", type=float, default=2.0, help="seconds between push events")
    parser.add_argument("--repeats", type=int, default=3, help="pairs of idle/during windows")
    parser.add_argument(
        "--populate",
        choices=("http", "db"),
        default="http",
        help="create the push subscriptions through the API (default) or write push.db first",
    )
    args = parser.parse_args()
    if not sunbid_available():
        raise SystemExit("sunbid is not installed in this venv")
    pin_self()
    raise_nofile()
    print_machine()
    print(
        f"push loop: {args.subscribers} WebSocket subscribers of {LIVE_TOPIC}, "
        f"{args.push_subscribers:,} push subscribers of {PUSH_TOPIC}; push service (fast "
        f"mode) in its own process on core {CLIENT_CORE} at nice {SINK_NICE}\n",
        flush=True,
    )
    res = await bench(args)
    report(res)
    path = save_results("push_loop", res)
    print(f"\nresults: {path.relative_to(BENCH.parent)}")
    ok = all(
        p[w]["complete"] and not p[w]["out_of_order"] and not p[w]["closed"]
        for p in res["pairs"]
        for w in ("idle", "during")
    ) and all(p["during"]["drained"] for p in res["pairs"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run(main()))
