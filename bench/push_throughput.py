"""Web Push throughput: one event to 10,000 push subscribers, real encryption and VAPID.

A local push service (tests/push_service.py in `fast` mode: 201 without
verifying or decrypting; bench/push_sink.py) runs in its own process pinned to
core 1; the server (`sunbid serve`, pinned to core 0) admits it through
SUNBID_PUSH_ALLOWED_HOSTS. N subscriptions of `project:BENCH-PUSH` point at it,
created through `POST /api/push/subscriptions` from many loopback addresses
(or, with `--populate db`, written into push.db before the server starts).
Every subscriber shares one valid p256dh/auth pair; the server still encrypts
and signs as it always does.

Each repeat publishes one event to BENCH-PUSH through the staff API and takes:
the time of the 201; when the first and the last of the N requests reached
the push service; N / (last - first) and N / (last - publish); server CPU
(process and children) over the fan-out; that each subscriber was hit
exactly once; and the server's own delivery counts.

Then, in this process: `push.crypto.encrypt` of the same payload, plus a
VAPID signature per message (push.vapid, no token reuse), as a ceiling for a
single core. Last, the straightforward approach as a baseline: pywebpush's
`webpush()` once per subscriber (a VAPID token signed per call, a new
connection per call), sequentially and from 32 threads, in a child process
pinned to core 0 (the server is stopped by then), against the same service.

    .venv/bin/python bench/push_throughput.py [--subscribers 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from common import (
    BENCH,
    CLIENT_CORE,
    PUSH_SUBJECT,
    SERVER_CORE,
    VAPID_KEY_FILE,
    CpuWindow,
    HttpConn,
    Publisher,
    PushKeys,
    PushSink,
    Server,
    fanout_check,
    fmt_table,
    machine_busy,
    pin_self,
    prepopulate_push,
    print_machine,
    profile_summary,
    push_env,
    raise_nofile,
    run,
    save_results,
    self_cpu,
    spread,
    start_profiler,
    start_server,
    subscribe_http,
    sunbid_available,
    wait_deliveries,
    wait_quiet,
)

PUSH_PROJECT = "BENCH-PUSH"
PUSH_TOPIC = f"project:{PUSH_PROJECT}"
BASELINE_WORKERS = 32


async def fanout(
    server: Server,
    sink: PushSink,
    pub: Publisher,
    http: HttpConn,
    n: int,
    expected: set[str],
    profile: float = 0.0,
) -> dict[str, Any]:
    """Publish one event to the push topic and follow its N pushes; with `profile`,
    py-spy samples the server and its children for that many seconds meanwhile."""
    await wait_quiet()
    spy = start_profiler(server, profile, "push_throughput", subprocesses=True) if profile else None
    if spy is not None:
        await asyncio.sleep(0.5)  # py-spy attaches
    start = await sink.count()
    window = CpuWindow(server, also={"push_service": sink.cpu}, split=True)
    t_sent = time.time()
    status, seq = await pub.publish()
    t_201 = time.time()
    if status != 201:
        raise RuntimeError(f"publish answered {status}")
    arrived = await sink.wait_count(start + n, timeout=120.0, poll=0.01)
    cpu = window.stop()
    settled, counts = await wait_deliveries(
        http, server, seq, lambda c: c["queued"] == 0 and sum(c.values()) >= n, timeout=30.0
    )
    await asyncio.sleep(0.5)  # anything arriving late (a duplicate) is counted too
    if spy is not None:
        spy.wait()
    rows = await sink.attempts(start)
    check = fanout_check(rows, expected)
    times = sorted(r[1] for r in rows)
    first, last = (times[0], times[-1]) if times else (float("nan"), float("nan"))
    return {
        "seq": seq,
        "complete": arrived and settled and check["ok"] and counts["delivered"] == n,
        "publish_201_ms": (t_201 - t_sent) * 1e3,
        "first_after_publish_s": first - t_sent,
        "last_after_publish_s": last - t_sent,
        "first_to_last_s": last - first,
        "per_s_first_to_last": n / (last - first) if last > first else float("nan"),
        "per_s_publish_to_last": n / (last - t_sent),
        "server_cpu_us_per_push": cpu["server_cpu_s"] / n * 1e6,
        "deliveries": counts,
        "sink": check,
        **cpu,
    }


def crypto_ceiling(
    payload: bytes, keys: PushKeys, key_path: Path, seconds: float
) -> dict[str, Any]:
    """Messages per second one core manages for `encrypt`, and `encrypt` plus a
    fresh VAPID signature per message, in this process."""
    from push.crypto import encrypt
    from push.vapid import VapidSigner, load_or_create_key

    key = load_or_create_key(key_path.parent, subscriptions_exist=True)
    endpoint = "http://127.0.0.1:9/push/ceiling"

    def rate(step: Any) -> tuple[float, int]:
        for _ in range(50):
            step()
        count, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds:
            for _ in range(100):
                step()
            count += 100
        return count / elapsed, count

    def enc() -> None:
        encrypt(payload, keys.p256dh, keys.auth)

    def enc_sign() -> None:
        VapidSigner(key, PUSH_SUBJECT).headers_for(endpoint)
        encrypt(payload, keys.p256dh, keys.auth)

    def sign() -> None:
        VapidSigner(key, PUSH_SUBJECT).headers_for(endpoint)

    out: dict[str, Any] = {"payload_bytes": len(payload)}
    for name, step in (("encrypt", enc), ("sign", sign), ("encrypt_sign", enc_sign)):
        per_s, count = rate(step)
        out[name] = {"per_s": per_s, "us_each": 1e6 / per_s, "count": count}
    return out


# Where a push's CPU goes: a sample counts for the first of these found in its stack.
PROFILE_PARTS = (
    ("encryption (push/crypto.py)", ("push/crypto.py",)),
    ("VAPID header (push/vapid.py)", ("push/vapid.py",)),
    ("a log line per push", ("logging/", "_log (push/worker.py")),
    ("SQLite (aiosqlite, push.db, the log)", ("aiosqlite/", "push/queue.py", "server/store/")),
    ("HTTP client (aiohttp, yarl, multidict)", ("aiohttp/", "yarl/", "multidict/")),
)


def profile_parts(path: Path) -> dict[str, float]:
    """Shares of the sampled time by part of the work (PROFILE_PARTS, else "rest")."""
    parts: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        name = next((p for p, keys in PROFILE_PARTS if any(k in stack for k in keys)), "rest")
        parts[name] = parts.get(name, 0) + n
    return {k: v / total for k, v in sorted(parts.items(), key=lambda kv: -kv[1])} if total else {}


def children_cpu() -> float:
    """CPU of this process's children that have been waited for."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def baseline_child(spec_path: str) -> None:
    """Runs in a child process pinned to the server's core: pywebpush, one call
    per subscriber, sequentially (workers 0) or from a thread pool."""
    import resource
    from concurrent.futures import ThreadPoolExecutor

    from pywebpush import webpush

    spec = orjson.loads(Path(spec_path).read_bytes())
    errors: list[str] = []

    def send(endpoint: str) -> None:
        try:
            webpush(
                {"endpoint": endpoint, "keys": spec["keys"]},
                spec["data"],
                vapid_private_key=spec["key_path"],
                vapid_claims={"sub": spec["subject"]},
                timeout=15,
            )
        except Exception as exc:  # counted and reported
            errors.append(repr(exc)[:200])

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if spec["workers"]:
        with ThreadPoolExecutor(spec["workers"]) as pool:
            list(pool.map(send, spec["endpoints"]))
    else:
        for endpoint in spec["endpoints"]:
            send(endpoint)
    took = time.perf_counter() - t0
    r = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r.ru_utime + r.ru_stime - r0.ru_utime - r0.ru_stime  # imports not counted
    result = {"seconds": took, "cpu_s": cpu, "errors": errors[:5]}
    sys.stdout.write(orjson.dumps({**result, "error_count": len(errors)}).decode() + "\n")


async def baseline(
    sink: PushSink, endpoints: list[str], keys: PushKeys, key_path: Path, data: str, workers: int
) -> dict[str, Any]:
    spec = sink.workdir / f"baseline-{workers}.json"
    spec.write_bytes(
        orjson.dumps(
            {
                "endpoints": endpoints,
                "keys": keys.json(),
                "key_path": str(key_path),
                "subject": PUSH_SUBJECT,
                "data": data,
                "workers": workers,
            }
        )
    )
    await wait_quiet()
    start = await sink.count()
    sink0, self0, busy0, t0 = sink.cpu(), self_cpu(), machine_busy(), time.perf_counter()
    kids0 = children_cpu()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--baseline-child",
        str(spec),
        stdout=subprocess.PIPE,
        preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CORE}),
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"baseline child exited with {proc.returncode}")
    result = orjson.loads(out.splitlines()[-1])
    wall = time.perf_counter() - t0
    sink_cpu, self_used = sink.cpu() - sink0, self_cpu() - self0
    child_cpu = children_cpu() - kids0  # all of it, start-up and imports too
    other = max(0.0, machine_busy() - busy0 - sink_cpu - self_used - child_cpu)
    await asyncio.sleep(0.3)
    rows = await sink.attempts(start)
    n = len(endpoints)
    return {
        "workers": workers,
        "count": n,
        "per_s": n / result["seconds"],
        "client_cpu_us_per_push": result["cpu_s"] / n * 1e6,
        "push_service_cpu_s": sink_cpu,
        "push_service_util": sink_cpu / wall,
        "other_util": other / wall,
        "sink": fanout_check(rows, {e.rsplit("/", 1)[1] for e in endpoints}),
        **result,
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    n = args.subscribers
    keys = PushKeys.new()
    sink = await PushSink.start()
    server: Server | None = None
    keep = Path(tempfile.mkdtemp(prefix="bench-push-key-"))
    try:
        endpoints = [sink.endpoint(i) for i in range(n)]
        expected = {e.rsplit("/", 1)[1] for e in endpoints}
        populated: dict[str, Any] = {}

        async def prepare(s: Server) -> None:
            if args.populate == "db":
                populated.update(
                    await prepopulate_push(
                        Path(s.env["SUNBID_DATA_DIR"]), endpoints, PUSH_TOPIC, keys
                    )
                )

        server = await start_server(
            "sunbid", push_env(sink), prepare=prepare, projects=(PUSH_PROJECT,)
        )
        print(f"  server pid {server.pid}, push service pid {sink.pid} ({sink.origin})")
        if args.populate == "http":
            populated = await subscribe_http(
                server, endpoints, PUSH_TOPIC, keys, connections=args.subscribe_connections
            )
        print(
            f"  {n:,} subscriptions via {populated['via']} in {populated['seconds']:.1f} s "
            f"({populated['per_second']:,.0f}/s)",
            flush=True,
        )
        pub = await Publisher.open(server, PUSH_PROJECT)
        http = await HttpConn.open(server.port)
        runs = []
        for i in range(args.repeats):
            profile = args.profile_seconds if args.profile and i == 0 else 0.0
            r = await fanout(server, sink, pub, http, n, expected, profile)
            runs.append(r)
            print(
                f"  run {i + 1}: 201 in {r['publish_201_ms']:.1f} ms, first push "
                f"+{r['first_after_publish_s'] * 1e3:.0f} ms, "
                f"last +{r['last_after_publish_s']:.2f} s"
                f" -> {r['per_s_first_to_last']:,.0f}/s (first-last), "
                f"{r['per_s_publish_to_last']:,.0f}/s (publish-last); server CPU "
                f"{r['server_cpu_s']:.2f} s ({r['server_cpu_us_per_push']:.0f} µs/push, "
                f"children {r['server_children_cpu_s']:.2f} s), other util {r['other_util']:.0%}; "
                f"sink: {r['sink']['distinct']:,} distinct, {r['sink']['duplicated']} dup, "
                f"{r['sink']['missing']} missing; deliveries {r['deliveries']}",
                flush=True,
            )
        event = pub.last
        pub.close()
        http.close()

        from push.payload import build_payload

        payload = build_payload(event)
        key_path = keep / VAPID_KEY_FILE
        shutil.copy2(Path(server.env["SUNBID_DATA_DIR"]) / VAPID_KEY_FILE, key_path)
        server.stop()
        server = None

        await wait_quiet()
        ceiling = crypto_ceiling(payload, keys, key_path, args.ceiling_seconds)
        print(
            f"  in-process ceiling ({len(payload)} B payload, core {CLIENT_CORE}): encrypt "
            f"{ceiling['encrypt']['us_each']:.0f} µs ({ceiling['encrypt']['per_s']:,.0f}/s); "
            f"+ VAPID signature per message {ceiling['encrypt_sign']['us_each']:.0f} µs "
            f"({ceiling['encrypt_sign']['per_s']:,.0f}/s)",
            flush=True,
        )

        baselines = []
        if args.baseline_count:
            subset = endpoints[: args.baseline_count]
            for workers in (0, BASELINE_WORKERS):
                b = await baseline(sink, subset, keys, key_path, payload.decode(), workers)
                baselines.append(b)
                how = "sequential" if not workers else f"{workers} threads"
                print(
                    f"  pywebpush, {how}: {b['count']:,} in {b['seconds']:.1f} s = "
                    f"{b['per_s']:,.0f}/s ({b['client_cpu_us_per_push']:.0f} µs CPU/push), "
                    f"errors {b['error_count']}, sink ok {b['sink']['ok']}, push service util "
                    f"{b['push_service_util']:.0%}, other util {b['other_util']:.0%}",
                    flush=True,
                )
        return {
            "subscribers": n,
            "populate": populated,
            "runs": runs,
            "ceiling": ceiling,
            "baselines": baselines,
        }
    finally:
        if server is not None:
            server.stop()
        await sink.stop()
        shutil.rmtree(keep, ignore_errors=True)


def report(res: dict[str, Any]) -> dict[str, Any]:
    runs = res["runs"]
    n = res["subscribers"]

    def med(key: str, scale: float = 1.0, fmt: str = "{:,.0f}") -> str:
        s = spread([r[key] * scale for r in runs])
        return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"

    print(f"\nSunbid, one event to {n:,} push subscribers, {len(runs)} runs: median (range)")
    rows = [["figure", "value"]]
    rows.append(["publish 201, ms", med("publish_201_ms", fmt="{:.1f}")])
    rows.append(["first push after publish, ms", med("first_after_publish_s", 1e3)])
    rows.append(["last push after publish, s", med("last_after_publish_s", fmt="{:.2f}")])
    rows.append(["pushes/s, first to last", med("per_s_first_to_last")])
    rows.append(["pushes/s, publish to last", med("per_s_publish_to_last")])
    rows.append(["server CPU, s (process + children)", med("server_cpu_s", fmt="{:.2f}")])
    rows.append(["server CPU per push, µs", med("server_cpu_us_per_push")])
    rows.append(["  of it in child processes, s", med("server_children_cpu_s", fmt="{:.2f}")])
    rows.append(["server util (core 0)", med("server_util", 100, "{:.0f}%")])
    rows.append(["push service util (core 1)", med("push_service_util", 100, "{:.0f}%")])
    rows.append(["other util", med("other_util", 100, "{:.0f}%")])
    rows.append(
        [
            "hit exactly once / lost / duplicated",
            " / ".join(
                str(x)
                for x in (
                    sum(r["sink"]["ok"] for r in runs),
                    sum(r["sink"]["missing"] for r in runs),
                    sum(r["sink"]["duplicated"] for r in runs),
                )
            )
            + f" (of {len(runs)} runs)",
        ]
    )
    print(fmt_table(rows))
    c = res["ceiling"]
    measured = spread([r["per_s_first_to_last"] for r in runs])["median"]
    summary = {
        "per_s_first_to_last": spread([r["per_s_first_to_last"] for r in runs]),
        "per_s_publish_to_last": spread([r["per_s_publish_to_last"] for r in runs]),
        "server_cpu_us_per_push": spread([r["server_cpu_us_per_push"] for r in runs]),
        "ratio_to_encrypt_ceiling": measured / c["encrypt"]["per_s"],
        "ratio_to_encrypt_sign_ceiling": measured / c["encrypt_sign"]["per_s"],
    }
    print(
        f"\nceiling on one core: encrypt {c['encrypt']['per_s']:,.0f}/s, encrypt + VAPID "
        f"signature {c['encrypt_sign']['per_s']:,.0f}/s (signature alone "
        f"{c['sign']['us_each']:.0f} µs); measured / ceiling = "
        f"{summary['ratio_to_encrypt_ceiling']:.2f} (encrypt), "
        f"{summary['ratio_to_encrypt_sign_ceiling']:.2f} (encrypt + signature)"
    )
    if res["baselines"]:
        rows = [["pywebpush.webpush() per subscriber", "count", "pushes/s", "CPU µs/push"]]
        rows[0] += ["push service util", "other util", "ok"]
        for b in res["baselines"]:
            rows.append(
                [
                    "sequential" if not b["workers"] else f"{b['workers']} threads",
                    f"{b['count']:,}",
                    f"{b['per_s']:,.0f}",
                    f"{b['client_cpu_us_per_push']:.0f}",
                    f"{b['push_service_util']:.0%}",
                    f"{b['other_util']:.0%}",
                    str(b["sink"]["ok"] and not b["error_count"]),
                ]
            )
            summary[f"speedup_vs_pywebpush_{b['workers']}"] = measured / b["per_s"]
        print()
        print(fmt_table(rows))
        print(
            "Sunbid / pywebpush: "
            + ", ".join(
                f"{measured / b['per_s']:.1f}x ("
                + ("sequential" if not b["workers"] else f"{b['workers']} threads")
                + ")"
                for b in res["baselines"]
            )
        )
    return summary


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="fan-outs, a fresh event each")
    parser.add_argument(
        "--populate",
        choices=("http", "db"),
        default="http",
        help="create the subscriptions through the API (default) or write push.db first",
    )
    parser.add_argument(
        "--subscribe-connections",
        type=int,
        default=1,
        help="concurrent subscription requests with --populate http (default 1: concurrent "
        "ones can be answered 500 while push.queue.PushQueue's transactions on its one "
        "connection collide)",
    )
    parser.add_argument(
        "--baseline-count",
        type=int,
        default=10_000,
        help="subscribers for each pywebpush baseline (0: skip it)",
    )
    parser.add_argument("--ceiling-seconds", type=float, default=2.0)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the server and its children with py-spy during the first fan-out "
        "(bench/results/profile-push_throughput.txt); that run's figures include py-spy",
    )
    parser.add_argument("--profile-seconds", type=float, default=4.0)
    parser.add_argument("--baseline-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not sunbid_available():
        raise SystemExit("sunbid is not installed in this venv")
    pin_self()
    raise_nofile()
    print_machine()
    print(
        f"push throughput: {args.subscribers:,} subscribers of {PUSH_TOPIC}; push service "
        f"(fast mode) in its own process on core {CLIENT_CORE}; pywebpush baseline on core "
        f"{SERVER_CORE}\n",
        flush=True,
    )
    res = await bench(args)
    res["summary"] = report(res)
    if args.profile:
        print()
        print(profile_summary("sunbid", name="push_throughput"))
        parts = profile_parts(BENCH / "results" / "profile-push_throughput.txt")
        res["profile_parts"] = parts
        print("by part of the work:")
        for name, share in parts.items():
            print(f"  {share:6.1%}  {name}")
    path = save_results("push_throughput", res)
    print(f"\nresults: {path.relative_to(BENCH.parent)}")
    ok = all(r["complete"] for r in res["runs"]) and all(
        b["sink"]["ok"] and not b["error_count"] for b in res["baselines"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    if "--baseline-child" in sys.argv:
        baseline_child(sys.argv[sys.argv.index("--baseline-child") + 1])
    else:
        sys.exit(run(main()))
