"""The HTTP edge: client addresses behind proxies, per-address rates, idle and
slow connections, the connection cap, API headers and compressed app files."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
from collections.abc import Callable

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from server.ratelimit import RateLimiter
from server.stream.limits import client_address
from tests.conftest import ServerProcess, Staff
from tests.test_api import assert_error

SUBSCRIBE = "/api/push/subscriptions"


def subscribe(server: ServerProcess, forwarded_for: str) -> httpx.Response:
    """A subscription request (its body is refused, but it counts against the rate)."""
    return httpx.post(
        server.url + SUBSCRIBE,
        json={},
        headers={"X-Forwarded-For": forwarded_for},
        timeout=10,
    )


# --- 1. the client address and per-address limits -------------------------------------------


def test_behind_a_trusted_proxy_each_forwarded_address_has_its_own_allowance(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(
        SUNBID_FORWARDED_ALLOW_IPS="127.0.0.1",
        SUNBID_SUBSCRIBE_BURST="1",
        SUNBID_SUBSCRIBE_REFILL_SECONDS="3000",
    )
    assert subscribe(server, "203.0.113.7").status_code == 422  # counted, then refused
    limited = subscribe(server, "203.0.113.7")
    assert_error(limited, 429, "too_many_requests")
    assert int(limited.headers["retry-after"]) > 0
    # Another client behind the same proxy is not held back.
    assert subscribe(server, "203.0.113.8").status_code == 422
    assert subscribe(server, "198.51.100.1, 203.0.113.9").status_code == 422  # the last hop


def test_from_an_untrusted_peer_x_forwarded_for_is_ignored(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(
        SUNBID_FORWARDED_ALLOW_IPS="10.1.2.3",  # the tests' 127.0.0.1 is not a proxy
        SUNBID_SUBSCRIBE_BURST="1",
        SUNBID_SUBSCRIBE_REFILL_SECONDS="3000",
    )
    assert subscribe(server, "203.0.113.7").status_code == 422
    # A made-up X-Forwarded-For does not buy a new allowance: 127.0.0.1 is counted.
    assert_error(subscribe(server, "203.0.113.8"), 429, "too_many_requests")


async def test_streams_per_address_count_the_forwarded_address(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(SUNBID_MAX_CONNECTIONS_PER_ADDRESS="1")
    first = await websockets.connect(
        server.ws_url, additional_headers={"X-Forwarded-For": "203.0.113.1"}
    )
    second = await websockets.connect(
        server.ws_url, additional_headers={"X-Forwarded-For": "203.0.113.2"}
    )
    try:
        for ws in (first, second):
            await ws.send('{"op":"ping"}')
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["op"] == "pong"
        async with websockets.connect(
            server.ws_url, additional_headers={"X-Forwarded-For": "203.0.113.1"}
        ) as third:
            refused = json.loads(await asyncio.wait_for(third.recv(), 5))
            assert refused["code"] == "too_many_connections"
    finally:
        await first.close()
        await second.close()


def test_the_rate_table_forgets_the_oldest_address_not_everyone() -> None:
    now = [0.0]
    limiter = RateLimiter(burst=1, refill_seconds=1000, max_addresses=3, clock=lambda: now[0])
    for address in ("a", "b", "c"):
        assert limiter.take(address) == 0
        now[0] += 1
    assert limiter.take("b") > 0  # b is now the most recent, a the oldest
    assert limiter.take("d") == 0  # a new address: the table is full
    assert len(limiter) == 3
    assert limiter.take("b") > 0 and limiter.take("c") > 0, "the others are still held back"
    assert limiter.take("a") == 0, "only the oldest was forgotten"


def test_an_ipv6_client_counts_by_its_64() -> None:
    one = client_address({"client": ("2001:db8:1:2:aaaa::1", 5000)})
    assert one == client_address({"client": ("2001:db8:1:2:ffff::9", 5001)})
    assert one != client_address({"client": ("2001:db8:1:3::1", 5000)})
    assert client_address({"client": ("203.0.113.5", 1)}) == "203.0.113.5"
    # A dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d: each counts alone.
    assert client_address({"client": ("::ffff:203.0.113.5", 1)}) == "203.0.113.5"
    assert client_address({"client": ("::ffff:203.0.113.6", 1)}) == "203.0.113.6"


# --- 2. idle and slow connections, the connection cap ------------------------------------------


def raw_socket(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.settimeout(10)
    return sock


def closed_within(sock: socket.socket, seconds: float, drip: bytes = b"") -> float:
    """Seconds until the server closes `sock` (sending `drip` a byte at a time meanwhile)."""
    start = time.monotonic()
    sock.settimeout(0.25)
    sent = 0
    while time.monotonic() - start < seconds:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - start
        if sent < len(drip):
            try:
                sock.send(drip[sent : sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start
            sent += 1
    raise AssertionError(f"still open after {seconds} s")


@pytest.fixture
def timeouts(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(SUNBID_HTTP_HEADER_TIMEOUT_SECONDS="1", SUNBID_HTTP_KEEPALIVE_SECONDS="2")


def test_a_connection_that_sends_nothing_is_closed(timeouts: ServerProcess) -> None:
    with raw_socket(timeouts) as sock:
        assert closed_within(sock, 5) < 2.5


def test_headers_sent_a_byte_at_a_time_are_cut_off(timeouts: ServerProcess) -> None:
    slow = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
    with raw_socket(timeouts) as sock:
        # Four bytes a second keep arriving, but the headers are never complete in time.
        assert closed_within(sock, 6, drip=slow) < 2.5


def test_a_slow_second_request_on_a_kept_connection_is_cut_off(timeouts: ServerProcess) -> None:
    with raw_socket(timeouts) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in sock.recv(4096)
        # Its first byte ends the keep-alive wait; the header timeout (1 s) takes over.
        slow = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
        assert closed_within(sock, 6, drip=slow) < 2.5


def test_a_keep_alive_client_is_served_then_closed_when_idle(timeouts: ServerProcess) -> None:
    with httpx.Client(base_url=timeouts.url) as client:
        for _ in range(3):  # one connection, requests 0.6 s apart: longer than nothing
            assert client.get("/healthz").status_code == 200
            time.sleep(0.6)
    with raw_socket(timeouts) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in sock.recv(4096)
        # Idle after an answer: closed by the keep-alive timeout (2 s), not sooner.
        assert 1.5 < closed_within(sock, 6) < 3.5


async def test_streams_outlive_the_http_timeouts(timeouts: ServerProcess) -> None:
    staff = Staff(timeouts, timeouts.token("admin-t"))
    staff.project("TO-1")
    async with (
        websockets.connect(timeouts.ws_url + "?topics=all") as ws,
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", timeouts.url + "/api/stream?topics=all") as sse,
    ):
        assert sse.status_code == 200
        await asyncio.sleep(3.5)  # past the header and keep-alive timeouts
        event = staff.publish("TO-1")
        got = None
        while got is None or got.get("op") != "event":
            got = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert got["event"]["seq"] == event["seq"]
        lines = sse.aiter_lines()
        while True:
            line = await asyncio.wait_for(anext(lines), 5)
            if line.startswith("data:") and json.loads(line[5:]).get("seq") == event["seq"]:
                break
    staff.client.close()


async def test_beyond_the_connection_cap_new_requests_get_503(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(SUNBID_MAX_CONNECTIONS="16")
    streams = [await websockets.connect(server.ws_url) for _ in range(16)]
    try:
        refused = httpx.get(server.url + "/healthz", timeout=10)
        assert_error(refused, 503, "unavailable")
        assert refused.headers["retry-after"] == "5"
        with pytest.raises(InvalidStatus) as caught:
            await websockets.connect(server.ws_url)
        assert caught.value.response.status_code == 503
        await streams.pop().close()
        await asyncio.sleep(0.2)
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
    finally:
        for ws in streams:
            await ws.close()


# --- 4. headers ----------------------------------------------------------------------------------


def test_staff_answers_are_not_stored_and_api_answers_not_sniffed(
    server: ServerProcess, staff: Staff, admin: str
) -> None:
    event = staff.publish(staff.project("HD-1")["id"])
    created = staff.client.post(
        "/api/projects",
        json={"id": "HD-2", "title": "t", "category": "construction", "agency": "YW-GGZY"},
    )
    bearer = {"Authorization": f"Bearer {admin}"}
    private = [
        created,
        httpx.get(server.url + "/api/supervision/warnings", headers=bearer),
        httpx.get(server.url + f"/api/events/{event['seq']}/deliveries", headers=bearer),
        httpx.get(server.url + "/api/supervision/warnings"),  # refused: no-store all the same
        httpx.get(server.url + "/api/projects", headers=bearer),  # anything authenticated
    ]
    for response in private:
        assert response.headers["cache-control"] == "no-store", response.url
        assert response.headers["x-content-type-options"] == "nosniff", response.url
    public = httpx.get(server.url + "/api/projects")
    assert public.status_code == 200 and "cache-control" not in public.headers
    assert public.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(server.url + "/api/directory").headers["cache-control"].startswith("public")
    missing = httpx.get(server.url + "/api/nothing-here")
    assert missing.status_code == 404 and missing.headers["x-content-type-options"] == "nosniff"


# --- 5. compression ----------------------------------------------------------------------------

IDENTITY = {"Accept-Encoding": "identity"}
GZIP = {"Accept-Encoding": "gzip, deflate, br"}


@pytest.mark.parametrize(
    "path", ["/", "/sw.js", "/manifest.webmanifest", "/static/js/app.js", "/static/app.css"]
)
def test_app_files_are_gzipped_for_clients_that_accept_it(server: ServerProcess, path: str) -> None:
    with httpx.Client(base_url=server.url) as client:
        plain = client.get(path, headers=IDENTITY)
        assert plain.status_code == 200 and "content-encoding" not in plain.headers
        assert plain.headers["vary"] == "Accept-Encoding"
        packed = client.send(client.build_request("GET", path, headers=GZIP), stream=True)
        raw = b"".join(packed.iter_raw())
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.headers["vary"] == "Accept-Encoding"
        assert gzip.decompress(raw) == plain.content
        assert len(raw) < len(plain.content)
        assert packed.headers["etag"] != plain.headers["etag"]
        # Revalidation: each representation's own ETag gives a 304.
        again = client.get(path, headers={**GZIP, "If-None-Match": packed.headers["etag"]})
        assert again.status_code == 304 and again.headers["etag"] == packed.headers["etag"]
        again = client.get(path, headers={**IDENTITY, "If-None-Match": plain.headers["etag"]})
        assert again.status_code == 304
        # The other representation's ETag is not a match: the body is sent.
        other = client.get(path, headers={**GZIP, "If-None-Match": plain.headers["etag"]})
        assert other.status_code == 200 and other.headers["content-encoding"] == "gzip"
        refused = client.get(path, headers={"Accept-Encoding": "gzip;q=0"})
        assert "content-encoding" not in refused.headers


def test_images_and_streams_are_never_gzipped(server: ServerProcess) -> None:
    icon = httpx.get(server.url + "/static/icons/icon-192.png", headers=GZIP)
    assert icon.status_code == 200 and "content-encoding" not in icon.headers
    with httpx.stream("GET", server.url + "/api/stream?topics=all", headers=GZIP) as sse:
        assert sse.status_code == 200 and "content-encoding" not in sse.headers
