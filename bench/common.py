"""Shared pieces of the benchmarks: the servers under test, pinning, /proc
readings, publishers and subscribers (over the minimal clients in wire.py).

The load generator is this process, pinned to core 1; every server runs in a
child process pinned to core 0, so the server's CPU time is read from
/proc/<pid>/stat without the generator's work mixed in.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from wire import HOST, HttpConn, WSConn, connect_ws

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
SERVER_CORE = 0
CLIENT_CORE = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROJECT = "BENCH-1"
TOPIC = f"project:{PROJECT}"
EVENT_BYTES = 300  # target size of one serialized event

SERVERS = ("sunbid", "websockets", "socketio")
LABELS = {
    "sunbid": "Sunbid",
    "websockets": "bare websockets",
    "socketio": "python-socketio",
}


# --------------------------------------------------------------------------
# Machine, process and OS helpers


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in (
        "sunbid",
        "websockets",
        "uvicorn",
        "starlette",
        "python-socketio",
        "python-engineio",
        "uvloop",
        "httptools",
        "orjson",
        "aiosqlite",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "-"
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "commit": commit or "-",
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
    }


def print_machine() -> None:
    m = machine_info()
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}")
    print(f"python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    print(f"sunbid source: git {m['commit']}")
    print(f"server pinned to core {SERVER_CORE}, load generator pinned to core {CLIENT_CORE}")
    print()


def pin_self(core: int = CLIENT_CORE) -> None:
    os.sched_setaffinity(0, {core})


def raise_nofile(want: int = 65536) -> int:
    """Raise the open-file limit as far as the hard limit allows; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def machine_busy() -> float:
    """CPU seconds all cores spent busy (not idle nor waiting on I/O) since boot."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, f.readline().split()[1:9]
        )
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


async def wait_quiet(threshold: float = 0.15, sample: float = 1.0, max_wait: float = 30.0) -> float:
    """Wait (at most `max_wait` s) until the machine is nearly idle before a
    measurement: other work on this 2-core box would share the cores with the
    pinned server and client. Returns the busy cores seen in the last sample."""
    deadline = time.monotonic() + max_wait
    while True:
        b0 = machine_busy()
        await asyncio.sleep(sample)
        busy = (machine_busy() - b0) / sample
        if busy < threshold or time.monotonic() > deadline:
            if busy >= threshold:
                print(f"  ! machine still busy ({busy:.0%} of a core); measuring anyway")
            return busy


class CpuWindow:
    """CPU used by the server, by this load generator and by anything else on the
    machine over a window; "other" shows whether a run was disturbed.

    `also` names further processes of the benchmark (e.g. a push service) by a
    function reading their CPU seconds: each is reported as `<name>_cpu_s` and
    `<name>_util` and not counted as "other". With `split`, the server's own
    process and its children (e.g. a push worker) are also reported apart."""

    def __init__(
        self,
        server: Server,
        also: dict[str, Callable[[], float]] | None = None,
        split: bool = False,
    ) -> None:
        self.server = server
        self.also = dict(also or {})
        if split:
            self.also["server_main"] = lambda: proc_cpu_own(server.pid)
        self.t0 = time.perf_counter()
        self.a0 = {name: f() for name, f in self.also.items()}
        self.s0, self.c0, self.b0 = server.cpu(), self_cpu(), machine_busy()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        server = self.server.cpu() - self.s0
        client = self_cpu() - self.c0
        busy = machine_busy() - self.b0
        extra = {name: f() - self.a0[name] for name, f in self.also.items()}
        counted = server + client + sum(v for k, v in extra.items() if k != "server_main")
        other = max(0.0, busy - counted)
        out = {
            "wall_s": wall,
            "server_cpu_s": server,
            "client_cpu_s": client,
            "other_cpu_s": other,
            "server_util": server / wall,
            "client_util": client / wall,
            "other_util": other / wall,
        }
        for name, v in extra.items():
            out[f"{name}_cpu_s"] = v
            out[f"{name}_util"] = v / wall
        if "server_main" in extra:
            out["server_children_cpu_s"] = server - extra["server_main"]
        return out


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
    return out


def proc_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(_children(p))
    return pids


def proc_cpu(pid: int) -> float:
    """utime+stime (all threads) of a process and its descendants, in seconds."""
    ticks = 0
    for p in proc_tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{p}/stat") as f:
            # The command name may contain spaces; fields resume after ')'.
            rest = f.read().rsplit(")", 1)[1].split()
            ticks += int(rest[11]) + int(rest[12])  # fields 14 and 15
    return ticks / CLK_TCK


def proc_cpu_own(pid: int) -> float:
    """utime+stime (all threads) of one process, without its children, in seconds."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK
    return 0.0


def proc_rss_kib(pid: int) -> int:
    total = 0
    for p in proc_tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of unsorted values (p in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def fmt_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Servers under test


class ServerError(RuntimeError):
    pass


@dataclass
class Server:
    """One server under test, started as a child process pinned to core 0."""

    kind: str
    port: int
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    token: str = ""
    workdir: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    seq: int = 0  # baselines: the publishers number events themselves
    cwd: Path = ROOT  # another checkout's, to measure an earlier version of Sunbid
    cores: set[int] = field(default_factory=lambda: {SERVER_CORE})  # where it may run

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def label(self) -> str:
        return LABELS[self.kind]

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    def rss_kib(self) -> int:
        return proc_rss_kib(self.pid)

    def start(self, timeout: float = 30.0) -> None:
        assert self.workdir is not None
        self.log_path = self.workdir / f"{self.kind}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the child
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, self.cores),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.kind} exited with {self.proc.returncode}: {self.log()}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.2):
                if self.kind != "sunbid" or _healthz(self.port):
                    return
            time.sleep(0.1)
        raise ServerError(f"{self.kind} did not answer within {timeout}s: {self.log()}")

    def log(self, tail: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-tail:]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10 if self.kind == "sunbid" else 5)
            except subprocess.TimeoutExpired:
                if self.kind == "sunbid":  # the baselines' shutdown is not under test
                    print(f"  ! {self.label} did not stop within 10 s of SIGTERM", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        problems = [
            line
            for line in self.log(200_000).splitlines()
            if "Traceback" in line or " ERROR " in line or line.startswith("ERROR")
        ]
        if problems:
            print(f"  ! {self.label} logged {len(problems)} error line(s):", file=sys.stderr)
            for line in problems[:5]:
                print(f"    {line}", file=sys.stderr)
            for line in sorted(set(_exception_lines(self.log(200_000))))[:5]:
                print(f"    raised: {line}", file=sys.stderr)
            if os.environ.get("BENCH_KEEP_LOGS") and self.log_path is not None:
                kept = BENCH / "results" / f"{self.kind}-{self.pid}.log"
                kept.parent.mkdir(exist_ok=True)
                shutil.copy2(self.log_path, kept)
                print(f"    whole log kept in {kept}", file=sys.stderr)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _exception_lines(log: str) -> list[str]:
    """The closing line of each traceback in a log: what was raised."""
    out, inside = [], False
    for line in log.splitlines():
        if line.startswith("Traceback"):
            inside = True
        elif inside and line and not line.startswith((" ", "\t")):
            out.append(line[:300])
            inside = False
    return out


def _healthz(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), 1.0) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def make_server(kind: str, extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
    env = dict(extra_env or {})
    if kind == "websockets":
        argv = [sys.executable, str(BENCH / "baseline_websockets.py"), "--port", str(port)]
    elif kind == "socketio":
        argv = [
            str(BIN / "uvicorn"),
            "bench.baseline_socketio:app",
            "--host", HOST, "--port", str(port),
            "--ws", "websockets-sansio",
            "--ws-per-message-deflate", "false",
            "--no-access-log",
            "--log-level", "warning",
        ]  # fmt: skip
    elif kind == "sunbid":
        env = {
            "SUNBID_DATA_DIR": str(workdir / "data"),
            "SUNBID_DEMO": "0",
            "SUNBID_MAX_CONNECTIONS_PER_ADDRESS": "100000",
            **env,
        }
        argv = [str(BIN / "sunbid"), "serve", "--host", HOST, "--port", str(port)]
    else:
        raise ValueError(kind)
    return Server(kind, port, argv, env=env, workdir=workdir)


def sunbid_available() -> bool:
    return (BIN / "sunbid").exists()


async def start_server(
    kind: str,
    extra_env: dict[str, str] | None = None,
    prepare: Callable[[Server], Awaitable[None]] | None = None,
    projects: Iterable[str] = (PROJECT,),
) -> Server:
    """Start a server (blocking the loop while it boots; nothing else runs yet).

    `prepare` runs after Sunbid's admin token is made and before the server
    starts (e.g. to fill its data directory); `projects` are created on Sunbid."""
    server = make_server(kind, extra_env)
    try:
        if kind == "sunbid":
            server.token = _sunbid_token(server)
        if prepare is not None:
            await prepare(server)
        server.start()
        if kind == "sunbid":
            for project in projects:
                await create_project(server, project)
    except BaseException:
        server.stop()
        raise
    return server


def _sunbid_token(server: Server) -> str:
    out = subprocess.run(
        [str(BIN / "sunbid"), "token", "create", "--name", "bench", "--role", "admin"],
        cwd=ROOT,
        env={**os.environ, **server.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        raise ServerError(f"sunbid token create failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1].strip()


async def create_project(server: Server, project: str = PROJECT) -> None:
    http = await HttpConn.open(server.port)
    body = {
        "id": project,
        "title": "基准测试项目",
        "category": "construction",
        "agency": "YW-GGZY",
    }
    status, resp = await http.post_json("/api/projects", body, server.token)
    http.close()
    if status != 201:
        raise ServerError(f"POST /api/projects -> {status}: {resp[:500]!r}")


# --------------------------------------------------------------------------
# Events and publishing


def padded_body(target: int, overhead: int) -> str:
    return "x" * max(0, target - overhead)


def baseline_event(seq: int, t_ns: int = 0, size: int = EVENT_BYTES) -> dict[str, Any]:
    """An event shaped like Sunbid's (same fields), padded to about `size` bytes."""
    ev: dict[str, Any] = {
        "seq": seq,
        "project": PROJECT,
        "category": "construction",
        "agency": "YW-GGZY",
        "region": None,
        "stage": "notice",
        "title": "基准测试公告",
        "body": "",
        "data": {"t": t_ns},
        "occurred_at": "2026-12-01T09:30:00+08:00",
        "published_at": "2026-12-01T09:31:12.345+08:00",
        "hash": "0" * 64,
    }
    ev["body"] = padded_body(size, len(orjson.dumps(ev)))
    return ev


# Fields the Sunbid server adds to what a publisher posts (seq, project, category,
# agency, region, published_at, hash): about this many bytes of JSON.
SUNBID_ADDED_BYTES = 215


def sunbid_post(t_ns: int = 0, size: int = EVENT_BYTES) -> dict[str, Any]:
    post: dict[str, Any] = {
        "stage": "notice",
        "title": "基准测试公告",
        "body": "",
        # A notice states its bid deadline (a fact the checks before publishing require).
        "data": {"t": t_ns, "deadline": "2099-12-31T09:30:00+08:00"},
        "occurred_at": "2026-12-01T09:30:00+08:00",
    }
    post["body"] = padded_body(size, len(orjson.dumps(post)) + SUNBID_ADDED_BYTES)
    return post


class Publisher:
    """Publishes one event on a server, the way that server takes publications.

    - Sunbid: POST /api/projects/BENCH-1/events (201 = durable), keep-alive.
    - python-socketio: POST /publish on the same ASGI app; the route calls
      sio.emit("event", data, room=...).  201 after the emit was queued.
    - bare websockets: a publisher WebSocket on /publish; every text message
      it sends is broadcast verbatim to /ws subscribers. No reply.
    """

    def __init__(self, server: Server, project: str = PROJECT) -> None:
        self.server = server
        self.project = project  # Sunbid only
        self.http: HttpConn | None = None
        self.ws: WSConn | None = None
        self.last: dict[str, Any] = {}  # Sunbid: the last event answered with 201

    @classmethod
    async def open(cls, server: Server, project: str = PROJECT) -> Publisher:
        self = cls(server, project)
        if server.kind == "websockets":
            self.ws = await connect_ws(server.port, "/publish", on_text=lambda c, p: None)
        else:
            self.http = await HttpConn.open(server.port)
        return self

    async def publish(self, t_ns: int = 0, size: int = EVENT_BYTES) -> tuple[int, int]:
        """Returns (status, seq). Bare websockets has no answer: (0, seq)."""
        if self.server.kind == "sunbid":
            assert self.http is not None
            status, body = await self.http.post_json(
                f"/api/projects/{self.project}/events", sunbid_post(t_ns, size), self.server.token
            )
            self.last = orjson.loads(body) if status in (200, 201) else {}
            return status, int(self.last.get("seq", 0))
        self.server.seq += 1
        seq = self.server.seq
        ev = baseline_event(seq, t_ns, size)
        if self.server.kind == "socketio":
            assert self.http is not None
            status, _ = await self.http.post_json("/publish", ev)
            return status, seq
        assert self.ws is not None
        self.ws.send_text(orjson.dumps({"op": "event", "event": ev}))
        return 0, seq

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        if self.ws is not None:
            self.ws.abort()


async def healthz_head(port: int) -> int:
    http = await HttpConn.open(port)
    try:
        status, body = await http.get("/healthz")
        return int(orjson.loads(body)["head"]) if status == 200 else -1
    finally:
        http.close()


def subscriber_path(kind: str, since: int | None = None, topic: str = TOPIC) -> str:
    if kind == "sunbid":
        return f"/ws?topics={topic}" + (f"&since={since}" if since is not None else "")
    if kind == "websockets":
        return "/ws"
    return f"/socket.io/?EIO=4&transport=websocket&room={TOPIC}"


def subscriber_handler(
    kind: str, on_event: Callable[[WSConn, dict[str, Any]], None]
) -> Callable[[WSConn, bytes], None]:
    """Decode just enough of each server's frames to hand events to `on_event`."""
    loads = orjson.loads

    if kind == "socketio":
        # engine.io v4 over WebSocket: "0{...}" open -> send "40"; "40{...}"
        # namespace joined; '42["event",{...}]' events; "2" ping -> "3" pong.
        def on_sio(conn: WSConn, payload: bytes) -> None:
            if payload[:2] == b"42":
                conn.size = len(payload)
                on_event(conn, loads(payload[2:])[1])
            elif payload == b"2":
                conn.send_text(b"3")
            elif payload[:2] == b"40":
                if not conn.ready.done():
                    conn.ready.set_result(None)
            elif payload[:1] == b"0":
                conn.send_text(b"40")
            elif payload[:2] == b"44":
                conn.errors += 1

        return on_sio

    def on_json(conn: WSConn, payload: bytes) -> None:
        msg = loads(payload)
        op = msg.get("op")
        if op == "event":
            conn.size = len(payload)
            on_event(conn, msg["event"])
        elif op == "subscribed":
            if not conn.ready.done():
                conn.ready.set_result(None)
        elif op == "error":
            conn.errors += 1
            print(f"  ! server error frame: {payload[:300]!r}", file=sys.stderr)

    return on_json


class Tracker:
    """Counts deliveries per seq; an event is complete when all N have it."""

    def __init__(self, n: int, latency: bool = False, gaps_ok: bool = False) -> None:
        self.n = n
        # With other projects' events in the log, a topic's seqs have gaps:
        # then only increasing order is checked.
        self.gaps_ok = gaps_ok
        self.counts: dict[int, int] = {}
        self.completed = 0
        self.progress = asyncio.Event()
        # Publish-to-receive latencies (ns), from the sender's `data.t`.
        self.latencies: list[int] | None = [] if latency else None

    def on_event(self, conn: WSConn, ev: dict[str, Any]) -> None:
        seq = ev["seq"]
        if conn.last and (seq <= conn.last if self.gaps_ok else seq != conn.last + 1):
            conn.errors += 1
        conn.last = seq
        conn.count += 1
        if self.latencies is not None:
            self.latencies.append(time.time_ns() - ev["data"]["t"])
        c = self.counts.get(seq, 0) + 1
        self.counts[seq] = c
        if c == self.n:
            self.completed += 1
            self.progress.set()

    def reset(self, subs: list[WSConn]) -> None:
        self.counts.clear()
        self.completed = 0
        if self.latencies is not None:
            self.latencies.clear()
        for s in subs:
            s.count = 0


async def drive(
    pub: Publisher,
    tracker: Tracker,
    events: int,
    window: int,
    timeout: float,
    answers: list[float] | None = None,
) -> bool:
    """Publish `events` with at most `window` not yet complete; True if all complete.
    With `answers`, each publish's answer time (s) is appended to it."""
    published = 0
    deadline = time.monotonic() + timeout
    while tracker.completed < events:
        while published < events and published - tracker.completed < window:
            t = time.perf_counter()
            status, _ = await pub.publish()
            if answers is not None:
                answers.append(time.perf_counter() - t)
            if status not in (0, 200, 201):
                raise RuntimeError(f"publish answered {status}")
            published += 1
        tracker.progress.clear()
        if tracker.completed >= events:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            await asyncio.wait_for(tracker.progress.wait(), min(left, 5.0))
        except TimeoutError:
            if time.monotonic() > deadline:
                return False
    return True


async def publish_at_rate(
    server: Server, rate: float, duration: float, publishers: int = 8, project: str = PROJECT
) -> tuple[int, list[float], list[int]]:
    """Publish at `rate`/s for `duration` s from a small pool of connections, so one
    slow answer never delays the schedule. Returns (sent, answer times in s, bad statuses).
    Each event carries `data.t` = time.time_ns() taken just before it is sent."""
    pool: asyncio.Queue[Publisher] = asyncio.Queue()
    for _ in range(publishers):
        pool.put_nowait(await Publisher.open(server, project))
    answered: list[float] = []
    bad: list[int] = []

    async def one() -> None:
        pub = await pool.get()
        try:
            t = time.time_ns()
            status, _ = await pub.publish(t_ns=t)
            answered.append((time.time_ns() - t) / 1e9)
            if status not in (0, 201):
                bad.append(status)
        finally:
            pool.put_nowait(pub)

    total = int(rate * duration)
    tasks = []
    t0 = time.monotonic()
    for i in range(total):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    return total, answered, bad


async def publish_many(
    server: Server, count: int, publishers: int = 16, size: int = EVENT_BYTES
) -> list[int]:
    """Publish exactly `count` events of about `size` bytes from `publishers`
    connections; returns bad statuses."""
    pubs = [await Publisher.open(server) for _ in range(publishers)]
    left = count
    bad: list[int] = []

    async def loop(pub: Publisher) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status, _ = await pub.publish(size=size)
            if status not in (0, 201):
                bad.append(status)

    await asyncio.gather(*(loop(p) for p in pubs))
    for p in pubs:
        p.close()
    return bad


async def wait_complete(tracker: Tracker, events: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while tracker.completed < events and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return tracker.completed >= events


def source_address(i: int, spread: int = 8) -> str:
    """Spread client sockets over 127.0.0.2-9 so ephemeral ports never run out."""
    return f"127.0.0.{2 + i % spread}"


async def open_subscribers(
    server: Server,
    n: int,
    on_event: Callable[[WSConn, dict[str, Any]], None],
    concurrency: int = 100,
    since: int | None = None,
    timeout: float = 60.0,
    topic: str = TOPIC,
) -> list[WSConn]:
    """Open n subscribers to the benchmark topic (Sunbid: `topic`), each ready to receive."""
    path = subscriber_path(server.kind, since, topic)
    handler = subscriber_handler(server.kind, on_event)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> WSConn:
        async with sem:
            for attempt in range(3):
                try:
                    conn = await connect_ws(server.port, path, handler, source_address(i))
                    await asyncio.wait_for(asyncio.shield(conn.ready), 30)
                    return conn
                except (OSError, TimeoutError) as exc:
                    if attempt == 2:
                        raise ConnectionError(f"subscriber {i}: {exc!r}") from exc
                    await asyncio.sleep(0.5)
            raise AssertionError("unreachable")

    return list(await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), timeout))


def close_all(conns: Iterable[WSConn]) -> None:
    for c in conns:
        c.abort()


# --------------------------------------------------------------------------
# Web Push: a local push service, subscriptions pointing at it, delivery counts

PUSH_SUBJECT = "mailto:bench@sunbid.org"
PUSH_QUEUE_FILE = "push.db"  # in the server's data directory
VAPID_KEY_FILE = "vapid_private.pem"
PUSH_STATES = ("queued", "delivered", "failed", "gone")


class PushSink:
    """The push service of tests/push_service.py in `fast` mode (201 without
    verifying or decrypting), in a child process pinned to the load generator's
    core (bench/push_sink.py). With `nice`, it runs at a lower priority, so
    that on the shared core the generator's own timing goes first."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, origin: str) -> None:
        self.proc = proc
        self.port = port
        self.origin = origin
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-push-sink-"))
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, nice: int = 0) -> PushSink:
        def pin() -> None:
            os.sched_setaffinity(0, {CLIENT_CORE})
            if nice:
                os.nice(nice)

        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BENCH / "push_sink.py"),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=pin,
        )
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not first:
            raise ServerError(f"the push sink exited with {await proc.wait()}")
        info = orjson.loads(first)
        return cls(proc, int(info["port"]), str(info["origin"]))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    def endpoint(self, i: int) -> str:
        """The endpoint of benchmark subscriber i; its id at the sink is `b{i:06d}`."""
        return f"{self.origin}/push/b{i:06d}"

    async def _ask(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        async with self._lock:
            self.proc.stdin.write(line.encode() + b"\n")
            await self.proc.stdin.drain()
            answer = await self.proc.stdout.readline()
        if not answer:
            raise ServerError("the push sink has exited")
        return dict(orjson.loads(answer))

    async def count(self) -> int:
        """Requests received so far."""
        return int((await self._ask("count"))["n"])

    async def attempts(self, start: int = 0) -> list[list[Any]]:
        """[[subscriber id, time answered (time.time()), status, client port], ...]
        for the requests from the `start`-th on."""
        path = self.workdir / "dump.json"
        await self._ask(f"dump {start} {path}")
        return list(orjson.loads(path.read_bytes()))

    async def wait_count(self, n: int, timeout: float, poll: float = 0.02) -> bool:
        deadline = time.monotonic() + timeout
        while await self.count() < n:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(poll)
        return True

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self._ask("quit")
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def push_env(sink: PushSink) -> dict[str, str]:
    """Server settings that admit the sink (an explicit origin) as a push service."""
    return {"SUNBID_PUSH_ALLOWED_HOSTS": sink.origin, "SUNBID_VAPID_SUBJECT": PUSH_SUBJECT}


@dataclass(frozen=True)
class PushKeys:
    """One subscriber key pair (p256dh, auth): valid, shared by every benchmark
    subscriber (the sink does not decrypt; encryption still runs per message)."""

    p256dh: bytes
    auth: bytes

    @classmethod
    def new(cls) -> PushKeys:
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        key = ec.generate_private_key(ec.SECP256R1())
        point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return cls(point, os.urandom(16))

    def json(self) -> dict[str, str]:
        return {"p256dh": b64url(self.p256dh), "auth": b64url(self.auth)}

    def subscription(self, endpoint: str) -> dict[str, Any]:
        """As `PushSubscription.toJSON()` gives it."""
        return {"endpoint": endpoint, "expirationTime": None, "keys": self.json()}


def b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def push_address(i: int) -> str:
    """Source address i of 127.1.0.0/16: subscribing is rate-limited per address."""
    return f"127.1.{i // 250}.{i % 250 + 1}"


async def subscribe_http(
    server: Server,
    endpoints: list[str],
    topic: str,
    keys: PushKeys,
    per_address: int = 20,
    connections: int = 1,
) -> dict[str, Any]:
    """POST /api/push/subscriptions for every endpoint, `per_address` from each
    source address (the burst of the per-address limit; a 429 moves on to a
    fresh address), on `connections` keep-alive connections at a time."""
    pending = collections.deque(endpoints)
    addresses = itertools.count()
    statuses: collections.Counter[int] = collections.Counter()
    t0 = time.perf_counter()

    async def worker() -> None:
        while pending:
            n = next(addresses)
            if n >= 250 * 256:
                raise ServerError("ran out of source addresses in 127.1.0.0/16")
            http = await HttpConn.open(server.port, push_address(n))
            try:
                for _ in range(per_address):
                    if not pending:
                        break
                    endpoint = pending.popleft()
                    body = {"subscription": keys.subscription(endpoint), "topics": [topic]}
                    status, resp = await http.post_json("/api/push/subscriptions", body)
                    statuses[status] += 1
                    if status == 429:
                        pending.append(endpoint)
                        break
                    if status != 201:
                        raise ServerError(
                            f"POST /api/push/subscriptions -> {status}: {resp[:300]!r}"
                        )
            finally:
                http.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    took = time.perf_counter() - t0
    return {
        "via": "http",
        "subscriptions": len(endpoints),
        "seconds": took,
        "per_second": len(endpoints) / took,
        "addresses": next(addresses),
        "statuses": dict(statuses),
    }


async def prepopulate_push(
    data_dir: Path, endpoints: list[str], topic: str, keys: PushKeys
) -> dict[str, Any]:
    """Write subscriptions straight into a stopped server's push.db.

    The file is opened with push.queue.PushQueue (its schema and settings) and
    the rows are inserted in one transaction, as `PushQueue.upsert` would write
    them one by one. The VAPID key is created first: a server refuses to start
    with subscriptions and no key."""
    from push.queue import PushQueue
    from push.vapid import load_or_create_key

    t0 = time.perf_counter()
    load_or_create_key(data_dir, subscriptions_exist=False)
    queue = PushQueue(data_dir / PUSH_QUEUE_FILE)
    await queue.open()
    try:
        now = "2026-12-01T09:00:00.000+08:00"
        topics = orjson.dumps([topic]).decode()
        db = queue.db
        await db.execute("BEGIN IMMEDIATE")
        await db.executemany(
            "INSERT INTO subscriptions (endpoint, p256dh, auth, topics, stages, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, NULL, ?, ?)",
            [(e, keys.p256dh, keys.auth, topics, now, now) for e in endpoints],
        )
        await db.execute(
            "INSERT OR IGNORE INTO subscription_topics (topic, subscription_id)"
            " SELECT ?, id FROM subscriptions",
            (topic,),
        )
        await db.execute("COMMIT")
        count = await queue.count()
    finally:
        await queue.close()
    if count != len(endpoints):
        raise ServerError(f"push.db holds {count} subscriptions, wanted {len(endpoints)}")
    took = time.perf_counter() - t0
    return {"via": "push.db", "subscriptions": count, "seconds": took, "per_second": count / took}


async def delivery_counts(http: HttpConn, server: Server, seq: int) -> dict[str, int]:
    """GET /api/events/{seq}/deliveries: {"queued", "delivered", "failed", "gone"}."""
    status, body = await http.get(f"/api/events/{seq}/deliveries", server.token)
    if status != 200:
        raise ServerError(f"GET /api/events/{seq}/deliveries -> {status}: {body[:300]!r}")
    doc = orjson.loads(body)
    return {k: int(doc.get(k, 0)) for k in PUSH_STATES}


async def wait_deliveries(
    http: HttpConn,
    server: Server,
    seq: int,
    done: Callable[[dict[str, int]], bool],
    timeout: float,
    poll: float = 0.1,
) -> tuple[bool, dict[str, int]]:
    deadline = time.monotonic() + timeout
    while True:
        counts = await delivery_counts(http, server, seq)
        if done(counts):
            return True, counts
        if time.monotonic() > deadline:
            return False, counts
        await asyncio.sleep(poll)


def fanout_check(rows: list[list[Any]], expected: set[str]) -> dict[str, Any]:
    """Who the sink heard from: every expected subscriber exactly once?"""
    seen = collections.Counter(r[0] for r in rows)
    return {
        "requests": len(rows),
        "distinct": len(seen),
        "missing": len(expected - seen.keys()),
        "duplicated": sum(1 for n in seen.values() if n > 1),
        "unexpected": len(seen.keys() - expected),
        "not_201": sum(1 for r in rows if r[2] != 201),
        "client_ports": len({r[3] for r in rows}),
        "ok": len(rows) == len(expected) and seen.keys() == expected,
    }


def spread(values: list[float]) -> dict[str, float]:
    """Median and range of a few repeats."""
    import statistics

    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run(coro: Any) -> Any:
    import uvloop

    return uvloop.run(coro)


def start_profiler(
    server: Server, seconds: float, name: str = "", subprocesses: bool = False
) -> subprocess.Popen[bytes] | None:
    """py-spy (if installed in the venv) sampling the server (with `subprocesses`,
    its child processes too) into bench/results/profile-<name or kind>.txt;
    runs on the client core."""
    spy = BIN / "py-spy"
    if not spy.exists():
        print("! --profile needs py-spy: .venv/bin/pip install py-spy", file=sys.stderr)
        return None
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    return subprocess.Popen(
        [
            str(spy), "record", "--pid", str(server.pid), "--rate", "250", "--nonblocking",
            "--format", "raw", "--duration", str(max(1, int(seconds))),
            "--output", str(out / f"profile-{name or server.kind}.txt"),
            *(["--subprocesses"] if subprocesses else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {CLIENT_CORE}),
    )  # fmt: skip


# py-spy reports aiosqlite's worker thread blocked in `queue.get()` as busy.
IDLE_FRAMES = {"_connection_worker_thread (aiosqlite/core.py:59)"}


def profile_summary(kind: str, top: int = 12, name: str = "") -> str:
    """Where the server's samples were: functions by self and by inclusive share."""
    path = BENCH / "results" / f"profile-{name or kind}.txt"
    if not path.exists():
        return "(no profile)"
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    processes: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if frames and frames[-1] in IDLE_FRAMES:
            continue  # a thread blocked waiting for work, not running
        total += n
        procs = [f for f in stack.split(";") if f.startswith("process ")]
        if procs:  # py-spy --subprocesses: the innermost is the sampled one
            processes[procs[-1]] = processes.get(procs[-1], 0) + n
        if not frames:
            frames = ["(no Python frame: native code, e.g. the event loop's own I/O)"]
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
    lines = [f"profile of {LABELS[kind]} ({total} busy samples at 250 Hz)"]
    if len(processes) > 1:
        lines.append("by process:")
        for p, n in sorted(processes.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {n / total:6.1%}  {p[:120]}")
    lines.append("self time:")
    for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {n / total:6.1%}  {f}")
    lines.append("inclusive:")
    for f, n in sorted(incl.items(), key=lambda kv: -kv[1])[: top * 2]:
        lines.append(f"  {n / total:6.1%}  {f}")
    return "\n".join(lines)


def save_results(name: str, results: Any) -> Path:
    """Also keep the figures as JSON under bench/results/ (not versioned)."""
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{name}.json"
    path.write_bytes(
        orjson.dumps(
            {"machine": machine_info(), "results": results},
            option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
        )
    )
    return path


def parse_servers(argv_value: str, default: Iterable[str]) -> list[str]:
    kinds = [k.strip() for k in argv_value.split(",")] if argv_value else list(default)
    for k in kinds:
        if k not in SERVERS:
            raise SystemExit(f"unknown server {k!r}; choose from {', '.join(SERVERS)}")
    if "sunbid" in kinds and not sunbid_available():
        print("! sunbid is not installed in this venv; skipping it", file=sys.stderr)
        kinds.remove("sunbid")
    return kinds
