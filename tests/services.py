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
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
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

    asyncio.run(drop())


@contextmanager
def postgres_schema() -> Iterator[tuple[str, str]]:
    """(url, schema): a fresh schema on the test PostgreSQL, dropped afterwards."""
    url = postgres_url()
    schema = unique_name("sunbid_test")
    try:
        yield url, schema
    finally:
        drop_schema(url, schema)


def postgres_env() -> Iterator[dict[str, str]]:
    """SUNBID_* settings for a server on a fresh schema (a generator for fixtures)."""
    with postgres_schema() as (url, schema):
        yield {"SUNBID_DATABASE_URL": url, "SUNBID_DATABASE_SCHEMA": schema}
