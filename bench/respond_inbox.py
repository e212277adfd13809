"""The staff inbox of the public's cases: the first page of open enquiries,
and the cursor's later pages, with 10,000 of them open.

A `sunbid serve` (core 0) with 60 projects, 10 for each of the directory's
six agencies, takes `--enquiries` questions through
`POST /api/projects/{id}/enquiries` from 16 concurrent askers (each its own
connection, source address and `X-Device-Id`; the filing limits raised),
and `--requests` disclosure requests through `POST /api/disclosure-requests`
spread over the same agencies. Every case stays open. A walk of every page
of `GET /api/enquiries?status=open` checks that each enquiry comes once, in
due order, and keeps the cursor of page `--page`.

Then, `--runs` times, each query is sent `--requests-per-query` times, one
after the other on one keep-alive connection (p50/p99/max of the answer
time, server CPU per request):

- `GET /api/enquiries?status=open&limit=50` (an admin: every agency);
- `GET /api/enquiries?agency=YW-ZFCG&status=open&limit=50` (that agency's
  publisher token: its own inbox);
- the same as the first, at page `--page` (`cursor=` as the walk got it);
- `GET /api/disclosure-requests?status=open&limit=50` (open is two
  statuses there: received and extended).

The simplest alternative: the same SQL without the inbox's indexes. A copy
of respond.db (SQLite's backup API, taken while the server runs) is opened
with the server's `CaseStore` in a child process on core 0 and its
`inbox()` (the SQL the API runs, and the rows' decoding) is timed with the
indexes, then with `cases_inbox`, `cases_by_status` and `cases_by_project`
dropped (the primary key stays): the store alone, no HTTP, no JSON, no
decryption. The query plans are printed. `--db` runs only this
comparison, on a copy of another respond.db (the later page found by
walking the store's pages).

    .venv/bin/python bench/respond_inbox.py [--enquiries 10000] [--requests 10000]
        [--runs 3] [--requests-per-query 400] [--page 100]
    .venv/bin/python bench/respond_inbox.py --db PATH/respond.db [--page 50]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from common import (
    BIN,
    ROOT,
    SERVER_CORE,
    CpuWindow,
    HttpConn,
    Server,
    ServerError,
    fmt_table,
    percentile,
    pin_self,
    print_machine,
    raise_nofile,
    run,
    save_results,
    start_server,
    wait_quiet,
)
from respond_load import AGENCIES, UNLIMITED, create_projects, fill, project_ids

AGENCY = "YW-ZFCG"  # the agency whose own inbox is read
LIMIT = 50
INBOX_INDEXES = ("cases_inbox", "cases_by_status", "cases_by_project")
TARGET_MS = 50.0


def publisher_token(server: Server, agency: str) -> str:
    out = subprocess.run(
        [
            str(BIN / "sunbid"), "token", "create", "--name", f"bench-{agency}",
            "--role", "publisher", "--agency", agency,
        ],
        cwd=ROOT,
        env={**os.environ, **server.env},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    if out.returncode != 0:
        raise ServerError(f"sunbid token create failed: {out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1].strip()


async def walk(server: Server, path: str, page: int) -> dict[str, Any]:
    """Every page of `path` by its cursor: each case once, oldest due first;
    the cursor that leads to page `page`."""
    http = await HttpConn.open(server.port)
    seen: list[tuple[str, str]] = []
    cursor: str | None = None
    wanted: str | None = None
    pages = 0
    t0 = time.perf_counter()
    try:
        while True:
            url = path + (f"&cursor={quote(cursor)}" if cursor else "")
            status, body = await http.get(url, server.token)
            if status != 200:
                raise ServerError(f"GET {url} -> {status}: {body[:300]!r}")
            doc = orjson.loads(body)
            pages += 1
            seen += [(item["due"], item["id"]) for item in doc["items"]]
            cursor = doc["next_cursor"]
            if pages == page - 1:
                wanted = cursor
            if cursor is None:
                break
    finally:
        http.close()
    took = time.perf_counter() - t0
    return {
        "pages": pages,
        "cases": len(seen),
        "distinct": len({case_id for _, case_id in seen}),
        "in_order": all(a <= b for a, b in itertools.pairwise(seen)),
        "seconds": took,
        "ms_per_page": took / pages * 1e3,
        "cursor": wanted,
        "due_times": len({due for due, _ in seen}),
    }


async def timed_gets(
    server: Server, path: str, token: str, count: int, expect_items: int
) -> dict[str, Any]:
    http = await HttpConn.open(server.port)
    times: list[float] = []
    try:
        status, body = await http.get(path, token)  # one before timing: the connection warm
        if status != 200 or len(orjson.loads(body)["items"]) != expect_items:
            raise ServerError(f"GET {path} -> {status}: {body[:300]!r}")
        await wait_quiet()
        window = CpuWindow(server)
        for _ in range(count):
            t = time.perf_counter()
            status, body = await http.get(path, token)
            times.append((time.perf_counter() - t) * 1e3)
            if status != 200:
                raise ServerError(f"GET {path} -> {status}: {body[:300]!r}")
        cpu = window.stop()
    finally:
        http.close()
    return {
        "requests": count,
        "p50_ms": percentile(times, 50),
        "p99_ms": percentile(times, 99),
        "max_ms": max(times),
        "server_us_per_request": cpu["server_cpu_s"] / count * 1e6,
        "bytes": len(body),
        "other_util": cpu["other_util"],
        "server_util": cpu["server_util"],
    }


def copy_db(live: Path, dest: Path) -> None:
    """A consistent copy of a SQLite file another process is writing (backup API)."""
    with sqlite3.connect(f"file:{live}?mode=ro", uri=True) as src, sqlite3.connect(dest) as dst:
        src.backup(dst)
    sqlite3.connect(dest).close()


# --------------------------------------------------------------------------
# Child: the store's inbox() on a copy of respond.db, with and without indexes


async def child_sql(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from server.respond.cases import CaseStore

    queries = orjson.loads(args.queries)
    out: dict[str, Any] = {}
    store = CaseStore(Path(args.db))
    await store.open()  # (recreates any index missing: dropped after)
    try:
        if args.drop_indexes:
            for name in INBOX_INDEXES:
                await store.db.execute(f"DROP INDEX IF EXISTS {name}")
        captured: list[tuple[str, list[Any]]] = []
        rows = store.rows

        async def capture(sql: str, params: Any = ()) -> list[Any]:
            captured.append((sql, list(params)))
            return await rows(sql, params)

        for name, q in queries.items():
            if isinstance(q["cursor"], str) and q["cursor"].startswith("page:"):
                q["cursor"] = await cursor_of_page(store, q, int(q["cursor"][5:]))
            store.rows = capture  # type: ignore[method-assign]
            found, _ = await store.inbox(q["kind"], q["filters"], q["statuses"], q["cursor"], LIMIT)
            store.rows = rows  # type: ignore[method-assign]
            sql, params = captured[-1]
            plan = [r[3] for r in await store.rows("EXPLAIN QUERY PLAN " + sql, params)]
            times = []
            for _ in range(args.count):
                t = time.perf_counter()
                found, _ = await store.inbox(
                    q["kind"], q["filters"], q["statuses"], q["cursor"], LIMIT
                )
                times.append((time.perf_counter() - t) * 1e3)
            out[name] = {
                "p50_ms": percentile(times, 50),
                "p99_ms": percentile(times, 99),
                "max_ms": max(times),
                "rows": len(found),
                "plan": plan,
            }
    finally:
        await store.close()
    return out


async def cursor_of_page(store: Any, q: dict[str, Any], page: int) -> str | None:
    """The cursor that leads to page `page` of a query (None: there are fewer)."""
    cursor = None
    for _ in range(page - 1):
        _, cursor = await store.inbox(q["kind"], q["filters"], q["statuses"], cursor, LIMIT)
        if cursor is None:
            return None
    return cursor


def run_sql_child(db: Path, queries: dict[str, Any], count: int, drop: bool) -> dict[str, Any]:
    argv = [
        sys.executable, str(Path(__file__).resolve()), "--child-sql", str(db),
        "--queries", orjson.dumps(queries).decode(), "--count", str(count),
        *(["--drop-indexes"] if drop else []),
    ]  # fmt: skip
    proc = subprocess.run(
        argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CORE}),
        check=False,
    )
    if proc.returncode != 0:
        raise ServerError(f"--child-sql exited with {proc.returncode}: {proc.stderr[-3000:]}")
    return dict(orjson.loads(proc.stdout.splitlines()[-1]))


def sql_queries(page: str | None, requests: bool) -> dict[str, dict[str, Any]]:
    """What the API's queries ask of CaseStore.inbox()."""
    queries: dict[str, dict[str, Any]] = {
        "open, every agency": {
            "kind": "enquiry", "filters": {}, "statuses": ["open"], "cursor": None,
        },
        f"open, agency={AGENCY}": {
            "kind": "enquiry", "filters": {"agency": AGENCY}, "statuses": ["open"], "cursor": None,
        },
    }  # fmt: skip
    if page is not None:
        queries["open, a later page"] = {
            "kind": "enquiry",
            "filters": {},
            "statuses": ["open"],
            "cursor": page,
        }
    if requests:
        queries["disclosure requests, open"] = {
            "kind": "disclosure_request",
            "filters": {},
            "statuses": ["received", "extended"],
            "cursor": None,
        }
    return queries


async def sql_comparison(
    db: Path, queries: dict[str, Any], count: int, runs: int
) -> dict[str, list[dict[str, Any]]]:
    """CaseStore.inbox() on `db` with its indexes and without, alternating."""
    sql: dict[str, list[dict[str, Any]]] = {"indexed": [], "no index": []}
    for _ in range(runs):
        for label, drop in (("indexed", False), ("no index", True)):
            await wait_quiet()
            sql[label].append(run_sql_child(db, queries, count, drop))
    return sql


def print_sql(sql: dict[str, list[dict[str, Any]]], what: str) -> None:
    print(f"The same SQL through CaseStore.inbox() on a copy of {what} (no HTTP), median:")
    rows = [["query", "rows", "indexed p50 ms", "p99 ms", "no index p50 ms", "p99 ms", "ratio p50"]]
    for name in sql["indexed"][0]:
        a = statistics.median(s[name]["p50_ms"] for s in sql["indexed"])
        a99 = statistics.median(s[name]["p99_ms"] for s in sql["indexed"])
        b = statistics.median(s[name]["p50_ms"] for s in sql["no index"])
        b99 = statistics.median(s[name]["p99_ms"] for s in sql["no index"])
        found = str(sql["indexed"][0][name]["rows"])
        rows.append(
            [name, found, f"{a:.2f}", f"{a99:.2f}", f"{b:.2f}", f"{b99:.2f}", f"{b / a:.0f}×"]
        )
    print(fmt_table(rows))
    for label in ("indexed", "no index"):
        for name, v in sql[label][0].items():
            print(f"  plan, {label}, {name}: {' / '.join(v['plan'])}")


async def only_sql(args: argparse.Namespace) -> int:
    """--db: the SQL comparison alone, on a copy of a respond.db made elsewhere."""
    pin_self()
    print_machine()
    work = Path(tempfile.mkdtemp(prefix="bench-respond-inbox-"))
    try:
        copy = work / "respond.db"
        copy_db(Path(args.db), copy)
        with sqlite3.connect(copy) as db:
            counts = db.execute(
                "SELECT kind || '/' || status, COUNT(*) FROM cases GROUP BY 1"
            ).fetchall()
        print("cases: " + ", ".join(f"{k} {n:,}" for k, n in counts))
        queries = sql_queries(f"page:{args.page}", requests=True)
        sql = await sql_comparison(copy, queries, args.requests_per_query, args.runs)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print_sql(sql, args.db)
    path = save_results("respond_inbox_sql", {"args": vars(args), "cases": counts, "sql": sql})
    print(f"results: {path.relative_to(ROOT)}")
    return 0


# --------------------------------------------------------------------------


async def amain(args: argparse.Namespace) -> int:
    pin_self()
    raise_nofile()
    print_machine()
    tokens: dict[str, str] = {}

    async def prepare(s: Server) -> None:
        tokens["publisher"] = publisher_token(s, AGENCY)

    env = {**UNLIMITED, "PYTHONPATH": str(ROOT)}  # the server of this checkout
    server = await start_server("sunbid", env, prepare=prepare, projects=())
    work = Path(tempfile.mkdtemp(prefix="bench-respond-inbox-"))
    try:
        projects = project_ids(10)
        await create_projects(server, projects)
        print(f"filing {args.enquiries:,} enquiries on {len(projects)} projects ...", flush=True)
        asked = await fill(server, "enquiry", [p for p, _, _ in projects], args.enquiries)
        print(f"  {asked['filed']:,} in {asked['seconds']:.1f} s ({asked['per_s']:,.0f}/s)")
        requested = {"filed": 0, "seconds": 0.0, "per_s": 0.0}
        if args.requests:
            print(f"filing {args.requests:,} disclosure requests ...", flush=True)
            requested = await fill(server, "request", list(AGENCIES), args.requests)
            print(
                f"  {requested['filed']:,} in {requested['seconds']:.1f} s "
                f"({requested['per_s']:,.0f}/s)"
            )
        open_path = f"/api/enquiries?status=open&limit={LIMIT}"
        checked = await walk(server, open_path, args.page)
        print(
            f"walk of {open_path}: {checked['pages']} pages, {checked['cases']:,} cases "
            f"({checked['distinct']:,} distinct, in order: {checked['in_order']}, "
            f"{checked['due_times']} distinct due times), {checked['ms_per_page']:.1f} ms a page"
        )
        if checked["distinct"] != args.enquiries or not checked["in_order"]:
            raise ServerError(f"the inbox walk is wrong: {checked}")
        page_cursor = checked["cursor"]
        agency_n = sum(1 for p, a, _ in projects if a == AGENCY)
        queries = {
            "open, every agency (admin)": (open_path, server.token, LIMIT),
            f"open, agency={AGENCY} (its publisher)": (
                f"/api/enquiries?agency={AGENCY}&status=open&limit={LIMIT}",
                tokens["publisher"],
                min(LIMIT, args.enquiries * agency_n // len(projects)),
            ),
            f"open, page {args.page} (cursor)": (
                f"{open_path}&cursor={quote(page_cursor)}" if page_cursor else None,
                server.token,
                LIMIT,
            ),
        }
        if args.requests:
            queries["disclosure requests, open (admin)"] = (
                f"/api/disclosure-requests?status=open&limit={LIMIT}",
                server.token,
                LIMIT,
            )
        runs: list[dict[str, Any]] = []
        for r in range(args.runs):
            one: dict[str, Any] = {}
            for name, (path, token, expect) in queries.items():
                if path is None or expect is None:
                    continue
                one[name] = await timed_gets(server, path, token, args.requests_per_query, expect)
            one["walk"] = await walk(server, open_path, args.page)
            runs.append(one)
            print(f"run {r + 1}:", flush=True)
            for name, v in one.items():
                if name == "walk":
                    print(f"  walk of all {v['pages']} pages: {v['seconds'] * 1e3:.0f} ms")
                    continue
                print(
                    f"  {name}: p50 {v['p50_ms']:.2f} ms, p99 {v['p99_ms']:.2f} ms, "
                    f"max {v['max_ms']:.2f} ms, "
                    f"server {v['server_us_per_request']:.0f} µs/request, "
                    f"other util {v['other_util']:.0%}"
                )
        # The simplest alternative: the same SQL on a copy without the indexes.
        live = Path(server.env["SUNBID_DATA_DIR"]) / "respond.db"
        copy = work / "respond.db"
        copy_db(live, copy)
        queries_sql = sql_queries(page_cursor, bool(args.requests))
        sql = await sql_comparison(copy, queries_sql, args.requests_per_query, args.runs)
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)

    # Report: medians of the runs.
    def med(name: str, key: str) -> float:
        return statistics.median(r[name][key] for r in runs)

    print()
    print(
        f"Inbox, {args.enquiries:,} open enquiries ({args.requests:,} open disclosure requests), "
        f"limit {LIMIT}, {args.requests_per_query} requests per query and run, "
        f"median of {args.runs} runs:"
    )
    rows = [["query", "p50 ms", "p99 ms", "max ms", "server µs/req", "bytes", "other util"]]
    summary: dict[str, Any] = {}
    for name in runs[0]:
        if name == "walk":
            continue
        summary[name] = {k: med(name, k) for k in ("p50_ms", "p99_ms", "max_ms")}
        rows.append(
            [
                name,
                f"{med(name, 'p50_ms'):.2f}",
                f"{med(name, 'p99_ms'):.2f}",
                f"{med(name, 'max_ms'):.2f}",
                f"{med(name, 'server_us_per_request'):.0f}",
                str(runs[0][name]["bytes"]),
                f"{max(r[name]['other_util'] for r in runs):.0%}",
            ]
        )
    print(fmt_table(rows))
    walks = [r["walk"]["seconds"] * 1e3 for r in runs]
    print(
        f"  walk of all {runs[0]['walk']['pages']} pages: median {statistics.median(walks):.0f} ms "
        f"({statistics.median(walks) / runs[0]['walk']['pages']:.1f} ms a page)"
    )
    first = summary["open, every agency (admin)"]["p99_ms"]
    verdict = "met" if first <= TARGET_MS else "NOT met"
    print(f"  target first page ≤ {TARGET_MS:.0f} ms (p99): {verdict}")
    print()
    print_sql(sql, f"respond.db (the later page: {args.page})")
    path = save_results(
        "respond_inbox",
        {
            "args": vars(args),
            "filing": {"enquiries": asked | {"ids": None}, "requests": requested | {"ids": None}},
            "walk": checked,
            "runs": runs,
            "summary": summary,
            "sql": sql,
        },
    )
    print(f"results: {path.relative_to(ROOT)}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--enquiries", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=10_000, help="open disclosure requests")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--requests-per-query", type=int, default=400)
    ap.add_argument("--page", type=int, default=100, help="the later page timed")
    ap.add_argument(
        "--db",
        help="only the SQL comparison, on a copy of this respond.db (e.g. the 100,000 cases "
        "of bench/respond_rebuild.py)",
    )
    ap.add_argument("--child-sql", help=argparse.SUPPRESS)
    ap.add_argument("--queries", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--drop-indexes", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_sql:
        args.db = args.child_sql
        print(orjson.dumps(run(child_sql(args))).decode(), flush=True)
        return 0
    if args.db:
        return int(run(only_sql(args)))
    return int(run(amain(args)))


if __name__ == "__main__":
    sys.exit(main())
