"""Scale-out: several Sunbid processes on one PostgreSQL schema and one Redis bus.

Each run makes a fresh schema on the machine's PostgreSQL and a bus prefix
of its own on its Redis, starts P `sunbid serve` processes on them (one
data directory, as `serve --workers P` would), and drops the schema after.
The server processes are not pinned: on this 2-core machine they share both
cores with PostgreSQL, Redis and this client (which is pinned to core 1).

    .venv/bin/python bench/scaleout.py publish [--processes 2] [--publishers 16] [--duration 10]
                                               [--split]
    .venv/bin/python bench/scaleout.py fanout [--processes 2] [--subscribers 2000] [--rate 10]
    .venv/bin/python bench/scaleout.py idle [--processes 4] [--connections 40000]
    .venv/bin/python bench/scaleout.py resume [--missed 10000]

- publish: P processes, the publishers spread over them, each posting back
  to back: 201s per second, answer-time percentiles; then every 201's seq
  must be in the log and `sunbid verify` must accept the chain.
- fanout: subscribers spread over the processes, R events/s published to
  them in turn; every subscriber must get every event once, in order; the
  time from just before the POST to the frame's arrival, percentiles.
- idle: C WebSocket subscribers held over P processes; the processes' RSS
  before and after, per connection; one event must then reach them all.
- resume: M events published, then one client resumes with `since` M back
  on another process than the one they were published to; seconds until
  all M arrived (in order, once).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from common import (
    BIN,
    HOST,
    ROOT,
    Publisher,
    Server,
    Tracker,
    close_all,
    create_project,
    free_port,
    healthz_head,
    open_subscribers,
    percentile,
    pin_self,
    print_machine,
    raise_nofile,
    run,
    save_results,
)
from resume import ws_resume

DATABASE_URL = os.environ.get("SUNBID_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
BUS_URL = os.environ.get("SUNBID_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BOTH_CORES = {0, 1}


class Deployment:
    """P server processes on a fresh schema and bus prefix."""

    def __init__(self, processes: int, *, split: bool = False) -> None:
        # split: web processes `serve --no-worker` and one `sunbid worker`
        # beside them (push and compliance duty), as docs/deploy.md describes.
        self.split = split
        self.worker: subprocess.Popen[bytes] | None = None
        self.schema = f"bench_{secrets.token_hex(4)}"
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
        self.env = {
            "SUNBID_DATA_DIR": str(self.workdir / "data"),
            "SUNBID_DEMO": "0",
            "SUNBID_DATABASE_URL": DATABASE_URL,
            "SUNBID_DATABASE_SCHEMA": self.schema,
            "SUNBID_BUS_URL": BUS_URL,
            "SUNBID_BUS_PREFIX": self.schema,
            "SUNBID_MAX_CONNECTIONS_PER_ADDRESS": "100000",
            "SUNBID_MAX_CONNECTIONS": "60000",
        }
        self.servers: list[Server] = []
        self.processes = processes

    async def start(self) -> list[Server]:
        token = ""
        for i in range(self.processes):
            port = free_port()
            argv = [str(BIN / "sunbid"), "serve", "--host", HOST, "--port", str(port)]
            if self.split:
                argv.append("--no-worker")
            server = Server("sunbid", port, argv, env=dict(self.env), cores=BOTH_CORES)
            server.workdir = self.workdir / f"p{i}"
            server.workdir.mkdir(parents=True)
            server.start(timeout=60)
            if not token:
                token = self.token()
            server.token = token
            self.servers.append(server)
        if self.split:
            self.worker = subprocess.Popen(
                [str(BIN / "sunbid"), "worker"],
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        await create_project(self.servers[0])
        return self.servers

    def token(self) -> str:
        out = self.cli("token", "create", "--name", "bench", "--role", "admin")
        return out.stdout.strip().splitlines()[-1].strip()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "sunbid"), *args],
            cwd=ROOT,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )

    async def analyze(self) -> None:
        conn = await asyncpg.connect(DATABASE_URL)
        try:
            await conn.execute(f'ANALYZE "{self.schema}".events, "{self.schema}".projects')
        finally:
            await conn.close()

    def rss_kib(self) -> int:
        return sum(s.rss_kib() for s in self.servers)

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            self.worker.wait(30)
        for server in self.servers:
            server.workdir = None  # the shared directory goes below, once
            server.stop()
        conn = await asyncpg.connect(DATABASE_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            await conn.close()
        subprocess.run(["rm", "-rf", str(self.workdir)], check=False)


async def bench_publish(
    processes: int, publishers: int, duration: float, split: bool = False, warmup: float = 10
) -> dict[str, Any]:
    deployment = Deployment(processes, split=split)
    try:
        servers = await deployment.start()
        pubs = [await Publisher.open(servers[i % processes]) for i in range(publishers)]
        acknowledged: list[int] = []
        bad: list[int] = []

        async def flat_out(seconds: float) -> tuple[list[float], int, float]:
            """Every publisher posting back to back: answer times, 201s, wall time."""
            times: list[float] = []
            before = len(acknowledged)
            stop = time.monotonic() + seconds

            async def loop(pub: Publisher) -> None:
                while time.monotonic() < stop:
                    t = time.perf_counter()
                    status, seq = await pub.publish()
                    times.append(time.perf_counter() - t)
                    if status == 201:
                        acknowledged.append(seq)
                    else:
                        bad.append(status)

            t0 = time.perf_counter()
            await asyncio.gather(*(loop(p) for p in pubs))
            return times, len(acknowledged) - before, time.perf_counter() - t0

        if warmup > 0:
            # A deployment in service, not one in its first seconds: a fresh
            # schema's tables are planned as empty until autovacuum's first
            # ANALYZE (within its one-minute naptime), and a statement
            # prepared meanwhile scans what it should look up.
            await flat_out(warmup)
            await deployment.analyze()
        times, published, wall = await flat_out(duration)
        for pub in pubs:
            pub.close()
        verify = deployment.cli("verify")
        return {
            "processes": processes,
            "shape": "serve --no-worker + sunbid worker" if split else "serve",
            "publishers": publishers,
            "warmup_s": warmup,
            "published": published,
            "per_s": published / wall,
            "p50_ms": percentile(times, 50) * 1e3,
            "p99_ms": percentile(times, 99) * 1e3,
            "max_ms": max(times) * 1e3,
            "bad_statuses": sorted(set(bad)),
            "gapless_and_all_in_log": sorted(acknowledged) == list(range(2, 2 + len(acknowledged))),
            "verify": verify.stdout.strip().splitlines()[0] if verify.stdout else "",
            "verify_head": verify_head(verify.stdout),
        }
    finally:
        await deployment.stop()


def verify_head(output: str) -> int:
    """The head `sunbid verify` reports ("ok: N events …"), -1 if none."""
    for line in output.splitlines():
        words = line.split()
        if len(words) > 2 and words[0] == "ok:" and words[2].startswith("event"):
            return int(words[1].replace(",", ""))
    return -1


async def bench_fanout(
    processes: int, subscribers: int, rate: float, duration: float
) -> dict[str, Any]:
    deployment = Deployment(processes)
    subs: list[Any] = []
    try:
        servers = await deployment.start()
        tracker = Tracker(subscribers, latency=True)
        for i, server in enumerate(servers):
            share = subscribers // processes + (1 if i < subscribers % processes else 0)
            subs += await open_subscribers(server, share, tracker.on_event, timeout=120)
        pools = [[await Publisher.open(s) for _ in range(4)] for s in servers]
        answers: list[float] = []
        total = int(rate * duration)

        async def one(i: int) -> None:
            pool = pools[i % processes]
            pub = pool.pop()
            try:
                t = time.time_ns()
                status, _ = await pub.publish(t_ns=t)
                answers.append((time.time_ns() - t) / 1e9)
                assert status == 201, status
            finally:
                pool.append(pub)

        rss0 = deployment.rss_kib()
        t0 = time.monotonic()
        tasks = []
        for i in range(total):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        deadline = time.monotonic() + 30
        while tracker.completed < total and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        latencies = [x / 1e9 for x in tracker.latencies or []]
        for pool in pools:
            for pub in pool:
                pub.close()
        delivered = sum(s.count for s in subs)
        return {
            "processes": processes,
            "subscribers": subscribers,
            "events": total,
            "delivered": delivered,
            "lost": subscribers * total - delivered,
            "out_of_order": sum(s.errors for s in subs),
            "closed": sum(1 for s in subs if s.closed),
            "p50_ms": percentile(latencies, 50) * 1e3,
            "p99_ms": percentile(latencies, 99) * 1e3,
            "max_ms": max(latencies) * 1e3,
            "publish_answer_median_ms": statistics.median(answers) * 1e3,
            "rss_mib": rss0 / 1024,
        }
    finally:
        close_all(subs)
        await deployment.stop()


CLIENT_SOCKETS = 15_000  # per load-generator process: this machine caps open files at 20,000


async def bench_idle(processes: int, connections: int) -> dict[str, Any]:
    """The connections are held by several load-generator processes (`hold`
    below): one process may not have 40,000 sockets open here."""
    deployment = Deployment(processes)
    holders: list[asyncio.subprocess.Process] = []
    try:
        servers = await deployment.start()
        await asyncio.sleep(2)
        before = [s.rss_kib() for s in servers]
        ports = ",".join(str(s.port) for s in servers)
        count = -(-connections // CLIENT_SOCKETS)
        t0 = time.perf_counter()
        for i in range(count):
            share = connections // count + (1 if i < connections % count else 0)
            holders.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "hold",
                    "--ports",
                    ports,
                    "--connections",
                    str(share),
                    "--offset",
                    str(i),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )
        for holder in holders:
            assert holder.stdout is not None
            line = await asyncio.wait_for(holder.stdout.readline(), 900)
            assert line.startswith(b"ready"), line
        connect_s = time.perf_counter() - t0
        await asyncio.sleep(5)
        after = [s.rss_kib() for s in servers]
        pub = await Publisher.open(servers[0])
        status, _ = await pub.publish()
        pub.close()
        got = held = 0
        for holder in holders:
            assert holder.stdin is not None and holder.stdout is not None
            holder.stdin.write(b"count\n")
            await holder.stdin.drain()
            words = (await asyncio.wait_for(holder.stdout.readline(), 120)).split()
            got, held = got + int(words[1]), held + int(words[2])
        return {
            "processes": processes,
            "connections": connections,
            "load_generators": count,
            "connect_s": connect_s,
            "held": held,
            "event_reached": got,
            "published": status,
            "rss_before_mib": [round(kib / 1024, 1) for kib in before],
            "rss_after_mib": [round(kib / 1024, 1) for kib in after],
            "rss_kib_per_connection": (sum(after) - sum(before)) / connections,
        }
    finally:
        for holder in holders:
            if holder.returncode is None:
                holder.kill()
                await holder.wait()
        await deployment.stop()


async def hold(ports: list[int], connections: int, offset: int) -> int:
    """A load generator for `idle`: open `connections` subscribers over the
    servers on `ports`, say "ready", then on "count" say how many got the
    event published meanwhile and how many are still open."""
    tracker = Tracker(connections)
    subs: list[Any] = []
    for i, port in enumerate(ports):
        share = connections // len(ports) + (1 if i < connections % len(ports) else 0)
        server = Server("sunbid", port, [])
        subs += await open_subscribers(server, share, tracker.on_event, timeout=600)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    deadline = time.monotonic() + 60
    while sum(1 for s in subs if s.count) < len(subs) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    print(
        "count", sum(1 for s in subs if s.count), sum(1 for s in subs if not s.closed), flush=True
    )
    close_all(subs)
    return 0


async def bench_resume(missed: int) -> dict[str, Any]:
    deployment = Deployment(2)
    try:
        servers = await deployment.start()
        pubs = [await Publisher.open(servers[0]) for _ in range(16)]
        left = missed

        async def loop(pub: Publisher) -> None:
            nonlocal left
            while left > 0:
                left -= 1
                status, _ = await pub.publish()
                assert status == 201, status

        await asyncio.gather(*(loop(p) for p in pubs))
        for pub in pubs:
            pub.close()
        await asyncio.sleep(1)
        # The client had seen all but the last `missed` (each run's live event
        # is one more in the log for the next).
        results = []
        for _ in range(3):
            head = await healthz_head(servers[1].port)
            results.append(await ws_resume(servers[1], head - missed, missed, 30))
        return {
            "missed": missed,
            "seconds": [round(r["seconds"], 3) for r in results],
            "received": [r["received"] for r in results],
            "gaps_or_repeats": [r["gaps_or_repeats"] for r in results],
            "live_after": [r["live_after"] for r in results],
            "ok": all(r["ok"] for r in results),
        }
    finally:
        await deployment.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["publish", "fanout", "idle", "resume", "hold"])
    parser.add_argument("--ports", help=argparse.SUPPRESS)  # hold: the servers
    parser.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int)
    parser.add_argument("--publishers", type=int, default=16)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=40_000)
    parser.add_argument("--missed", type=int, default=10_000)
    parser.add_argument(
        "--warmup", type=float, default=10.0, help="publish: seconds flat out before measuring"
    )
    parser.add_argument(
        "--split", action="store_true", help="publish: serve --no-worker, plus one sunbid worker"
    )
    args = parser.parse_args()
    if args.what == "hold":
        raise_nofile(CLIENT_SOCKETS + 1000)
        return await hold([int(p) for p in args.ports.split(",")], args.connections, args.offset)
    pin_self()
    raise_nofile(200_000)
    print_machine()
    if args.what == "publish":
        result = await bench_publish(
            args.processes or 2, args.publishers, args.duration or 10, args.split, args.warmup
        )
    elif args.what == "fanout":
        result = await bench_fanout(
            args.processes or 2, args.subscribers, args.rate, args.duration or 30
        )
    elif args.what == "idle":
        result = await bench_idle(args.processes or 4, args.connections)
    else:
        result = await bench_resume(args.missed)
    for key, value in result.items():
        print(f"  {key}: {value}")
    save_results(f"scaleout-{args.what}", result)
    return 0


if __name__ == "__main__":
    sys.exit(run(main()))
