"""Clients that never read: server memory and how soon their sockets are gone.

A log of E events of about B bytes; then S raw sockets with a 4 KB receive
buffer ask for all of it (half `GET /ws?topics=all&since=0`, half
`GET /api/stream?topics=all&since=0`) and never read a byte. The server's
VmRSS is sampled every 0.25 s, and /proc/net/tcp tells which of their
connections the server still holds and how much the kernel queues for them.

Each stalled client may cost at most SUNBID_MAX_PENDING_BYTES of unsent
frames plus one replay page (a quarter of it) plus the transport's buffer;
after SUNBID_SEND_TIMEOUT_SECONDS without progress its socket is reset.

    .venv/bin/python bench/stalled.py [--stalled 200] [--events 10000] [--bytes 20000]
    .venv/bin/python bench/stalled.py --checkout /path/to/older/sunbid  # an earlier version
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    HOST,
    _sunbid_token,
    create_project,
    make_server,
    pin_self,
    print_machine,
    publish_many,
    raise_nofile,
    run,
    save_results,
)

MiB = 1024 * 1024


def stalled_socket(port: int, i: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((HOST, port))
    if i % 2:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws?topics=all&since=0 HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
    else:
        request = f"GET /api/stream?topics=all&since=0 HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def held(server_port: int, ports: set[int]) -> tuple[int, int]:
    """(connections the server still holds, bytes the kernel queues on them)."""
    count = queued = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        if local == server_port and remote in ports:
            count += 1
            queued += int(fields[4].split(":")[0], 16)
    return count, queued


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    env = {"SUNBID_MAX_CONNECTIONS_PER_ADDRESS": str(args.stalled + 16)}
    server = make_server("sunbid", env)
    if args.checkout:
        server.cwd = Path(args.checkout).resolve()
        server.argv = [sys.executable, "-m", "server", *server.argv[1:]]
    try:
        server.token = _sunbid_token(server)
        server.start()
        await create_project(server)
        started = time.monotonic()
        bad = await publish_many(server, args.events, publishers=8, size=args.bytes)
        assert not bad, bad[:5]
        took = time.monotonic() - started
        print(f"  seeded {args.events} events of ~{args.bytes} B in {took:.1f} s")
        await asyncio.sleep(2)
        baseline = server.rss_kib() * 1024
        socks = [stalled_socket(server.port, i) for i in range(args.stalled)]
        opened = time.monotonic()
        ports = {s.getsockname()[1] for s in socks}
        peak, peak_queued, gone_after = baseline, 0, None
        while time.monotonic() - opened < args.wait:
            await asyncio.sleep(0.25)
            peak = max(peak, server.rss_kib() * 1024)
            count, queued = held(server.port, ports)
            peak_queued = max(peak_queued, queued)
            if count == 0:
                gone_after = time.monotonic() - opened
                break
        still, _ = held(server.port, ports)
        after = server.rss_kib() * 1024
        for s in socks:
            s.close()
        return {
            "stalled": args.stalled,
            "events": args.events,
            "event_bytes": args.bytes,
            "rss_before_mib": baseline / MiB,
            "rss_peak_mib": peak / MiB,
            "rss_growth_mib": (peak - baseline) / MiB,
            "growth_per_client_kib": (peak - baseline) / args.stalled / 1024,
            "kernel_queued_peak_mib": peak_queued / MiB,
            "sockets_gone_after_s": gone_after,
            "still_held_at_end": still,
            "rss_after_mib": after / MiB,
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stalled", type=int, default=200)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--bytes", type=int, default=20_000)
    parser.add_argument("--wait", type=float, default=75.0, help="give up after this long")
    parser.add_argument("--checkout", help="run the server of another checkout (cwd)")
    args = parser.parse_args()
    pin_self()
    raise_nofile()
    print_machine()
    result = run(bench(args))
    for key, value in result.items():
        print(f"  {key:24} {value:.1f}" if isinstance(value, float) else f"  {key:24} {value}")
    save_results("stalled" + ("-checkout" if args.checkout else ""), result)


if __name__ == "__main__":
    main()
