"""The process model: `serve --workers N`, `serve --no-worker`, `sunbid worker`,
and how a process names itself (`/healthz`) and says it may take traffic
(`/readyz`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from server.api.operations import degradations, not_ready
from server.app import create_app
from server.settings import Settings
from tests.conftest import ROOT, ServerProcess, close_clients, free_port
from tests.services import OwnRedis, postgres_schema, redis_url, unique_name


def sunbid(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        env={**os.environ, "SUNBID_DEMO": "0", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_several_processes_are_refused_on_a_deployment_they_cannot_share(
    tmp_path: Path,
) -> None:
    data = {"SUNBID_DATA_DIR": str(tmp_path / "data")}
    refused = sunbid("serve", "--workers", "2", "--port", str(free_port()), **data)
    assert refused.returncode == 2
    assert "SUNBID_DATABASE_URL=postgresql://" in refused.stderr
    assert "sqlite and memory" in refused.stderr
    worker = sunbid("worker", **data)
    assert worker.returncode == 2 and "SUNBID_BUS_URL=redis://" in worker.stderr
    zero = sunbid("serve", "--workers", "0", **data)
    assert zero.returncode == 2 and "at least 1" in zero.stderr


def test_healthz_names_the_process(server: ServerProcess) -> None:
    answer = httpx.get(server.url + "/healthz").json()
    host, _, pid = answer["node"].rpartition(":")
    assert host and server.process is not None and int(pid) == server.process.pid


@pytest.fixture
def shared() -> Iterator[dict[str, str]]:
    with postgres_schema() as (url, schema):
        yield {
            "SUNBID_DATABASE_URL": url,
            "SUNBID_DATABASE_SCHEMA": schema,
            "SUNBID_BUS_URL": redis_url(),
            "SUNBID_BUS_PREFIX": unique_name("bus"),
        }


def test_workers_share_one_port_and_stop_together(tmp_path: Path, shared: dict[str, str]) -> None:
    """`serve --workers 3`: three processes answer on one port, each a node
    of its own; one killed is replaced; SIGTERM stops them all."""
    port = free_port()
    env = {**os.environ, "SUNBID_DEMO": "0", "SUNBID_DATA_DIR": str(tmp_path / "data"), **shared}
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--workers", "3", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        nodes: set[str] = set()
        deadline = time.monotonic() + 40
        while len(nodes) < 3 and time.monotonic() < deadline:
            try:  # a new connection each time: the kernel spreads them
                nodes.add(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["node"])
            except httpx.HTTPError:
                time.sleep(0.2)
        assert len(nodes) == 3, nodes
        victim = int(next(iter(nodes)).rpartition(":")[2])
        os.kill(victim, signal.SIGKILL)
        replaced: set[str] = set()
        deadline = time.monotonic() + 40
        while len(replaced - nodes) < 1 and time.monotonic() < deadline:
            try:
                replaced.add(
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["node"]
                )
            except httpx.HTTPError:
                time.sleep(0.2)
        assert replaced - nodes, "the killed process was not replaced"
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(40) == 0
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()


def test_serve_no_worker_starts_no_push_worker(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    with_worker = server.log_tail()
    server.stop()
    quiet = ServerProcess(server.data_dir.parent / "quiet")
    quiet.data_dir.mkdir(parents=True)
    with open(quiet.log, "ab") as log:
        quiet.process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--no-worker", "--port", str(quiet.port)],
            cwd=ROOT,
            env=quiet.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(quiet.url + "/readyz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert answer.status_code == 200, answer.text
        assert "degraded" not in answer.json(), "no worker by design is no degradation"
        assert httpx.get(quiet.url + "/api/push/vapid-key").status_code == 200
    finally:
        quiet.stop()
    assert "push worker started" in with_worker, "the check below can tell"
    assert "push worker started" not in quiet.log_tail(20_000), quiet.log_tail()


class QuietBus:
    """A bus that is still getting ready, then one that lost its broker."""

    def __init__(self, ready: list[str], problems: list[str]) -> None:
        self.ready, self.issues = ready, problems

    def not_ready(self) -> list[str]:
        return self.ready

    def problems(self) -> list[str]:
        return self.issues


async def test_readyz_reasons_include_the_bus(tmp_path: Path) -> None:
    settings = Settings.from_env({"SUNBID_DATA_DIR": str(tmp_path), "SUNBID_DEMO": "0"})
    state = create_app(settings).state  # never started: the log is not open
    reasons = await not_ready(state)
    assert "store_unreadable" in reasons and "compliance_not_running" in reasons
    state.bus = QuietBus(["bus_not_subscribed"], [])  # type: ignore[assignment]
    assert "bus_not_subscribed" in await not_ready(state)
    state.bus = QuietBus([], ["bus_unreachable"])  # type: ignore[assignment]
    assert "bus_unreachable" not in await not_ready(state), "a degradation, not a reason"
    assert "bus_unreachable" in degradations(state)


async def test_stream_limit_holds_across_two_processes(
    start_server: Callable[..., ServerProcess], shared: dict[str, str]
) -> None:
    """Two servers of one deployment: SUNBID_MAX_CONNECTIONS_PER_ADDRESS=2 is
    two streams per address in all, not two per process."""
    env = {**shared, "SUNBID_MAX_CONNECTIONS_PER_ADDRESS": "2"}
    first, second = start_server("a", **env), start_server("b", **env)
    opened = [
        await websockets.connect(first.ws_url),
        await websockets.connect(second.ws_url),
    ]
    try:
        for ws in opened:
            await ws.send('{"op":"ping"}')
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["op"] == "pong"
        for server in (first, second):
            async with websockets.connect(server.ws_url) as third:
                refused = json.loads(await asyncio.wait_for(third.recv(), 5))
                assert refused["code"] == "too_many_connections", server.url
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(third.recv(), 5)
                assert third.close_code == 4029, server.url
            async with httpx.AsyncClient(timeout=5) as client:
                sse = await client.get(server.url + "/api/stream?topics=all")
            assert sse.status_code == 429, (server.url, sse.text)
            assert sse.json()["error"]["code"] == "too_many_connections"
        await opened.pop().close()  # a slot freed on the second serves the first
        deadline = time.monotonic() + 5
        while True:
            async with websockets.connect(first.ws_url) as again:
                await again.send('{"op":"ping"}')
                answer = json.loads(await asyncio.wait_for(again.recv(), 5))
            if answer.get("op") == "pong" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert answer.get("op") == "pong", answer
    finally:
        await close_clients(opened)


def test_a_process_is_ready_once_it_has_reached_the_bus(tmp_path: Path) -> None:
    """Not ready until Redis was reached since start (start-up is not done);
    after that a Redis outage is a degradation: the database carries delivery,
    and failing every process at once would take the deployment out of rotation."""
    redis = OwnRedis()  # not started yet
    with postgres_schema() as (url, schema):
        server = ServerProcess(
            tmp_path / "data",
            SUNBID_DATABASE_URL=url,
            SUNBID_DATABASE_SCHEMA=schema,
            SUNBID_BUS_URL=redis.url,
        )
        try:
            server.start()
            refused = httpx.get(server.url + "/readyz")
            assert refused.status_code == 503
            assert "bus_unreachable" in refused.json()["error"]["details"]["reasons"]
            redis.start()
            deadline = time.monotonic() + 15
            while (ready := httpx.get(server.url + "/readyz")).status_code != 200:
                assert time.monotonic() < deadline, ready.text
                time.sleep(0.2)
            redis.stop()
            deadline = time.monotonic() + 15
            while "bus_unreachable" not in (answer := httpx.get(server.url + "/readyz")).text:
                assert time.monotonic() < deadline, answer.text
                time.sleep(0.2)
            assert answer.status_code == 200
            assert answer.json()["degraded"] == ["bus_unreachable"]
        finally:
            if server.process is not None:
                server.stop()
            redis.stop()
