"""OCDS release feed: a page of 1,000 releases on a log of 1,000,000 events.

Target (issue 15): `GET /api/ocds/releases?since=S&limit=1000` answers in
≤ 100 ms. The log is `compliance.py`'s (1,000,000 events in 50,000 projects
of every category, made once through the store and kept in bench/results/;
this script makes it if it is missing, ~4 min). A copy is served by
`sunbid serve` pinned to core 0; this client, on core 1, asks over one
keep-alive connection without `Accept-Encoding` (no gzip: the build is what
is timed) for pages at the start, the middle and the end of the log, and for
the same pages of raw events (`GET /api/events?since=S&limit=1000`, the
simplest thing a reader could take instead and transform itself). Each
figure is p50/p99 of `--requests` answers, the whole set run `--runs` times
(medians reported), after a warm-up. The pure transform (event JSON →
releases → package bytes, no I/O) is timed apart in this process.

    .venv/bin/python bench/ocds_feed.py [--requests 40] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson
from common import (
    ROOT,
    CpuWindow,
    HttpConn,
    fmt_table,
    make_server,
    percentile,
    pin_self,
    print_machine,
)

RESULTS = Path(__file__).resolve().parent / "results"
EVENTS, PROJECTS = 1_000_000, 50_000
LOG = RESULTS / f"compliance-log-{EVENTS}-{PROJECTS}.db"
PAGE = 1000
TARGET_MS = 100.0


def ensure_log() -> None:
    if LOG.exists():
        return
    print(f"making {LOG.relative_to(ROOT)} with bench/compliance.py (once, ~4 min)", flush=True)
    subprocess.run(
        [sys.executable, str(Path(__file__).with_name("compliance.py")), "--child", "generate"],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )


def head_of(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT MAX(seq) FROM events").fetchone()[0])


async def timed(port: int, path: str, requests: int) -> tuple[list[float], int]:
    http = await HttpConn.open(port)
    times, size = [], 0
    try:
        for _ in range(requests):
            start = time.perf_counter()
            status, body = await http.get(path)
            times.append((time.perf_counter() - start) * 1000)
            if status != 200:
                raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
            size = len(body)
    finally:
        http.close()
    return times, size


def transform_ms(since: int, repeat: int) -> list[float]:
    """The transform alone: the page's stored event JSON to the package's bytes."""
    sys.path.insert(0, str(ROOT))  # this checkout's server package, not the venv's
    from server.domain import Domain
    from server.interop.ocds import Context, Publication, release_package

    with sqlite3.connect(f"file:{LOG}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT doc FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (since, PAGE)
        ).fetchall()
    context = Context("ocds-sunbid", {}, Domain.load().facts)
    publication = Publication("Sunbid", "https://example.org/license", "https://example.org/c")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        events = [orjson.loads(row[0]) for row in rows]
        package = release_package(
            events,
            {e["seq"]: e for e in events},
            context,
            publication,
            uri="https://example.org/api/ocds/releases",
            published=events[-1]["published_at"],
            next_page=None,
        )
        orjson.dumps(package)
        times.append((time.perf_counter() - start) * 1000)
    return times


async def main(args: argparse.Namespace) -> None:
    pin_self()
    print_machine()
    ensure_log()
    head = head_of(LOG)
    print(f"log: {head:,} events ({LOG.relative_to(ROOT)}); load average {os.getloadavg()}")
    server = make_server("sunbid", {"SUNBID_COMPLIANCE_SNAPSHOT_EVENTS": "0"})
    # `python -m server` from this checkout (the venv's `sunbid` may be another's).
    server.argv = [sys.executable, "-m", "server", *server.argv[1:]]
    assert server.workdir is not None
    data = server.workdir / "data"
    data.mkdir(parents=True)
    shutil.copyfile(LOG, data / "sunbid.db")
    positions = {"start": 0, "middle": head // 2, "end": head - PAGE}
    try:
        server.start(timeout=600)  # the watchdog rebuilds from the whole log first
        paths = {
            (where, kind): (
                f"/api/ocds/releases?since={since}&limit={PAGE}"
                if kind == "ocds"
                else f"/api/events?since={since}&limit={PAGE}"
            )
            for where, since in positions.items()
            for kind in ("ocds", "events")
        }
        for path in paths.values():
            await timed(server.port, path, 3)  # warm the page cache and the code
        runs: dict[tuple[str, str], list[tuple[float, float]]] = {key: [] for key in paths}
        sizes: dict[tuple[str, str], int] = {}
        others = []
        for _ in range(args.runs):
            window = CpuWindow(server)
            for key, path in paths.items():
                times, sizes[key] = await timed(server.port, path, args.requests)
                runs[key].append((percentile(times, 50), percentile(times, 99)))
            others.append(window.stop()["other_util"])
        rows = [["page of 1,000 (ms)", "p50", "p99", "bytes", "runs p50"]]
        for key, figures in runs.items():
            p50 = statistics.median(f[0] for f in figures)
            p99 = statistics.median(f[1] for f in figures)
            shown = " ".join(f"{f[0]:.1f}" for f in figures)
            label = f"{key[1]} at the {key[0]}"
            rows.append([label, f"{p50:.1f}", f"{p99:.1f}", f"{sizes[key]:,}", shown])
        print(fmt_table(rows))
        print(f"other util per run: {', '.join(f'{o:.0%}' for o in others)}")
        worst = max(statistics.median(f[1] for f in runs[(w, "ocds")]) for w in positions)
        print(f"worst OCDS p99 {worst:.1f} ms (target ≤ {TARGET_MS:.0f} ms)")
    finally:
        server.stop()
    pure = [statistics.median(transform_ms(positions["middle"], 20)) for _ in range(args.runs)]
    shown = ", ".join(f"{ms:.1f}" for ms in pure)
    print(f"transform alone, ms (middle page, median of 20, per run): {shown}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="answers per figure (40)")
    parser.add_argument("--runs", type=int, default=3, help="runs of the whole set (3)")
    asyncio.run(main(parser.parse_args()))
