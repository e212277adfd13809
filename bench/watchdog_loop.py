"""The watchdog's check alone: `observe(fact(event))` over a log's events.

No store, no bus, no warnings stored: the events are read from a compliance
log (`bench/compliance.py` makes one in `bench/results/`) into memory first,
then a fresh watchdog with the shipped rules, calendar and directory checks
them one by one, as the live path does after each publication. The best of
`--repeat` passes is reported, per event, with the collector off as in a
rebuild. Run it in two checkouts on the same log to compare code.

    .venv/bin/python bench/watchdog_loop.py bench/results/compliance-log-300000-15000.db \\
        [--events 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import inspect
import sqlite3
import time

from server.compliance.calendar import WorkCalendar
from server.compliance.rules import Rules
from server.compliance.watchdog import Watchdog
from server.core.events import StoredEvent
from server.directory import Directory
from server.domain import Domain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("log", help="an SQLite log (bench/results/compliance-log-….db)")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with sqlite3.connect(f"file:{args.log}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT seq, project, category, agency, region, stage, CAST(doc AS BLOB)"
            " FROM events ORDER BY seq LIMIT ?",
            (args.events,),
        ).fetchall()
    events = [StoredEvent(*row) for row in rows]
    domain = Domain.load()
    options = {}
    # (The code before the directory's kinds takes no agencies.)
    if "agencies" in inspect.signature(Watchdog).parameters:
        agencies = Directory.load().agencies.values()
        options["agencies"] = {a.code: {"agency_kind": a.kind} for a in agencies if a.kind}
    best = float("inf")
    for _ in range(args.repeat):
        watchdog = Watchdog(Rules.load(domain=domain), WorkCalendar.load(), domain, **options)
        gc.disable()
        started = time.perf_counter()
        for event in events:
            watchdog.observe(watchdog.fact(event))
        best = min(best, time.perf_counter() - started)
        gc.enable()
    per_event = best / len(events) * 1e6
    print(f"{len(events):,} events: {per_event:.2f} µs per event (best of {args.repeat})")


if __name__ == "__main__":
    main()
