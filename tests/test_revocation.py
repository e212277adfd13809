"""Signing out on an open WebSocket: a token revoked with `sunbid token revoke` (another
process, writing only the database) stops working on connections that signed in with
it within 5 s, and a failed `auth` signs a connection out at once. Either way the
connection loses its role and the staff topics, so no warning reaches it any more.
On SQLite and on PostgreSQL (where the token table is the database's, shared
by every process).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.conftest import ServerProcess, Staff
from tests.services import postgres_schema
from tests.test_compliance_api import before_pong, recv

_ids = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    with contextlib.ExitStack() as stack:
        env = {}
        if request.param == "postgresql":
            url, schema = stack.enter_context(postgres_schema())
            env = {"SUNBID_DATABASE_URL": url, "SUNBID_DATABASE_SCHEMA": schema}
        proc = ServerProcess(tmp_path / "data", **env).start()
        try:
            yield proc
        finally:
            if proc.process is not None:
                proc.stop()


async def sign_in(ws: Any, token: str) -> dict[str, Any]:
    await ws.send(json.dumps({"op": "auth", "token": token}))
    return await recv(ws)


async def follow_supervision(ws: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"op": "subscribe", "topics": ["supervision"]}))
    return await recv(ws)


def break_a_rule(staff: Staff) -> str:
    """A breach the watchdog reports at once: the award on the candidates' own day."""
    project = f"REV-{next(_ids)}"
    staff.project(project, "construction")
    staff.publish(project, "notice")
    staff.publish(project, "candidates")
    staff.publish(project, "award")
    return project


async def assert_only_control_warned(desk: Any, control: Any, staff: Staff) -> None:
    project = break_a_rule(staff)
    warning = await recv(control)
    assert warning["op"] == "warning" and warning["warning"]["project"] == project, warning
    # Warnings go to every follower at the same moment: the desk would have it by now.
    assert await before_pong(desk) == []


@contextlib.asynccontextmanager
async def two_supervisors(server: ServerProcess, desk_token: str) -> AsyncIterator[tuple[Any, Any]]:
    """The desk under test and a control, both signed in and following `supervision`."""
    control_token = server.token("control", "supervisor")
    async with (
        websockets.connect(server.ws_url) as desk,
        websockets.connect(server.ws_url) as control,
    ):
        for ws, token in ((desk, desk_token), (control, control_token)):
            assert (await sign_in(ws, token))["op"] == "authed"
            assert (await follow_supervision(ws))["op"] == "subscribed"
        yield desk, control


async def test_a_revoked_token_stops_working_on_an_open_websocket(
    server: ServerProcess, staff: Staff
) -> None:
    desk_token = server.token("desk", "supervisor")
    async with two_supervisors(server, desk_token) as (desk, control):
        project = break_a_rule(staff)
        for ws in (desk, control):
            assert (await recv(ws))["warning"]["project"] == project

        revoked = server.cli("token", "revoke", "desk")
        assert revoked.returncode == 0, revoked.stderr
        since = time.monotonic()
        notice = await recv(desk, timeout=10)
        assert time.monotonic() - since < 5, "the revocation took too long to arrive"
        assert notice["op"] == "error" and notice["code"] == "token_revoked", notice
        assert notice["message"]

        await assert_only_control_warned(desk, control, staff)
        refused = await follow_supervision(desk)
        assert refused["op"] == "error" and refused["code"] == "forbidden", refused
        again = await sign_in(desk, desk_token)
        assert again["op"] == "error" and again["code"] == "unauthorized", again
        assert (await follow_supervision(desk))["code"] == "forbidden"
        assert await before_pong(control) == [], "the control keeps its role, and hears once"


async def test_a_failed_auth_signs_the_connection_out(server: ServerProcess, staff: Staff) -> None:
    desk_token = server.token("desk", "supervisor")
    async with two_supervisors(server, desk_token) as (desk, control):
        failed = await sign_in(desk, "sb_" + "x" * 43)
        assert failed["op"] == "error" and failed["code"] == "unauthorized", failed
        await assert_only_control_warned(desk, control, staff)
        assert (await follow_supervision(desk))["code"] == "forbidden"

        # Signing in again with a good token gives the role back.
        assert (await sign_in(desk, desk_token))["role"] == "supervisor"
        assert (await follow_supervision(desk))["op"] == "subscribed"
        project = break_a_rule(staff)
        for ws in (desk, control):
            assert (await recv(ws))["warning"]["project"] == project
