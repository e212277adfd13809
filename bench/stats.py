"""Statistics: `GET /api/stats` on a log of 1,000,000 events (50,000 projects).

Target: ≤ 200 ms per answer.

1. **The log.** bench/compliance.py's (`bench/results/compliance-log-*.db`,
   made by it once and kept; this script makes it the same way if missing).
   It holds no statistics tables: it was written without them.
2. **First start.** `sunbid serve` on a copy of that log (its own data
   directory, `SUNBID_DEMO=0`; the shared log itself is only read): the
   statistics tables (facts per project, their cells, events per month) are
   made and the whole log folded into them at open, once. Reported: the time to `/healthz`
   (also the watchdog's rebuild, which every first start on this log does),
   and, before, the stats fold alone (and its check) in this process. The
   requests wait until the server is idle (its watchdog snapshots the
   rebuilt state after a first start).
3. **Requests.** `GET /api/stats` unfiltered and with filters (a year, a
   year and month, a category, an agency, all four), `--requests` each,
   one at a time, with `SUNBID_STATS_CACHE_SECONDS=0.001` so every answer
   is computed afresh (on a live log any publication moves the head, and the
   cache keeps nothing then); then the same with the default cache (5 s),
   as a quiet log gets it. p50/p99 of the client's time to the last byte.
4. **What it costs a publication**: appends one at a time (batches of one,
   the worst case) to a fresh log of 200 projects, with the projects table
   only and with the statistics tables too, in this process: CPU time per
   append (the load-independent figure; fsync waits are not CPU).
5. **The simplest alternative**: the same figures aggregated at request time
   from the log itself (json_extract over the events table, medians in
   Python), timed in this process with sqlite3 on the same file: what one
   writes without a projection.

Every run reports `other util` (CPU used by anything else on the machine).

    .venv/bin/python bench/stats.py [--requests 50] [--repeat 3] [--appends 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from common import (
    ROOT,
    free_port,
    machine_busy,
    percentile,
    print_machine,
    proc_cpu,
    save_results,
    self_cpu,
)

sys.path.insert(0, str(ROOT))  # this checkout's server, whatever the venv has installed
RESULTS = ROOT / "bench" / "results"
EVENTS, PROJECTS = 1_000_000, 50_000
QUERIES: dict[str, dict[str, Any]] = {
    "unfiltered": {},
    "year": {"year": 2026},
    "year+month": {"year": 2026, "month": 3},
    "category": {"category": "construction"},
    "agency": {"agency": "YW-GGZY"},
    "all four": {"year": 2025, "month": 11, "category": "gov_procurement", "agency": "YW-GGZY"},
}


def the_log() -> Path:
    log = RESULTS / f"compliance-log-{EVENTS}-{PROJECTS}.db"
    if not log.exists():
        print("no cached log: bench/compliance.py makes it (once)", flush=True)
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "compliance.py"), "--child", "generate"],
            cwd=ROOT,
            check=True,
        )
    return log


def start(log: Path, cache_seconds: str) -> tuple[subprocess.Popen[bytes], str, Path, float]:
    """`sunbid serve` on a copy of the log; the seconds until /healthz answers."""
    work = Path(tempfile.mkdtemp(prefix="bench-stats-"))
    data = work / "data"
    data.mkdir()
    shutil.copy2(log, data / "sunbid.db")
    port = free_port()
    env = {
        **os.environ,
        "SUNBID_DATA_DIR": str(data),
        "SUNBID_DEMO": "0",
        "SUNBID_STATS_CACHE_SECONDS": cache_seconds,
        "PYTHONPATH": str(ROOT),
    }
    out = work / "server.log"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {out.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    return proc, url, work, time.perf_counter() - started


def fold_seconds(log: Path) -> tuple[float, float]:
    """The statistics tables made and the whole log folded into them, as the
    first start does at open (in this process, on a copy); then `check`."""
    import asyncio

    from server.core.clock import Clock
    from server.domain import Domain
    from server.stats import open_stats
    from server.store.sqlite import SQLiteStore

    async def fold() -> tuple[float, float]:
        with tempfile.TemporaryDirectory(prefix="bench-stats-fold-") as work:
            copy = Path(work) / "sunbid.db"
            shutil.copy2(log, copy)
            store = SQLiteStore(f"sqlite:///{copy}", Clock(ZoneInfo("Asia/Shanghai")))
            table = open_stats(store, Domain.load())
            t0 = time.perf_counter()
            await store.open()
            folded = time.perf_counter() - t0
            t1 = time.perf_counter()
            problem = await table.check(store)
            checked = time.perf_counter() - t1
            await store.close()
            if problem is not None:
                raise SystemExit(f"the fold does not check: {problem}")
            return folded, checked

    return asyncio.run(fold())


def append_cpu_ms(appends: int, with_stats: bool) -> float:
    """CPU ms per append, one at a time, of lifecycle events to 200 projects."""
    import asyncio

    from server.core.clock import Clock
    from server.domain import Domain
    from server.projects import open_projects
    from server.projects.changes import registration
    from server.stats import open_stats
    from server.store import AppendRequest
    from server.store.sqlite import SQLiteStore

    domain = Domain.load()
    stages = [
        ("notice", {"deadline": "2027-01-05T09:30:00+08:00"}),
        ("clarification", {}),
        ("bid_opening", {"bidders": 4}),
        ("award", {"winner": "某公司", "amount": 1_000_000}),
        ("contract", {"signed_at": "2027-02-05T10:00:00+08:00"}),
        ("performance", {}),
        ("performance", {}),
        ("performance", {}),
    ]

    async def run() -> float:
        with tempfile.TemporaryDirectory(prefix="bench-stats-append-") as work:
            clock = Clock(ZoneInfo("Asia/Shanghai"))
            store = SQLiteStore(f"sqlite:///{Path(work) / 'sunbid.db'}", clock)
            open_projects(store, domain)
            if with_stats:
                open_stats(store, domain)
            await store.open()
            projects = []
            for n in range(200):
                project = domain.project_input(
                    {"id": f"B-{n}", "title": "项目", "category": "construction", "agency": "AG"}
                )
                await store.append(registration(project))
                projects.append(project)
            t0 = time.process_time()
            for n in range(appends):
                stage, data = stages[(n // len(projects)) % len(stages)]
                body = {"stage": stage, "title": stage, "data": data}
                draft = domain.event_input(body, "construction", clock.tz)
                await store.append(AppendRequest(project=projects[n % len(projects)], draft=draft))
            took = time.process_time() - t0
            await store.close()
            return took / appends * 1000

    return asyncio.run(run())


def settle(pid: int, limit: float = 180.0) -> float:
    """Wait until the server uses under 5 % of a core for 2 s: after a first
    start its watchdog takes a snapshot of the rebuilt state, a while of work
    that is no part of an answer. Returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        before = proc_cpu(pid)
        time.sleep(2.0)
        if (proc_cpu(pid) - before) / 2.0 < 0.05:
            break
    return time.perf_counter() - t0


def timed_requests(url: str, params: dict[str, Any], count: int) -> list[float]:
    took = []
    with httpx.Client(base_url=url, timeout=60) as client:
        client.get("/api/stats", params=params).raise_for_status()  # warm the connection
        for _ in range(count):
            t0 = time.perf_counter()
            response = client.get("/api/stats", params=params)
            response.raise_for_status()
            took.append((time.perf_counter() - t0) * 1000)
    return took


def naive_figures(db: sqlite3.Connection, category: str | None = None) -> dict[str, Any]:
    """The projection's main figures computed from the events table at request time."""
    where = "WHERE category = ?" if category else ""
    params = (category,) if category else ()
    months = db.execute(
        "SELECT substr(json_extract(CAST(doc AS TEXT), '$.published_at'), 1, 7), COUNT(*)"
        f" FROM events {where} GROUP BY 1",
        params,
    ).fetchall()
    stage_filter = "stage IN ('notice', 'prequalification', 'single_source', 'award', 'failed')"
    rows = db.execute(
        "SELECT project, category, stage, json_extract(CAST(doc AS TEXT), '$.occurred_at'),"
        " json_extract(CAST(doc AS TEXT), '$.data.amount'),"
        " json_extract(CAST(doc AS TEXT), '$.data.bidders')"
        f" FROM events WHERE {stage_filter}"
        + (" AND category = ?" if category else "")
        + " ORDER BY seq",
        params,
    ).fetchall()
    noticed: dict[str, str] = {}
    awarded: dict[str, tuple[str, Any]] = {}
    bidders: dict[str, int] = {}
    for project, _, stage, occurred, amount, count in rows:
        if stage == "award":
            awarded[project] = (occurred, amount)
        elif stage != "failed":
            noticed.setdefault(project, occurred)
        if isinstance(count, int):
            bidders[project] = count
    days = []
    for project, (occurred, _) in awarded.items():
        if project in noticed:
            delta = datetime.fromisoformat(occurred) - datetime.fromisoformat(noticed[project])
            if delta.total_seconds() >= 0:
                days.append(delta.total_seconds() / 86400)
    amounts = [a for _, a in awarded.values() if isinstance(a, int | float)]
    return {
        "months": len(months),
        "awards": len(awarded),
        "median_days": statistics.median(days) if days else None,
        "award_sum": sum(amounts),
        "median_award": statistics.median(amounts) if amounts else None,
        "mean_bidders": statistics.mean(bidders.values()) if bidders else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--requests", type=int, default=50, help="timed requests per query (50)")
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs of the simplest alternative and appends (3)"
    )
    ap.add_argument("--appends", type=int, default=2000, help="appends timed per run (2000)")
    args = ap.parse_args()
    print_machine()
    log = the_log()
    results: dict[str, Any] = {"requests": args.requests}

    folded, checked = fold_seconds(log)
    print(
        f"stats fold of the whole log at open: {folded:.1f} s; its check (verify): {checked:.1f} s"
    )
    results["fold_s"], results["check_s"] = folded, checked
    costs: dict[str, list[float]] = {"projects only": [], "with statistics": []}
    for _ in range(args.repeat):
        for name, with_stats in (("projects only", False), ("with statistics", True)):
            costs[name].append(append_cpu_ms(args.appends, with_stats))
    for name, each in costs.items():
        print(f"append, {name}: {statistics.median(each):.3f} ms CPU each (runs {each})")
    results["append_cpu_ms"] = costs
    for label, cache in (("computed every time", "0.001"), ("default cache (5 s)", "5")):
        proc, url, work, boot = start(log, cache)
        try:
            print(f"\n{label}: first start {boot:.1f} s to /healthz", flush=True)
            settled = settle(proc.pid)
            print(
                f"  server idle {settled:.0f} s later (the watchdog's first snapshot)", flush=True
            )
            b0, s0, c0, t0 = machine_busy(), proc_cpu(proc.pid), self_cpu(), time.perf_counter()
            runs: dict[str, Any] = {}
            for name, params in QUERIES.items():
                cpu0 = proc_cpu(proc.pid)
                took = timed_requests(url, params, args.requests)
                # The server's CPU per answer: what the machine's load does not inflate.
                cpu = (proc_cpu(proc.pid) - cpu0) / (args.requests + 1) * 1000
                runs[name] = {
                    "p50_ms": round(percentile(took, 50), 1),
                    "p99_ms": round(percentile(took, 99), 1),
                    "max_ms": round(max(took), 1),
                    "server_cpu_ms": round(cpu, 1),
                }
                print(
                    f"  {name:12s} p50 {runs[name]['p50_ms']:7.1f} ms"
                    f"  p99 {runs[name]['p99_ms']:7.1f} ms"
                    f"  server CPU {runs[name]['server_cpu_ms']:6.1f} ms/answer",
                    flush=True,
                )
            wall = time.perf_counter() - t0
            others = machine_busy() - b0 - (proc_cpu(proc.pid) - s0) - (self_cpu() - c0)
            head = httpx.get(url + "/healthz").json()["head"]
        finally:
            proc.terminate()
            proc.wait(30)
        busy = max(0.0, others / wall)
        load = Path("/proc/loadavg").read_text().split()[0]
        print(f"  other util {busy:.0%} of a core, load average {load}; log head {head:,}")
        results[label] = {"boot_s": boot, "queries": runs, "other_util": busy}
        shutil.rmtree(work, ignore_errors=True)

    print("\nthe simplest alternative (from the events table at request time):", flush=True)
    db = sqlite3.connect(f"file:{log}?mode=ro", uri=True)
    naive: dict[str, list[float]] = {"unfiltered": [], "category": []}
    b0, c0, t0 = machine_busy(), self_cpu(), time.perf_counter()
    for _ in range(args.repeat):
        for name, category in (("unfiltered", None), ("category", "construction")):
            t0 = time.perf_counter()
            naive_figures(db, category)
            naive[name].append(time.perf_counter() - t0)
    others = machine_busy() - b0 - (self_cpu() - c0)
    for name, took in naive.items():
        print(f"  {name:12s} median {statistics.median(took) * 1000:8.0f} ms over {len(took)} runs")
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"  other util {max(0.0, others / (time.perf_counter() - t0)):.0%}; load average {load}")

    results["naive_s"] = naive
    save_results("stats", results)


if __name__ == "__main__":
    main()
