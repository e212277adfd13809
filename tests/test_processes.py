"""The process model: `serve --workers N`, `serve --no-worker`, `sunbid worker`,
and how a process names itself (`/healthz`) and says it may take traffic
(`/readyz`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, ServerProcess, free_port
from tests.services import postgres_schema, redis_url, unique_name


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
