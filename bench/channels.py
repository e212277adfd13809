"""SMS, e-mail and WeChat: one event to 10,000 subscribers of each channel,
through the tests' stand-ins of the providers.

For each kind, a fresh server (pinned to core 0) with N confirmed channels
of that kind written into its push.db before it starts (addresses sealed
with its contacts.key, as the API would), following `project:BENCH-CH` for
clarifications (urgent: sent at any hour, so the quiet hours do not decide
the figure). The stand-in runs in its own process on core 1 at nice 19
(bench/channel_sink.py), below the load generator it shares the core with:
it stands for a provider on other machines. The SMS provider checks every
request's signature, the SMTP server receives every mail over its own
connection, WeChat checks its token and template.

200 WebSocket subscribers follow `project:LIVE`, published to 10 times a
second: their publish-to-frame latency is measured for `--duration` s
before (idle) and while the channel's deliveries are sent (during). Then a
clarification to BENCH-CH: the time of its 201, when the stand-in had the
first and the last of the N messages, each subscriber exactly once (the
server's receipts: N delivered).

    .venv/bin/python bench/channels.py [--kinds sms,email,wechat] [--subscribers 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from common import (
    BENCH,
    CLIENT_CORE,
    HttpConn,
    Publisher,
    Server,
    Tracker,
    close_all,
    fmt_table,
    open_subscribers,
    percentile,
    pin_self,
    print_machine,
    publish_at_rate,
    raise_nofile,
    run,
    save_results,
    start_server,
    wait_complete,
    wait_quiet,
)

LIVE = "LIVE"
CHANNEL_PROJECT = "BENCH-CH"
SINK_NICE = 19  # the stand-ins stand for services on other machines: last on core 1


class Sink:
    """bench/channel_sink.py: the provider's stand-in and its running count."""

    def __init__(self, proc: asyncio.subprocess.Process, env: dict[str, str]) -> None:
        self.proc = proc
        self.env = env
        self.count = 0
        self.first_at: float | None = None
        self.counted_at = 0.0
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, kind: str, n: int) -> Sink:
        def pin() -> None:
            import os

            os.sched_setaffinity(0, {CLIENT_CORE})
            os.nice(SINK_NICE)

        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BENCH / "channel_sink.py"),
            kind,
            str(n),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=pin,
        )
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 60)
        return cls(proc, orjson.loads(first)["env"])

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            count = int(line)
            if count and self.first_at is None:
                self.first_at = time.time()
            if count != self.count:
                self.count, self.counted_at = count, time.time()

    async def wait(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.count < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.count >= count

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await self.proc.wait()
        self._reader.cancel()


async def populate(data_dir: Path, kind: str, n: int) -> float:
    """N confirmed channels of `kind`, as the API leaves them once confirmed."""
    from push.channels.contacts import ContactCipher, hint, secret_digest
    from push.queue import NewChannel, PushQueue

    t0 = time.perf_counter()
    cipher = ContactCipher.load_or_create(data_dir)
    queue = PushQueue(data_dir / "push.db")
    await queue.open()
    try:
        for i in range(n):
            address = {
                "sms": f"+86138{i:08d}",
                "email": f"u{i}@bench.example",
                "wechat": f"obench{i:022d}",
            }[kind]
            await queue.add_channel(
                NewChannel(
                    kind,
                    cipher.seal(address),
                    cipher.digest(kind, address),
                    hint(kind, address),
                    secret_digest(f"token-{i}"),
                    None,
                    None,
                ),
                [f"project:{CHANNEL_PROJECT}"],
                ["clarification"],
                "2026-12-01T09:00:00.000+08:00",
            )
    finally:
        await queue.close()
    return time.perf_counter() - t0


async def live_window(
    server: Server, subs: list[Any], tracker: Tracker, seconds: float
) -> dict[str, Any]:
    tracker.reset(subs)
    sent, answered, bad = await publish_at_rate(server, 10, seconds, publishers=4, project=LIVE)
    await wait_complete(tracker, sent, 30)
    latencies = [x / 1e6 for x in tracker.latencies or []]
    return {
        "events": sent,
        "lost": len(subs) * sent - sum(s.count for s in subs),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "publish_p99_ms": percentile(answered, 99) * 1e3,
        "bad": bad[:5],
    }


async def one_kind(kind: str, n: int, seconds: float) -> dict[str, Any]:
    sink = await Sink.start(kind, n)
    server: Server | None = None
    subs: list[Any] = []
    populated = 0.0
    try:

        async def prepare(s: Server) -> None:
            nonlocal populated
            populated = await populate(Path(s.env["SUNBID_DATA_DIR"]), kind, n)

        env = {**sink.env, "SUNBID_PUBLIC_URL": "https://sunbid.example"}
        server = await start_server(
            "sunbid", env, prepare=prepare, projects=(LIVE, CHANNEL_PROJECT)
        )
        tracker = Tracker(200, latency=True, gaps_ok=True)
        subs = await open_subscribers(server, 200, tracker.on_event, topic=f"project:{LIVE}")
        http = await HttpConn.open(server.port)
        notice = await Publisher.open(server, CHANNEL_PROJECT)
        status, _ = await notice.publish()  # the notice the clarification follows
        notice.close()
        assert status == 201, status
        await wait_quiet()
        idle = await live_window(server, subs, tracker, seconds)
        await wait_quiet()
        clarification = {"stage": "clarification", "title": "基准测试澄清", "body": "", "data": {}}
        t0 = time.time()
        status, body = await http.post_json(
            f"/api/projects/{CHANNEL_PROJECT}/events", clarification, server.token
        )
        answered = time.time() - t0
        assert status == 201, body
        seq = orjson.loads(body)["seq"]
        during = await live_window(server, subs, tracker, seconds)
        drained = await sink.wait(n, 600)
        first, last = sink.first_at or t0, sink.counted_at
        counts: dict[str, int] = {}
        for _ in range(300):  # outcomes are stored a few ms after the last send
            status, receipts = await http.request(
                "GET",
                f"/api/events/{seq}/deliveries",
                headers={"Authorization": f"Bearer {server.token}"},
            )
            counts = orjson.loads(receipts)["channels"][kind]
            if counts["queued"] == 0:
                break
            await asyncio.sleep(0.1)
        http.close()
        return {
            "kind": kind,
            "subscribers": n,
            "populate_s": populated,
            "publish_201_ms": answered * 1e3,
            "received": sink.count,
            "all_received": drained,
            "receipts": counts,
            "exactly_once": counts["delivered"] == n and sink.count == n,
            "first_after_s": first - t0,
            "last_after_s": last - t0,
            "per_s": n / max(last - first, 1e-9),
            "per_s_from_publish": n / max(last - t0, 1e-9),
            "idle": idle,
            "during": during,
            "ws_p99_ratio": during["p99_ms"] / idle["p99_ms"],
        }
    finally:
        close_all(subs)
        if server is not None:
            server.stop()
        await sink.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="sms,email,wechat")
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    pin_self()
    raise_nofile(20_000)
    print_machine()
    results = []
    for kind in args.kinds.split(","):
        result = await one_kind(kind, args.subscribers, args.duration)
        results.append(result)
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode(), flush=True)
    rows = [["kind", "messages/s", "201 ms", "once each", "WS p99 idle", "WS p99 during", "ratio"]]
    for r in results:
        rows.append(
            [
                r["kind"],
                f"{r['per_s']:,.0f}",
                f"{r['publish_201_ms']:.1f}",
                str(r["exactly_once"]),
                f"{r['idle']['p99_ms']:.1f}",
                f"{r['during']['p99_ms']:.1f}",
                f"{r['ws_p99_ratio']:.2f}",
            ]
        )
    print(fmt_table(rows))
    save_results("channels", {"results": results})
    return 0


if __name__ == "__main__":
    sys.exit(run(main()))
