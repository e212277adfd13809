"""Publishing while 100,000 push deliveries are enqueued and sent.

100,000 subscriptions of `project:BENCH-PUSH` are written into the server's
push.db before it starts (through push.queue.PushQueue's schema, in one
transaction), all pointing at the local push service in `fast` mode
(bench/push_sink.py, its own process on core 1). A steady publisher posts
events to an unrelated project (BENCH-1) from 4 keep-alive connections at a
fixed rate (or back-to-back with `--rate 0`) and times each 201.

Phases, one after the other while the publisher keeps going:
  idle      no push work at all;
  enqueue   from publishing one event to BENCH-PUSH until its 100,000
            deliveries are queued (`GET /api/events/{seq}/deliveries` polled
            every 0.02 s adds up to 100,000);
  sending   from then until the push service has all 100,000 requests (or
            `--send-seconds` have passed).
Each phase reports 201 latency p50/p99/max (from the request being written;
"sched" also counts any wait for a free publisher connection).

    .venv/bin/python bench/push_enqueue.py [--subscribers 100000] [--rate 40]
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
    PROJECT,
    CpuWindow,
    HttpConn,
    Publisher,
    PushKeys,
    PushSink,
    Server,
    delivery_counts,
    fmt_table,
    percentile,
    pin_self,
    prepopulate_push,
    print_machine,
    push_env,
    raise_nofile,
    run,
    save_results,
    start_server,
    sunbid_available,
    wait_quiet,
)

PUSH_PROJECT = "BENCH-PUSH"
PUSH_TOPIC = f"project:{PUSH_PROJECT}"


class SteadyPublisher:
    """Publishes to BENCH-1 until stopped: at `rate`/s on a pool of connections,
    or back-to-back on each (`rate` 0). Records (scheduled, sent, answered, status)."""

    def __init__(self, server: Server, rate: float, connections: int) -> None:
        self.server = server
        self.rate = rate
        self.connections = connections
        self.samples: list[tuple[float, float, float, int]] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        pubs = [await Publisher.open(self.server, PROJECT) for _ in range(self.connections)]
        self._task = asyncio.create_task(self._run(pubs))

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    async def _one(self, pub: Publisher, scheduled: float) -> None:
        sent = time.time()
        status, _ = await pub.publish()
        self.samples.append((scheduled, sent, time.time(), status))

    async def _run(self, pubs: list[Publisher]) -> None:
        try:
            if self.rate <= 0:

                async def loop(pub: Publisher) -> None:
                    while not self._stop.is_set():
                        await self._one(pub, time.time())

                await asyncio.gather(*(loop(p) for p in pubs))
                return
            pool: asyncio.Queue[Publisher] = asyncio.Queue()
            for p in pubs:
                pool.put_nowait(p)

            async def scheduled(at: float) -> None:
                pub = await pool.get()
                try:
                    await self._one(pub, at)
                finally:
                    pool.put_nowait(pub)

            tasks = []
            t0, i = time.time(), 0
            while not self._stop.is_set():
                at = t0 + i / self.rate
                delay = at - time.time()
                if delay > 0:
                    try:
                        await asyncio.wait_for(self._stop.wait(), delay)
                        break
                    except TimeoutError:
                        pass
                tasks.append(asyncio.create_task(scheduled(at)))
                i += 1
            await asyncio.gather(*tasks)
        finally:
            for p in pubs:
                p.close()

    def phase(self, start: float, end: float) -> dict[str, Any]:
        picked = [s for s in self.samples if start <= s[1] < end]
        answer = [(a - s) * 1e3 for _, s, a, _ in picked]
        sched = [(a - at) * 1e3 for at, _, a, _ in picked]
        return {
            "seconds": end - start,
            "publishes": len(picked),
            "per_s": len(picked) / (end - start) if end > start else float("nan"),
            "bad": sum(1 for *_, st in picked if st != 201),
            "p50_ms": percentile(answer, 50),
            "p99_ms": percentile(answer, 99),
            "max_ms": max(answer) if answer else float("nan"),
            "sched_p99_ms": percentile(sched, 99),
            "sched_max_ms": max(sched) if sched else float("nan"),
        }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    n = args.subscribers
    keys = PushKeys.new()
    sink = await PushSink.start()
    server: Server | None = None
    try:
        endpoints = [sink.endpoint(i) for i in range(n)]
        populated: dict[str, Any] = {}

        async def prepare(s: Server) -> None:
            populated.update(
                await prepopulate_push(Path(s.env["SUNBID_DATA_DIR"]), endpoints, PUSH_TOPIC, keys)
            )

        server = await start_server(
            "sunbid", push_env(sink), prepare=prepare, projects=(PROJECT, PUSH_PROJECT)
        )
        print(
            f"  server pid {server.pid}, push service pid {sink.pid}; {n:,} subscriptions "
            f"written to push.db in {populated['seconds']:.1f} s",
            flush=True,
        )
        http = await HttpConn.open(server.port)
        big = await Publisher.open(server, PUSH_PROJECT)
        steady = SteadyPublisher(server, args.rate, args.publishers)
        await wait_quiet()
        window = CpuWindow(server, also={"push_service": sink.cpu}, split=True)
        t_start = time.time()
        await steady.start()
        await asyncio.sleep(args.idle_seconds)
        idle_cpu = window.stop()

        # The 100,000-subscriber event.
        window = CpuWindow(server, also={"push_service": sink.cpu}, split=True)
        t_big = time.time()
        status, seq = await big.publish()
        t_big_201 = time.time()
        if status != 201:
            raise RuntimeError(f"publishing to {PUSH_PROJECT} answered {status}")
        polls: list[float] = []
        t_enqueued = float("nan")
        counts: dict[str, int] = {}
        deadline = time.monotonic() + args.send_seconds
        while time.monotonic() < deadline:
            t = time.perf_counter()
            counts = await delivery_counts(http, server, seq)
            polls.append((time.perf_counter() - t) * 1e3)
            if sum(counts.values()) >= n:
                t_enqueued = time.time()
                break
            await asyncio.sleep(args.poll)
        enqueue_cpu = window.stop()
        print(
            f"  enqueued {sum(counts.values()):,} deliveries {t_enqueued - t_big:.2f} s after "
            f"publishing (201 in {(t_big_201 - t_big) * 1e3:.1f} ms; {len(polls)} polls, "
            f"each {percentile(polls, 50):.1f} ms p50, {max(polls):.1f} ms max)",
            flush=True,
        )

        window = CpuWindow(server, also={"push_service": sink.cpu}, split=True)
        t_send = time.time()
        complete = await sink.wait_count(n, max(1.0, t_big + args.send_seconds - time.time()))
        t_sent = time.time()
        send_cpu = window.stop()
        await steady.stop()
        rows = await sink.attempts(0)
        received = len(rows)
        times = sorted(r[1] for r in rows)
        counts = await delivery_counts(http, server, seq)
        http.close()
        big.close()
        phases = {
            "idle": {**steady.phase(t_start, t_big), **idle_cpu},
            "enqueue": {**steady.phase(t_big, t_enqueued), **enqueue_cpu},
            "sending": {**steady.phase(t_send, t_sent), **send_cpu},
        }
        return {
            "subscribers": n,
            "rate": args.rate,
            "publishers": args.publishers,
            "populate": populated,
            "publish_201_ms": (t_big_201 - t_big) * 1e3,
            "enqueue_s": t_enqueued - t_big,
            "enqueue_polls": len(polls),
            "poll_s": args.poll,
            "poll_p50_ms": percentile(polls, 50),
            "poll_max_ms": max(polls),
            "first_push_after_publish_s": times[0] - t_big if times else float("nan"),
            "last_push_after_publish_s": times[-1] - t_big if times else float("nan"),
            "pushes_received": received,
            "distinct": len({r[0] for r in rows}),
            "all_sent": complete,
            "send_per_s": (len(times) / (times[-1] - times[0]) if len(times) > 1 else float("nan")),
            "deliveries_at_end": counts,
            "phases": phases,
        }
    finally:
        if server is not None:
            server.stop()
        await sink.stop()


def report(res: dict[str, Any]) -> None:
    how = f"{res['rate']:g}/s" if res["rate"] > 0 else "back-to-back"
    print(
        f"\nSunbid: 201 latency of a steady publisher ({res['publishers']} connections, {how}) "
        f"while one event fans out to {res['subscribers']:,} push subscribers"
    )
    rows = [
        ["phase", "seconds", "publishes", "/s", "p50 ms", "p99 ms", "max ms", "sched p99/max ms"]
    ]
    rows[0] += ["server util", "of it children", "push service util", "other util"]
    for name, p in res["phases"].items():
        rows.append(
            [
                name,
                f"{p['seconds']:.1f}",
                str(p["publishes"]),
                f"{p['per_s']:.0f}",
                f"{p['p50_ms']:.1f}",
                f"{p['p99_ms']:.1f}",
                f"{p['max_ms']:.1f}",
                f"{p['sched_p99_ms']:.1f} / {p['sched_max_ms']:.1f}",
                f"{p['server_util']:.0%}",
                f"{p['server_children_cpu_s'] / p['wall_s']:.0%}",
                f"{p['push_service_util']:.0%}",
                f"{p['other_util']:.0%}",
            ]
        )
    print(fmt_table(rows))
    print(
        f"enqueueing {res['subscribers']:,} deliveries: {res['enqueue_s']:.2f} s from the "
        f"publish (201 in {res['publish_201_ms']:.1f} ms; counts polled every {res['poll_s']:g} s, "
        f"one poll "
        f"{res['poll_p50_ms']:.1f} ms p50 / {res['poll_max_ms']:.1f} ms max); first push "
        f"+{res['first_push_after_publish_s']:.2f} s, last +{res['last_push_after_publish_s']:.2f}"
        f" s; {res['pushes_received']:,} pushes received ({res['distinct']:,} distinct), "
        f"{res['send_per_s']:,.0f}/s; deliveries at the end {res['deliveries_at_end']}"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument(
        "--rate", type=float, default=40.0, help="publishes per second (0: back-to-back)"
    )
    parser.add_argument("--publishers", type=int, default=4, help="publisher connections")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument(
        "--poll",
        type=float,
        default=0.02,
        help="seconds between delivery-count polls while the deliveries are enqueued",
    )
    parser.add_argument(
        "--send-seconds",
        type=float,
        default=60.0,
        help="give up waiting for all pushes this long after the big publish",
    )
    args = parser.parse_args()
    if not sunbid_available():
        raise SystemExit("sunbid is not installed in this venv")
    pin_self()
    raise_nofile()
    print_machine()
    print(
        f"push enqueue: {args.subscribers:,} push subscribers of {PUSH_TOPIC}; push service "
        f"(fast mode) in its own process on core {CLIENT_CORE}\n",
        flush=True,
    )
    res = await bench(args)
    report(res)
    path = save_results("push_enqueue", res)
    print(f"\nresults: {path.relative_to(BENCH.parent)}")
    ok = (
        res["all_sent"]
        and res["distinct"] == res["subscribers"]
        and all(p["bad"] == 0 for p in res["phases"].values())
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run(main()))
