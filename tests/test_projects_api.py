"""Projects are events: POST registers, PATCH amends, both through the log (real server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import CLOSED, ServerProcess, Staff
from tests.test_api import assert_error, new_project, post_json, recv, unique


@pytest.fixture(scope="module")
def shared_staff(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staff]:
    """One server for the checks that only need to be refused (no shared state)."""
    proc = ServerProcess(Path(tmp_path_factory.mktemp("amend")) / "data").start()
    member = Staff(proc, proc.token("amend-admin"))
    yield member
    member.client.close()
    if proc.process is not None:
        proc.stop()


def patch_json(
    server: ServerProcess, path: str, body: Any, token: str | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.patch(server.url + path, json=body, headers=headers, timeout=30)


async def test_a_registration_is_an_event_everyone_sees(staff: Staff) -> None:
    async with websockets.connect(staff.server.ws_url + "?topics=region:330782") as ws:
        assert (await recv(ws))["op"] == "subscribed"
        created = staff.project("R-1")
        message = await recv(ws)
    assert message["op"] == "event"
    event = message["event"]
    assert (event["seq"], event["project"], event["stage"]) == (1, "R-1", "registered")
    assert event["title"] == created["title"] and event["occurred_at"] == created["created_at"]
    assert event["data"] == {
        "title": created["title"],
        "budget": None,
        "currency": "CNY",
        "region": "330782",
        "must_tender": True,  # a test tender the law requires (conftest)
    }
    listed = staff.client.get("/api/events", params={"stages": "registered"}).json()["items"]
    assert listed == [event]
    assert staff.client.get("/api/projects/R-1").json()["timeline"] == [event]
    assert created["stage"] is None and created["last_seq"] == 1


def test_an_amendment_changes_the_record_and_later_events_carry_it(staff: Staff) -> None:
    created = staff.project("A-1")
    staff.publish("A-1", "notice", data=CLOSED)  # its bid deadline passed: an opening may follow
    response = staff.client.patch(
        "/api/projects/A-1",
        json={"budget": 990000, "region": "330783", "must_tender": True, "reason": "预算调整"},
    )
    assert response.status_code == 200, response.text
    amended = response.json()
    assert amended["budget"] == 990000 and amended["region"] == "330783"
    assert amended["must_tender"] is True and amended["title"] == created["title"]
    assert amended["stage"] == "notice", "an amendment never moves the stage"
    assert amended["created_at"] == created["created_at"] and amended["last_seq"] == 3
    assert staff.client.get("/api/projects/A-1").json() | {"timeline": 0, "deadlines": 0} == (
        amended | {"timeline": 0, "deadlines": 0}
    )
    [event] = staff.client.get("/api/events", params={"since": "2"}).json()["items"]
    assert event["stage"] == "amended" and event["title"] == "项目信息变更：预算调整"
    assert event["data"] == {
        "changes": {"budget": 990000.0, "region": "330783", "must_tender": True},
        "reason": "预算调整",
    }
    assert event["body"] == "预算调整"
    # The amendment reaches the old region's followers; what follows, the new one's.
    assert event["region"] == "330782"
    assert staff.publish("A-1", "bid_opening")["region"] == "330783"
    listed = staff.client.get("/api/projects", params={"region": "330783"}).json()["items"]
    assert [p["id"] for p in listed] == ["A-1"]
    timeline = staff.client.get("/api/projects/A-1").json()["timeline"]
    assert [e["stage"] for e in timeline] == ["registered", "notice", "amended", "bid_opening"]


def test_a_long_reason_makes_a_title_within_the_limit(staff: Staff) -> None:
    staff.project("A-2")
    reason = "原因" * 200
    response = staff.client.patch("/api/projects/A-2", json={"title": "新名称", "reason": reason})
    assert response.status_code == 200, response.text
    event = staff.client.get("/api/projects/A-2").json()["timeline"][-1]
    assert len(event["title"]) == 200 and event["title"].endswith("…")
    assert event["data"]["reason"] == reason and event["body"] == reason


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"budget": 1}, "reason"),
        ({"budget": 1, "reason": ""}, "reason"),
        ({"budget": 1, "reason": "   "}, "reason"),
        ({"budget": 1, "reason": "x" * 501}, "reason"),
        ({"budget": 1, "reason": 5}, "reason"),
        ({"budget": -1, "reason": "r"}, "budget"),
        ({"budget": "1", "reason": "r"}, "budget"),
        ({"title": "", "reason": "r"}, "title"),
        ({"title": None, "reason": "r"}, "title"),
        ({"currency": "cny", "reason": "r"}, "currency"),
        ({"currency": None, "reason": "r"}, "currency"),
        ({"region": "a/b", "reason": "r"}, "region"),
        ({"must_tender": "yes", "reason": "r"}, "must_tender"),
        ({"reason": "nothing named"}, None),
        ({"category": "land", "reason": "r"}, None),
        ({"agency": "OTHER", "reason": "r"}, None),
        ({"id": "OTHER", "reason": "r"}, None),
        ([], None),
    ],
)
def test_an_invalid_amendment_is_a_422_and_appends_nothing(
    shared_staff: Staff, body: Any, field: str | None
) -> None:
    staff, project_id = shared_staff, unique("AM")
    staff.project(project_id)
    before = staff.client.get(f"/api/projects/{project_id}").json()
    response = staff.client.patch(f"/api/projects/{project_id}", json=body)
    assert_error(response, 422, field=field)
    after = staff.client.get(f"/api/projects/{project_id}").json()
    assert after == before


def test_an_amendment_that_changes_nothing_is_refused(staff: Staff) -> None:
    staff.project("N-1")
    same = staff.client.patch(
        "/api/projects/N-1", json={"currency": "CNY", "region": "330782", "reason": "无"}
    )
    assert_error(same, 422, "no_change")
    # Naming unchanged fields beside one that changes is fine.
    changed = staff.client.patch(
        "/api/projects/N-1", json={"currency": "CNY", "budget": 5, "reason": "补充预算"}
    )
    assert changed.status_code == 200, changed.text
    event = staff.client.get("/api/projects/N-1").json()["timeline"][-1]
    assert event["data"]["changes"] == {"currency": "CNY", "budget": 5.0}
    assert staff.server.head() == 2


def test_who_may_amend(server: ServerProcess, staff: Staff, admin: str) -> None:
    staff.project("W-1", agency="AG-A")
    own = server.token("pub-a", "publisher", "AG-A")
    other = server.token("pub-b", "publisher", "AG-B")
    supervisor = server.token("sup", "supervisor")
    body = {"title": "改名", "reason": "笔误"}
    assert_error(patch_json(server, "/api/projects/W-1", body), 401)
    assert_error(patch_json(server, "/api/projects/W-1", body, "sb_not-a-token"), 401)
    assert_error(patch_json(server, "/api/projects/W-1", body, other), 403, "forbidden")
    assert_error(patch_json(server, "/api/projects/W-1", body, supervisor), 403, "forbidden")
    assert_error(patch_json(server, "/api/projects/NOPE", body, own), 404)
    assert_error(patch_json(server, "/api/projects/a%20b", body, own), 404)
    assert server.head() == 1, "refused amendments append nothing"
    response = patch_json(server, "/api/projects/W-1", body, own)
    assert response.status_code == 200 and response.json()["title"] == "改名"
    again = patch_json(server, "/api/projects/W-1", {"title": "再改", "reason": "x"}, admin)
    assert again.status_code == 200 and again.json()["title"] == "再改"
    not_json = httpx.patch(
        server.url + "/api/projects/W-1",
        content=b"title=x",
        headers={"Authorization": f"Bearer {own}", "Content-Type": "text/plain"},
    )
    assert_error(not_json, 415)
    assert server.head() == 3


async def test_racing_creates_give_one_201_and_409s(staff: Staff, admin: str) -> None:
    async with httpx.AsyncClient(
        base_url=staff.server.url, timeout=60, headers={"Authorization": f"Bearer {admin}"}
    ) as client:
        responses = await asyncio.gather(
            *(
                client.post("/api/projects", json=new_project("RACE", title=f"标题 {n}"))
                for n in range(12)
            )
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 11, statuses
    [winner] = [r.json() for r in responses if r.status_code == 201]
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409, "project_exists")
    assert staff.client.get("/api/projects/RACE").json()["title"] == winner["title"]
    events = staff.client.get("/api/events").json()["items"]
    assert [e["stage"] for e in events] == ["registered"], "one registration in the log"


def test_verify_passes_after_creates_and_amendments(server: ServerProcess, staff: Staff) -> None:
    staff.project("V-1")
    staff.project("V-2", category="land", region=None)
    staff.publish("V-1", "notice")
    staff.client.patch("/api/projects/V-2", json={"region": "330701", "reason": "划转"})
    staff.publish("V-2", "notice")
    result = server.cli("verify")
    assert result.returncode == 0, result.stdout + result.stderr
    listed = staff.client.get("/api/projects").json()["items"]
    assert [p["id"] for p in listed] == ["V-2", "V-1"], "latest activity first"


def test_projects_survive_a_restart_as_the_log_left_them(
    server: ServerProcess, staff: Staff, admin: str
) -> None:
    staff.project("S-1")
    staff.client.patch("/api/projects/S-1", json={"budget": 7, "reason": "r"})
    before = staff.client.get("/api/projects/S-1").json()
    server.stop()
    server.start()
    assert httpx.get(server.url + "/api/projects/S-1").json() == before
    duplicate = post_json(server, "/api/projects", new_project("S-1"), admin)
    assert_error(duplicate, 409)
    assert json.loads(httpx.get(server.url + "/healthz").text)["head"] == 2
