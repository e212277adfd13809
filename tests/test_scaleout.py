"""Several `sunbid serve` processes on one PostgreSQL schema and one Redis bus
behave as one deployment: real processes, real sockets, faults made real
(SIGKILL, a Redis of the test's own stopped and started).

Each test gets a fresh schema and a bus prefix of its own; the processes
share one data directory, as `serve --workers N` on one machine would (the
VAPID key is a file there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import ServerProcess, with_facts
from tests.services import OwnPostgres, OwnRedis, postgres_schema, redis_url, unique_name
from tests.test_randomized import SEEDS, assert_each_saw_its_events, read_log, workout

TIMEOUT = 10.0


class Deployment:
    """N server processes on one database schema and one bus."""

    def __init__(self, tmp_path: Path, database: tuple[str, str], bus_url: str) -> None:
        self.data_dir = tmp_path / "data"
        url, schema = database
        self.env = {
            "SUNBID_DATABASE_URL": url,
            "SUNBID_DATABASE_SCHEMA": schema,
            "SUNBID_BUS_URL": bus_url,
            "SUNBID_BUS_PREFIX": unique_name("bus"),
        }
        self.servers: list[ServerProcess] = []

    def start(self, count: int) -> list[ServerProcess]:
        for _ in range(count):
            server = ServerProcess(self.data_dir, **self.env)
            server.log = self.data_dir / f"server-{len(self.servers)}.log"
            self.servers.append(server.start())
        return self.servers

    def token(self) -> str:
        return self.servers[0].token(unique_name("admin"), "admin")

    def stop(self) -> None:
        for server in self.servers:
            if server.process is not None:
                with contextlib.suppress(Exception):
                    server.stop(timeout=20)


@pytest.fixture
def database() -> Iterator[tuple[str, str]]:
    with postgres_schema() as pair:
        yield pair


@pytest.fixture
def deployment(tmp_path: Path, database: tuple[str, str]) -> Iterator[Deployment]:
    running = Deployment(tmp_path, database, redis_url())
    yield running
    running.stop()


def staff_client(server: ServerProcess, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    )


async def create_project(staff: httpx.AsyncClient, project_id: str) -> None:
    response = await staff.post(
        "/api/projects",
        json={
            "id": project_id,
            "title": f"项目 {project_id}",
            "category": "construction",
            "agency": "YW-GGZY",
            "region": "330782",
            "must_tender": True,
        },
    )
    assert response.status_code == 201, response.text


class Follower:
    """A WebSocket client on `all` that reconnects with `since` to the next
    server in its list whenever its connection ends."""

    def __init__(self, servers: list[ServerProcess], first: int) -> None:
        self.servers = servers
        self.turn = first
        self.start: int | None = None
        self.seqs: list[int] = []
        self.connections = 0
        self._ws: ClientConnection | None = None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            server = self.servers[self.turn % len(self.servers)]
            self.turn += 1
            if server.process is None:
                continue
            since = self.seqs[-1] if self.seqs else self.start
            query = "?topics=all" + ("" if since is None else f"&since={since}")
            try:
                async with connect(server.ws_url + query, open_timeout=TIMEOUT) as ws:
                    self._ws = ws
                    self.connections += 1
                    async for raw in ws:
                        message = json.loads(raw)
                        if message["op"] == "subscribed" and self.start is None:
                            self.start = message["head"]
                        elif message["op"] == "event":
                            self.seqs.append(message["event"]["seq"])
            except Exception:  # the process died: go to another
                await asyncio.sleep(0.05)
            finally:
                self._ws = None

    def expected(self, log: list[dict[str, Any]]) -> list[int]:
        assert self.start is not None
        return [e["seq"] for e in log if e["seq"] > self.start]


async def wait_until_caught_up(followers: list[Follower], head: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(f.seqs and f.seqs[-1] >= head for f in followers):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"followers stuck at {[f.seqs[-1:] for f in followers]}, head {head}")


@pytest.mark.parametrize("seed", SEEDS[:1])
async def test_random_clients_across_three_processes_see_exactly_their_events(
    deployment: Deployment, seed: int
) -> None:
    servers = deployment.start(3)
    token = deployment.token()
    staff = [staff_client(s, token) for s in servers]
    public = [httpx.AsyncClient(base_url=s.url, timeout=TIMEOUT) for s in servers]
    try:
        clients, log = await workout(seed, list(zip(servers, public, strict=True)), staff)
    finally:
        for client in (*staff, *public):
            await client.aclose()
    assert_each_saw_its_events(clients, log, seed)
    moved = [c for c in clients if len({id(s) for s in c.servers}) > 1]
    assert moved, "clients were spread over the processes"


async def test_sigkill_of_one_process_loses_no_acknowledged_event(
    deployment: Deployment,
) -> None:
    """Publishers post to all three processes while one is killed with
    SIGKILL: every 201 is in the log, and followers that were on the dead
    process resume on another with no gap and no repeat."""
    servers = deployment.start(3)
    token = deployment.token()
    staff = [staff_client(s, token) for s in servers]
    acknowledged: list[int] = []
    stop = asyncio.Event()
    followers = [Follower(servers, first=i % 3) for i in range(6)]  # two start on each
    following = [asyncio.create_task(f.run(stop)) for f in followers]
    try:
        await create_project(staff[1], "KILL-1")
        while any(f.start is None for f in followers):
            await asyncio.sleep(0.05)

        async def publish(client: httpx.AsyncClient, count: int) -> None:
            for i in range(count):
                with contextlib.suppress(httpx.HTTPError):  # the killed process's in-flight ones
                    response = await client.post(
                        "/api/projects/KILL-1/events",
                        json=with_facts("clarification", title=f"澄清 {i}"),
                    )
                    if response.status_code == 201:
                        acknowledged.append(response.json()["seq"])

        publishing = [asyncio.create_task(publish(c, 60)) for c in staff]
        while len(acknowledged) < 40:
            await asyncio.sleep(0.01)
        assert servers[0].process is not None
        servers[0].process.send_signal(signal.SIGKILL)
        servers[0].process.wait(10)
        servers[0].process = None
        await asyncio.gather(*publishing)

        async with httpx.AsyncClient(base_url=servers[1].url, timeout=TIMEOUT) as public:
            log = await read_log(public)
        assert set(acknowledged) <= {e["seq"] for e in log}, "a 201 that is not in the log"
        await wait_until_caught_up(followers, log[-1]["seq"])
    finally:
        stop.set()
        for task in following:
            task.cancel()
        await asyncio.gather(*following, return_exceptions=True)
        for client in staff:
            await client.aclose()
    for follower in followers:
        assert follower.seqs == follower.expected(log), "a gap or a repeat after moving"
    assert sum(f.connections for f in followers) > len(followers), "some had to move"


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    instance = OwnRedis().start()
    yield instance
    instance.stop()


async def test_redis_stopped_and_started_loses_and_doubles_nothing(
    tmp_path: Path, database: tuple[str, str], own_redis: OwnRedis
) -> None:
    """With the bus down, an event published through one process reaches a
    follower on another within 5 s (from the database); when Redis is back
    the bus carries them again, and nobody missed or repeated anything."""
    deployment = Deployment(tmp_path, database, own_redis.url)
    try:
        servers = deployment.start(2)
        token = deployment.token()
        stop = asyncio.Event()
        followers = [Follower([servers[1]], 0), Follower([servers[0]], 0)]
        following = [asyncio.create_task(f.run(stop)) for f in followers]
        async with staff_client(servers[0], token) as staff:
            await create_project(staff, "BUS-1")
            while any(f.start is None for f in followers):
                await asyncio.sleep(0.05)

            async def publish(title: str) -> int:
                response = await staff.post(
                    "/api/projects/BUS-1/events", json=with_facts("clarification", title=title)
                )
                assert response.status_code == 201, response.text
                return int(response.json()["seq"])

            for i in range(10):
                await publish(f"总线正常 {i}")
            own_redis.stop()
            seq = await publish("总线中断")
            started = time.monotonic()
            await wait_until_caught_up(followers, seq)
            assert time.monotonic() - started < 5, "live delivery from the database took > 5 s"
            for i in range(10):
                await publish(f"总线中断 {i}")
            own_redis.start()
            await asyncio.sleep(2.5)  # reconnected
            for i in range(10):
                seq = await publish(f"总线恢复 {i}")
            await wait_until_caught_up(followers, seq)
            stop.set()
            for task in following:
                task.cancel()
            await asyncio.gather(*following, return_exceptions=True)
            async with httpx.AsyncClient(base_url=servers[0].url, timeout=TIMEOUT) as public:
                log = await read_log(public)
        for follower in followers:
            assert follower.seqs == follower.expected(log)
    finally:
        deployment.stop()


async def test_postgres_stopped_answers_503_and_streams_continue_when_it_returns(
    tmp_path: Path,
) -> None:
    """PostgreSQL (an instance of the test's own) stops under a running
    server: publishing answers 503 `store_unavailable`, the open stream
    stays open, and when the database is back publishing and the stream go
    on, with every acknowledged event in the log."""
    own = OwnPostgres().start()
    server = ServerProcess(
        tmp_path / "data", SUNBID_DATABASE_URL=own.url, SUNBID_DATABASE_SCHEMA="sunbid"
    )
    try:
        server.start()
        token = server.token("admin-pg")
        async with (
            staff_client(server, token) as staff,
            connect(server.ws_url + "?topics=project:PG-1&since=0", open_timeout=TIMEOUT) as ws,
        ):
            await create_project(staff, "PG-1")
            before = await staff.post(
                "/api/projects/PG-1/events", json=with_facts("notice", title="招标公告")
            )
            assert before.status_code == 201, before.text
            own.stop()
            refused = await staff.post(
                "/api/projects/PG-1/events", json=with_facts("clarification", title="澄清")
            )
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "store_unavailable"
            own.start()
            deadline = time.monotonic() + 20
            while True:  # the pool finds its connections broken and opens new ones
                after = await staff.post(
                    "/api/projects/PG-1/events", json=with_facts("clarification", title="澄清")
                )
                if after.status_code == 201 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            assert after.status_code == 201, after.text
            seen: list[int] = []
            while not seen or seen[-1] < after.json()["seq"]:
                message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                if message["op"] == "event":
                    seen.append(message["event"]["seq"])
            assert seen == [1, 2, after.json()["seq"]]
            assert after.json()["seq"] == 3
        assert server.cli("verify").returncode == 0
    finally:
        if server.process is not None:
            server.stop()
        own.remove()
