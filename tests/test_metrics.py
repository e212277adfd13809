"""`GET /metrics` against a real server, its push worker process and a real push service.

Each number is checked against what the test itself did: events published,
streams opened and events they received, pushes answered by the push service
(tests/push_service.py), warnings the watchdog raised, a client cut off for
lagging. The exposition must parse as Prometheus text.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from base64 import b64encode
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from tests.conftest import ServerProcess, Staff, close_clients
from tests.push_service import ACCEPT, GONE, HANG, SERVER_ERROR, PushService
from tests.test_push_e2e import start_push_server, stop, wait_until, worker_pid

# The families the contract names ("Operations"), with their types.
CONTRACT_FAMILIES = {
    "sunbid_log_head": "gauge",
    "sunbid_events_published": "counter",
    "sunbid_publish_duration_seconds": "histogram",
    "sunbid_stream_connections": "gauge",
    "sunbid_stream_deliveries": "counter",
    "sunbid_stream_lagging_closes": "counter",
    "sunbid_push_deliveries": "counter",
    "sunbid_push_queue_depth": "gauge",
    "sunbid_compliance_open_warnings": "gauge",
    "sunbid_webhook_deliveries": "counter",
}
BIG_BODY = "中标候选人公示：" + "投标报价及评审得分明细。" * 1500  # ~54 KB per event

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

_opened: list[Any] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    await close_clients(_opened)


@pytest.fixture(scope="module")
def service() -> Iterator[PushService]:
    with PushService.in_thread() as running:
        yield running


def exposition(server: ServerProcess, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(server.url + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def scrape(server: ServerProcess, token: str | None = None) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(exposition(server, token)):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


async def eventually(
    server: ServerProcess, condition: Callable[[Samples], bool], what: str, timeout: float = 10
) -> Samples:
    """Scrape until `condition` holds, letting this test's own clients run meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition(samples := scrape(server)):
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {samples}"
        await asyncio.sleep(0.05)
    return samples


def test_the_exposition_parses_and_has_every_family_the_contract_names(
    server: ServerProcess,
) -> None:
    families = {f.name: f for f in text_string_to_metric_families(exposition(server))}
    for name, kind in CONTRACT_FAMILIES.items():
        assert name in families, f"{name} is not exposed"
        assert families[name].type == kind, (name, families[name].type)
    samples = scrape(server)
    assert value(samples, "sunbid_log_head") == 0
    for transport in ("ws", "sse"):
        assert value(samples, "sunbid_stream_connections", transport=transport) == 0
        assert value(samples, "sunbid_stream_deliveries_total", transport=transport) == 0
    assert value(samples, "sunbid_push_queue_depth") == 0
    for outcome in ("delivered", "gone", "failed", "retry"):
        assert value(samples, "sunbid_push_deliveries_total", outcome=outcome) == 0
    for outcome in ("delivered", "retry", "disabled"):
        assert value(samples, "sunbid_webhook_deliveries_total", outcome=outcome) == 0


async def _sse_events(url: str, received: list[dict[str, Any]]) -> None:
    client = httpx.AsyncClient(timeout=30)
    _opened.append(client)
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        kind = None
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind not in ("subscribed", "error"):
                received.append(json.loads(line.removeprefix("data: ")))


async def test_metrics_follow_publishing_streams_pushes_and_warnings(
    service: PushService, tmp_path: Path
) -> None:
    push = start_push_server(tmp_path / "data", service, SUNBID_PUSH_MAX_ATTEMPTS="2")
    server = push.server
    try:
        project = "MT-1"
        push.staff.project(project)
        topics = [f"project:{project}"]
        ok = push.follow(service, topics)
        gone = push.follow(service, topics, answer=GONE)
        broken = push.follow(service, topics, answer=SERVER_ERROR)  # retried once, then failed
        hanging = push.follow(service, topics, answer=HANG)  # held until released

        ws = await connect(f"{server.ws_url}?topics=project:{project}", proxy=None)
        _opened.append(ws)
        assert json.loads(await ws.recv())["op"] == "subscribed"
        sse: list[dict[str, Any]] = []
        reader = asyncio.create_task(
            _sse_events(f"{server.url}/api/stream?topics={topics[0]}", sse)
        )
        samples = await eventually(
            server,
            lambda s: value(s, "sunbid_stream_connections", transport="sse") == 1,
            "the SSE stream to be counted",
        )
        assert value(samples, "sunbid_stream_connections", transport="ws") == 1

        # candidates and an award at once: the award comes before the publicity
        # period ended, a breach the watchdog reports.
        published = [push.publish(project, stage) for stage in ("notice", "candidates", "award")]
        got = [json.loads(await asyncio.wait_for(ws.recv(), 10))["event"] for _ in published]
        assert got == published
        await asyncio.wait_for(_until(lambda: len(sse) == len(published)), 10)
        assert sse == published

        samples = scrape(server)
        assert value(samples, "sunbid_log_head") == published[-1]["seq"] == server.head()
        assert value(samples, "sunbid_events_published_total") == 3
        assert value(samples, "sunbid_publish_duration_seconds_count") == 3
        assert value(samples, "sunbid_publish_duration_seconds_bucket", le="+Inf") == 3
        assert 0 < value(samples, "sunbid_publish_duration_seconds_sum") < 30
        for transport in ("ws", "sse"):
            assert value(samples, "sunbid_stream_deliveries_total", transport=transport) == 3
            assert value(samples, "sunbid_stream_lagging_closes_total", transport=transport) == 0
        await eventually(
            server,
            lambda s: value(s, "sunbid_compliance_open_warnings", level="breach") == 1,
            "the award's breach to be counted",
        )

        # While the hanging subscriber's pushes are held, they are still queued.
        wait_until(lambda: service.hanging == 3, "the held pushes")
        samples = scrape(server)
        assert value(samples, "sunbid_push_queue_depth") >= 3
        service.release()
        pushed = await eventually(
            server,
            lambda s: (
                value(s, "sunbid_push_deliveries_total", outcome="failed") == 3
                and value(s, "sunbid_push_deliveries_total", outcome="delivered") == 6
                and value(s, "sunbid_push_queue_depth") == 0
            ),
            "every push to be settled",
        )
        assert len(service.tries(ok)) == 3 and len(service.tries(broken)) == 6
        assert value(pushed, "sunbid_push_deliveries_total", outcome="retry") == 3
        assert value(pushed, "sunbid_push_deliveries_total", outcome="gone") == len(
            service.tries(gone)
        )
        assert 1 <= len(service.tries(gone)) <= 3
        directory = _metrics_directory(server)
        assert list(directory.glob("counter_*.db")), "no counts written by the worker"

        # A worker restarted after a crash leaves the totals as they were, and adds to them.
        first = worker_pid(server)
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: _running_worker(server) not in (None, first), "a new worker")
        wait_until(
            lambda: "degraded" not in httpx.get(server.url + "/readyz").json(), "the restart"
        )
        assert _pushes(scrape(server)) == _pushes(pushed)
        service.answer(ACCEPT, hanging)  # no more holding
        push.publish(project, "notice")
        await asyncio.wait_for(_until(lambda: len(sse) == 4), 10)
        await eventually(
            server,
            lambda s: value(s, "sunbid_push_deliveries_total", outcome="delivered") == 8,
            "the new worker's deliveries to add to the old one's",
        )

        # Closed streams leave their deliveries counted.
        await ws.close()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        closed = await eventually(
            server,
            lambda s: (
                value(s, "sunbid_stream_connections", transport="ws") == 0
                and value(s, "sunbid_stream_connections", transport="sse") == 0
            ),
            "the closed streams to be uncounted",
        )
        assert value(closed, "sunbid_stream_deliveries_total", transport="ws") == 4
        assert value(closed, "sunbid_stream_deliveries_total", transport="sse") == 4
    finally:
        service.release()
        stop(push)
    assert not directory.exists(), "a clean stop removes the worker's metrics directory"


def _running_worker(server: ServerProcess) -> int | None:
    """The pid of the server's push worker, None while there is none (or only a zombie)."""
    assert server.process is not None
    pid = server.process.pid
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            if "push.process" in Path(f"/proc/{child}/cmdline").read_text():
                return int(child)
        except (FileNotFoundError, ProcessLookupError):  # gone while being looked at
            continue
    return None


def _metrics_directory(server: ServerProcess) -> Path:
    """Where the server's push worker writes its counts (from the worker's environment)."""
    pid = _running_worker(server)
    assert pid is not None
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [v for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    assert len(found) == 1, "the worker was not given a metrics directory"
    return Path(found[0].split(b"=", 1)[1].decode())


def _pushes(samples: Samples) -> dict[str, float]:
    return {
        outcome: value(samples, "sunbid_push_deliveries_total", outcome=outcome)
        for outcome in ("delivered", "gone", "failed", "retry")
    }


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)  # unlike wait_until, lets the SSE reader run


def stalled_websocket(server: ServerProcess, query: str) -> socket.socket:
    """A WebSocket upgraded by hand on a socket with a tiny receive buffer, never read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    _opened.append(sock)
    key = b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws?{query} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    sock.settimeout(10)
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)  # byte by byte: read no frame
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def test_a_client_cut_off_for_lagging_is_counted(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(SUNBID_MAX_PENDING_BYTES="131072")
    staff = Staff(server, server.token("lag-admin"))
    try:
        staff.project("MT-LAG")
        stalled_websocket(server, "topics=project:MT-LAG")
        deadline = time.monotonic() + 60
        while value(scrape(server), "sunbid_stream_lagging_closes_total", transport="ws") == 0:
            assert time.monotonic() < deadline, "the stalled client was never cut off"
            for _ in range(10):
                staff.publish("MT-LAG", body=BIG_BODY)
        samples = scrape(server)
        assert value(samples, "sunbid_stream_lagging_closes_total", transport="ws") == 1
        assert value(samples, "sunbid_stream_lagging_closes_total", transport="sse") == 0
        directory = _metrics_directory(server)
    finally:
        staff.client.close()
        for thing in _opened:
            if isinstance(thing, socket.socket):
                thing.close()
        if server.process is not None:
            server.stop(signal.SIGKILL)  # a stalled peer would hold up a graceful stop
    # A killed server leaves its worker's directory; the next server started removes it.
    assert directory.exists()
    start_server("next")
    assert not directory.exists()


def test_with_a_token_set_metrics_need_it(start_server: Callable[..., ServerProcess]) -> None:
    token = "metrics-" + os.urandom(12).hex()
    server = start_server(SUNBID_METRICS_TOKEN=token)
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-of-some-length"},
        {"Authorization": f"Bearer {token}x"},
        {"Authorization": f"Basic {token}"},
        {"Authorization": "Bearer ünïcode".encode()},
    ):
        response = httpx.get(server.url + "/metrics", headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        assert set(response.json()) == {"error"}
        assert token not in response.text
    assert value(scrape(server, token), "sunbid_log_head") == 0
    # Only /metrics: the rest of the API is as open as before.
    assert httpx.get(server.url + "/readyz").status_code == 200
