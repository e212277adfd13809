"""Rebuilding with the public's cases: the compliance watchdog's rebuild of a
log that holds 100,000 enquiries' answers, and the rebuild of the cases'
warnings.

1. **The data.** bench/compliance.py's log (1,000,000 events over 50,000
   projects by default; made by it if missing, ~8 min) is copied, and
   `--enquiries` enquiries are added to the copy's data directory through
   the server's own code (`open_respond`: CaseStore, the response rules,
   the calendar, sealing with a contacts.key), on a moved clock:

   - each is asked on the project of a randomly drawn event of the log, up
     to 3 days after that event, so they spread over the log's two years
     like its activity (`Respond.ask`, the clock at that moment);
   - most are answered: the `enquiry_answer` event is appended to the log
     with `SQLiteStore.append` as the answer endpoint appends it (its draft,
     its Idempotency-Key: one answer per enquiry; `AppendRequest.published_at`
     set to the answer's moment as the demo loader lays out history: the
     answers come after the log's last seq, with the times they were
     given), then the case is closed with it (`Respond.answered`); some
     are linked to an earlier answer of the same project (`Respond.link`),
     some declined (`Respond.decline`); the answer takes 0-3 days mostly,
     3-8 days often, up to 40 days now and then (the window is 3 working
     days);
   - the recent ones (asked in the last 4 days) are mostly still open,
     and a few old ones were never answered;
   - finally the timer's round at the present moment (`Respond._fire`)
     stores the warnings that came due for the open ones, as a running
     server would have.

   respond.db runs with `synchronous=OFF` and the log `NORMAL` while this is
   made. The hash chain is then checked (`SQLiteStore.verify`) and so is
   respond.db against the log (`RespondRecord.check`, what `sunbid verify`
   runs). The result is kept in `bench/results/respond-<events>-<projects>-
   <enquiries>/` and reused (`--regenerate` to make it again).
2. **The compliance rebuild**, as bench/compliance.py times it (its own
   child: `Compliance.load` + `open` in a fresh process on core 0, no
   compliance.db), on the log without the answers and on the log with them,
   alternating, `--repeat` times each.
3. **The cases' rebuild**, as `sunbid rebuild` runs it for respond.db
   (`RespondRecord.rebuild` then `RespondRecord.check`, in a fresh process
   on core 0, on a copy of the generated respond.db): read every
   `enquiry_answer` event of the log, read every case, compute every
   warning the cases yield now and each case's next alert time
   (`Respond.plan`), replace the stored ones; then check. Also timed:
   `Respond.open` (a server's start: repair of half-done answers, the
   timer's first round).

    .venv/bin/python bench/respond_rebuild.py [--events 1000000] [--projects 50000]
        [--enquiries 100000] [--repeat 3] [--regenerate]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from common import (
    CLIENT_CORE,
    ROOT,
    SERVER_CORE,
    ServerError,
    fmt_table,
    machine_busy,
    pin_self,
    print_machine,
    run,
    save_results,
    wait_quiet,
)
from compliance import RESULTS, TZ, cache_paths, cache_valid, cpu_s, reset_data, run_child, vm

SEED = 20261206
DAY = 86400.0
QUESTIONS = (
    "请问本项目的投标保证金能否以银行保函形式提交？",
    "招标文件中“类似业绩”是否包括在建项目？需要提供哪些证明材料？",
    "开标时间是否因节假日顺延？电子投标文件解密失败如何处理？",
    "本次出让地块的容积率和配套要求在哪里可以查到？",
    "竞买保证金退还需要多长时间？是否可以由第三方代缴？",
)
ANSWER = (
    "经核实，本项目接受银行保函形式的投标保证金，保函格式见招标文件第六章；"
    "开标时间不因节假日顺延，以公告为准。如有其他疑问，请通过本平台继续咨询。"
)


def set_paths(events: int, projects: int, enquiries: int) -> dict[str, Path]:
    home = RESULTS / f"respond-{events}-{projects}-{enquiries}"
    return {
        "home": home,
        "log": home / "sunbid.db",
        "cases": home / "respond.db",
        "meta": home / "meta.json",
    }


# --------------------------------------------------------------------------
# Child: add the enquiries to a copy of the log


def plan(
    log: Path, enquiries: int, now: datetime, rng: random.Random
) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str]]]:
    """Who asks what when, and how each case ends (in memory, no writes)."""
    with contextlib.closing(sqlite3.connect(f"file:{log}?mode=ro", uri=True)) as db:
        head = db.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        first = db.execute("SELECT MIN(seq) FROM events WHERE stage != 'registered'").fetchone()[0]
        seqs = sorted(rng.randrange(first, head + 1) for _ in range(enquiries))
        drawn: list[tuple[str, str]] = []
        for lo in range(0, len(seqs), 900):
            chunk = seqs[lo : lo + 900]
            found = dict(
                (s, (p, t))
                for s, p, t in db.execute(
                    "SELECT seq, project, doc ->> '$.published_at' FROM events"
                    f" WHERE seq IN ({', '.join('?' * len(set(chunk)))})",
                    sorted(set(chunk)),
                )
            )
            drawn += [found[s] for s in chunk]
        projects = {
            pid: (category, agency)
            for pid, category, agency in db.execute("SELECT id, category, agency FROM projects")
        }
    cases = []
    now_s = now.timestamp()
    for n, (project, published) in enumerate(drawn):
        asked = datetime.fromisoformat(published).timestamp() + rng.uniform(0, 3 * DAY)
        asked = min(asked, now_s - rng.uniform(60, 3 * DAY))
        r = rng.random()
        delay = (
            rng.uniform(0.05, 3)
            if r < 0.75
            else rng.uniform(3, 8)
            if r < 0.95
            else rng.uniform(8, 40)
        ) * DAY
        closed = asked + delay
        u = rng.random()
        if closed > now_s - 60 or (now_s - asked < 4 * DAY and u < 0.6) or u < 0.02:
            outcome, closed = "open", None
        elif u < 0.07:
            outcome = "declined"
        elif u < 0.10:
            outcome = "linked"  # if the project has an earlier answer by then
        else:
            outcome = "answered"
        cases.append(
            {
                "n": n,
                "project": project,
                "asked": asked,
                "closed": closed,
                "outcome": outcome,
                "question": f"{QUESTIONS[n % len(QUESTIONS)]}（{n}）",
            }
        )
    cases.sort(key=lambda c: c["asked"])
    # A link needs an answer of the same project published before: otherwise answered.
    answered_by: dict[str, list[float]] = {}
    for c in sorted((c for c in cases if c["closed"] is not None), key=lambda c: c["closed"]):
        earlier = answered_by.get(c["project"])
        if c["outcome"] == "linked" and not earlier:
            c["outcome"] = "answered"
        if c["outcome"] == "answered":
            answered_by.setdefault(c["project"], []).append(c["closed"])
    return cases, projects


async def child_generate(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from server.api.respond import ANSWER_KEY, _answer_draft
    from server.app import open_respond
    from server.core.clock import FrozenClock
    from server.domain import Domain
    from server.projects import open_projects
    from server.respond.derived import RespondRecord
    from server.settings import Settings
    from server.store import AppendRequest
    from server.store.sqlite import SQLiteStore

    paths = set_paths(args.events, args.projects, args.enquiries)
    base = cache_paths(args.events, args.projects)["log"]
    home = paths["home"].with_name(paths["home"].name + ".tmp")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    t0 = time.perf_counter()
    log = home / "sunbid.db"
    shutil.copyfile(base, log)
    t_copy = time.perf_counter() - t0

    now = datetime.now(TZ)
    rng = random.Random(SEED)
    t = time.perf_counter()
    cases, projects = plan(log, args.enquiries, now, rng)
    t_plan = time.perf_counter() - t
    print(f"  planned {len(cases):,} enquiries in {t_plan:.1f} s", file=sys.stderr, flush=True)

    clock = FrozenClock(TZ, now)
    settings = Settings.from_env(
        {
            "SUNBID_DATA_DIR": str(home),
            "SUNBID_DATABASE_URL": f"sqlite:///{log}",
            "SUNBID_DEMO": "0",
        }
    )
    domain = Domain.load()
    store = SQLiteStore(f"sqlite:///{log}", clock, synchronous="NORMAL")
    projects_table = open_projects(store, domain)  # written with each append, as a server's
    await store.open()
    respond = open_respond(settings, domain, clock, lambda warning: None)
    await respond.store.open()
    await respond.store.db.execute("PRAGMA synchronous=OFF")  # while generating only

    def at(epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, TZ)

    # 1. Asked, in time order.
    t = time.perf_counter()
    filed: dict[int, Any] = {}
    for i, c in enumerate(cases, 1):
        clock._now = at(c["asked"])
        category, agency = projects[c["project"]]
        project = {"id": c["project"], "category": category, "agency": agency}
        filed[c["n"]] = (await respond.ask(project, c["question"], f"139{c['n']:08d}")).case
        if i % 20_000 == 0:
            print(f"  {i:,} asked ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
    t_ask = time.perf_counter() - t

    # 2. The answers' events, in the order they were given, many appends in flight.
    closing = sorted((c for c in cases if c["closed"] is not None), key=lambda c: c["closed"])
    t = time.perf_counter()
    answers: dict[int, Any] = {}
    in_flight: set[asyncio.Task[Any]] = set()

    records: dict[str, Any] = {}

    async def append(c: dict[str, Any]) -> None:
        case = filed[c["n"]]
        project = records.get(c["project"])
        if project is None:  # its region routes the event, as the answer endpoint reads it
            project = records[c["project"]] = await projects_table.get(c["project"])
        draft = _answer_draft(case, c["question"], ANSWER)
        result = await store.append(
            AppendRequest(
                project=project,
                draft=draft,
                idempotency_key=ANSWER_KEY + case.id,  # one answer per enquiry, as the API
                fingerprint=hashlib.sha256(
                    orjson.dumps(draft, option=orjson.OPT_SORT_KEYS)
                ).hexdigest(),
                published_at=at(round(c["closed"], 3)),
            )
        )
        answers[c["n"]] = result.event

    for c in closing:
        if c["outcome"] != "answered":
            continue
        task = asyncio.ensure_future(append(c))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        if len(in_flight) >= 2048:
            await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
    if in_flight:
        await asyncio.gather(*in_flight)
    t_append = time.perf_counter() - t
    print(f"  {len(answers):,} answers appended in {t_append:.0f} s", file=sys.stderr, flush=True)

    # 3. The cases closed, in the order they were closed.
    t = time.perf_counter()
    last_answer: dict[str, Any] = {}  # project → its latest case answered by an event
    outcomes: Counter[str] = Counter()
    for c in closing:
        clock._now = at(c["closed"])
        case = filed[c["n"]]
        if c["outcome"] == "answered":
            event = answers[c["n"]]
            await respond.answered(case, event, "bench")
            last_answer[c["project"]] = replace(case, answer_seq=event.seq)
        elif c["outcome"] == "linked":
            await respond.link(case, last_answer[c["project"]], "bench")
        else:
            await respond.decline(case, "与本项目无关的咨询，请向有关部门反映。", "bench")
        outcomes[c["outcome"]] += 1
    outcomes["open"] = len(cases) - len(closing)
    t_close = time.perf_counter() - t

    # 4. The timer's round now: the open cases' warnings that came due.
    clock._now = datetime.now(TZ)
    t = time.perf_counter()
    await respond._fire(clock.now())
    t_fire = time.perf_counter() - t
    warnings = (await respond.store.rows("SELECT COUNT(*) FROM case_warnings"))[0][0]
    await respond.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    await respond.store.close()

    t = time.perf_counter()
    report = await store.verify()
    t_verify = time.perf_counter() - t
    record = RespondRecord(open_respond(settings, domain, clock, lambda w: None, sealing=False))
    t = time.perf_counter()
    problem = await record.check(store)
    t_check = time.perf_counter() - t
    head = store.head
    await store.close()
    with contextlib.closing(sqlite3.connect(log)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if report.first_bad_seq is not None or problem is not None:
        raise SystemExit(f"the generated data does not verify: {report} / {problem}")
    meta = {
        "events": args.events,
        "projects": args.projects,
        "enquiries": len(cases),
        "outcomes": dict(outcomes),
        "answer_events": len(answers),
        "head": head,
        "base_head": args.events + args.projects,
        "warnings": warnings,
        "generated_at": now.isoformat(timespec="seconds"),
        "asked_first": at(cases[0]["asked"]).isoformat(timespec="seconds"),
        "asked_last": at(cases[-1]["asked"]).isoformat(timespec="seconds"),
        "log_bytes": log.stat().st_size,
        "cases_bytes": (home / "respond.db").stat().st_size,
        "seconds": {
            "copy": t_copy,
            "plan": t_plan,
            "ask": t_ask,
            "append": t_append,
            "close": t_close,
            "fire": t_fire,
            "verify": t_verify,
            "check": t_check,
        },
        "verify": {"checked": report.checked, "head": report.head},
    }
    (home / "meta.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    shutil.rmtree(paths["home"], ignore_errors=True)
    home.replace(paths["home"])
    return meta


# --------------------------------------------------------------------------
# Child: the cases' rebuild, as `sunbid rebuild` runs it for respond.db


async def child_respond(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from server.app import open_respond
    from server.core.clock import Clock
    from server.domain import Domain
    from server.respond import derived
    from server.respond.derived import RespondRecord
    from server.settings import Settings
    from server.store import open_store

    data = Path(args.data_dir)
    settings = Settings.from_env(
        {"SUNBID_DATA_DIR": str(data), "SUNBID_DATABASE_URL": f"sqlite:///{args.log}"}
    )
    clock = Clock(settings.timezone)
    domain = Domain.load()
    store = open_store(settings.database_url, clock, synchronous=settings.sqlite_synchronous)
    await store.open()
    rss0 = vm("VmRSS")
    respond = open_respond(settings, domain, clock, lambda warning: None, sealing=False)
    record = RespondRecord(respond)

    # Instrumentation (nothing changes what runs): where the rebuild's time goes.
    spent: Counter[str] = Counter()

    def timed(name: str, fn: Any) -> Any:
        async def wrapper(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return await fn(*a, **kw)
            finally:
                spent[name] += time.perf_counter() - t

        return wrapper

    derived._answers = timed("read answers from the log", derived._answers)  # type: ignore[assignment]
    respond.store.all_cases = timed("read cases", respond.store.all_cases)  # type: ignore[method-assign]
    respond.store.replace_warnings = timed(  # type: ignore[method-assign]
        "store warnings", respond.store.replace_warnings
    )
    alerts_now = respond.alerts_now
    counted = Counter[str]()

    def timed_alerts(case: Any, now: datetime) -> Any:
        t = time.perf_counter()
        try:
            found = alerts_now(case, now)
            counted["alerts"] += len(found)
            return found
        finally:
            spent["compute warnings"] += time.perf_counter() - t
            counted["calls"] += 1

    respond.alerts_now = timed_alerts  # type: ignore[method-assign]
    plan_case = respond.plan

    def timed_plan(case: Any, now: datetime) -> Any:
        t = time.perf_counter()
        try:
            found = plan_case(case, now)
            counted["alerts"] += len(found[0])
            return found
        finally:
            spent["compute warnings"] += time.perf_counter() - t
            counted["calls"] += 1

    respond.plan = timed_plan  # type: ignore[method-assign]

    c0, t0 = cpu_s(), time.perf_counter()
    await record.rebuild(store)
    t1, c1 = time.perf_counter(), cpu_s()
    rebuild_split = dict(spent)
    rebuild_counts = dict(counted)
    spent.clear()
    counted.clear()
    problem = await record.check(store)
    t2, c2 = time.perf_counter(), cpu_s()
    check_split = dict(spent)
    hwm = vm("VmHWM")

    # A server's start: Respond.open (repair, the timer's first round), then close.
    started = open_respond(settings, domain, clock, lambda warning: None)
    t = time.perf_counter()
    await started.open(store.timeline)
    t_open = time.perf_counter() - t
    await started.close()

    with contextlib.closing(sqlite3.connect(f"file:{data / 'respond.db'}?mode=ro", uri=True)) as db:
        cases = db.execute("SELECT COUNT(*) FROM cases").fetchone()[0]
        by_level = dict(
            db.execute(
                "SELECT level || CASE WHEN resolved_at IS NULL THEN '/open' ELSE '/resolved' END,"
                " COUNT(*) FROM case_warnings GROUP BY 1"
            ).fetchall()
        )
    await store.close()
    return {
        "rebuild_s": t1 - t0,
        "rebuild_cpu_s": c1 - c0,
        "rebuild_split": rebuild_split,
        "alerts_computed": rebuild_counts.get("alerts", 0),
        "cases_computed": rebuild_counts.get("calls", 0),
        "check_s": t2 - t1,
        "check_cpu_s": c2 - c1,
        "check_split": check_split,
        "problem": problem,
        "open_s": t_open,
        "cases": cases,
        "warnings": sum(by_level.values()),
        "warnings_by_level": by_level,
        "rss_store_kib": rss0,
        "hwm_kib": hwm,
    }


# --------------------------------------------------------------------------
# Parent


def run_own_child(mode: str, args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    import subprocess

    argv = [
        sys.executable, str(Path(__file__).resolve()), "--child", mode,
        "--events", str(args.events), "--projects", str(args.projects),
        "--enquiries", str(args.enquiries), *extra,
    ]  # fmt: skip
    proc = subprocess.run(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=None if mode == "generate" else subprocess.PIPE,
        text=True,
        timeout=4 * 3600,
        preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CORE}) if mode != "generate" else None,
        check=False,
    )
    if proc.returncode != 0:
        raise ServerError(
            f"--child {mode} exited with {proc.returncode}: {(proc.stderr or '')[-3000:]}"
        )
    return dict(orjson.loads(proc.stdout.splitlines()[-1]))


def generated(paths: dict[str, Path], args: argparse.Namespace) -> dict[str, Any] | None:
    if not all(paths[k].exists() for k in ("log", "cases", "meta")):
        return None
    meta = dict(orjson.loads(paths["meta"].read_bytes()))
    return meta if meta.get("enquiries") == args.enquiries else None


async def amain(args: argparse.Namespace) -> int:
    pin_self(CLIENT_CORE)
    print_machine()
    os.environ["PYTHONPATH"] = str(ROOT)  # every child runs this checkout's server
    base = cache_paths(args.events, args.projects)
    RESULTS.mkdir(exist_ok=True)
    base_meta = cache_valid(base, args.events, args.projects)
    if base_meta is None:
        print(f"generating bench/compliance.py's log ({args.events:,} events) ...", flush=True)
        base_meta = run_child("generate", args, [], None, timeout=4 * 3600)
    paths = set_paths(args.events, args.projects, args.enquiries)
    meta = None if args.regenerate else generated(paths, args)
    if meta is None:
        print(
            f"adding {args.enquiries:,} enquiries to a copy of the log in "
            f"{paths['home'].relative_to(ROOT)} ...",
            flush=True,
        )
        meta = run_own_child("generate", args, [])
    else:
        print(f"reusing {paths['home'].relative_to(ROOT)} (made {meta['generated_at']})")
    s = meta["seconds"]
    print(
        f"  {meta['enquiries']:,} enquiries asked {meta['asked_first'][:10]} .. "
        f"{meta['asked_last'][:10]}: "
        + ", ".join(f"{k} {v:,}" for k, v in meta["outcomes"].items())
        + f"; {meta['answer_events']:,} answer events, log head {meta['base_head']:,} → "
        f"{meta['head']:,}; {meta['warnings']:,} case warnings stored; made in "
        f"{sum(s.values()):.0f} s (ask {s['ask']:.0f}, append {s['append']:.0f}, "
        f"close {s['close']:.0f}) — not a figure"
    )

    work = Path(tempfile.mkdtemp(prefix="bench-respond-rebuild-"))
    comp: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    cases: list[dict[str, Any]] = []
    try:
        print("compliance rebuild (no compliance.db), alternating without / with the answers:")
        for r in range(args.repeat):
            for name, log in (("without", base["log"]), ("with", paths["log"])):
                data = work / "compliance"
                reset_data(data, keep_warnings=False)
                await wait_quiet()
                res = run_child(
                    "rebuild", args, ["--log", str(log), "--data-dir", str(data)], SERVER_CORE
                )
                comp[name].append(res)
                print(
                    f"  run {r + 1} {name:7}: {res['wall_s']:.2f} s wall, "
                    f"{res['cpu_s']:.2f} s CPU, "
                    f"{res['events']:,} events, {res['warnings']:,} warnings, "
                    f"peak RSS {res['hwm_kib'] / 1024:.0f} MiB, other util {res['other_util']:.0%}",
                    flush=True,
                )
        print("cases' rebuild (RespondRecord.rebuild + check, as `sunbid rebuild`):")
        for r in range(args.repeat):
            data = work / "respond"
            shutil.rmtree(data, ignore_errors=True)
            data.mkdir()
            shutil.copyfile(paths["cases"], data / "respond.db")
            await wait_quiet()
            b0, busy0 = time.perf_counter(), machine_busy()
            res = run_own_child(
                "respond", args, ["--log", str(paths["log"]), "--data-dir", str(data)]
            )
            wall = time.perf_counter() - b0
            own = res["rebuild_cpu_s"] + res["check_cpu_s"]
            res["other_util"] = max(0.0, machine_busy() - busy0 - own) / wall
            cases.append(res)
            if res["problem"] is not None:
                raise ServerError(f"the rebuilt respond.db does not check: {res['problem']}")
            print(
                f"  run {r + 1}: rebuild {res['rebuild_s']:.2f} s "
                f"({res['rebuild_cpu_s']:.2f} s CPU), "
                f"check {res['check_s']:.2f} s, Respond.open {res['open_s'] * 1e3:.0f} ms; "
                f"{res['cases']:,} cases, {res['warnings']:,} warnings; "
                + ", ".join(f"{k} {v:.2f} s" for k, v in res["rebuild_split"].items()),
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print()
    print(
        f"Compliance rebuild from zero (median of {args.repeat}), {args.events:,} events / "
        f"{args.projects:,} projects, without and with {meta['answer_events']:,} answers:"
    )
    rows = [["log", "events", "wall s", "CPU s", "read s", "check s", "store s", "peak MiB"]]
    rows[0].append("warnings")
    for name in ("without", "with"):
        rs = comp[name]
        rows.append(
            [
                name,
                f"{rs[0]['events']:,}",
                f"{med(rs, 'wall_s'):.2f}",
                f"{med(rs, 'cpu_s'):.2f}",
                f"{med(rs, 'read_s'):.2f}",
                f"{med(rs, 'check_s'):.2f}",
                f"{med(rs, 'save_s'):.2f}",
                f"{med(rs, 'hwm_kib') / 1024:.0f}",
                f"{rs[0]['warnings']:,}",
            ]
        )
    print(fmt_table(rows))
    added = med(comp["with"], "wall_s") - med(comp["without"], "wall_s")
    print(
        f"  the answers add {added:+.2f} s ({added / med(comp['without'], 'wall_s'):+.1%}); "
        f"other util ≤ {max(r['other_util'] for rs in comp.values() for r in rs):.0%}"
    )
    print()
    print(f"Cases' rebuild (median of {args.repeat}), {meta['enquiries']:,} enquiries:")
    split_keys = list(cases[0]["rebuild_split"])
    rows = [["", "wall s", "CPU s", *split_keys]]
    rows.append(
        [
            "rebuild",
            f"{med(cases, 'rebuild_s'):.2f}",
            f"{med(cases, 'rebuild_cpu_s'):.2f}",
            *(f"{statistics.median(c['rebuild_split'][k] for c in cases):.2f}" for k in split_keys),
        ]
    )
    rows.append(
        [
            "check (verify)",
            f"{med(cases, 'check_s'):.2f}",
            f"{med(cases, 'check_cpu_s'):.2f}",
            *(
                f"{statistics.median(c['check_split'].get(k, 0) for c in cases):.2f}"
                for k in split_keys
            ),
        ]
    )
    print(fmt_table(rows))
    c = cases[0]
    print(
        f"  {c['cases']:,} cases, {c['alerts_computed']:,} warnings computed and stored "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(c['warnings_by_level'].items()))}); "
        f"peak RSS {c['hwm_kib'] / 1024:.0f} MiB; Respond.open at a start "
        f"{med(cases, 'open_s') * 1e3:.0f} ms; "
        f"other util ≤ {max(x['other_util'] for x in cases):.0%}"
    )
    total = med(comp["with"], "wall_s") + med(cases, "rebuild_s") + med(cases, "check_s")
    print(
        f"  compliance rebuild with the answers + cases' rebuild and check: {total:.2f} s "
        f"(compliance alone, without: {med(comp['without'], 'wall_s'):.2f} s)"
    )
    path = save_results(
        "respond_rebuild",
        {
            "args": vars(args),
            "data": meta,
            "base_log": base_meta,
            "compliance": comp,
            "cases": cases,
        },
    )
    print(f"results: {path.relative_to(ROOT)}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--projects", type=int, default=50_000)
    ap.add_argument("--enquiries", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--regenerate", action="store_true", help="add the enquiries again")
    ap.add_argument("--child", choices=["generate", "respond"], help=argparse.SUPPRESS)
    ap.add_argument("--log", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import logging

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        coro = child_generate(args) if args.child == "generate" else child_respond(args)
        print(orjson.dumps(run(coro)).decode(), flush=True)
        return 0
    return int(run(amain(args)))


if __name__ == "__main__":
    sys.exit(main())
