"""Shared fixtures: a real Sunbid server process on a free port, with a real SQLite file.

`SUNBID_TEST_BACKEND=postgresql` runs every server process of the suite on
PostgreSQL and Redis instead (each in a schema and bus prefix of its own):

    SUNBID_TEST_BACKEND=postgresql .venv/bin/python -m pytest
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from tests.browser import CHROMIUM, CHROMIUM_ARGS, PHONE, BrowserErrors, require_chromium, watch

ROOT = Path(__file__).resolve().parent.parent
# The facts a stage must state to be published (categories.toml `required`),
# for tests about something else: a bid deadline and a listing end far ahead
# (no statutory period is short, nothing can be "before" them yet), a winner
# and amount, a contract signed at a fixed past moment, candidates.
FAR = "2099-12-31T09:30:00+08:00"
REQUIRED_FACTS: dict[str, dict[str, Any]] = {
    "notice": {"deadline": FAR, "listing_ends": FAR},
    "award": {"winner": "浙江测试建设有限公司", "amount": 1_000_000},
    "contract": {"signed_at": "2026-01-05T10:00:00+08:00"},
    "candidates": {
        "candidates": [{"rank": 1, "name": "浙江测试建设有限公司"}],
        "publicity_ends": FAR,
    },
}

# The categories whose test projects are tenders the law requires (依法必须招标),
# as most a trading centre runs are: the rules that bind only those apply.
TENDERED = ("construction", "soe_procurement")

# A notice whose bid deadline has passed: a bid opening may follow it.
CLOSED = {"deadline": "2026-01-05T09:30:00+08:00"}


def with_facts(stage: str, **fields: Any) -> dict[str, Any]:
    """An event body for `stage` with its required facts; `data` given adds to
    them or replaces them key by key."""
    data = {**REQUIRED_FACTS.get(stage, {}), **fields.pop("data", {})}
    return {"stage": stage, "data": data, **fields}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def close_clients(opened: list[Any]) -> None:
    """Close what a test opened (sockets, WebSocket and HTTP clients), pass or fail."""
    while opened:
        thing = opened.pop()
        with contextlib.suppress(Exception):
            if isinstance(thing, socket.socket):
                thing.close()
            elif isinstance(thing, ClientConnection):
                thing.transport.abort()  # a peer that stopped reading would not answer a close
                await thing.close()
            else:
                await thing.aclose()


# Schemas of SUNBID_TEST_BACKEND=postgresql runs, named per process: each of a
# parallel run's workers (and each of two runs at once) drops only its own.
SUITE_SCHEMA = f"sunbid_suite_{os.getpid()}_"


def backend_env(data_dir: Path) -> dict[str, str]:
    """The database and bus settings of a server under SUNBID_TEST_BACKEND: one
    schema and bus prefix per data directory (a restart keeps its data)."""
    if os.environ.get("SUNBID_TEST_BACKEND", "sqlite") != "postgresql":
        return {}
    from tests.services import postgres_url, redis_url

    name = SUITE_SCHEMA + hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return {
        "SUNBID_DATABASE_URL": postgres_url(),
        "SUNBID_DATABASE_SCHEMA": name,
        "SUNBID_BUS_URL": redis_url(),
        "SUNBID_BUS_PREFIX": name,
    }


def pytest_sessionfinish() -> None:
    """Drop the schemas a SUNBID_TEST_BACKEND=postgresql run made."""
    if os.environ.get("SUNBID_TEST_BACKEND", "sqlite") != "postgresql":
        return
    from tests.services import POSTGRES_URL, drop_schema, postgres_schemas

    for schema in postgres_schemas(SUITE_SCHEMA):
        drop_schema(POSTGRES_URL, schema)


class ServerProcess:
    """`sunbid serve` in a child process; can be killed and restarted on the same data."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "SUNBID_DATA_DIR": str(data_dir),
            "SUNBID_DEMO": "0",
            "PYTHONUNBUFFERED": "1",
            **backend_env(data_dir),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"
        self.args: list[str] = []  # more for `sunbid serve` (e.g. --no-worker)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server", "serve", "--port", str(self.port), *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_tail(2000)}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not start in time")

    def log_tail(self, size: int = 3000) -> str:
        """The end of what the server (and its push worker) printed."""
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "server", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def token(self, name: str, role: str = "admin", agency: str | None = None) -> str:
        args = ["token", "create", "--name", name, "--role", role]
        if agency:
            args += ["--agency", agency]
        result = self.cli(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    def head(self) -> int:
        return int(httpx.get(self.url + "/healthz").json()["head"])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data").start()
    yield proc
    if proc.process is not None:
        proc.stop()


@pytest.fixture
def admin(server: ServerProcess) -> str:
    return server.token("admin-test")


class Staff:
    """A staff member's HTTP client: create projects and publish events."""

    def __init__(self, server: ServerProcess, token: str) -> None:
        self.server = server
        self.client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def project(
        self,
        project_id: str,
        category: str = "construction",
        agency: str = "YW-GGZY",
        region: str | None = "330782",
        must_tender: bool | None = None,
    ) -> dict[str, Any]:
        """A tender the law requires (must_tender) in the TENDERED categories unless
        `must_tender` says otherwise: the rules that bind only those apply."""
        if must_tender is None and category in TENDERED:
            must_tender = True
        response = self.client.post(
            "/api/projects",
            json={
                "id": project_id,
                "title": f"测试项目 {project_id}",
                "category": category,
                "agency": agency,
                "region": region,
                "must_tender": must_tender,
            },
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def publish(self, project_id: str, stage: str = "notice", **fields: Any) -> dict[str, Any]:
        response = self.client.post(
            f"/api/projects/{project_id}/events",
            json=with_facts(stage, **{"title": f"{stage} 公告", **fields}),
        )
        assert response.status_code == 201, response.text
        return dict(response.json())


@pytest.fixture
def staff(server: ServerProcess, admin: str) -> Iterator[Staff]:
    member = Staff(server, admin)
    yield member
    member.client.close()


# --- the app in a real browser (tests/browser.py) --------------------------------------------


# Per module, not per session: while Playwright's sync driver is up, its event loop counts as
# running in this thread, and the asyncio tests of later modules could not start theirs.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=10_000)  # a loaded CI machine is slower than a phone
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    """One headless chromium per test module; each test gets its own context."""
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
    yield launched
    launched.close()


@pytest.fixture
def browser_errors() -> BrowserErrors:
    return BrowserErrors()


@pytest.fixture
def context(browser: Any, browser_errors: BrowserErrors) -> Iterator[Any]:
    """A fresh phone-sized profile (storage, caches, service workers) for one test."""
    phone = browser.new_context(**PHONE)
    phone.set_default_timeout(10_000)
    watch(phone, browser_errors)
    yield phone
    phone.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test whose pages logged an error or threw fails, even if its assertions held."""
    result = yield
    errors = getattr(item, "funcargs", {}).get("browser_errors")
    if isinstance(errors, BrowserErrors) and errors.unexpected():
        listed = "\n  ".join(errors.unexpected())
        pytest.fail(f"the browser reported errors:\n  {listed}", pytrace=False)
    return result


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start extra servers with particular settings; all are stopped afterwards."""
    started: list[ServerProcess] = []

    def start(data: str = "data", **env: str) -> ServerProcess:
        proc = ServerProcess(tmp_path / data, **env).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.process is not None:
            proc.stop()
