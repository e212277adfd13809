"""Filing enquiries: how fast `POST /api/projects/{id}/enquiries` answers with
16 concurrent askers, beside a durable event publish at the same concurrency.

A `sunbid serve` (core 0; the filing limits raised) with project BENCH-1.
For `--duration` s, `--askers` askers (each its own keep-alive connection,
source address and `X-Device-Id`) post questions back to back; then, on the
same server, as many publishers post events to BENCH-1 back to back, as
`bench/publish.py` does. Alternating, `--runs` times each; the medians are
the figures. Counted: 201s per second, answer-time p50/p99/max, server CPU
per request. After the runs the server is killed with SIGKILL and started
again on the same data: every enquiry that got a 201 must be in the cases
table, every event in the log, and `sunbid verify` must accept both.

What a 201 means differs: an event is committed to the log with
`synchronous=FULL` (fsynced, in batches: group commit), a case to
respond.db, which runs `synchronous=NORMAL` like every file beside the log
(a process crash loses nothing; a power cut may lose the last
transactions), one transaction per case.

Each filing carries an `Idempotency-Key` of its own, as the app sends it
(`--no-key` to file without). `--profile` samples the server with py-spy
during the first filing window.

`--database postgresql` runs the same on the machine's PostgreSQL and Redis
(`SUNBID_DATABASE_URL`, a fresh `SUNBID_DATABASE_SCHEMA`, `SUNBID_BUS_URL`
with its own prefix; the schema is dropped after). The server process is
pinned to core 0; PostgreSQL's backends run where the kernel puts them.
The figures are taken after a warm-up and an `ANALYZE` of the new schema
(see docs/deploy.md, "A new schema's first minute").

    .venv/bin/python bench/respond_filing.py [--askers 16] [--duration 15] [--runs 3]
        [--database sqlite,postgresql] [--no-key] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    BIN,
    PROJECT,
    ROOT,
    CpuWindow,
    HttpConn,
    Server,
    fmt_table,
    healthz_head,
    percentile,
    pin_self,
    print_machine,
    profile_summary,
    raise_nofile,
    run,
    save_results,
    source_address,
    start_profiler,
    start_server,
    wait_quiet,
)
from publish import publish_for
from respond_load import UNLIMITED, ask, device
from scaleout import BUS_URL, DATABASE_URL

TARGET_P99_MS = 20.0


async def ask_for(server: Server, askers: int, duration: float, key: bool = True) -> dict[str, Any]:
    conns = [await HttpConn.open(server.port, source_address(i)) for i in range(askers)]
    times: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    stop = time.monotonic() + duration
    n = 0

    async def loop(a: int, http: HttpConn) -> None:
        nonlocal n
        while time.monotonic() < stop:
            n += 1
            t = time.perf_counter()
            status, body = await ask(http, PROJECT, n, device(a), key)
            times.append(time.perf_counter() - t)
            statuses[status] += 1
            if status != 201 and statuses[status] <= 3:
                print(f"  ! ask -> {status}: {body[:200]!r}", file=sys.stderr)

    window = CpuWindow(server)
    await asyncio.gather(*(loop(a, c) for a, c in enumerate(conns)))
    cpu = window.stop()
    for c in conns:
        c.close()
    created = statuses.get(201, 0)
    return {
        "statuses": dict(statuses),
        "created": created,
        "per_s": created / cpu["wall_s"],
        "p50_ms": percentile(times, 50) * 1e3,
        "p99_ms": percentile(times, 99) * 1e3,
        "max_ms": max(times, default=0) * 1e3,
        "server_us_per_request": cpu["server_cpu_s"] / max(created, 1) * 1e6,
        **cpu,
    }


def as_publish(r: dict[str, Any]) -> dict[str, Any]:
    """publish.py's figures under the names used here."""
    return {
        **r,
        "per_s": r["events_per_s"],
        "server_us_per_request": r["server_us_per_event"],
    }


async def count_cases(server: Server, schema: str | None) -> int:
    if schema is None:
        path = Path(server.env["SUNBID_DATA_DIR"]) / "respond.db"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT COUNT(*) FROM cases").fetchone()[0])
    import asyncpg

    conn = await asyncpg.connect(DATABASE_URL)
    try:
        return int(await conn.fetchval(f'SELECT COUNT(*) FROM "{schema}".cases'))
    finally:
        await conn.close()


async def analyze(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(DATABASE_URL)
    try:
        await conn.execute(f'ANALYZE "{schema}".events, "{schema}".projects, "{schema}".cases')
    finally:
        await conn.close()


async def drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(DATABASE_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def check_durable(
    server: Server, schema: str | None, cases: int, head: int
) -> dict[str, Any]:
    """SIGKILL, start again on the same data: every 201 still there?"""
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    server.start(timeout=120)
    head_after = await healthz_head(server.port)
    cases_after = await count_cases(server, schema)
    verify = subprocess.run(
        [str(BIN / "sunbid"), "verify"],
        cwd=ROOT,
        env={**os.environ, **server.env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return {
        "cases_with_201": cases,
        "cases_after_restart": cases_after,
        "events_head": head,
        "head_after_restart": head_after,
        "durable": cases_after == cases and head_after == head,
        "verify_rc": verify.returncode,
        "verify_out": (verify.stdout + verify.stderr).strip()[-600:],
    }


async def one_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {**UNLIMITED, "PYTHONPATH": str(ROOT)}  # the server of this checkout
    schema = None
    if kind == "postgresql":
        schema = f"bench_{secrets.token_hex(4)}"
        env |= {
            "SUNBID_DATABASE_URL": DATABASE_URL,
            "SUNBID_DATABASE_SCHEMA": schema,
            "SUNBID_BUS_URL": BUS_URL,
            "SUNBID_BUS_PREFIX": schema,
        }
    server: Server | None = None
    try:
        server = await start_server("sunbid", env)
        # Warm-up: both paths, then (PostgreSQL) the statistics autovacuum takes.
        await ask_for(server, args.askers, args.warmup)
        await publish_for(server, args.askers, args.warmup)
        if schema is not None:
            await analyze(schema)
        runs: list[dict[str, Any]] = []
        profile = None
        for r in range(args.runs):
            await wait_quiet()
            spy = None
            if args.profile and r == 0:
                spy = start_profiler(server, args.duration, f"respond_filing-{kind}")
            asked = await ask_for(server, args.askers, args.duration, not args.no_key)
            if spy is not None:
                spy.wait()
                profile = profile_summary("sunbid", top=15, name=f"respond_filing-{kind}")
            await wait_quiet()
            published = as_publish(await publish_for(server, args.askers, args.duration))
            runs.append({"ask": asked, "publish": published})
            for name, v in (("ask", asked), ("publish", published)):
                print(
                    f"  run {r + 1} {name:7}: {v['per_s']:,.0f}/s, p50 {v['p50_ms']:.1f} ms, "
                    f"p99 {v['p99_ms']:.1f} ms, max {v['max_ms']:.1f} ms, "
                    f"server {v['server_us_per_request']:.0f} µs/request "
                    f"({v['server_util']:.0%} of its core), other util {v['other_util']:.0%}",
                    flush=True,
                )
        cases = await count_cases(server, schema)
        head = await healthz_head(server.port)
        durable = await check_durable(server, schema, cases, head)
        print(
            f"  after SIGKILL + restart: {durable['cases_after_restart']:,} of "
            f"{durable['cases_with_201']:,} cases, head {durable['head_after_restart']:,} of "
            f"{durable['events_head']:,}; sunbid verify rc={durable['verify_rc']}",
            flush=True,
        )
        if profile is not None:
            print(profile, flush=True)
        return {"database": kind, "runs": runs, "durable": durable, "profile": profile}
    finally:
        if server is not None:
            server.stop()
        if schema is not None:
            await drop_schema(schema)


async def amain(args: argparse.Namespace) -> int:
    pin_self()
    raise_nofile()
    print_machine()
    print(
        f"{args.askers} concurrent askers, then as many publishers, {args.duration:g} s each, "
        f"{args.runs} runs\n"
    )
    results = []
    for kind in args.database.split(","):
        print(f"- {kind} ...", flush=True)
        results.append(await one_database(kind, args))
    rows = [["database", "request", "per s", "p50 ms", "p99 ms", "max ms", "server µs/req"]]
    rows[0] += ["server util", "other util"]
    summary: dict[str, Any] = {}
    for res in results:
        for name, label in (("ask", "file an enquiry"), ("publish", "publish an event")):
            vals = [r[name] for r in res["runs"]]

            def med(key: str, vals: list[dict[str, Any]] = vals) -> float:
                return statistics.median(v[key] for v in vals)

            summary[f"{res['database']}/{name}"] = {
                k: med(k) for k in ("per_s", "p50_ms", "p99_ms", "max_ms", "server_us_per_request")
            }
            rows.append(
                [
                    res["database"],
                    label,
                    f"{med('per_s'):,.0f}",
                    f"{med('p50_ms'):.1f}",
                    f"{med('p99_ms'):.1f}",
                    f"{med('max_ms'):.1f}",
                    f"{med('server_us_per_request'):.0f}",
                    f"{med('server_util'):.0%}",
                    f"{max(v['other_util'] for v in vals):.0%}",
                ]
            )
    print()
    print(f"median of {args.runs} runs of {args.duration:g} s, {args.askers} concurrent clients:")
    print(fmt_table(rows))
    ok = True
    for res in results:
        p99 = summary[f"{res['database']}/ask"]["p99_ms"]
        d = res["durable"]
        good = d["durable"] and d["verify_rc"] == 0
        ok = ok and good
        print(
            f"  {res['database']}: filing p99 ≤ {TARGET_P99_MS:.0f} ms "
            f"{'met' if p99 <= TARGET_P99_MS else 'NOT met'} ({p99:.1f} ms); every 201 kept "
            f"after SIGKILL and verify ok: {'yes' if good else 'NO: ' + d['verify_out']}"
        )
    path = save_results(
        "respond_filing", {"args": vars(args), "results": results, "summary": summary}
    )
    print(f"results: {path.relative_to(ROOT)}")
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--askers", type=int, default=16)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of each before timing")
    ap.add_argument("--database", default="sqlite", help="sqlite, postgresql or both (comma)")
    ap.add_argument(
        "--no-key",
        action="store_true",
        help="file without an Idempotency-Key (the app sends one): what the key costs",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="sample the server with py-spy during the first filing window "
        "(bench/results/profile-respond_filing-<database>.txt)",
    )
    args = ap.parse_args()
    return int(run(amain(args)))


if __name__ == "__main__":
    sys.exit(main())
