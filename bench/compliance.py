"""Compliance watchdog: the start-up rebuild over a large log, and what checking
rules adds to each publication.

Targets: rebuilding every deadline from a log of 1,000,000 events across
50,000 projects takes ≤ 10 s (memory reported); a restart from the
watchdog's snapshot is ready in ≤ 2 s; checking a new event adds ≤ 1 ms
(p99).

1. **The log.** Made once and kept in `bench/results/` (reused while it has
   the asked size; `--regenerate` makes it again): 50,000 projects over the
   8 categories and 30 agencies, each with its category's lifecycle
   (categories.toml) and the oversight stages now and then (objections and
   replies, complaints and decisions, penalties, corrections), over the past
   two years, with times that make a mix of on-time, late and still-open
   deadlines: `notice.data.deadline`, `contract.data.signed_at`,
   `penalty.data.decided_at`, `auction.data.listing_ends`,
   `award.data.publicity_ends` as the rules read them, a few missing or
   malformed. Everything goes through the server's own code: projects with
   `Domain.project_input` and their `registered` events (seq 1..P, before
   every other event), events as the log may hold them (from before the
   checks before publishing, so a few lack a fact) with
   `SQLiteStore.append` (many appends in flight, so
   group commit batches them; `synchronous=NORMAL` while generating), laid out
   in time order with `AppendRequest.published_at` as the demo loader does.
   The hash chain is then checked with `SQLiteStore.verify` (`sunbid verify`).
   The events planned after the log's last one are kept beside it: they are
   the "next" events published in step 3.
2. **Rebuild.** A fresh process per run (pinned to core 0) does what
   `sunbid serve` does at start-up: opens the store on that log, then times
   `Compliance.load(...)` + `await compliance.open(store, bus)` (reading the
   whole log, checking every event, firing every timer due by now and
   storing the warnings in `compliance.db`). `compliance.db` is deleted
   before each run (the worst case: every warning is inserted, no snapshot);
   the timer task then takes a snapshot (timed, with the event loop's
   longest gap meanwhile). One more run keeps `compliance.db`: the restart,
   from that snapshot, replaying only the log after it.
   Reported: wall and CPU time, the part spent reading the log and storing
   warnings, peak RSS (VmHWM) and the RSS added by `Compliance` (after
   `open` minus after the store was opened), warnings, open deadlines, projects.
   Memory: the RSS is also read before each page of the log, before the
   warnings are stored, and after `gc.collect()` + `malloc_trim(0)` once
   `open` returned (what the state keeps, without the allocator's slack).
3. **Per event.** In a process like step 2 (on a copy of the log, so the
   cached one stays as it is), the next 20,000 planned events are published
   one at a time with `SQLiteStore.append` (stamped now, as the API does;
   `synchronous=NORMAL`). Each commit runs the watchdog's bus subscriber
   (`Compliance.apply([event])`) on the event loop after the 201: that one
   call is timed with `perf_counter_ns` (p50/p99/p99.9/max), with garbage
   collections seen inside it counted. Timer work (`Watchdog.fire`, every
   ≤ 1 s) is timed apart.
4. **End to end, for context.** `sunbid serve` (its own data directory, a
   fresh log, `SUNBID_DEMO=0`, `synchronous=FULL`) takes a steady stream of
   the same next events over HTTP (their projects created first); 201
   latency and server CPU per event are compared with the same server run
   with an inert rules file (one rule no event of the stream touches), which
   leaves everything but the checking itself in place. On a small VM the
   201 tail is the disk's fsync: the two differ from run to run by more than
   the checking costs, so `observe`'s p99 is the figure.

Every run reports `other util` (CPU used by anything else on the machine);
`--profile` samples one more rebuild with py-spy
(`bench/results/profile-compliance-rebuild.txt`).

    .venv/bin/python bench/compliance.py [--events 1000000] [--projects 50000]
        [--repeat 3] [--observe 20000] [--rate 100] [--duration 10]
        [--regenerate] [--profile] [--skip-e2e]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from common import (
    BENCH,
    CLIENT_CORE,
    ROOT,
    SERVER_CORE,
    CpuWindow,
    HttpConn,
    Server,
    ServerError,
    fmt_table,
    machine_busy,
    percentile,
    pin_self,
    print_machine,
    profile_summary,
    run,
    save_results,
    self_cpu,
    start_server,
    sunbid_available,
    wait_quiet,
)

RESULTS = BENCH / "results"
TZ = ZoneInfo("Asia/Shanghai")
DAY = 86400.0
SEED = 20261128
HISTORY_DAYS = 730
NEXT_KEPT = 50_000  # planned events after the log kept for steps 3 and 4
RESTART_TARGET_S = 2.0
REBUILD_TARGET_S = 10.0
OBSERVE_TARGET_US = 1000.0

# --------------------------------------------------------------------------
# The population: 5 cities x 6 kinds of agency = 30 agencies


CITIES = [  # code, weight, regions
    ("YW", 35, ["330782", "330782001", "330782003", "330782004", "330782100", "330782106"]),
    ("JH", 30, ["330701", "330702", "330703", "330723"]),
    ("DY", 15, ["330783", "330783001", "330783101"]),
    ("LX", 10, ["330781", "330781001"]),
    ("PJ", 10, ["330726", "330726001"]),
]
AGENCY_KIND = {
    "construction": "GGZY",
    "soe_procurement": "GGZY",
    "gov_procurement": "ZFCG",
    "state_assets": "CQJYS",
    "land": "ZRZY",
    "mining": "ZRZY",
    "rural_property": "NCCQ",
    "emission_rights": "PWQ",
}
CATEGORY_WEIGHTS = {
    "construction": 30,
    "gov_procurement": 30,
    "soe_procurement": 12,
    "state_assets": 8,
    "land": 8,
    "rural_property": 6,
    "emission_rights": 4,
    "mining": 2,
}
PLACES = [
    "稠城街道",
    "稠江街道",
    "江东街道",
    "佛堂镇",
    "义亭镇",
    "苏溪镇",
    "婺城区",
    "金东区",
    "横店镇",
    "南马镇",
    "兰江街道",
    "浦阳街道",
    "上溪镇",
    "大陈镇",
    "后宅街道",
]
THINGS = {
    "construction": [
        "道路提升改造工程施工",
        "中学教学楼新建工程",
        "污水管网改造工程",
        "农贸市场改造工程",
        "河道综合整治工程",
        "安置小区配套工程",
    ],
    "soe_procurement": [
        "供水管材采购",
        "车辆租赁服务采购",
        "办公楼物业服务",
        "燃气表采购项目",
        "信息系统运维服务",
    ],
    "gov_procurement": [
        "智慧校园设备采购",
        "办公家具采购",
        "食堂食材配送服务",
        "城市照明维护服务",
        "医疗设备采购",
        "档案数字化服务",
    ],
    "state_assets": ["国有房产租赁权", "闲置设备转让", "国有股权转让", "商铺经营权出租"],
    "land": ["工业用地使用权挂牌出让", "商住用地使用权出让", "仓储用地使用权出让"],
    "mining": ["建筑用石料矿采矿权出让", "萤石矿探矿权出让"],
    "rural_property": ["村集体厂房租赁", "农村土地经营权流转", "村集体鱼塘承包"],
    "emission_rights": ["化学需氧量排污权交易", "氮氧化物排污权交易", "二氧化硫排污权交易"],
}
STAGE_TITLE = {
    "plan": "采购意向",
    "prequalification": "资格预审公告",
    "notice": "招标（出让）公告",
    "clarification": "澄清（更正）公告",
    "bid_opening": "开标记录",
    "auction": "挂牌（竞价）公告",
    "evaluation": "评标（评审）结果",
    "candidates": "中标候选人公示",
    "award": "中标（成交）结果公告",
    "contract": "合同公告",
    "performance": "履约（验收）情况",
    "failed": "流标（终止）公告",
    "objection": "异议（质疑）",
    "objection_reply": "异议（质疑）答复",
    "complaint": "投诉",
    "complaint_decision": "投诉处理决定",
    "penalty": "行政处罚决定",
    "correction": "更正说明",
}
BODY = (
    "本项目已按规定程序办理，现将有关事项公告如下。项目概况：建设（采购、出让）内容详见附件；"
    "资格要求：具备相应资质和履约能力，近三年无重大违法记录；获取文件方式：通过义乌市公共资源交易网"
    "在线获取，不接受现场报名。对本公告内容有异议的，请于公告期内以书面形式向招标人（采购人、出让人）"
    "提出。监督部门及联系方式详见交易网站。"
)  # about 170 characters, ~500 bytes of UTF-8


def _bodies() -> dict[str, list[str]]:
    return {stage: [BODY[: 60 + 30 * i] for i in range(4)] for stage in STAGE_TITLE}


# --------------------------------------------------------------------------
# Planning the history: times in days from BASE (a Monday, 00:00 Beijing)


class Planner:
    """Deterministic (seeded) lifecycles. A planned event is a tuple
    (published, project index, k, occurred, stage, data times, other data, corrects k)
    with times in days; `data times` maps a data key to a time in days, or to a
    string (a malformed time), or to None (missing)."""

    def __init__(self, seed: int, start_lo: float, start_hi: float) -> None:
        self.rng = random.Random(seed)
        self.start_lo, self.start_hi = start_lo, start_hi

    # -- time helpers --
    def slot(self, d: float) -> float:
        """A working-hours moment on day floor(d) or later, never before d (moved off
        weekends, mostly)."""
        day = math.floor(d)
        hour = self.rng.uniform(8.5, 17.5) / 24
        if day + hour < d:
            day += 1
        wd = day % 7
        if wd >= 5 and self.rng.random() < 0.85:
            day += 7 - wd
        return day + hour

    def delay(self, stage: str) -> float:
        """From occurrence to publication, in days."""
        r = self.rng.random()
        if r < 0.86:
            return self.rng.uniform(0.0, 0.2)
        if r < 0.975:
            return self.rng.uniform(1, 5)
        if r < 0.995 or stage not in ("contract", "performance", "plan", "penalty"):
            return self.rng.uniform(5, 20)
        return self.rng.uniform(32, 60)  # published late (> 20 working days)

    def pick(self, *weighted: tuple[float, tuple[float, float]]) -> float:
        r, acc = self.rng.random(), 0.0
        for w, (lo, hi) in weighted:
            acc += w
            if r < acc:
                return self.rng.uniform(lo, hi)
        return self.rng.uniform(*weighted[-1][1])

    # -- a project --
    def project(self, i: int) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
        rng = self.rng
        category = rng.choices(list(CATEGORY_WEIGHTS), list(CATEGORY_WEIGHTS.values()))[0]
        city, _, regions = rng.choices(CITIES, [w for _, w, _ in CITIES])[0]
        start = rng.uniform(self.start_lo, self.start_hi)
        project = {
            "id": f"P{i:06d}-{category[:4].upper()}",
            "title": f"{rng.choice(PLACES)}{rng.choice(THINGS[category])}",
            "category": category,
            "agency": f"{city}-{AGENCY_KIND[category]}",
            "region": rng.choice(regions),
            "budget": float(rng.randrange(50, 50_000) * 1000),
            "currency": "CNY",
        }
        ev: list[tuple[float, str, dict[str, Any] | None, dict[str, Any], int | None]] = []
        # (occurred, stage, data times, other data, corrects: index in ev)
        add = lambda occ, stage, times=None, data=None, corrects=None: ev.append(  # noqa: E731
            (occ, stage, times, data or {}, corrects)
        )
        d = start
        if category in ("construction", "soe_procurement", "gov_procurement"):
            self._tender(category, d, add, ev)
        else:
            self._sale(category, d, add, ev)
        # oversight: a penalty now and then, anywhere in the project's life
        if rng.random() < 0.015 and ev:
            occ = self.slot(rng.uniform(ev[0][0], ev[-1][0] + 30))
            decided = occ - self.pick((0.8, (1, 9)), (0.2, (12, 25)))
            t = {"decided_at": decided if rng.random() < 0.9 else None}
            add(occ, "penalty", t, {"party": "某公司", "amount": rng.randrange(1, 50) * 10000})
        ev.sort(key=lambda e: e[0])
        out: list[tuple[Any, ...]] = []
        pub = -1e9
        index = {id(e): k for k, e in enumerate(ev)}
        for k, (occ, stage, times, data, corrects) in enumerate(ev):
            pub = max(occ + self.delay(stage), pub + 1 / 1440)
            ck = index[id(corrects)] if corrects is not None else None
            out.append((pub, i, k, occ, stage, times, data, ck))
        return project, out

    def _oversight(self, category: str, lo: float, hi: float, add: Any) -> None:
        rng = self.rng
        tender = category in ("construction", "soe_procurement", "gov_procurement")
        n = rng.choices([0, 1, 2], [85, 12, 3] if tender else [95, 4, 1])[0]
        for _ in range(n):
            occ = self.slot(rng.uniform(lo, hi))
            add(occ, "objection", None, {"from": "潜在投标人"})
            days = 7 if category == "gov_procurement" else 3  # reply within 7 WD / 3 days
            r = rng.random()
            if r < 0.85:
                add(
                    self.slot(occ + rng.uniform(0.2, days * 1.3 if days == 7 else 2.9)),
                    "objection_reply",
                    None,
                    {"result": "异议不成立"},
                )
            elif r < 0.95:
                add(
                    self.slot(occ + rng.uniform(days + 4, days + 14)),
                    "objection_reply",
                    None,
                    {"result": "异议成立，已更正"},
                )
            # else: never answered (stays open: a breach)

    def _complaint(self, lo: float, hi: float, add: Any) -> None:
        rng = self.rng
        if rng.random() < (0.04 if hi > lo else 0):
            occ = self.slot(rng.uniform(lo, hi))
            add(occ, "complaint", None, {"from": "投标人"})
            r = rng.random()
            if r < 0.88:
                add(self.slot(occ + rng.uniform(5, 40)), "complaint_decision", None, {})
            elif r < 0.96:
                add(self.slot(occ + rng.uniform(46, 70)), "complaint_decision", None, {})

    def _performance(self, d: float, add: Any) -> None:
        rng = self.rng
        for _ in range(rng.randint(12, 26)):  # progress reports, about every 10 days
            d += rng.uniform(5, 14)
            add(self.slot(d), "performance", None, {"progress": rng.randrange(5, 100) / 100})

    def _tender(self, category: str, d: float, add: Any, ev: list[Any]) -> None:
        rng = self.rng
        if category == "gov_procurement" and rng.random() < 0.6:
            add(self.slot(d), "plan", None, {"month": "计划"})
            d += self.pick((0.9, (30, 90)), (0.1, (10, 29)))
        if rng.random() < 0.3:
            add(self.slot(d), "prequalification", None, {"method": "资格预审"})
            d += rng.uniform(7, 20)
        notice = self.slot(d)
        span = math.floor(self.pick((0.94, (20, 36)), (0.06, (14, 20))))
        deadline = math.floor(notice) + span + 9.5 / 24
        r = rng.random()
        shown: Any = deadline if r < 0.965 else None if r < 0.99 else "下周三上午九点半"
        add(
            notice,
            "notice",
            {"deadline": shown},
            {"method": "公开招标", "bid_bond": 200000, "max_price": rng.randrange(10**5, 10**8)},
        )
        notice_ev = ev[-1]
        for _ in range(rng.choices([0, 1, 2, 3], [50, 30, 15, 5])[0]):
            late = rng.random() < 0.08
            lo, hi = (span - 14, span - 3) if late else (1, max(1.5, span - 16))
            add(self.slot(notice + rng.uniform(lo, hi)), "clarification", None, {"item": "澄清"})
        if rng.random() < 0.02:
            add(
                self.slot(notice + rng.uniform(1, 4)),
                "correction",
                None,
                {"reason": "更正公告笔误"},
                notice_ev,
            )
        opening = deadline
        add(opening, "bid_opening", None, {"bidders": rng.randrange(1, 15)})
        if rng.random() < 0.03:  # failed at the opening: too few bidders
            add(
                self.slot(opening + rng.uniform(0, 2)), "failed", None, {"reason": "投标人不足三家"}
            )
            self._oversight(category, notice, opening, add)
            return
        evaluation = self.slot(opening + rng.uniform(0, 2))
        add(evaluation, "evaluation", None, {"experts": rng.choice([5, 7, 9])})
        if rng.random() < 0.01:  # stopped after the evaluation: nothing more comes
            add(self.slot(evaluation + rng.uniform(3, 10)), "failed", None, {"reason": "终止"})
            self._oversight(category, notice, evaluation, add)
            return
        if category == "gov_procurement":
            award = self.slot(evaluation + self.pick((0.92, (1, 10)), (0.08, (14, 25))))
        else:
            cand = self.slot(
                evaluation + self.pick((0.9, (0.2, 2.2)), (0.07, (2.2, 3)), (0.03, (4, 8)))
            )
            add(cand, "candidates", None, {"first": "某建设有限公司"})
            award = self.slot(cand + self.pick((0.95, (3.2, 7)), (0.05, (0.5, 2))))
        add(
            award, "award", None, {"winner": "某建设有限公司", "price": rng.randrange(10**5, 10**8)}
        )
        signed = math.floor(award) + self.pick((0.92, (3, 29.5)), (0.08, (31, 50))) + 0.6
        contract = self.slot(signed + self.pick((0.95, (0, 1.5)), (0.05, (4, 10))))
        shown = signed if rng.random() < 0.98 else None
        add(contract, "contract", {"signed_at": shown}, {"amount": rng.randrange(10**5, 10**8)})
        self._oversight(category, notice, award, add)
        self._complaint(opening, award + 10, add)
        self._performance(contract, add)

    def _sale(self, category: str, d: float, add: Any, ev: list[Any]) -> None:
        rng = self.rng
        if category == "state_assets" and rng.random() < 0.5:
            add(self.slot(d), "plan", None, {"kind": "预披露"})
            d += rng.uniform(20, 60)
        notice = self.slot(d)
        add(notice, "notice", None, {"start_price": rng.randrange(10**5, 10**8)})
        notice_ev = ev[-1]
        if rng.random() < 0.25:
            add(self.slot(notice + rng.uniform(1, 8)), "clarification", None, {"item": "更正"})
        if rng.random() < 0.02:
            add(
                self.slot(notice + rng.uniform(1, 4)),
                "correction",
                None,
                {"reason": "更正公告笔误"},
                notice_ev,
            )
        if category == "state_assets":
            gap = self.pick((0.92, (29, 45)), (0.08, (20, 27)))
        else:
            gap = self.pick((0.94, (21, 30)), (0.06, (12, 19)))
        auction = self.slot(notice + gap)
        times = None
        if category == "land":
            listing = math.floor(auction) + self.pick((0.94, (10, 12)), (0.06, (5, 9))) + 0.625
            times = {"listing_ends": listing if rng.random() < 0.98 else None}
        add(auction, "auction", times, {"bidders": rng.randrange(1, 8)})
        if rng.random() < 0.03:
            add(self.slot(auction + rng.uniform(0, 3)), "failed", None, {"reason": "无人竞买"})
            return
        if category == "land":
            award = self.slot(listing + rng.uniform(0, 1.5))
        elif category == "mining":
            award = self.slot(auction + self.pick((0.9, (1, 6)), (0.1, (8, 15))))
        elif category == "state_assets":
            award = self.slot(auction + rng.uniform(0, 3))
        else:
            award = self.slot(auction + self.pick((0.93, (1, 12)), (0.07, (16, 30))))
        times = None
        if category == "mining":
            times = {
                "publicity_ends": math.floor(award) + self.pick((0.94, (14, 18)), (0.06, (7, 12)))
            }
        elif category == "state_assets":
            times = {
                "publicity_ends": math.floor(award) + self.pick((0.94, (7, 10)), (0.06, (3, 5)))
            }
        add(
            award, "award", times, {"buyer": "某投资有限公司", "price": rng.randrange(10**5, 10**8)}
        )
        contract = self.slot(award + rng.uniform(5, 20))
        add(contract, "contract", None, {"amount": rng.randrange(10**5, 10**8)})
        self._oversight(category, notice, award, add)
        self._performance(contract, add)


def plan_history(events: int, projects: int, seed: int, now_d: float) -> dict[str, Any]:
    """All projects' planned events in publication order, and where the log ends."""
    planner = Planner(seed, now_d - HISTORY_DAYS, now_d - 2)
    records, planned = [], []
    for i in range(projects):
        project, evs = planner.project(i)
        records.append(project)
        planned.extend(evs)
    planned.sort(key=lambda e: (e[0], e[1], e[2]))
    if len(planned) < events:
        raise SystemExit(f"planned only {len(planned)} events for {projects} projects")
    # Move every time so that the log's last event is published now.
    shift = now_d - planned[events - 1][0]
    return {"projects": records, "planned": planned, "shift": shift}


def fmt_day(d: float, base: float, unit: float = 1.0) -> str:
    """Days from BASE as RFC 3339 in Beijing time, rounded to `unit` seconds."""
    epoch = round((base + d * DAY) / unit) * unit
    return datetime.fromtimestamp(epoch, TZ).isoformat(
        timespec="milliseconds" if unit < 1 else "seconds"
    )


def event_post(
    e: tuple[Any, ...],
    project: dict[str, Any],
    base: float,
    bodies: dict[str, list[str]],
    seqs: dict[tuple[int, int], int] | None,
) -> dict[str, Any]:
    """The body a publisher would post for planned event `e` (times already shifted)."""
    _, i, k, occ, stage, times, data, ck = e
    data = dict(data)
    for key, value in (times or {}).items():
        if value is None:
            continue  # missing
        data[key] = value if isinstance(value, str) else fmt_day(value, base, 60)
    if ck is not None and seqs is not None:
        data["corrects"] = seqs[(i, ck)]
    return {
        "stage": stage,
        "title": f"{project['title']}{STAGE_TITLE[stage]}",
        "body": bodies[stage][(i + k) % 4],
        "data": data,
        "occurred_at": fmt_day(occ, base, 1),
    }


def as_logged(post: dict[str, Any]) -> dict[str, Any]:
    """A post as the log may hold it, not as a publication is checked now: a
    data directory keeps events from before the checks before publishing (a
    missing or malformed fact among them), and the watchdog must rebuild from
    those too, so the bench's log has a few."""
    from server.domain import parse_time

    occurred = post.get("occurred_at")
    return {**post, "occurred_at": None if occurred is None else parse_time(occurred, "", TZ)}


def shifted(e: tuple[Any, ...], s: float) -> tuple[Any, ...]:
    pub, i, k, occ, stage, times, data, ck = e
    if times:
        times = {key: v + s if isinstance(v, float | int) else v for key, v in times.items()}
    return (pub + s, i, k, occ + s, stage, times, data, ck)


# --------------------------------------------------------------------------
# Paths of the cached log


def cache_paths(events: int, projects: int) -> dict[str, Path]:
    stem = RESULTS / f"compliance-log-{events}-{projects}"
    return {
        "log": stem.with_suffix(".db"),
        "meta": stem.with_suffix(".json"),
        "next": stem.with_name(stem.name + "-next.json"),
    }


def cache_valid(paths: dict[str, Path], events: int, projects: int) -> dict[str, Any] | None:
    if not all(p.exists() for p in paths.values()):
        return None
    try:
        meta = orjson.loads(paths["meta"].read_bytes())
        with contextlib.closing(sqlite3.connect(f"file:{paths['log']}?mode=ro", uri=True)) as db:
            head = db.execute("SELECT MAX(seq) FROM events").fetchone()[0]
            count = db.execute("SELECT COUNT(*) FROM projects").fetchone()[0]
    except (OSError, ValueError, sqlite3.Error):
        return None
    # The log holds each project's registration, then the events.
    if head != events + projects or count != projects or meta.get("events") != events:
        return None
    return dict(meta)


# --------------------------------------------------------------------------
# Child: generate the log


async def child_generate(args: argparse.Namespace) -> dict[str, Any]:
    from server.core.clock import Clock
    from server.domain import Domain
    from server.projects import open_projects
    from server.projects.changes import registration
    from server.store import AppendRequest
    from server.store.sqlite import SQLiteStore

    paths = cache_paths(args.events, args.projects)
    t0 = time.perf_counter()
    now = time.time()
    base = _base_epoch(now)
    now_d = (now - base) / DAY
    plan = plan_history(args.events, args.projects, SEED, now_d)
    shift = plan["shift"]
    planned = [shifted(e, shift) for e in plan["planned"]]
    del plan["planned"]
    records = plan["projects"]
    log_events, after = planned[: args.events], planned[args.events :]
    # Seq 1..P: the projects' registrations; the events follow.
    seqs = {(e[1], e[2]): len(records) + n + 1 for n, e in enumerate(log_events)}
    t_plan = time.perf_counter() - t0
    print(
        f"  planned {len(planned):,} events ({len(log_events):,} in the log), "
        f"shift {shift:+.1f} days, in {t_plan:.1f} s",
        file=sys.stderr,
        flush=True,
    )

    tmp = paths["log"].with_suffix(".tmp.db")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    domain = Domain.load()
    store = SQLiteStore(f"sqlite:///{tmp}", Clock(TZ), synchronous="NORMAL")
    open_projects(store, domain)
    await store.open()
    t1 = time.perf_counter()
    created = [domain.project_input(r) for r in records]
    # Registered as the log begins, before the first event.
    registered_at = datetime.fromtimestamp(round(base + log_events[0][0] * DAY, 3), TZ)
    for lo in range(0, len(created), 500):
        await asyncio.gather(
            *(
                store.append(registration(p, published_at=registered_at))
                for p in created[lo : lo + 500]
            )
        )
    t_projects = time.perf_counter() - t1
    print(f"  {len(created):,} projects in {t_projects:.1f} s", file=sys.stderr, flush=True)

    t2 = time.perf_counter()
    bodies = _bodies()
    in_flight: set[asyncio.Task[Any]] = set()
    wrong: list[int] = []

    def check(n: int) -> Any:
        def done(task: asyncio.Task[Any]) -> None:
            in_flight.discard(task)
            if (
                task.cancelled()
                or task.exception() is not None
                or task.result().event.seq != len(created) + n
            ):
                wrong.append(n)

        return done

    for n, e in enumerate(log_events, 1):
        project = created[e[1]]
        draft = as_logged(event_post(e, project, base, bodies, seqs))
        task = asyncio.ensure_future(
            store.append(
                AppendRequest(
                    project=project,
                    draft=draft,
                    published_at=datetime.fromtimestamp(round(base + e[0] * DAY, 3), TZ),
                )
            )
        )
        task.add_done_callback(check(n))
        in_flight.add(task)
        if len(in_flight) >= 4096:
            while len(in_flight) > 2048:
                await asyncio.sleep(0)
        if n % 100_000 == 0:
            print(
                f"  {n:,} events appended ({time.perf_counter() - t2:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    while in_flight:
        await asyncio.sleep(0.01)
    t_append = time.perf_counter() - t2
    if wrong:
        raise SystemExit(f"{len(wrong)} appends failed or got an unexpected seq (first {wrong[0]})")
    commits = store.commits
    t3 = time.perf_counter()
    report = await store.verify()
    t_verify = time.perf_counter() - t3
    await store.close()
    with contextlib.closing(sqlite3.connect(tmp)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for p in (Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    tmp.replace(paths["log"])

    # The events planned after the log (steps 3 and 4), times relative to their
    # own publication, so they can be published "now".
    nxt = []
    for e in after[:NEXT_KEPT]:
        pub, i, k, occ, stage, times, data, ck = e
        rel_times = {
            key: (v - pub if isinstance(v, float | int) else v) for key, v in (times or {}).items()
        }
        corrects = None
        if ck is not None:
            corrects = seqs.get((i, ck))
            if corrects is None:
                continue  # corrects an event that is not in the log either: left out
        nxt.append(
            {
                "p": i,
                "stage": stage,
                "occ": occ - pub,
                "times": rel_times,
                "data": data,
                "corrects": corrects,
                "k": k,
            }
        )
    used = sorted({n["p"] for n in nxt})
    paths["next"].write_bytes(
        orjson.dumps({"projects": {str(i): records[i] for i in used}, "events": nxt})
    )
    stages = Counter(e[4] for e in log_events)
    categories = Counter(records[e[1]]["category"] for e in log_events)
    meta = {
        "events": args.events,
        "projects": args.projects,
        "projects_with_events": len({e[1] for e in log_events}),
        "seed": SEED,
        "generated_at": datetime.fromtimestamp(now, TZ).isoformat(timespec="seconds"),
        "shift_days": shift,
        "first_published": fmt_day(log_events[0][0], base, 0.001),
        "last_published": fmt_day(log_events[-1][0], base, 0.001),
        "planned_after_log": len(after),
        "seconds": {
            "plan": t_plan,
            "projects": t_projects,
            "append": t_append,
            "verify": t_verify,
            "total": time.perf_counter() - t0,
        },
        "appends_per_s": args.events / t_append,
        "commits": commits,
        "events_per_commit": args.events / max(1, commits),
        "verify": {
            "checked": report.checked,
            "head": report.head,
            "first_bad_seq": report.first_bad_seq,
            "reason": report.reason,
        },
        "log_bytes": paths["log"].stat().st_size,
        "stages": dict(stages.most_common()),
        "categories": dict(categories.most_common()),
    }
    paths["meta"].write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    return meta


def _base_epoch(now: float) -> float:
    """A Monday at 00:00 Beijing, about three years before `now`."""
    day = datetime.fromtimestamp(now - 3 * 365 * DAY, TZ).date()
    day = day.fromordinal(day.toordinal() - day.weekday())
    return datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp()


# --------------------------------------------------------------------------
# Child: rebuild (and, with --observe-events, publish the next events)


def vm(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class GcWatch:
    """Garbage collections (count and pause) while `on` is set."""

    def __init__(self) -> None:
        self.on = False
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self.ran = False  # set by any collection; cleared by the observer
        self._t = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        elif self.on:
            self.pauses.append((info["generation"], time.perf_counter() - self._t))
            self.ran = True

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for g in (0, 1, 2):
            ps = [p for gen, p in self.pauses if gen == g]
            out[f"gen{g}"] = {
                "count": len(ps),
                "total_ms": sum(ps) * 1e3,
                "max_ms": max(ps, default=0.0) * 1e3,
            }
        return out


async def child_rebuild(args: argparse.Namespace) -> dict[str, Any]:
    from server.bus import open_bus
    from server.compliance import logread
    from server.compliance.service import Compliance
    from server.compliance.watchdog import Level, iter_open
    from server.core.clock import Clock
    from server.domain import Domain
    from server.projects import open_projects
    from server.settings import Settings
    from server.store import open_store

    log_path = Path(args.log)
    data_dir = Path(args.data_dir)
    if args.observe_events:  # publishing changes the log: work on a copy
        t = time.perf_counter()
        copy = data_dir / "sunbid.db"
        shutil.copyfile(log_path, copy)
        copy_s = time.perf_counter() - t
        log_path = copy
    settings = Settings.from_env(
        {
            "SUNBID_DATA_DIR": str(data_dir),
            "SUNBID_DATABASE_URL": f"sqlite:///{log_path}",
            "SUNBID_DEMO": "0",
            "SUNBID_SQLITE_SYNCHRONOUS": "NORMAL" if args.observe_events else "FULL",
        }
    )
    gcw = GcWatch()
    clock = Clock(settings.timezone)
    domain = Domain.load()
    broadcasts = Counter[str]()

    def broadcast(message: Any) -> None:  # stands in for Hub.warn (no supervisors connected)
        broadcasts["warning"] += 1

    rss0 = vm("VmRSS")
    store = open_store(settings.database_url, clock, synchronous=settings.sqlite_synchronous)
    projects = open_projects(store, domain)
    t = time.perf_counter()
    await store.open()
    store_open_s = time.perf_counter() - t
    rss_store = vm("VmRSS")

    # Instrumentation (no change to what runs): time spent reading pages of the
    # log and storing warnings, inside compliance.open. The rebuild reads the
    # next page while checking the current one: "read" is the time the pages
    # took to arrive, overlapping "check", which is everything but storing.
    spent = Counter[str]()
    read_page = logread.Rows.page

    rss_pages: list[int] = []  # VmRSS as each page of the log is asked for
    first_page: list[int] = []  # where the replay began (the snapshot's cursor, or 0)

    async def timed_read(self: Any, since: int, *a: Any, **kw: Any) -> Any:
        rss_pages.append(vm("VmRSS"))
        if not first_page:
            first_page.append(since)
        t = time.perf_counter()
        try:
            return await read_page(self, since, *a, **kw)
        finally:
            spent["read"] += time.perf_counter() - t

    logread.Rows.page = timed_read  # type: ignore[method-assign]
    bus = open_bus("memory://", store)
    store.on_commit(bus.publish)
    await bus.start()
    gcw.on = True
    c0, t0 = cpu_s(), time.perf_counter()
    compliance = Compliance.load(settings, domain, clock, broadcast)
    t_loaded = time.perf_counter()
    rss_loaded = vm("VmRSS")
    save = compliance.warnings.save

    rss_save: list[tuple[int, int]] = []  # VmRSS and VmHWM before the first save

    async def timed_save(*a: Any, **kw: Any) -> Any:
        if not rss_save:
            rss_save.append((vm("VmRSS"), vm("VmHWM")))
        if a and isinstance(a[0], list):
            spent["save_rows"] += len(a[0])
        t = time.perf_counter()
        try:
            return await save(*a, **kw)
        finally:
            spent["save"] += time.perf_counter() - t

    compliance.warnings.save = timed_save  # type: ignore[method-assign]
    # The snapshot the timer task takes after a long replay (and at shutdown):
    # how long it takes, and the longest the event loop went without running
    # meanwhile (the pickling is in a thread; the GIL is shared).
    snapshots: list[dict[str, float]] = []
    take_snapshot = compliance._snapshot

    async def timed_snapshot() -> None:
        lag = 0.0
        done = False

        async def watch() -> None:
            nonlocal lag
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                lag = max(lag, now - last)
                last = now

        watcher = asyncio.ensure_future(watch())
        t = time.perf_counter()
        await take_snapshot()
        took = time.perf_counter() - t
        done = True
        await watcher
        row = await compliance.warnings.rows("SELECT length(state) FROM snapshot")
        snapshots.append(
            {"s": took, "loop_max_gap_ms": lag * 1e3, "mib": (row[0][0] if row else 0) / 2**20}
        )

    compliance._snapshot = timed_snapshot  # type: ignore[method-assign]
    samples: list[int] = []
    sizes: list[int] = []
    gc_inside = 0
    observe = compliance.apply

    def timed_observe(events: Any) -> None:
        nonlocal gc_inside
        gcw.ran = False
        t = time.perf_counter_ns()
        observe(events)
        samples.append(time.perf_counter_ns() - t)
        sizes.append(len(events))
        if gcw.ran:
            gc_inside += 1
            samples[-1] = -samples[-1]  # marked: a collection ran inside

    if args.observe_events:
        compliance.apply = timed_observe  # type: ignore[method-assign]
    await compliance.open(store, bus)
    t1 = time.perf_counter()
    c1 = cpu_s()
    gcw.on = False
    rss_open = vm("VmRSS")
    hwm_open = vm("VmHWM")  # the peak of load + open (read before anything else is measured)
    logread.Rows.page = read_page  # type: ignore[method-assign]
    replayed_from = first_page[0] if first_page else compliance.watchdog.head
    if compliance.watchdog.head - compliance.snapshot_cursor >= compliance.snapshot_events > 0:
        t = time.perf_counter()
        while not snapshots and time.perf_counter() - t < 120:
            await asyncio.sleep(0.05)  # the timer task's first round takes it

    wd = compliance.watchdog
    now = clock.now()
    open_deadlines = list(iter_open(wd))
    overdue = sum(1 for d in open_deadlines if d.due < now)
    overdue_fired = sum(1 for d in open_deadlines if d.due < now and Level.BREACH in d.fired)
    by_rule = Counter(d.rule.id for d in open_deadlines if d.due < now)
    future = Counter(at for at, _, d, _ in wd._timers if not d.closed and at > now)
    burst_at, burst = future.most_common(1)[0] if future else (None, 0)
    rows = list(
        await compliance.warnings.db.execute_fetchall(
            "SELECT level, resolved_at IS NULL, COUNT(*) FROM warnings GROUP BY 1, 2"
        )
    )
    rule_rows = list(
        await compliance.warnings.db.execute_fetchall(
            "SELECT substr(id, 1, instr(id, '/') - 1) AS rule, level, resolved_at IS NULL,"
            " COUNT(*) FROM warnings GROUP BY 1, 2, 3 ORDER BY 4 DESC"
        )
    )
    tallies = {"on_time": 0, "late": 0, "too_short": 0, "open_breaches": 0}
    for tally in wd.tallies.values():
        tallies["on_time"] += tally.on_time
        tallies["late"] += tally.late
        tallies["too_short"] += tally.too_short
        tallies["open_breaches"] += tally.open_breaches
    full_gc_s, tracked, rss_trimmed = float("nan"), 0, 0
    if not args.observe_events:  # (a collection now would change what the timed window sees)
        t = time.perf_counter()
        gc.collect()  # a full collection over the rebuilt state: the pause a gen2 run causes
        full_gc_s = time.perf_counter() - t
        tracked = len(gc.get_objects())
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)  # what the allocator keeps but does not use
        rss_trimmed = vm("VmRSS")
    result: dict[str, Any] = {
        "events": wd.head,
        "projects": len(wd._projects),
        "store_open_s": store_open_s,
        "load_s": t_loaded - t0,
        "wall_s": t1 - t0,
        "cpu_s": c1 - c0,
        "read_s": spent["read"],
        "save_s": spent["save"],
        "check_s": (t1 - t_loaded) - spent["save"],
        "rss_start_kib": rss0,
        "rss_store_kib": rss_store,
        "rss_loaded_kib": rss_loaded,
        "rss_open_kib": rss_open,
        "growth_kib": rss_open - rss_store,
        "full_gc_ms": full_gc_s * 1e3,
        "gc_tracked_objects": tracked,
        "rss_trimmed_kib": rss_trimmed,
        "retained_kib": rss_trimmed - rss_store if rss_trimmed else None,
        "facts_kept": sum(len(p.latest) for p in wd._projects.values()),
        "save_rows": int(spent["save_rows"]),
        "rss_read_max_kib": max(rss_pages, default=0),
        "rss_before_save_kib": rss_save[0][0] if rss_save else 0,
        "hwm_before_save_kib": rss_save[0][1] if rss_save else 0,
        "rss_pages_mib": [round(r / 1024) for r in rss_pages[:: max(1, len(rss_pages) // 20)]],
        "hwm_kib": hwm_open,
        "gc": gcw.summary(),
        "warnings": sum(r[2] for r in rows),
        "warnings_by_level": {
            f"{r[0]}/{'open' if r[1] else 'resolved'}": r[2] for r in sorted(rows)
        },
        "warnings_by_rule": [list(r) for r in rule_rows],
        "warnings_streamed_at_start": broadcasts["warning"],
        "open_deadlines": len(open_deadlines),
        "open_overdue": overdue,
        "open_overdue_with_breach": overdue_fired,
        "open_overdue_by_rule": dict(by_rule.most_common()),
        "timers_pending": len(wd._timers),
        "largest_timer_burst": {"at": burst_at.isoformat() if burst_at else None, "timers": burst},
        "tallies": tallies,
        "replayed_from": replayed_from,
        "snapshots_after_open": list(snapshots),
    }
    if args.observe_events:
        result["copy_s"] = copy_s
        result["observe"] = await publish_next(
            args, store, projects, domain, compliance, gcw, samples, sizes, broadcasts
        )
        result["observe"]["gc_inside_observe"] = gc_inside
    snapshots.clear()
    await compliance.close()
    result["snapshot_at_close"] = snapshots[0] if snapshots else None
    await bus.close()
    await store.close()
    return result


async def publish_next(
    args: argparse.Namespace,
    store: Any,
    projects: Any,
    domain: Any,
    compliance: Any,
    gcw: GcWatch,
    samples: list[int],
    sizes: list[int],
    broadcasts: Counter[str],
) -> dict[str, Any]:
    from server.core.errors import ApiError
    from server.store import AppendRequest

    nxt = orjson.loads(Path(args.next).read_bytes())
    events = nxt["events"][: args.observe_events]
    bodies = _bodies()
    fires: list[float] = []
    fire = compliance.watchdog.fire

    def timed_fire(now: Any) -> Any:
        t = time.perf_counter()
        try:
            return fire(now)
        finally:
            fires.append(time.perf_counter() - t)

    compliance.watchdog.fire = timed_fire
    samples.clear()
    sizes.clear()
    gcw.pauses.clear()
    streamed0 = broadcasts["warning"]
    records: dict[str, dict[str, Any]] = {}
    gcw.on = True
    t0 = time.perf_counter()
    refused = 0
    for n in events:
        pid = nxt["projects"][str(n["p"])]["id"]
        project = records.get(pid)
        if project is None:  # as the API does for a publication
            project = records[pid] = await projects.get(pid)
        post = next_post(n, nxt["projects"][str(n["p"])], bodies, time.time())
        try:
            draft = domain.event_input(post, project["category"], TZ)
        except ApiError:  # a malformed fact the log may hold, the API refuses today
            refused += 1
            continue
        await store.append(AppendRequest(project=project, draft=draft))
    await asyncio.sleep(1.2)  # the last listener call, and the ticker's next round
    took = time.perf_counter() - t0
    gcw.on = False
    marked = sum(1 for s in samples if s < 0)
    us = [abs(s) / 1e3 for s in samples]
    clean = [s / 1e3 for s in samples if s >= 0]
    return {
        "events": len(events) - refused,
        "refused": refused,
        "calls": len(samples),
        "events_per_call_max": max(sizes, default=0),
        "seconds": took,
        "publishes_per_s": len(events) / took,
        "us": _pcts(us),
        "us_without_gc": _pcts(clean),
        "calls_with_gc": marked,
        "over_1ms": sum(1 for u in us if u > 1000),
        "warnings_changed": broadcasts["warning"] - streamed0,
        "fire_calls": len(fires),
        "fire_ms": _pcts([f * 1e3 for f in fires]),
        "gc": gcw.summary(),
        "stages": dict(Counter(n["stage"] for n in events).most_common()),
    }


def next_post(
    n: dict[str, Any], project: dict[str, Any], bodies: dict[str, list[str]], now: float
) -> dict[str, Any]:
    """A next event as a publisher posts it now: times kept relative to the publication."""

    data = dict(n["data"])
    for key, value in n["times"].items():
        if value is not None:
            data[key] = value if isinstance(value, str) else _iso(now + value * DAY, 60)
    if n["corrects"] is not None:
        data["corrects"] = n["corrects"]
    return {
        "stage": n["stage"],
        "title": f"{project['title']}{STAGE_TITLE[n['stage']]}",
        "body": bodies[n["stage"]][(n["p"] + n["k"]) % 4],
        "data": data,
        "occurred_at": _iso(min(now, now + n["occ"] * DAY), 1),
    }


def _iso(epoch: float, unit: float) -> str:
    return datetime.fromtimestamp(round(epoch / unit) * unit, TZ).isoformat(timespec="seconds")


def _pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "p99.9": percentile(values, 99.9),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


# --------------------------------------------------------------------------
# Parent: running the children


def source_digests() -> dict[str, str]:
    """Digests of the server's code and data files: a change during a run is reported."""
    import hashlib

    out = {}
    for path in sorted([*(ROOT / "server").rglob("*"), *(ROOT / "push").rglob("*")]):
        if path.suffix in (".py", ".toml", ".json", ".sql") and path.is_file():
            out[str(path.relative_to(ROOT))] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return out


def run_child(
    mode: str,
    args: argparse.Namespace,
    extra: list[str],
    pin: int | None,
    profile: Path | None = None,
    timeout: float = 1800,
) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--events",
        str(args.events),
        "--projects",
        str(args.projects),
        *extra,
    ]
    if profile is not None:
        argv = [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(profile),
            "--",
            *argv,
        ]
    b0, c0, s0, t0 = machine_busy(), _children_cpu(), self_cpu(), time.perf_counter()
    proc = subprocess.run(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if mode != "generate" else None,
        text=True,
        timeout=timeout,
        preexec_fn=(lambda: os.sched_setaffinity(0, {pin})) if pin is not None else None,
        check=False,
    )
    errors = [
        line
        for line in (proc.stderr or "").splitlines()
        if "Traceback" in line or "ERROR" in line or "Error" in line
    ]
    if proc.returncode != 0:
        raise ServerError(
            f"--child {mode} exited with {proc.returncode}:\n{(proc.stderr or '')[-3000:]}"
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    result = dict(orjson.loads(lines[-1]))
    result["stderr_errors"] = errors[:10]
    # CPU used on the machine by anything but this benchmark (child and parent)
    wall = time.perf_counter() - t0
    other = machine_busy() - b0 - (_children_cpu() - c0) - (self_cpu() - s0)
    result["other_util"] = max(0.0, other) / wall
    return result


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def reset_data(data_dir: Path, keep_warnings: bool) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    for p in data_dir.iterdir():
        if keep_warnings and p.name.startswith("compliance.db"):
            continue
        if p.is_file():
            p.unlink()


async def rebuilds(args: argparse.Namespace, log: Path, work: Path) -> dict[str, Any]:
    data = work / "rebuild"
    fresh: list[dict[str, Any]] = []
    for r in range(args.repeat):
        reset_data(data, keep_warnings=False)
        await wait_quiet()
        res = run_child("rebuild", args, ["--log", str(log), "--data-dir", str(data)], SERVER_CORE)
        fresh.append(res)
        print(
            f"  run {r + 1} (no compliance.db): {res['wall_s']:.2f} s wall, "
            f"{res['cpu_s']:.2f} s CPU, "
            f"peak RSS {res['hwm_kib'] / 1024:.0f} MiB",
            flush=True,
        )
    reset_data(data, keep_warnings=True)
    await wait_quiet()
    kept = run_child("rebuild", args, ["--log", str(log), "--data-dir", str(data)], SERVER_CORE)
    print(f"  run with compliance.db present: {kept['wall_s']:.2f} s wall", flush=True)
    profile = None
    if args.profile:
        reset_data(data, keep_warnings=False)
        path = RESULTS / "profile-compliance-rebuild.txt"
        run_child(
            "rebuild", args, ["--log", str(log), "--data-dir", str(data)], SERVER_CORE, profile=path
        )
        profile = profile_summary("sunbid", top=15, name="compliance-rebuild")
    return {"fresh": fresh, "kept": kept, "profile": profile, "warnings_db": data / "compliance.db"}


async def observe_run(
    args: argparse.Namespace, log: Path, nxt: Path, work: Path, warnings_db: Path
) -> dict[str, Any]:
    data = work / "observe"
    reset_data(data, keep_warnings=False)
    if warnings_db.exists():  # start as a restarted server would: its warnings stored
        shutil.copyfile(warnings_db, data / "compliance.db")
    await wait_quiet()
    return run_child(
        "rebuild",
        args,
        [
            "--log",
            str(log),
            "--data-dir",
            str(data),
            "--next",
            str(nxt),
            "--observe-events",
            str(args.observe),
        ],
        SERVER_CORE,
    )


# --------------------------------------------------------------------------
# Parent: end to end through `sunbid serve`

INERT_RULES = """
[[rule]]
id = "construction.bench-inert"
name = "基准：不触发的规则"
category = "construction"
trigger = "correction"
target = "penalty"
kind = "at_least"
amount = 1
unit = "day"
basis = "基准测试"
confidence = "memory"
"""
INERT_CATALOG = """
[[item]]
code = "BENCH-01"
name = ["基准测试"]
content = "无"
basis = "无"
time_limit = "无"
body = "无"
channel = "无"
audience = "全社会"
mode = "主动"
level = ["市"]
stages = []
"""


async def e2e(args: argparse.Namespace, nxt_path: Path, work: Path, inert: bool) -> dict[str, Any]:
    nxt = orjson.loads(nxt_path.read_bytes())
    total = int(args.rate * args.duration)
    events = [n for n in nxt["events"] if n["corrects"] is None][:total]
    env: dict[str, str] = {}
    if inert:
        (work / "inert-rules.toml").write_text(INERT_RULES, "utf-8")
        (work / "inert-catalog.toml").write_text(INERT_CATALOG, "utf-8")
        env = {
            "SUNBID_RULES_FILE": str(work / "inert-rules.toml"),
            "SUNBID_CATALOG_FILE": str(work / "inert-catalog.toml"),
        }
    server = await start_server("sunbid", env, projects=())
    try:
        return await _e2e_drive(args, server, nxt, events)
    finally:
        server.stop()


async def _e2e_drive(
    args: argparse.Namespace, server: Server, nxt: dict[str, Any], events: list[dict[str, Any]]
) -> dict[str, Any]:
    http = await HttpConn.open(server.port)
    for p in sorted({n["p"] for n in events}):
        status, body = await http.post_json("/api/projects", nxt["projects"][str(p)], server.token)
        if status != 201:
            raise ServerError(f"POST /api/projects -> {status}: {body[:300]!r}")
    http.close()
    bodies = _bodies()
    pool: asyncio.Queue[HttpConn] = asyncio.Queue()
    for _ in range(8):
        pool.put_nowait(await HttpConn.open(server.port))
    answered: list[float] = []
    bad: Counter[int] = Counter()

    async def one(n: dict[str, Any]) -> None:
        project = nxt["projects"][str(n["p"])]
        post = next_post(n, project, bodies, time.time())
        conn = await pool.get()
        try:
            t = time.perf_counter()
            status, body = await conn.post_json(
                f"/api/projects/{project['id']}/events", post, server.token
            )
            answered.append((time.perf_counter() - t) * 1e3)
            if status != 201:
                bad[status] += 1
                if sum(bad.values()) <= 3:
                    print(f"  ! publish -> {status}: {body[:200]!r}", file=sys.stderr)
        finally:
            pool.put_nowait(conn)

    await wait_quiet()
    window = CpuWindow(server)
    tasks = []
    t0 = time.monotonic()
    for i, n in enumerate(events):
        delay = t0 + i / args.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    cpu = window.stop()
    while not pool.empty():
        pool.get_nowait().close()
    await asyncio.sleep(1.5)  # the watchdog's ticker stores what the last events caused
    http = await HttpConn.open(server.port)
    status, body = await http.get("/api/supervision/warnings?limit=1", server.token)
    http.close()
    return {
        "events": len(events),
        "rate": args.rate,
        "ms": _pcts(answered),
        "bad": dict(bad),
        "server_cpu_us_per_event": cpu["server_cpu_s"] / max(1, len(events)) * 1e6,
        "cpu": cpu,
        "warnings_endpoint": status,
    }


# --------------------------------------------------------------------------
# Report


def print_report(
    meta: dict[str, Any], rb: dict[str, Any], obs: dict[str, Any] | None, ends: dict[str, Any]
) -> dict[str, Any]:
    fresh = rb["fresh"]
    med = {
        k: statistics.median(r[k] for r in fresh)
        for k in (
            "wall_s",
            "cpu_s",
            "read_s",
            "check_s",
            "save_s",
            "load_s",
            "hwm_kib",
            "growth_kib",
            "rss_store_kib",
            "rss_loaded_kib",
            "store_open_s",
            "other_util",
        )
    }
    first = fresh[0]
    print()
    print(
        f"log: {meta['events']:,} events, {meta['projects_with_events']:,} of {meta['projects']:,} "
        f"projects with events, {meta['log_bytes'] / 2**20:,.0f} MiB, published "
        f"{meta['first_published'][:10]} .. {meta['last_published'][:16]} "
        f"(generated {meta['generated_at']})"
    )
    s = meta["seconds"]
    print(
        f"  generated in {s['total']:.0f} s (plan {s['plan']:.0f} s, "
        f"projects {s['projects']:.0f} s, "
        f"appends {s['append']:.0f} s = {meta['appends_per_s']:,.0f}/s "
        f"in {meta['commits']:,} commits, "
        f"{meta['events_per_commit']:.0f} per commit; verify {s['verify']:.0f} s: "
        f"{'OK' if meta['verify']['first_bad_seq'] is None else meta['verify']}) — not a figure"
    )
    print()
    print(f"Rebuild (Compliance.load + open), {len(fresh)} runs without compliance.db, median:")
    rows = [
        [
            "",
            "wall s",
            "CPU s",
            "read log s (overlaps)",
            "check s",
            "store warnings s",
            "peak RSS MiB",
            "RSS added MiB",
            "other util",
        ]
    ]

    def row(name: str, r: dict[str, Any]) -> list[str]:
        return [
            name,
            f"{r['wall_s']:.2f}",
            f"{r['cpu_s']:.2f}",
            f"{r['read_s']:.2f}",
            f"{r['check_s']:.2f}",
            f"{r['save_s']:.2f}",
            f"{r['hwm_kib'] / 1024:.0f}",
            f"{r['growth_kib'] / 1024:.0f}",
            f"{r['other_util']:.0%}" if "other_util" in r else "-",
        ]

    for i, r in enumerate(fresh, 1):
        rows.append(row(f"run {i}", r))
    rows.append(row("median", med))
    rows.append(row("db kept", rb["kept"]))
    print(fmt_table(rows))
    disturbed = [r for r in [*fresh, rb["kept"]] if r.get("other_util", 0) > 0.15]
    if disturbed:
        print(
            f"  ! {len(disturbed)} run(s) shared the machine with other work (other util > 15%): "
            "run again on a quiet machine"
        )
    verdict = "met" if med["wall_s"] <= REBUILD_TARGET_S else "NOT met"
    print(f"  target ≤ {REBUILD_TARGET_S:.0f} s: {verdict} (median {med['wall_s']:.2f} s)")
    kept = rb["kept"]
    verdict = "met" if kept["wall_s"] <= RESTART_TARGET_S else "NOT met"
    print(
        f"  restart with compliance.db kept: replayed from seq {kept['replayed_from']:,} "
        f"(the snapshot's cursor) in {kept['wall_s']:.2f} s: target ≤ {RESTART_TARGET_S:.0f} s "
        f"{verdict}"
    )
    for name, snap in (
        ("after the replay (timer task)", (first["snapshots_after_open"] or [None])[0]),
        ("at shutdown", first.get("snapshot_at_close")),
    ):
        if snap:
            print(
                f"  snapshot {name}: {snap['s']:.2f} s, {snap['mib']:.0f} MiB, the event loop's "
                f"longest gap meanwhile {snap['loop_max_gap_ms']:.0f} ms"
            )
    print(
        f"  RSS: {first['rss_start_kib'] / 1024:.0f} MiB after imports, "
        f"{med['rss_store_kib'] / 1024:.0f} MiB with the store open, "
        f"{med['rss_loaded_kib'] / 1024:.0f} MiB after Compliance.load (data files; "
        f"{med['load_s'] * 1e3:.0f} ms), +{med['growth_kib'] / 1024:.0f} MiB after open"
    )
    print(
        f"       {first['rss_before_save_kib'] / 1024:.0f} MiB when the whole log was checked "
        f"(before storing {first['save_rows']:,} warnings in one transaction), "
        f"peak {first['hwm_kib'] / 1024:.0f} MiB while storing them; "
        f"{first['retained_kib'] / 1024:.0f} MiB retained over the store after gc + malloc_trim "
        f"({first['facts_kept']:,} event facts kept for at_least rules)"
    )
    g = first["gc"]
    print(
        f"  a full collection (gc.collect()) of the rebuilt state takes "
        f"{first['full_gc_ms']:.0f} ms ({first['gc_tracked_objects']:,} objects tracked): "
        "the event loop stalls that long whenever the cyclic GC runs its oldest generation"
    )
    print(
        f"  garbage collections during open: gen2 {g['gen2']['count']} "
        f"({g['gen2']['total_ms']:.0f} ms), "
        f"gen1 {g['gen1']['count']} ({g['gen1']['total_ms']:.0f} ms), "
        f"gen0 {g['gen0']['count']} ({g['gen0']['total_ms']:.0f} ms)"
    )
    print(
        f"  state: {first['events']:,} events, {first['projects']:,} projects, "
        f"{first['open_deadlines']:,} open deadlines ({first['open_overdue']:,} overdue, "
        f"{first['open_overdue_with_breach']:,} of them with a breach warning), "
        f"{first['timers_pending']:,} timers pending; largest burst of timers at one instant: "
        f"{first['largest_timer_burst']['timers']} at {first['largest_timer_burst']['at']}"
    )
    t = first["tallies"]
    print(
        f"  scorecard totals: on time {t['on_time']:,}, late {t['late']:,}, "
        f"too short {t.get('too_short', 0):,}, open breaches {t['open_breaches']:,}"
    )
    print(
        f"  warnings stored: {first['warnings']:,} "
        + ", ".join(f"{k} {v:,}" for k, v in first["warnings_by_level"].items())
    )
    print("  by rule (rule, level, open?, count), top 12:")
    for rule, level, is_open, n in first["warnings_by_rule"][:12]:
        print(f"    {n:>8,}  {rule} {level} {'open' if is_open else 'resolved'}")
    if first["open_overdue_by_rule"]:
        print(
            "  open overdue deadlines by rule: "
            + ", ".join(f"{k} {v:,}" for k, v in first["open_overdue_by_rule"].items())
        )
    if rb["profile"]:
        print()
        print(rb["profile"])
    out = {"rebuild_median": med, "observe_p99_us": None}
    if obs is not None:
        o = obs["observe"]
        print()
        print(
            f"Per event: Compliance.apply([event]) after each of {o['events']:,} appends "
            f"on the rebuilt state ({o['publishes_per_s']:.0f} appends/s, synchronous=NORMAL; "
            f"rebuild in this process {obs['wall_s']:.2f} s, log copy {obs['copy_s']:.1f} s; "
            f"other util {obs['other_util']:.0%})"
        )
        rows = [["", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs", "mean µs"]]
        for name, v in (("all calls", o["us"]), ("calls without a GC", o["us_without_gc"])):
            rows.append(
                [name, *(f"{v[q]:.1f}" for q in ("p50", "p90", "p99", "p99.9", "max", "mean"))]
            )
        print(fmt_table(rows))
        verdict = "met" if o["us"]["p99"] <= OBSERVE_TARGET_US else "NOT met"
        print(
            f"  target p99 ≤ {OBSERVE_TARGET_US:.0f} µs: {verdict}; "
            f"{o['over_1ms']} calls over 1 ms; "
            f"{o['calls_with_gc']} calls had a garbage collection inside "
            f"(gen2: {o['gc']['gen2']['count']}, max {o['gc']['gen2']['max_ms']:.0f} ms)"
        )
        f = o["fire_ms"]
        print(
            f"  warnings created or resolved: {o['warnings_changed']:,}; timer rounds "
            f"(Watchdog.fire): {o['fire_calls']}, p50 {f.get('p50', 0):.3f} ms, "
            f"max {f.get('max', 0):.3f} ms"
        )
        out["observe_p99_us"] = o["us"]["p99"]
    if ends:
        print()
        print(
            "End to end: POST /api/projects/…/events on `sunbid serve` "
            f"(fresh log, synchronous=FULL), "
            f"{next(iter(ends.values()))['rate']}/s steady, 8 connections"
        )
        rows = [
            [
                "rules",
                "events",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "p99.9 ms",
                "max ms",
                "server CPU µs/event",
                "non-201",
                "other util",
            ]
        ]
        for name, r in ends.items():
            m = r["ms"]
            rows.append(
                [
                    name,
                    str(r["events"]),
                    *(f"{m[q]:.2f}" for q in ("p50", "p90", "p99", "p99.9", "max")),
                    f"{r['server_cpu_us_per_event']:.0f}",
                    str(sum(r["bad"].values())),
                    f"{r['cpu']['other_util']:.0%}",
                ]
            )
        print(fmt_table(rows))
    return out


# --------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=1_000_000, help="events in the log (1,000,000)")
    ap.add_argument("--projects", type=int, default=50_000, help="projects (50,000)")
    ap.add_argument("--repeat", type=int, default=3, help="rebuild runs without compliance.db (3)")
    ap.add_argument("--observe", type=int, default=20_000, help="new events timed through observe")
    ap.add_argument("--rate", type=float, default=100.0, help="end-to-end publishes per second")
    ap.add_argument("--duration", type=float, default=10.0, help="end-to-end seconds per server")
    ap.add_argument("--regenerate", action="store_true", help="make the log again")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also sample one rebuild with py-spy (bench/results/profile-compliance-rebuild.txt)",
    )
    ap.add_argument("--skip-e2e", action="store_true", help="no `sunbid serve` part")
    ap.add_argument("--child", choices=["generate", "rebuild"], help=argparse.SUPPRESS)
    ap.add_argument("--log", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    ap.add_argument("--next", help=argparse.SUPPRESS)
    ap.add_argument("--observe-events", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        import logging

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        coro = child_generate(args) if args.child == "generate" else child_rebuild(args)
        print(orjson.dumps(run(coro)).decode(), flush=True)
        return
    run(amain(args))


async def amain(args: argparse.Namespace) -> None:
    pin_self(CLIENT_CORE)
    print_machine()
    paths = cache_paths(args.events, args.projects)
    RESULTS.mkdir(exist_ok=True)
    meta = None if args.regenerate else cache_valid(paths, args.events, args.projects)
    if meta is None:
        print(
            f"generating the log ({args.events:,} events, {args.projects:,} projects) into "
            f"{paths['log'].relative_to(ROOT)}; once, it is kept",
            flush=True,
        )
        meta = run_child("generate", args, [], None, timeout=4 * 3600)
    else:
        print(
            f"reusing {paths['log'].relative_to(ROOT)} (generated {meta['generated_at']}; "
            f"--regenerate to make it again)",
            flush=True,
        )
    t_start = time.perf_counter()
    digests = source_digests()
    work = Path(tempfile.mkdtemp(prefix="bench-compliance-"))
    try:
        print("rebuild runs:", flush=True)
        rb = await rebuilds(args, paths["log"], work)
        obs = None
        if args.observe > 0:
            print(f"publishing {args.observe:,} next events on a copy of the log ...", flush=True)
            obs = await observe_run(args, paths["log"], paths["next"], work, rb["warnings_db"])
        ends: dict[str, Any] = {}
        if not args.skip_e2e and sunbid_available():
            for name, inert in (("shipped rules", False), ("inert rule", True)):
                print(f"end to end, {name} ...", flush=True)
                ends[name] = await e2e(args, paths["next"], work, inert)
        rb.pop("warnings_db")
        summary = print_report(meta, rb, obs, ends)
        problems = [
            e
            for r in [*rb["fresh"], rb["kept"], *([obs] if obs else [])]
            for e in r.get("stderr_errors", [])
        ]
        if problems:
            print("! errors logged by the children:", *problems[:10], sep="\n  ")
        after = source_digests()
        changed = sorted(k for k in digests.keys() | after.keys() if digests.get(k) != after.get(k))
        if changed:
            print(
                "! changed during this run (the figures may mix two versions of these): "
                + ", ".join(changed)
            )
        print(f"\n(measured in {time.perf_counter() - t_start:.0f} s)")
        path = save_results(
            "compliance",
            {
                "log": meta,
                "rebuild": rb,
                "observe": obs,
                "end_to_end": ends,
                "summary": summary,
                "changed_during_run": changed,
                "args": {k: v for k, v in vars(args).items() if not k.startswith(("child", "log"))},
            },
        )
        print(f"results: {path.relative_to(ROOT)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
