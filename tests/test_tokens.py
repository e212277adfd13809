"""Staff tokens on both engines: created once, listed without secrets, revoked,
and a revocation written through one process seen by another reading the
same database (two stores on one SQLite file or one PostgreSQL schema, as
two processes would have them); `sunbid token …` on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.auth import TOKEN_PREFIX, Authenticator, digest, new_token
from server.store import AlreadyExists
from server.stream.revocation import RevocationWatch
from server.tokens import CHUNK, tokens_of
from tests.conftest import ROOT
from tests.services import postgres_schema
from tests.test_store import log_store, log_url

__all__ = ["log_url"]  # the fixture: every test here runs on SQLite and PostgreSQL


@pytest.fixture
async def stores(log_url: tuple[str, str]) -> AsyncIterator[tuple[Any, Any]]:
    """Two stores on one database: what two server processes share."""
    first, second = log_store(log_url), log_store(log_url)
    await first.open()
    await second.open()
    yield first, second
    await second.close()
    await first.close()


async def test_a_token_is_added_listed_and_revoked_once(stores: tuple[Any, Any]) -> None:
    tokens = tokens_of(stores[0])
    secret = new_token()
    await tokens.add("desk", "publisher", "YW-GGZY", digest(secret))
    await tokens.add("boss", "admin", None, digest(new_token()))

    listed = await tokens.list()
    assert [(t.name, t.role, t.agency, t.revoked_at) for t in listed] == [
        ("boss", "admin", None, None),
        ("desk", "publisher", "YW-GGZY", None),
    ]
    assert all(t.digest == "" for t in listed)  # never listed
    found = await tokens.by_digest(digest(secret))
    assert found is not None and found.name == "desk" and found.digest == digest(secret)
    assert await tokens.by_digest(digest("not a token")) is None

    assert await tokens.revoke("desk") is True
    assert await tokens.revoke("desk") is False  # already revoked
    assert await tokens.revoke("nobody") is False
    revoked = await tokens.by_digest(digest(secret))
    assert revoked is not None and revoked.revoked_at is not None


async def test_a_name_or_digest_taken_is_already_exists(stores: tuple[Any, Any]) -> None:
    first, second = tokens_of(stores[0]), tokens_of(stores[1])
    same = digest(new_token())
    await first.add("desk", "admin", None, same)
    with pytest.raises(AlreadyExists):
        await second.add("desk", "admin", None, digest(new_token()))
    with pytest.raises(AlreadyExists):
        await second.add("other", "admin", None, same)
    assert [t.name for t in await first.list()] == ["desk"]


async def test_live_digests_over_many_chunks(stores: tuple[Any, Any]) -> None:
    tokens = tokens_of(stores[0])
    digests = [digest(new_token()) for _ in range(CHUNK + 3)]
    for number, one in enumerate(digests):
        await tokens.add(f"t{number}", "supervisor", None, one)
    await tokens.revoke("t0")
    await tokens.revoke(f"t{CHUNK + 1}")
    unknown = digest("unknown")
    live = await tokens.live_digests([*digests, unknown])
    assert live == set(digests) - {digests[0], digests[CHUNK + 1]}


class Connection:
    """An open WebSocket connection, as the revocation watch sees it."""

    def __init__(self) -> None:
        self.revoked = False

    def token_revoked(self) -> None:
        self.revoked = True


async def test_a_revocation_in_one_process_signs_out_in_another(
    stores: tuple[Any, Any],
) -> None:
    serving, cli = tokens_of(stores[0]), tokens_of(stores[1])
    kept, revoked = new_token(), new_token()
    await cli.add("kept", "supervisor", None, digest(kept))
    await cli.add("gone", "supervisor", None, digest(revoked))
    auth = Authenticator(serving)
    watch = RevocationWatch(serving, auth)
    signed_in = {secret: Connection() for secret in (kept, revoked)}
    for secret, connection in signed_in.items():
        assert await auth.token(secret) is not None  # cached by the serving process
        watch.watch(connection, digest(secret))

    await watch.check()
    assert not any(c.revoked for c in signed_in.values())
    assert await cli.revoke("gone")  # the other process
    await watch.check()

    assert signed_in[revoked].revoked and not signed_in[kept].revoked
    assert await auth.token(revoked) is None  # not served from the cache either
    assert await auth.token(kept) is not None


def test_tokens_of_refuses_a_store_without_a_token_table() -> None:
    with pytest.raises(TypeError):
        tokens_of(object())


def sunbid(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_token_commands_on_postgresql(tmp_path: Path) -> None:
    with postgres_schema() as (url, schema):
        env = {
            "SUNBID_DATABASE_URL": url,
            "SUNBID_DATABASE_SCHEMA": schema,
            "SUNBID_DATA_DIR": str(tmp_path / "data"),
        }
        made = sunbid(env, "token", "create", "--name", "desk", "--role", "admin")
        assert made.returncode == 0, made.stderr
        secret = made.stdout.strip().splitlines()[-1]
        assert secret.startswith(TOKEN_PREFIX)
        again = sunbid(env, "token", "create", "--name", "desk", "--role", "admin")
        assert again.returncode == 1 and "exists already" in again.stderr
        listed = sunbid(env, "token", "list")
        assert listed.stdout.startswith("desk\tadmin\t-\t") and "\tactive" in listed.stdout
        assert sunbid(env, "token", "revoke", "desk").returncode == 0
        listed = sunbid(env, "token", "list")
        assert listed.returncode == 0
        assert listed.stdout.startswith("desk\tadmin\t-\t") and "\trevoked " in listed.stdout
        assert sunbid(env, "token", "revoke", "desk").returncode == 1
