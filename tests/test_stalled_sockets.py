"""Clients that never read: memory stays bounded and their sockets are gone
within the send timeout, freeing their per-address slots.

Raw sockets with a 4 KB receive buffer ask for the whole log (or only live
events) over WebSocket and SSE, and then never read a byte: the attack a
single phone-sized script can make on a public server.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import ServerProcess, Staff
from tests.test_metrics import scrape, value

SEND_TIMEOUT = 2  # seconds (the default is 30; short here so the test is quick)
STALLED = 20
EVENTS = 300
BODY = "评标委员会评审意见及各投标人报价明细。" * 360  # ~20 KB of UTF-8 per event
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("stalled") / "data",
        SUNBID_SEND_TIMEOUT_SECONDS=str(SEND_TIMEOUT),
        SUNBID_MAX_CONNECTIONS_PER_ADDRESS=str(STALLED),
    ).start()
    staff = Staff(proc, proc.token("admin-stalled"))
    staff.project("STALL-1")
    for i in range(EVENTS):  # ~6 MB of log: what a replay from 0 would send
        staff.publish("STALL-1", body=BODY, data={"i": i})
    staff.client.close()
    yield proc
    proc.stop(signal.SIGKILL)


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def server_side(server_port: int, client_ports: set[int]) -> dict[int, int]:
    """Client port → bytes the kernel still queues for it, for server sockets that exist."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local = int(fields[1].split(":")[-1], 16)
            remote = int(fields[2].split(":")[-1], 16)
            if local == server_port and remote in client_ports:
                found[remote] = int(fields[4].split(":")[0], 16)
    return found


def stalled_request(server: ServerProcess, path: str, websocket: bool) -> socket.socket:
    """Send the request and read nothing, ever: not even the response headers."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    headers = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
    if websocket:
        key = base64.b64encode(os.urandom(16)).decode()
        headers += (
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        )
    sock.sendall((headers + "\r\n").encode())
    return sock


def wait_gone(server: ServerProcess, ports: set[int], within: float) -> float:
    started = time.monotonic()
    while server_side(server.port, ports):
        elapsed = time.monotonic() - started
        assert elapsed < within, (elapsed, server_side(server.port, ports))
        time.sleep(0.1)
    return time.monotonic() - started


def test_stalled_replaying_clients_cost_bounded_memory_and_are_aborted(
    server: ServerProcess,
) -> None:
    assert server.process is not None
    before = rss(server.process.pid)
    socks = [
        stalled_request(
            server, f"/{'ws' if i % 2 else 'api/stream'}?topics=all&since=0", websocket=i % 2 == 1
        )
        for i in range(STALLED)
    ]
    ports = {s.getsockname()[1] for s in socks}
    try:
        time.sleep(1)
        # Each holds at most its byte cap (1 MiB), a quarter of it of a replay page
        # and the transport's 64 KiB (about 1.3 MiB; 2 MiB leaves the allocator
        # room); before the caps, 20 such clients took the server from 111 to 628 MB.
        grown = rss(server.process.pid) - before
        print(f"RSS grew by {grown / MiB:.1f} MiB for {STALLED} stalled clients")
        assert grown < STALLED * 2 * MiB, f"RSS grew by {grown / MiB:.0f} MiB"
        assert len(server_side(server.port, ports)) == STALLED

        # Aborted, not closed: gone within the send timeout (plus a quarter, the
        # watch's period), kernel queues included.
        wait_gone(server, ports, within=SEND_TIMEOUT * 1.25 + 2)

        # Their per-address slots are free again: a full set of new streams is accepted.
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for _ in range(STALLED):
                with client.stream("GET", "/api/stream", params={"topics": "all"}) as stream:
                    assert stream.status_code == 200
            with connect(server.ws_url + "?topics=all", open_timeout=5) as ws:
                assert '"subscribed"' in str(ws.recv(timeout=5))
    finally:
        for sock in socks:
            sock.close()


def test_a_stalled_live_client_cut_off_as_lagging_loses_its_socket_too(
    server: ServerProcess,
) -> None:
    """Live only: nothing to replay, but the publications overflow its byte cap.
    The 4008 close it will never read must not keep its socket either."""
    socks = [
        stalled_request(server, "/ws?topics=project:STALL-1", websocket=True) for _ in range(4)
    ]
    ports = {s.getsockname()[1] for s in socks}
    try:
        time.sleep(0.3)
        assert len(server_side(server.port, ports)) == len(socks)
        lagging_before = value(scrape(server), "sunbid_stream_lagging_closes_total", transport="ws")
        staff = Staff(server, server.token(f"admin-live-{time.monotonic_ns()}"))
        # ~5 MB each: past the kernel's buffers (~2.8 MB on loopback) and then the 1 MiB cap.
        for i in range(250):
            staff.publish("STALL-1", body=BODY, data={"live": i})
        staff.client.close()
        # Each was cut off for overflowing its cap (not merely timed out) ...
        lagging = value(scrape(server), "sunbid_stream_lagging_closes_total", transport="ws")
        assert lagging - lagging_before == len(socks)
        # ... and its socket goes all the same, though it never reads the 4008.
        wait_gone(server, ports, within=SEND_TIMEOUT * 2.5 + 2)
    finally:
        for sock in socks:
            sock.close()
