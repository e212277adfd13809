"""Slow and stalled clients: they never hold anyone else up, and are never
silently skipped: a client that cannot keep up is closed with 4008 `lagging`
and then resumes with `since`. Shutdown tells clients to go away (1001).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from tests.conftest import ServerProcess, close_clients, with_facts

TIMEOUT = 10.0
BIG_BODY = "中标候选人公示：" + "投标报价及评审得分明细。" * 1500  # ~54 KB per event
SMALL_RCVBUF = 4096  # a client socket that holds little: back-pressure comes soon

_opened: list[Any] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    await close_clients(_opened)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """The usual server; at the end, raw sockets go first and the server is killed,
    since a stalled peer would hold up a graceful stop (that is tested on its own)."""
    proc = ServerProcess(tmp_path / "data").start()
    yield proc
    for thing in _opened:
        if isinstance(thing, socket.socket):
            thing.close()
    if proc.process is not None:
        proc.stop(signal.SIGKILL)


class Publisher:
    def __init__(self, server: ServerProcess, token: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        _opened.append(self.client)

    async def project(self, project_id: str) -> dict[str, Any]:
        """Register a project; return its `registered` event."""
        response = await self.client.post(
            "/api/projects",
            json={
                "id": project_id,
                "title": f"项目 {project_id}",
                "category": "construction",
                "agency": "YW-GGZY",
                "region": "330782",
            },
        )
        assert response.status_code == 201, response.text
        timeline = (await self.client.get(f"/api/projects/{project_id}")).json()["timeline"]
        return dict(timeline[0])

    async def publish(self, project_id: str, **fields: Any) -> dict[str, Any]:
        response = await self.client.post(
            f"/api/projects/{project_id}/events",
            json=with_facts("notice", **{"title": f"公告 {project_id}", **fields}),
        )
        assert response.status_code == 201, response.text
        return dict(response.json())


def small_socket(server: ServerProcess) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
    sock.connect(("127.0.0.1", server.port))
    _opened.append(sock)
    return sock


async def ws_open(
    server: ServerProcess, sock: socket.socket | None = None, **query: Any
) -> ClientConnection:
    url = server.ws_url + ("?" + urlencode(query) if query else "")
    extra: dict[str, Any] = {"sock": sock} if sock is not None else {}
    ws = await connect(
        url, proxy=None, open_timeout=TIMEOUT, max_size=2**22, compression=None, **extra
    )
    _opened.append(ws)
    return ws


async def recv(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def recv_event(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    message = await recv(ws, timeout)
    assert message["op"] == "event", message
    return dict(message["event"])


async def until_pong(ws: ClientConnection) -> list[dict[str, Any]]:
    await ws.send(json.dumps({"op": "ping"}))
    events = []
    while (message := await recv(ws))["op"] != "pong":
        assert message["op"] == "event", message
        events.append(message["event"])
    return events


async def until_closed(
    ws: ClientConnection, timeout: float = TIMEOUT
) -> tuple[list[dict[str, Any]], ConnectionClosed]:
    """Read events until the server closes the connection."""
    events = []
    try:
        while True:
            events.append(await recv_event(ws, timeout))
    except ConnectionClosed as closed:
        return events, closed


def read_log(server: ServerProcess) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while True:
            since = events[-1]["seq"] if events else 0
            items = client.get("/api/events", params={"since": since, "limit": 1000}).json()
            events += items["items"]
            if len(items["items"]) < 1000:
                return events


def kernel_queued(server_port: int, client_port: int) -> int | None:
    """Bytes the kernel holds on a loopback connection (server send + client receive queue)."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    total, found = 0, 0
    for line in lines:
        fields = line.split()
        local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        tx_queue, rx_queue = (int(part, 16) for part in fields[4].split(":"))
        if (local, remote) == (server_port, client_port):
            total, found = total + tx_queue, found + 1
        elif (local, remote) == (client_port, server_port):
            total, found = total + rx_queue, found + 1
    return total if found == 2 else None


class StalledClient:
    """Does the WebSocket upgrade by hand on a raw socket, then never calls recv()."""

    def __init__(self, server: ServerProcess, **query: Any) -> None:
        self.sock = small_socket(server)
        url = server.ws_url + "?" + urlencode(query)
        self.protocol = ClientProtocol(parse_uri(url), max_size=2**22)
        self.protocol.send_request(self.protocol.connect())
        self.sock.sendall(b"".join(self.protocol.data_to_send()))
        self.sock.settimeout(TIMEOUT)
        while self.protocol.state is State.CONNECTING:  # byte by byte: read no frame
            self.protocol.receive_data(self.sock.recv(1))
        assert self.protocol.state is State.OPEN, self.protocol.handshake_exc
        self.port = self.sock.getsockname()[1]
        self.closed: tuple[int, str] | None = None

    async def read(self, count: int) -> list[dict[str, Any]]:
        """Start reading at last: the next `count` messages (ops and events), or
        those before the server's close frame (whose code and reason go to `closed`)."""
        loop = asyncio.get_running_loop()
        self.sock.setblocking(False)
        messages: list[dict[str, Any]] = []
        while len(messages) < count:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 16), TIMEOUT)
            assert data, f"connection closed after {len(messages)} messages"
            self.protocol.receive_data(data)
            for frame in self.protocol.events_received():
                if not isinstance(frame, Frame):
                    continue  # the handshake response, already handled
                if frame.opcode is Opcode.TEXT:
                    messages.append(json.loads(frame.data))
                elif frame.opcode is Opcode.CLOSE:
                    self.closed = (int.from_bytes(frame.data[:2]), bytes(frame.data[2:]).decode())
                    return messages
                else:
                    assert frame.opcode in (Opcode.PING, Opcode.PONG), frame
            if pong := self.protocol.data_to_send():
                await loop.sock_sendall(self.sock, b"".join(pong))
        return messages


# --- a stalled reader ---------------------------------------------------------------


async def test_a_stalled_reader_does_not_delay_a_healthy_one(
    server: ServerProcess, admin: str
) -> None:
    pub = Publisher(server, admin)
    await pub.project("SLOW-1")
    stalled = StalledClient(server, topics="all")
    healthy = await ws_open(server, topics="all")
    assert (await recv(healthy))["op"] == "subscribed"

    latencies, sent_bytes, published = [], 0, []
    for i in range(150):
        started = time.monotonic()
        event = await pub.publish("SLOW-1", body=BIG_BODY, data={"i": i})
        assert await recv_event(healthy) == event
        latencies.append(time.monotonic() - started)
        sent_bytes += len(json.dumps({"op": "event", "event": event}, ensure_ascii=False).encode())
        published.append(event)

    # Each event reached the healthy client within 200 ms of being published ...
    assert max(latencies) < 0.2, sorted(latencies)[-5:]
    # ... while more was published than the kernel's buffers and the server's
    # cap for one client (1 MiB) hold together.
    in_kernel = kernel_queued(server.port, stalled.port)
    if in_kernel is not None:
        assert sent_bytes - in_kernel > 1_100_000, (sent_bytes, in_kernel)

    # Nothing was skipped for it: when it reads at last, it gets a gapless prefix of
    # what was published and then 4008 "lagging", to resume with `since`.
    messages = await stalled.read(151)
    assert messages[0]["op"] == "subscribed"
    got = [m["event"] for m in messages[1:]]
    assert got == published[: len(got)] and 0 < len(got) < len(published)
    assert stalled.closed == (4008, "lagging")


# --- lagging: 4008, then resume ----------------------------------------------------


@pytest.fixture
def tight(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server that lets a connection have at most 128 KiB waiting (two big events)."""
    server = ServerProcess(tmp_path / "data", SUNBID_MAX_PENDING_BYTES="131072").start()
    yield server
    if server.process is not None:
        server.stop(signal.SIGKILL)


async def test_a_client_too_slow_is_closed_lagging_and_resumes_with_since(
    tight: ServerProcess,
) -> None:
    pub = Publisher(tight, tight.token("admin-lag"))
    registered = await pub.project("LAG-1")
    await pub.project("LAG-OTHER")
    # A client that does not read for a while (its library stops reading the
    # socket once a few messages are queued), and a healthy one.
    slow = await ws_open(tight, small_socket(tight), topics="project:LAG-1", since=0)
    healthy = await ws_open(tight, topics="project:LAG-1")
    assert (await recv(healthy))["op"] == "subscribed"
    published = [registered]  # what the slow client replays first
    for i in range(100):
        published.append(await pub.publish("LAG-1", body=BIG_BODY, data={"i": i}))
        await pub.publish("LAG-OTHER", title="其他项目")
        # The healthy client is never the one cut off.
        assert await recv_event(healthy) == published[-1]

    # Now it reads: a gapless prefix of what it follows, then 4008 "lagging".
    assert (await recv(slow))["op"] == "subscribed"
    got, closed = await until_closed(slow)
    assert closed.rcvd is not None, "closed without a close frame"
    assert (closed.rcvd.code, closed.rcvd.reason) == (4008, "lagging")
    assert got == published[: len(got)] and len(got) < len(published)

    # It resumes from the last seq it processed and gets exactly the rest.
    again = await ws_open(tight, topics="project:LAG-1", since=got[-1]["seq"] if got else 0)
    assert (await recv(again))["op"] == "subscribed"
    rest = await until_pong(again)
    assert got + rest == published
    assert rest[-1]["seq"] == tight.head() - 1  # the log's last event is LAG-OTHER's
    assert await until_pong(healthy) == []


async def test_a_lagging_client_that_resumes_reading_late_is_still_closed(
    tight: ServerProcess,
) -> None:
    """A client that stops reading for a few seconds (a phone on a bad network) is cut off
    meanwhile; when it reads again it must learn that, not wait forever on an
    open connection that will never carry another event."""
    pub = Publisher(tight, tight.token("admin-late"))
    registered = await pub.project("LATE-1")
    slow = await ws_open(tight, small_socket(tight), topics="project:LATE-1", since=0)
    published = [registered, *[await pub.publish("LATE-1", body=BIG_BODY) for _ in range(100)]]
    await asyncio.sleep(5.5)
    assert (await recv(slow))["op"] == "subscribed"
    got, closed = await until_closed(slow, timeout=3)
    assert got == published[: len(got)] and len(got) < len(published)
    if closed.rcvd is not None:
        assert (closed.rcvd.code, closed.rcvd.reason) == (4008, "lagging")


# --- shutdown ---------------------------------------------------------------------------


async def test_sigterm_closes_websocket_clients_with_1001_and_ends_sse_streams(
    server: ServerProcess, admin: str
) -> None:
    pub = Publisher(server, admin)
    await pub.project("BYE-1")
    by_url = await ws_open(server, topics="project:BYE-1")
    by_op = await ws_open(server)
    await by_op.send(json.dumps({"op": "subscribe", "topics": ["all"], "since": 0}))
    for ws in (by_url, by_op):
        assert (await recv(ws))["op"] == "subscribed"
    assert (await recv_event(by_op))["stage"] == "registered"  # replayed from since=0
    event = await pub.publish("BYE-1")
    for ws in (by_url, by_op):
        assert await recv_event(ws) == event
    sse = httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT)
    _opened.append(sse)
    stream = await sse.send(
        sse.build_request("GET", "/api/stream", params={"topics": "project:BYE-1"}), stream=True
    )
    _opened.append(stream)
    lines = stream.aiter_lines()
    assert await asyncio.wait_for(anext(lines), TIMEOUT) == "retry: 3000"

    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    for ws in (by_url, by_op):
        got, closed = await until_closed(ws, timeout=5)
        assert got == []
        assert closed.rcvd is not None and closed.rcvd.code == 1001, closed
    assert time.monotonic() - started < 2
    # The SSE stream ends too (after saying why), so an EventSource reconnects.
    rest = []
    with contextlib.suppress(httpx.RemoteProtocolError):
        async for line in lines:
            rest.append(line)
    assert "event: error" in rest and any("going_away" in line for line in rest), rest
    assert server.process.wait(10) in (0, -signal.SIGTERM)
    server.process = None


async def test_at_shutdown_a_stalled_client_does_not_delay_the_1001_of_others(
    server: ServerProcess, admin: str
) -> None:
    pub = Publisher(server, admin)
    await pub.project("BYE-2")
    stalled = StalledClient(server, topics="all")
    healthy = await ws_open(server, topics="all")
    assert (await recv(healthy))["op"] == "subscribed"
    for _ in range(80):  # megabytes the stalled client will never read
        event = await pub.publish("BYE-2", body=BIG_BODY)
        assert await recv_event(healthy) == event
    assert stalled.port
    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    _got, closed = await until_closed(healthy, timeout=5)
    assert closed.rcvd is not None and closed.rcvd.code == 1001, closed
    assert time.monotonic() - started < 2
    server.stop(signal.SIGKILL)
