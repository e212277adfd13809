"""The PostgreSQL and Redis the scale-out tests use, and what happens without them.

The machine's own services (PostgreSQL on 127.0.0.1:5432, database `test`;
Redis on 127.0.0.1:6379) unless SUNBID_TEST_POSTGRES_URL / SUNBID_TEST_REDIS_URL
name others. A test that needs one skips with the reason when it cannot be
reached, or fails when SUNBID_REQUIRE_SERVICES=1 (CI): there a missing
service is a broken machine, not a reason to test less.

Every PostgreSQL test works in a schema of its own (`SUNBID_DATABASE_SCHEMA`),
dropped afterwards, and every Redis test under a prefix of its own: tests
never see each other's data, and the shared services are never reset.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get(
    "SUNBID_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SUNBID_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def _missing(what: str) -> None:
    message = f"{what} is not reachable"
    if os.environ.get("SUNBID_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (SUNBID_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def postgres_url() -> str:
    if not _reachable(POSTGRES_URL, 5432):
        _missing(f"PostgreSQL at {POSTGRES_URL}")
    return POSTGRES_URL


def redis_url() -> str:
    if not _reachable(REDIS_URL, 6379):
        _missing(f"Redis at {REDIS_URL}")
    return REDIS_URL


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def drop_schema(url: str, schema: str) -> None:
    async def drop() -> None:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    # In a thread of its own: the caller may be inside a running event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, drop()).result()


def postgres_schemas(prefix: str) -> list[str]:
    """The schemas on the test PostgreSQL whose names start with `prefix`."""

    async def names() -> list[str]:
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            rows = await conn.fetch(
                "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", prefix
            )
        finally:
            await conn.close()
        return [row[0] for row in rows]

    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, names()).result()


@contextmanager
def postgres_schema() -> Iterator[tuple[str, str]]:
    """(url, schema): a fresh schema on the test PostgreSQL, dropped afterwards."""
    url = postgres_url()
    schema = unique_name("sunbid_test")
    try:
        yield url, schema
    finally:
        drop_schema(url, schema)


# --- instances of our own, for fault tests (the shared ones are never stopped) -----------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnRedis:
    """A redis-server of the test's own on a free port, stopped and started at will."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            _missing("redis-server (to start an instance of the test's own)")
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, lambda: self.process is not None and self.process.poll() is None)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


class OwnPostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temp dir), run as
    the `postgres` user when the tests run as root (PostgreSQL refuses root)."""

    def __init__(self) -> None:
        if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
            _missing("initdb and pg_ctl (to start a PostgreSQL of the test's own)")
        # Not under pytest's tmp_path: the postgres user could not enter it.
        self.directory = Path(tempfile.mkdtemp(prefix="sunbid-pg-"))
        self.data = self.directory / "pgdata"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*prefix, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def start(self) -> OwnPostgres:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        log = str(self.directory / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        """Stop it if it runs, and delete its files."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _wait_for_port(port: int, alive: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the service on port {port} exited")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")
