"""The HTTP and WebSocket API contract, against a real `sunbid serve` process.

Every check here is something a client would see: statuses, the error shape,
who may do what, filters and pagination, the WebSocket ops and limits, the
app's pages and files, the demo data and the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from server.app import create_app
from server.settings import Settings
from tests.conftest import CLOSED, ROOT, ServerProcess, Staff, with_facts

RFC3339_CST = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?\+08:00$")
CONSTRUCTION_STAGES = {
    "prequalification",
    "notice",
    "clarification",
    "bid_opening",
    "evaluation",
    "candidates",
    "award",
    "contract",
    "performance",
    "failed",
    "objection",
    "objection_reply",
    "complaint",
    "complaint_decision",
    "penalty",
    "penalty_withdrawn",
    "correction",
}
# What must never reach a client: stack traces, SQL, internal paths.
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|sqlite|SQLite|SELECT |INSERT |UPDATE |OverflowError|"
    r"Exception|/work/|/tmp/|/usr/|site-packages|" + re.escape(str(ROOT))
)


# --- helpers ------------------------------------------------------------------


def assert_no_leak(text: str) -> None:
    match = LEAKS.search(text)
    assert match is None, f"internal detail {match.group(0)!r} reached the client: {text[:300]}"


def assert_error(
    response: httpx.Response, status: int, code: str | None = None, field: str | None = None
) -> dict[str, Any]:
    """The contract's error shape, with this status (and code / named field)."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    assert set(error) <= {"code", "message", "details"}, body
    if code is not None:
        assert error["code"] == code, body
    if field is not None:
        assert error["details"]["field"] == field, body
    assert_no_leak(response.text)
    return dict(error)


def post_json(
    server: ServerProcess, path: str, body: Any, token: str | None = None, **headers: str
) -> httpx.Response:
    """A one-off request on its own connection."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(server.url + path, json=body, headers=headers, timeout=30)


def post_raw(
    server: ServerProcess,
    path: str,
    content: bytes,
    token: str | None,
    content_type: str | None = "application/json",
) -> httpx.Response:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if content_type is not None:
        headers["Content-Type"] = content_type
    return httpx.post(server.url + path, content=content, headers=headers, timeout=30)


def new_project(project_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "id": project_id,
        "title": f"项目 {project_id}",
        "category": "construction",
        "agency": "YW-GGZY",
        "region": "330782",
    }
    body.update(fields)
    return body


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def recv(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, str), message
    return dict(json.loads(message))


async def ping(ws: Any) -> list[dict[str, Any]]:
    """Send a ping; return every message received before its pong."""
    await ws.send('{"op":"ping"}')
    before = []
    while True:
        message = await recv(ws)
        if message["op"] == "pong":
            return before
        before.append(message)


def assert_error_op(message: dict[str, Any], code: str | None = None) -> None:
    assert message["op"] == "error", message
    assert isinstance(message["code"], str) and message["code"], message
    assert isinstance(message["message"], str) and message["message"], message
    if code is not None:
        assert message["code"] == code, message
    assert_no_leak(json.dumps(message, ensure_ascii=False))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the many checks that only need to be refused (no shared state)."""
    proc = ServerProcess(tmp_path_factory.mktemp("shared") / "data").start()
    yield proc
    if proc.process is not None:
        proc.stop()


@pytest.fixture(scope="module")
def shared_admin(shared: ServerProcess) -> str:
    return shared.token("shared-admin")


@pytest.fixture
def shared_staff(shared: ServerProcess, shared_admin: str) -> Iterator[Staff]:
    member = Staff(shared, shared_admin)
    yield member
    member.client.close()


_ids = itertools.count(1)


def unique(prefix: str) -> str:
    """A project id no other test on the shared server uses."""
    return f"{prefix}-{next(_ids)}"


# --- tokens on the command line -------------------------------------------------------


def test_token_create_prints_the_token_alone_on_the_last_line(server: ServerProcess) -> None:
    result = server.cli("token", "create", "--name", "alice", "--role", "admin")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.rstrip("\n").split("\n")
    secret = lines[-1]
    assert secret == secret.strip() and re.fullmatch(r"\S{20,}", secret), lines
    assert all(secret not in line for line in lines[:-1])
    # The printed line is a working bearer token.
    response = post_json(server, "/api/projects", new_project("T-1"), token=secret)
    assert response.status_code == 201, response.text


def test_tokens_are_stored_and_listed_without_the_secret(server: ServerProcess) -> None:
    secrets = [
        server.token("alice", "admin"),
        server.token("bob", "publisher", "AG-B"),
        server.token("carol", "supervisor"),
    ]
    listing = server.cli("token", "list")
    assert listing.returncode == 0, listing.stderr
    for name, role in (("alice", "admin"), ("bob", "publisher"), ("carol", "supervisor")):
        assert re.search(rf"^{name}\s+{role}\b", listing.stdout, re.MULTILINE), listing.stdout
    assert "AG-B" in listing.stdout
    for secret in secrets:
        assert secret not in listing.stdout + listing.stderr
        assert hashlib.sha256(secret.encode()).hexdigest() not in listing.stdout
    # Only digests are kept on disk.
    stored = b"".join(p.read_bytes() for p in server.data_dir.glob("sunbid.db*"))
    assert stored, "no database file found"
    for secret in secrets:
        assert secret.encode() not in stored


def test_token_cli_rejects_bad_requests(server: ServerProcess) -> None:
    server.token("dup", "admin")
    again = server.cli("token", "create", "--name", "dup", "--role", "admin")
    assert again.returncode != 0 and "dup" in again.stderr
    no_agency = server.cli("token", "create", "--name", "pub", "--role", "publisher")
    assert no_agency.returncode != 0 and "agency" in no_agency.stderr
    assert server.cli("token", "revoke", "nobody").returncode != 0


def test_revoked_token_gets_401(server: ServerProcess) -> None:
    secret = server.token("soon-gone", "admin")
    assert post_json(server, "/api/projects", new_project("R-1"), token=secret).status_code == 201
    revoked = server.cli("token", "revoke", "soon-gone")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in server.cli("token", "list").stdout
    # A running server stops accepting it within a few seconds.
    start = time.monotonic()
    for attempt in itertools.count():
        response = post_json(server, "/api/projects", new_project(f"R-2-{attempt}"), token=secret)
        if response.status_code != 201:
            break
        assert time.monotonic() - start < 5, "a revoked token still works after 5 s"
        time.sleep(0.1)
    assert_error(response, 401, "unauthorized")
    response = post_json(
        server, "/api/projects/R-1/events", with_facts("notice", title="t"), token=secret
    )
    assert_error(response, 401, "unauthorized")


# --- authentication and authorisation -----------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "bearer  x",
        "Bearer nope",
        "Bearer sb_not-a-real-token",
        "Basic YTpi",
        "sb_x",
    ],
)
def test_staff_endpoints_need_a_valid_bearer_token(
    shared_staff: Staff, authorization: str | None
) -> None:
    staff, existing, fresh = shared_staff, unique("AUTH"), unique("AUTH")
    staff.project(existing)
    head = staff.server.head()
    headers = {} if authorization is None else {"Authorization": authorization}
    for path, body in (
        ("/api/projects", new_project(fresh)),
        (f"/api/projects/{existing}/events", with_facts("notice", title="t")),
    ):
        response = httpx.post(staff.server.url + path, json=body, headers=headers)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert staff.server.head() == head
    assert httpx.get(f"{staff.server.url}/api/projects/{fresh}").status_code == 404


def test_publisher_acts_only_for_its_own_agency(server: ServerProcess, staff: Staff) -> None:
    publisher = server.token("pub-a", "publisher", "AG-A")
    staff.project("B-1", agency="AG-B")  # seq 1: its registration

    other = post_json(server, "/api/projects", new_project("B-2", agency="AG-B"), publisher)
    assert_error(other, 403, "forbidden")
    assert httpx.get(server.url + "/api/projects/B-2").status_code == 404

    foreign = post_json(
        server, "/api/projects/B-1/events", with_facts("notice", title="t"), publisher
    )
    assert_error(foreign, 403, "forbidden")
    assert server.head() == 1, "refused requests append nothing"

    own = post_json(server, "/api/projects", new_project("A-1", agency="AG-A"), publisher)
    assert own.status_code == 201, own.text
    published = post_json(
        server, "/api/projects/A-1/events", with_facts("notice", title="t"), publisher
    )
    assert published.status_code == 201, published.text
    assert published.json()["agency"] == "AG-A"


def test_supervisor_cannot_publish_but_admin_can(server: ServerProcess, staff: Staff) -> None:
    supervisor = server.token("sup", "supervisor")
    staff.project("S-1", agency="AG-S")
    response = post_json(server, "/api/projects", new_project("S-2", agency="AG-S"), supervisor)
    assert_error(response, 403, "forbidden")
    response = post_json(
        server, "/api/projects/S-1/events", with_facts("notice", title="t"), supervisor
    )
    assert_error(response, 403, "forbidden")
    assert server.head() == 1, "refused requests append nothing (1: S-1's registration)"
    # The admin publishes for any agency.
    assert staff.publish("S-1", "notice")["agency"] == "AG-S"
    assert staff.project("S-3", agency="AG-OTHER")["agency"] == "AG-OTHER"


# --- projects -------------------------------------------------------------------


def test_create_project(staff: Staff) -> None:
    response = staff.client.post(
        "/api/projects",
        json=new_project("YW-2026-0001", title="义乌市某道路工程", budget=1250000.5),
    )
    assert response.status_code == 201, response.text
    project = response.json()
    assert project["id"] == "YW-2026-0001" and project["title"] == "义乌市某道路工程"
    assert project["category"] == "construction" and project["agency"] == "YW-GGZY"
    assert project["region"] == "330782" and project["budget"] == 1250000.5
    assert project["currency"] == "CNY" and project["stage"] is None
    assert RFC3339_CST.match(project["created_at"]) and RFC3339_CST.match(project["updated_at"])
    assert response.headers["location"] == "/api/projects/YW-2026-0001"
    fetched = staff.client.get("/api/projects/YW-2026-0001").json()
    # Its registration is its first event: the project's fields, no stage moved.
    [registered] = fetched["timeline"]
    assert registered["stage"] == "registered" and registered["title"] == "义乌市某道路工程"
    assert registered["data"] == {
        "title": "义乌市某道路工程",
        "budget": 1250000.5,
        "currency": "CNY",
        "region": "330782",
        "must_tender": None,
    }
    assert registered["occurred_at"] == project["created_at"] and project["last_seq"] == 1
    assert fetched["deadlines"] == []
    assert {k: fetched[k] for k in project} == project
    # Region and budget are optional; a second create of the same id is a conflict.
    minimal = staff.client.post(
        "/api/projects", json={"id": "YW-2", "title": "t", "category": "land", "agency": "A"}
    )
    assert minimal.status_code == 201, minimal.text
    assert minimal.json()["region"] is None and minimal.json()["budget"] is None
    duplicate = staff.client.post("/api/projects", json=new_project("YW-2026-0001"))
    assert_error(duplicate, 409)
    assert staff.client.get("/api/projects/YW-2026-0001").json()["title"] == "义乌市某道路工程"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", ""),
        ("id", "has space"),
        ("id", "x" * 65),
        ("id", "中文"),
        ("id", 7),
        ("id", None),
        ("category", "roads"),
        ("category", None),
        ("category", ["land"]),
        ("agency", ""),
        ("agency", "a/b"),
        ("region", ""),
        ("region", 330782),
        ("title", ""),
        ("title", "   "),
        ("title", "x" * 201),
        ("title", 5),
        ("budget", -1),
        ("budget", "100"),
        ("budget", True),
        ("budget", [1]),
        ("currency", "cny"),
        ("currency", "YUAN"),
        ("currency", 156),
    ],
)
def test_create_project_invalid_field(shared_staff: Staff, field: str, value: Any) -> None:
    project_id = unique("BAD")
    body = new_project(project_id, **{field: value})
    response = httpx.post(
        shared_staff.server.url + "/api/projects", json=body, headers=shared_staff.client.headers
    )
    assert_error(response, 422, field=field)
    if field != "id":
        assert shared_staff.client.get(f"/api/projects/{project_id}").status_code == 404


def test_create_project_unknown_field_or_not_an_object(shared_staff: Staff) -> None:
    staff, project_id = shared_staff, unique("U")
    response = staff.client.post("/api/projects", json=new_project(project_id, colour="red"))
    error = assert_error(response, 422)
    assert "colour" in error["message"]
    for body in ([new_project(project_id)], project_id, 1, None, True):
        response = staff.client.post(
            "/api/projects",
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert_error(response, 422)
    assert staff.client.get(f"/api/projects/{project_id}").status_code == 404


@pytest.mark.parametrize(
    "budget", ["18446744073709551616", "9223372036854775808", "-9223372036854775809", "1e400"]
)
def test_create_project_with_an_out_of_range_budget(
    shared: ServerProcess, shared_admin: str, budget: str
) -> None:
    project_id = unique("BIG")
    text = f'{{"id":"{project_id}","title":"t","category":"land","agency":"A","budget":{budget}}}'
    response = post_raw(shared, "/api/projects", text.encode(), shared_admin)
    if response.status_code == 201:
        assert response.json()["budget"] == pytest.approx(float(budget))
    elif response.status_code == 400:  # not representable as JSON number here
        assert_error(response, 400)
    else:
        assert_error(response, 422, field="budget")


# --- publishing -----------------------------------------------------------------------


def test_publish_event_fills_in_the_server_fields(staff: Staff) -> None:
    staff.project("P-1")
    response = staff.client.post(
        "/api/projects/P-1/events",
        json={
            "stage": "bid_opening",
            "title": "  开标  ",
            "body": "开标时间 2026-12-01 09:30",
            "data": {"bidders": 7},
            "occurred_at": "2026-12-01T01:30:00Z",
        },
    )
    assert response.status_code == 201, response.text
    event = response.json()
    assert list(event) == [
        "seq",
        "project",
        "category",
        "agency",
        "region",
        "stage",
        "title",
        "body",
        "data",
        "occurred_at",
        "published_at",
        "hash",
    ]
    assert event["seq"] == 2 and event["project"] == "P-1"  # 1: its registration
    assert (event["category"], event["agency"], event["region"]) == (
        "construction",
        "YW-GGZY",
        "330782",
    )
    assert event["title"] == "开标" and event["data"] == {"bidders": 7}
    assert event["occurred_at"] == "2026-12-01T09:30:00+08:00"
    assert RFC3339_CST.match(event["published_at"])
    assert re.fullmatch(r"[0-9a-f]{64}", event["hash"])
    second = staff.publish("P-1", "evaluation")
    assert second["seq"] == 3 and second["occurred_at"] == second["published_at"]
    assert staff.server.head() == 3


def test_stage_outside_the_category_names_the_allowed_stages(staff: Staff) -> None:
    staff.project("P-2")
    for stage in ("auction", "plan", "bogus", "", None, 3):
        response = staff.client.post(
            "/api/projects/P-2/events", json={"stage": stage, "title": "t"}
        )
        error = assert_error(response, 422, field="stage")
        assert set(error["details"]["allowed"]) == CONSTRUCTION_STAGES
        assert "bid_opening" in error["message"] and "objection" in error["message"]
    # The answer matches what /api/categories says, less the record stages, which
    # only their own endpoints append: POST and PATCH /api/projects, and
    # POST /api/enquiries/{id}/answer.
    categories = staff.client.get("/api/categories").json()["items"]
    construction = next(c for c in categories if c["code"] == "construction")
    listed = {s["code"] for s in construction["stages"]}
    records = {"registered", "amended", "enquiry_answer"}
    assert listed == CONSTRUCTION_STAGES | records
    for stage in sorted(records):
        response = staff.client.post(
            "/api/projects/P-2/events", json={"stage": stage, "title": "t"}
        )
        assert_error(response, 422, field="stage")
    assert staff.server.head() == 1, "only P-2's registration"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"stage": ["notice"], "title": "t"}, "stage"),
        ({"stage": {"code": "notice"}, "title": "t"}, "stage"),
        ({"stage": "notice"}, "title"),
        ({"stage": "notice", "title": ""}, "title"),
        ({"stage": "notice", "title": "t", "body": 5}, "body"),
        ({"stage": "notice", "title": "t", "body": "x" * 20_001}, "body"),
        ({"stage": "notice", "title": "t", "data": [1]}, "data"),
        ({"stage": "notice", "title": "t", "data": "x"}, "data"),
        ({"stage": "correction", "title": "t"}, "data.corrects"),
        ({"stage": "correction", "title": "t", "data": {"corrects": "1"}}, "data.corrects"),
        ({"stage": "correction", "title": "t", "data": {"corrects": 0}}, "data.corrects"),
        ({"stage": "correction", "title": "t", "data": {"corrects": 99}}, "data.corrects"),
        ({"stage": "notice", "title": "t", "occurred_at": "2026-12-01T09:30:00"}, "occurred_at"),
        ({"stage": "notice", "title": "t", "occurred_at": "2026-12-01"}, "occurred_at"),
        ({"stage": "notice", "title": "t", "occurred_at": "yesterday"}, "occurred_at"),
        ({"stage": "notice", "title": "t", "occurred_at": 1764552600}, "occurred_at"),
        (
            {"stage": "notice", "title": "t", "occurred_at": "2026-12-01T09:30:00+25:00"},
            "occurred_at",
        ),
    ],
)
def test_publish_invalid_field(shared_staff: Staff, body: dict[str, Any], field: str) -> None:
    staff, project_id = shared_staff, unique("P")
    staff.project(project_id)
    head = staff.server.head()
    response = httpx.post(
        f"{staff.server.url}/api/projects/{project_id}/events",
        json=body,
        headers=staff.client.headers,
    )
    assert_error(response, 422, field=field)
    assert staff.server.head() == head


@pytest.mark.parametrize("occurred_at", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"])
def test_publish_occurred_at_outside_the_representable_range(
    shared_staff: Staff, occurred_at: str
) -> None:
    """Such a moment has no +08:00 form: it is an invalid field, not a server error."""
    staff, project_id = shared_staff, unique("P")
    staff.project(project_id)
    head = staff.server.head()
    response = httpx.post(
        f"{staff.server.url}/api/projects/{project_id}/events",
        json={"stage": "notice", "title": "t", "occurred_at": occurred_at},
        headers=staff.client.headers,
    )
    assert_error(response, 422, field="occurred_at")
    assert staff.server.head() == head


@pytest.mark.parametrize("corrects", ["9223372036854775808", "18446744073709551615"])
def test_correction_of_a_seq_beyond_64_bits(
    shared_staff: Staff, shared_admin: str, corrects: str
) -> None:
    staff, project_id = shared_staff, unique("P")
    staff.project(project_id)
    staff.publish(project_id, "notice")
    head = staff.server.head()
    body = b'{"stage":"correction","title":"t","data":{"corrects":' + corrects.encode() + b"}}"
    response = post_raw(staff.server, f"/api/projects/{project_id}/events", body, shared_admin)
    assert_error(response, 422, field="data.corrects")
    assert staff.server.head() == head


def test_publish_deeply_nested_data(shared_staff: Staff, shared_admin: str) -> None:
    """Nesting the parser accepts is either stored or refused as a field, never a 500."""
    staff, project_id = shared_staff, unique("DEEP")
    staff.project(project_id)
    head = staff.server.head()
    for depth in (100, 300, 600):
        body = (
            b'{"stage":"notice","title":"t","data":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
        )
        response = post_raw(staff.server, f"/api/projects/{project_id}/events", body, shared_admin)
        if response.status_code == 201:
            head += 1
            timeline = staff.client.get(f"/api/projects/{project_id}").json()["timeline"]
            assert timeline[-1] == response.json()
        else:
            assert_error(response, 422, field="data")
    assert staff.server.head() == head
    assert staff.server.cli("verify").returncode == 0


def test_correction_must_name_an_earlier_event_of_the_same_project(staff: Staff) -> None:
    staff.project("C-1")
    staff.project("C-2")
    first = staff.publish("C-1", "notice")
    other = staff.publish("C-2", "notice")
    response = staff.client.post(
        "/api/projects/C-1/events",
        json={"stage": "correction", "title": "更正", "data": {"corrects": other["seq"]}},
    )
    assert_error(response, 422, field="data.corrects")
    fixed = staff.publish("C-1", "correction", data={"corrects": first["seq"], "field": "body"})
    assert fixed["data"]["corrects"] == first["seq"]
    timeline = staff.client.get("/api/projects/C-1").json()["timeline"]
    assert [e["stage"] for e in timeline] == ["registered", "notice", "correction"]
    assert [e["seq"] for e in timeline[1:]] == [first["seq"], fixed["seq"]]
    assert timeline[1] == first  # the original is never altered


def test_project_stage_moves_only_on_lifecycle_stages(staff: Staff) -> None:
    created = staff.project("L-1")
    history = [created["updated_at"]]

    def check(stage: str | None) -> dict[str, Any]:
        project = staff.client.get("/api/projects/L-1").json()
        assert project["stage"] == stage
        assert moment(project["updated_at"]) > moment(history[-1])
        assert project["created_at"] == created["created_at"]
        listed = staff.client.get("/api/projects", params={"agency": "YW-GGZY"}).json()
        assert listed["items"][0]["stage"] == stage
        history.append(project["updated_at"])
        return dict(project)

    staff.publish("L-1", "notice", data=CLOSED)
    check("notice")
    staff.publish("L-1", "objection")
    check("notice")
    staff.publish("L-1", "objection_reply")
    check("notice")
    staff.publish("L-1", "bid_opening")
    check("bid_opening")
    award = staff.publish("L-1", "award", data={"winner": "某建设公司", "amount": 1_000_000})
    check("award")
    staff.publish("L-1", "correction", data={"corrects": award["seq"]})
    project = check("award")
    assert [e["stage"] for e in project["timeline"]] == [
        "registered",
        "notice",
        "objection",
        "objection_reply",
        "bid_opening",
        "award",
        "correction",
    ]


def test_idempotency_key(staff: Staff) -> None:
    staff.project("I-1")
    staff.project("I-2")
    body = with_facts("notice", title="招标公告")
    first = staff.client.post(
        "/api/projects/I-1/events", json=body, headers={"Idempotency-Key": "k-1"}
    )
    assert first.status_code == 201, first.text
    again = staff.client.post(
        "/api/projects/I-1/events", json=body, headers={"Idempotency-Key": "k-1"}
    )
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert staff.server.head() == 3  # 1 and 2: the registrations
    reused = staff.client.post(
        "/api/projects/I-1/events",
        json=with_facts("award", title="结果"),
        headers={"Idempotency-Key": "k-1"},
    )
    assert_error(reused, 409)
    # Keys are per project.
    elsewhere = staff.client.post(
        "/api/projects/I-2/events", json=body, headers={"Idempotency-Key": "k-1"}
    )
    assert elsewhere.status_code == 201 and elsewhere.json()["seq"] == 4
    too_long = staff.client.post(
        "/api/projects/I-1/events", json=body, headers={"Idempotency-Key": "k" * 201}
    )
    assert_error(too_long, 422, field="Idempotency-Key")
    assert staff.server.head() == 4


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"NaN",
        b"Infinity",
        b'{"stage":"notice",}',
        b'{"stage":"notice","title":"\xff\xfe"}',
        b'{"stage":"notice","title":"\\ud800"}',
        b"\x00" * 10,
    ],
)
def test_body_that_is_not_json_is_400(
    shared_staff: Staff, shared_admin: str, content: bytes
) -> None:
    staff, project_id = shared_staff, unique("J")
    staff.project(project_id)
    head = staff.server.head()
    for path in ("/api/projects", f"/api/projects/{project_id}/events"):
        assert_error(post_raw(staff.server, path, content, shared_admin), 400)
    assert staff.server.head() == head


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "json",
    ],
)
def test_body_that_is_not_sent_as_json_is_415(
    shared_staff: Staff, shared_admin: str, content_type: str | None
) -> None:
    staff, project_id = shared_staff, unique("J")
    staff.project(project_id)
    head = staff.server.head()
    content = json.dumps(with_facts("notice", title="t")).encode()
    for path in ("/api/projects", f"/api/projects/{project_id}/events"):
        assert_error(post_raw(staff.server, path, content, shared_admin, content_type), 415)
    assert staff.server.head() == head
    # The charset parameter and letter case do not matter.
    for ok in ("application/json; charset=utf-8", "Application/JSON"):
        assert (
            post_raw(
                staff.server, f"/api/projects/{project_id}/events", content, shared_admin, ok
            ).status_code
            == 201
        )


def test_body_over_the_limit_is_413(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(SUNBID_MAX_BODY_BYTES="2048")
    admin = server.token("admin")
    assert post_json(server, "/api/projects", new_project("M-1"), admin).status_code == 201
    # Clarifications: they need no facts, so the body alone decides the size.
    big = {"stage": "clarification", "title": "t", "body": "x" * 3000}
    assert_error(post_json(server, "/api/projects/M-1/events", big, admin), 413)
    assert_error(
        post_json(server, "/api/projects", new_project("M-2", title="x" * 3000), admin), 413
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
        yield b'{"stage":"clarification","title":"t","body":"'
        for _ in range(4):
            yield b"x" * 1000
        yield b'"}'

    chunked = httpx.post(
        server.url + "/api/projects/M-1/events",
        content=chunks(),
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
    )
    assert "content-length" not in chunked.request.headers
    assert_error(chunked, 413)
    assert server.head() == 1  # M-1's registration
    # Just under the limit is fine.
    fits = {"stage": "clarification", "title": "t", "body": "x" * 1900}
    assert post_json(server, "/api/projects/M-1/events", fits, admin).status_code == 201
    assert server.head() == 2


def test_unknown_project_is_404(staff: Staff) -> None:
    for project_id in ("NOPE", "x" * 65, "has%20space", "%E4%B8%AD"):
        assert_error(staff.client.get(f"/api/projects/{project_id}"), 404, "not_found")
        response = staff.client.post(
            f"/api/projects/{project_id}/events", json=with_facts("notice", title="t")
        )
        assert_error(response, 404, "not_found")
    assert staff.server.head() == 0


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/api",
        "/api/nope",
        "/api/projects/X/nope",
        "/api/events/1",
        "/ws/x",
        "/%00",
        "/api/projects/A/events/1",
    ],
)
def test_unknown_route_is_404_json(shared: ServerProcess, path: str) -> None:
    assert_error(httpx.get(shared.url + path), 404, "not_found")


def test_wrong_method_is_405_json(shared: ServerProcess) -> None:
    for method, path in (
        ("DELETE", "/api/projects"),
        ("PUT", "/api/projects"),
        ("POST", "/healthz"),
        ("GET", "/api/projects/X/events"),
        ("DELETE", "/api/projects/X"),
        ("POST", "/api/events"),
        ("PATCH", "/api/categories"),
    ):
        response = httpx.request(method, shared.url + path, timeout=5)
        assert_error(response, 405)
        assert response.headers.get("allow"), (method, path)


def test_405_allow_header_lists_every_method_of_the_resource(shared: ServerProcess) -> None:
    response = httpx.delete(shared.url + "/api/projects")
    assert_error(response, 405)
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allowed, response.headers["allow"]


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT"])
def test_stream_answers_only_get(shared: ServerProcess, method: str) -> None:
    with httpx.stream(method, shared.url + "/api/stream", timeout=5) as response:
        assert response.status_code == 405, (
            method,
            response.status_code,
            response.headers.get("content-type"),
        )
        response.read()
        assert_error(response, 405)


# --- listing projects --------------------------------------------------------------


def test_list_projects_filters(staff: Staff) -> None:
    staff.project("F-1", "construction", "AG-1", "330782")
    staff.project("F-2", "land", "AG-1", "330783")
    staff.project("F-3", "land", "AG-2", "330782")
    staff.project("F-4", "mining", "AG-2", None)
    staff.publish("F-1", "notice")
    staff.publish("F-2", "notice")
    staff.publish("F-3", "auction")
    staff.publish("F-3", "objection")

    def ids(**params: str) -> set[str]:
        response = staff.client.get("/api/projects", params=params)
        assert response.status_code == 200, response.text
        return {p["id"] for p in response.json()["items"]}

    assert ids() == {"F-1", "F-2", "F-3", "F-4"}
    assert ids(category="land") == {"F-2", "F-3"}
    assert ids(agency="AG-2") == {"F-3", "F-4"}
    assert ids(region="330782") == {"F-1", "F-3"}
    assert ids(stage="notice") == {"F-1", "F-2"}
    assert ids(stage="auction") == {"F-3"}
    assert ids(stage="objection") == set()
    assert ids(category="land", region="330782") == {"F-3"}
    assert ids(category="land", agency="AG-1", stage="notice") == {"F-2"}
    assert ids(category="gov_procurement") == set()
    assert ids(category="") == {"F-1", "F-2", "F-3", "F-4"}
    for name in ("category", "agency", "region", "stage"):
        bad = staff.client.get("/api/projects", params={name: "not a code!"})
        assert_error(bad, 422, field=name)


def test_list_projects_search(staff: Staff) -> None:
    titles = {
        "Q-1": "义乌市某道路工程施工",
        "Q-2": "义乌市第一中学食堂采购",
        "Q-3": "佛堂镇道路改造",
        "Q-4": "预算 100% 执行审计",
    }
    for project_id, title in titles.items():
        response = staff.client.post("/api/projects", json=new_project(project_id, title=title))
        assert response.status_code == 201, response.text

    def found(q: str) -> set[str]:
        response = staff.client.get("/api/projects", params={"q": q})
        assert response.status_code == 200, response.text
        return {p["id"] for p in response.json()["items"]}

    assert found("道路") == {"Q-1", "Q-3"}
    assert found("义乌市") == {"Q-1", "Q-2"}
    assert found("食堂") == {"Q-2"}
    assert found("Q-4") == {"Q-4"}  # ids match too
    assert found("机场") == set()
    assert found("%") == {"Q-4"}  # LIKE wildcards are literal
    assert found("_") == set()
    assert_error(staff.client.get("/api/projects", params={"q": "道" * 101}), 422, field="q")


def test_list_projects_pagination(staff: Staff) -> None:
    for n in range(23):
        staff.project(f"PG-{n:02d}")
    # Activity moves a project to the front.
    for n in (5, 17, 0):
        staff.publish(f"PG-{n:02d}", "notice")
    expected = ["PG-00", "PG-17", "PG-05"] + [
        f"PG-{n:02d}" for n in reversed(range(23)) if n not in (0, 5, 17)
    ]

    seen: list[str] = []
    updated: list[datetime] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "5"} | ({"cursor": cursor} if cursor else {})
        response = staff.client.get("/api/projects", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 5
        seen += [p["id"] for p in page["items"]]
        updated += [moment(p["updated_at"]) for p in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "pagination does not end"
    assert pages == 5
    assert seen == expected
    assert updated == sorted(updated, reverse=True)
    # Default page size is 20.
    first = staff.client.get("/api/projects").json()
    assert len(first["items"]) == 20 and first["next_cursor"]
    everything = staff.client.get("/api/projects", params={"limit": "100"}).json()
    assert [p["id"] for p in everything["items"]] == expected
    assert everything["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": "٣"}, "limit"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"cursor": "%%%"}, "cursor"),
        ({"cursor": "bm90LWEtbnVtYmVyOng"}, "cursor"),
    ],
)
def test_list_projects_bad_parameters(
    shared: ServerProcess, params: dict[str, str], field: str
) -> None:
    response = httpx.get(shared.url + "/api/projects", params=params)
    assert_error(response, 422, field=field)


# --- events ---------------------------------------------------------------------------


def test_events_since_topics_stages_limit(staff: Staff) -> None:
    staff.project("E-A", "construction", "AG-X", "R1")
    staff.project("E-B", "land", "AG-Y", "R2")
    staff.project("E-C", "gov_procurement", "AG-X", None)
    plan = [
        ("E-A", "notice"),
        ("E-B", "notice"),
        ("E-C", "plan"),
        ("E-A", "bid_opening"),
        ("E-B", "auction"),
        ("E-C", "notice"),
        ("E-A", "award"),
        ("E-B", "objection"),
        ("E-C", "award"),
    ]
    # E-A's bid deadline has passed: its bid opening may follow.
    published = [
        staff.publish(p, s, **({"data": CLOSED} if (p, s) == ("E-A", "notice") else {}))
        for p, s in plan
    ]
    assert [e["seq"] for e in published] == list(range(4, 13))  # 1-3: the registrations

    def events(**params: str) -> list[dict[str, Any]]:
        response = staff.client.get("/api/events", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["head"] == 12
        seqs = [e["seq"] for e in body["items"]]
        assert seqs == sorted(set(seqs)), "not ascending or duplicated"
        return list(body["items"])

    def seqs(**params: str) -> list[int]:
        return [e["seq"] for e in events(**params)]

    everything = events()
    assert everything[3:] == published
    assert [(e["project"], e["stage"]) for e in everything[:3]] == [
        ("E-A", "registered"),
        ("E-B", "registered"),
        ("E-C", "registered"),
    ]
    assert seqs(since="7") == [8, 9, 10, 11, 12]
    assert seqs(since="12") == [] and seqs(since="1000") == []
    assert seqs(topics="all") == list(range(1, 13))
    assert seqs(topics="project:E-A") == [1, 4, 7, 10]
    assert seqs(topics="category:land") == [2, 5, 8, 11]
    assert seqs(topics="agency:AG-X") == [1, 3, 4, 6, 7, 9, 10, 12]
    assert seqs(topics="region:R1") == [1, 4, 7, 10]
    assert seqs(topics="region:R2,project:E-C") == [2, 3, 5, 6, 8, 9, 11, 12]
    assert seqs(topics="project:E-A,agency:AG-X") == [1, 3, 4, 6, 7, 9, 10, 12]  # once each
    assert seqs(stages="notice") == [4, 5, 9]
    assert seqs(stages="registered") == [1, 2, 3]
    assert seqs(stages="award,objection") == [10, 11, 12]
    assert seqs(topics="agency:AG-X", stages="award") == [10, 12]
    assert seqs(topics="category:land", stages="objection", since="5") == [11]
    assert seqs(limit="2") == [1, 2]
    assert seqs(since="6", limit="3") == [7, 8, 9]
    assert seqs(topics="project:NOBODY") == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"since": "-1"}, "invalid_since"),
        ({"since": "abc"}, "invalid_since"),
        ({"since": "1.5"}, "invalid_since"),
        ({"since": "99999999999999999999"}, "invalid_since"),
        ({"topics": "nope"}, "invalid_topic"),
        ({"topics": "category:roads"}, "invalid_topic"),
        ({"topics": "project:"}, "invalid_topic"),
        ({"topics": "all", "stages": "bogus"}, "invalid_stage"),
        ({"stages": "bogus"}, "invalid_stage"),
        ({"limit": "0"}, None),
        ({"limit": "1001"}, None),
        ({"limit": "x"}, None),
        ({"topics": ",".join(f"project:P{n}" for n in range(65))}, "too_many_topics"),
    ],
)
def test_events_bad_parameters(
    shared: ServerProcess, params: dict[str, str], code: str | None
) -> None:
    response = httpx.get(shared.url + "/api/events", params=params)
    error = assert_error(response, 422, code)
    if "limit" in params:
        assert error["details"]["field"] == "limit"


@pytest.mark.parametrize("topics", ["supervision", "project:P1,supervision"])
def test_staff_topics_are_forbidden_wherever_no_token_can_be_shown(
    shared: ServerProcess, topics: str
) -> None:
    """One rule (server/core/topics.py) and one answer: the listing, SSE and push
    take no token, so a staff topic there is 403 `forbidden`, naming /ws."""
    for response in (
        httpx.get(shared.url + "/api/events", params={"topics": topics}),
        httpx.get(shared.url + "/api/stream", params={"topics": topics}),
    ):
        error = assert_error(response, 403, "forbidden")
        assert "/ws" in error["message"] and "supervisor" in error["message"]


async def test_events_limit_default_100_max_1000(staff: Staff, admin: str) -> None:
    staff.project("N-1")
    async with httpx.AsyncClient(
        base_url=staff.server.url, timeout=60, headers={"Authorization": f"Bearer {admin}"}
    ) as client:

        async def publish(n: int) -> int:
            response = await client.post(
                "/api/projects/N-1/events", json=with_facts("notice", title=f"公告 {n}")
            )
            assert response.status_code == 201, response.text
            return int(response.json()["seq"])

        seqs = await asyncio.gather(*(publish(n) for n in range(130)))
    assert sorted(seqs) == list(range(2, 132))  # 1: the registration
    default = staff.client.get("/api/events").json()
    assert [e["seq"] for e in default["items"]] == list(range(1, 101))
    assert default["head"] == 131
    full = staff.client.get("/api/events", params={"limit": "1000"}).json()
    assert [e["seq"] for e in full["items"]] == list(range(1, 132))
    rest = staff.client.get("/api/events", params={"since": "100"}).json()
    assert [e["seq"] for e in rest["items"]] == list(range(101, 132))
    assert_error(staff.client.get("/api/events", params={"limit": "1001"}), 422, field="limit")


def test_times_are_rfc3339_in_the_server_time_zone(staff: Staff) -> None:
    staff.project("TZ-1")
    event = staff.publish("TZ-1", "notice", occurred_at="2026-12-01T09:30:00-05:00")
    assert event["occurred_at"] == "2026-12-01T22:30:00+08:00"
    project = staff.client.get("/api/projects/TZ-1").json()
    values = [project["created_at"], project["updated_at"]]
    values += [e[k] for e in project["timeline"] for k in ("occurred_at", "published_at")]
    values += [e["published_at"] for e in staff.client.get("/api/events").json()["items"]]
    for value in values:
        assert RFC3339_CST.match(value), value


def test_times_follow_sunbid_timezone(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(SUNBID_TIMEZONE="UTC")
    admin = server.token("admin")
    created = post_json(server, "/api/projects", new_project("UTC-1"), admin).json()
    assert created["created_at"].endswith("+00:00"), created
    event = post_json(
        server,
        "/api/projects/UTC-1/events",
        with_facts("notice", title="t", occurred_at="2026-12-01T09:30:00+08:00"),
        admin,
    ).json()
    assert event["occurred_at"] == "2026-12-01T01:30:00+00:00"
    assert event["published_at"].endswith("+00:00")


# --- server-sent events: refusals -------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("topics=supervision", 403),
        ("topics=nope", 422),
        ("since=abc", 422),
        ("stages=bogus", 422),
        ("topics=category:roads", 422),
        ("since=-5", 422),
    ],
)
def test_stream_refusals(shared: ServerProcess, query: str, status: int) -> None:
    with httpx.stream("GET", f"{shared.url}/api/stream?{query}", timeout=5) as response:
        response.read()
        assert_error(response, status)


def test_stream_bad_last_event_id(shared: ServerProcess) -> None:
    with httpx.stream(
        "GET", shared.url + "/api/stream", timeout=5, headers={"Last-Event-ID": "yesterday"}
    ) as response:
        response.read()
        assert_error(response, 422)


# --- nothing internal reaches a client ---------------------------------------------------


def test_no_response_leaks_internals(staff: Staff, admin: str) -> None:
    staff.project("LEAK-1")
    staff.publish("LEAK-1", "notice")
    url = staff.server.url
    auth = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
    bodies = [
        b"{",
        b'{"id":"LEAK-2","title":"t","category":"land","agency":"A","budget":1e999}',
        b'{"id":"LEAK-2","title":"t","category":"land","agency":"A","budget":99999999999999999999}',
        b'{"stage":"correction","title":"t","data":{"corrects":99999999999999999999}}',
        b'{"stage":"notice","title":"t","occurred_at":"9999-12-31T23:59:59-12:00"}',
        b'{"stage":"notice","title":"t","data":' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"stage":"notice","title":"\\u0000","body":"\'; DROP TABLE events; --"}',
    ]
    responses = []
    for path in ("/api/projects", "/api/projects/LEAK-1/events"):
        for body in bodies:
            responses.append(httpx.post(url + path, content=body, headers=auth))
    for path in (
        "/api/projects/'%20OR%201=1",
        "/api/events?since=1%27",
        "/api/events?topics=%00",
        "/api/projects?cursor=J09SIDE9MQ",
        "/api/projects?q=%27%22%5C",
        "/api/projects?stage=%ff",
        "/nope.py",
        "/api/projects/LEAK-1/events",
    ):
        responses.append(httpx.get(url + path))
    for response in responses:
        assert_no_leak(response.text)
        assert (
            "server" not in response.headers or "python" not in response.headers["server"].lower()
        )
        if response.status_code >= 400:  # statuses are checked elsewhere; here the shape
            assert_error(response, response.status_code)
    assert staff.server.cli("verify").returncode == 0


# --- WebSocket ----------------------------------------------------------------------


async def test_ws_subscribe_ping_unsubscribe(staff: Staff) -> None:
    staff.project("W-1")
    staff.project("W-2")
    async with websockets.connect(staff.server.ws_url) as ws:
        assert await ping(ws) == []
        await ws.send(json.dumps({"op": "subscribe", "topics": ["project:W-1"]}))
        # head 2: the two registrations
        assert await recv(ws) == {"op": "subscribed", "topics": ["project:W-1"], "head": 2}
        published = staff.publish("W-1", "notice", data=CLOSED)
        staff.publish("W-2", "notice")  # another project: not delivered
        assert await recv(ws) == {"op": "event", "event": published}
        await ws.send(json.dumps({"op": "ping"}))
        assert await recv(ws) == {"op": "pong", "head": 4}
        await ws.send(json.dumps({"op": "unsubscribe", "topics": ["project:W-1"]}))
        assert await recv(ws) == {"op": "unsubscribed", "topics": ["project:W-1"]}
        staff.publish("W-1", "bid_opening")
        assert await ping(ws) == []


async def test_ws_stage_filter_and_since(staff: Staff) -> None:
    staff.project("WS-1", "construction")
    staff.project("WS-2", "land")
    first = staff.publish("WS-1", "notice", data=CLOSED)
    staff.publish("WS-1", "bid_opening")
    staff.publish("WS-2", "notice")
    async with websockets.connect(staff.server.ws_url) as ws:
        await ws.send(
            json.dumps(
                {
                    "op": "subscribe",
                    "topics": ["category:construction"],
                    "stages": ["notice", "award"],
                    "since": 0,
                }
            )
        )
        assert await recv(ws) == {
            "op": "subscribed",
            "topics": ["category:construction"],
            "head": 5,  # two registrations, three publications
        }
        assert await recv(ws) == {"op": "event", "event": first}
        staff.publish("WS-1", "evaluation")
        award = staff.publish("WS-1", "award")
        assert await recv(ws) == {"op": "event", "event": award}
        assert await ping(ws) == []


async def test_ws_query_string_acts_as_first_subscribe(staff: Staff) -> None:
    staff.project("WQ-1")
    first = staff.publish("WQ-1", "notice")
    second = staff.publish("WQ-1", "clarification")
    # since=2: after the registration (1) and the first publication (2).
    async with websockets.connect(staff.server.ws_url + "?topics=project:WQ-1&since=2") as ws:
        assert (await recv(ws))["op"] == "subscribed"
        assert await recv(ws) == {"op": "event", "event": second}
        assert await ping(ws) == []
    async with websockets.connect(staff.server.ws_url + "?topics=all&stages=notice&since=0") as ws:
        assert (await recv(ws))["op"] == "subscribed"
        assert await recv(ws) == {"op": "event", "event": first}
        assert await ping(ws) == []
    async with websockets.connect(staff.server.ws_url + "?topics=nope") as ws:
        assert_error_op(await recv(ws), "invalid_topic")
        assert await ping(ws) == []


async def test_ws_auth_and_the_supervision_topic(server: ServerProcess) -> None:
    supervisor = server.token("sup", "supervisor")
    admin = server.token("adm", "admin")
    publisher = server.token("pub", "publisher", "AG-1")
    subscribe = json.dumps({"op": "subscribe", "topics": ["supervision"]})
    async with websockets.connect(server.ws_url) as ws:
        await ws.send(subscribe)
        assert_error_op(await recv(ws), "forbidden")
        for bad in (
            {"op": "auth", "token": "nope"},
            {"op": "auth"},
            {"op": "auth", "token": 5},
            {"op": "auth", "token": "sb_" + "x" * 43},
        ):
            await ws.send(json.dumps(bad))
            assert_error_op(await recv(ws), "unauthorized")
        await ws.send(subscribe)
        assert_error_op(await recv(ws), "forbidden")
        await ws.send(json.dumps({"op": "auth", "token": publisher}))
        assert await recv(ws) == {"op": "authed", "role": "publisher", "agency": "AG-1"}
        await ws.send(subscribe)
        assert_error_op(await recv(ws), "forbidden")
        await ws.send(json.dumps({"op": "auth", "token": supervisor}))
        assert await recv(ws) == {"op": "authed", "role": "supervisor", "agency": None}
        await ws.send(subscribe)
        assert await recv(ws) == {"op": "subscribed", "topics": ["supervision"], "head": 0}
        assert await ping(ws) == []
    async with websockets.connect(server.ws_url) as ws:
        await ws.send(json.dumps({"op": "auth", "token": admin}))
        assert await recv(ws) == {"op": "authed", "role": "admin", "agency": None}
        await ws.send(subscribe)
        assert (await recv(ws))["op"] == "subscribed"
    # A revoked token no longer authenticates.
    assert server.cli("token", "revoke", "sup").returncode == 0
    async with websockets.connect(server.ws_url) as ws:
        for _ in range(50):
            await ws.send(json.dumps({"op": "auth", "token": supervisor}))
            reply = await recv(ws)
            if reply["op"] == "error":
                break
            await asyncio.sleep(0.1)
        if reply["code"] == "token_revoked":
            # Signed in from a cached answer just before the revocation was
            # noticed, and signed out when it was; asking again now fails.
            await ws.send(json.dumps({"op": "auth", "token": supervisor}))
            reply = await recv(ws)
        assert_error_op(reply, "unauthorized")


@pytest.mark.parametrize(
    "frame",
    [
        '{"op":"dance"}',
        '{"op":""}',
        '{"op":null}',
        '{"op":["ping"]}',
        '{"topics":["all"]}',
        "[]",
        "null",
        "42",
        '"ping"',
        "not json",
        "{",
        '{"op":"ping"',
        "NaN",
        '{"op":"subscribe"}',
        '{"op":"subscribe","topics":[]}',
        '{"op":"subscribe","topics":"all"}',
        '{"op":"subscribe","topics":[1]}',
        '{"op":"subscribe","topics":["all"],"stages":["x"]}',
        '{"op":"subscribe","topics":["all"],"stages":"notice"}',
        '{"op":"subscribe","topics":["all"],"since":-1}',
        '{"op":"subscribe","topics":["all"],"since":"x"}',
        '{"op":"subscribe","topics":["all"],"since":true}',
        '{"op":"subscribe","topics":["all"],"since":1e400}',
        '{"op":"subscribe","topics":["all"],"since":99999999999999999999999}',
        '{"op":"unsubscribe"}',
        '{"op":"unsubscribe","topics":["what:ever"]}',
    ],
)
async def test_ws_bad_frames_get_an_error_op_and_the_connection_stays_open(
    shared: ServerProcess, frame: str
) -> None:
    async with websockets.connect(shared.ws_url) as ws:
        await ws.send(frame)
        assert_error_op(await recv(ws))
        assert await ping(ws) == []


async def test_ws_binary_frames_get_an_error_op(shared: ServerProcess) -> None:
    async with websockets.connect(shared.ws_url) as ws:
        for frame in (b'{"op":"ping"}', b"\x00\xff\xfe", b""):
            await ws.send(frame)
            assert_error_op(await recv(ws))
            assert await ping(ws) == []


async def test_ws_too_many_topics(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(SUNBID_MAX_TOPICS="3")
    async with websockets.connect(server.ws_url) as ws:
        four = ["all", "category:land", "agency:A", "region:1"]
        await ws.send(json.dumps({"op": "subscribe", "topics": four}))
        assert_error_op(await recv(ws), "too_many_topics")
        await ws.send(json.dumps({"op": "subscribe", "topics": four[:2]}))
        assert (await recv(ws))["op"] == "subscribed"
        await ws.send(json.dumps({"op": "subscribe", "topics": four[2:]}))  # 4 in all
        assert_error_op(await recv(ws), "too_many_topics")
        await ws.send(json.dumps({"op": "subscribe", "topics": ["agency:A"]}))  # 3 in all
        assert (await recv(ws))["op"] == "subscribed"
        await ws.send(json.dumps({"op": "unsubscribe", "topics": ["all"]}))
        assert (await recv(ws))["op"] == "unsubscribed"
        await ws.send(json.dumps({"op": "subscribe", "topics": ["region:1"]}))
        assert (await recv(ws))["op"] == "subscribed"
        assert await ping(ws) == []
    async with websockets.connect(
        server.ws_url + "?topics=all,project:a,project:b,project:c"
    ) as ws:
        assert_error_op(await recv(ws), "too_many_topics")
        assert await ping(ws) == []


async def test_ws_connections_per_address(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(SUNBID_MAX_CONNECTIONS_PER_ADDRESS="2")
    first = await websockets.connect(server.ws_url)
    second = await websockets.connect(server.ws_url)
    try:
        async with websockets.connect(server.ws_url) as third:
            assert_error_op(await recv(third), "too_many_connections")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(third.recv(), 5)
            assert third.close_code == 4029
        # Server-sent events share the limit: 429 with Retry-After.
        with httpx.stream("GET", server.url + "/api/stream", timeout=5) as response:
            response.read()
            assert_error(response, 429, "too_many_connections")
            assert int(response.headers["retry-after"]) > 0
        # The first two are unaffected; closing one makes room.
        assert await ping(first) == [] and await ping(second) == []
        await second.close()
        for _ in range(50):
            async with websockets.connect(server.ws_url) as again:
                await again.send('{"op":"ping"}')
                reply = await recv(again)
                if reply["op"] == "pong":
                    break
            await asyncio.sleep(0.05)
        assert reply["op"] == "pong"
    finally:
        await first.close()
        await second.close()


async def test_ws_frame_over_the_limit_is_closed_1009(server: ServerProcess) -> None:
    async with websockets.connect(server.ws_url) as ws:
        # Just under the default 16 KiB limit: an ordinary answer.
        await ws.send(json.dumps({"op": "ping", "pad": "x" * 16_000}))
        assert (await recv(ws))["op"] == "pong"
        await ws.send(json.dumps({"op": "ping", "pad": "x" * 17_000}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009
    # Other clients and the server carry on.
    async with websockets.connect(server.ws_url) as ws:
        assert await ping(ws) == []
    assert httpx.get(server.url + "/healthz").status_code == 200


async def test_ws_frame_limit_follows_the_setting(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(SUNBID_MAX_FRAME_BYTES="1024")
    async with websockets.connect(server.ws_url) as ws:
        await ws.send(json.dumps({"op": "ping", "pad": "x" * 900}))
        assert (await recv(ws))["op"] == "pong"
        await ws.send(json.dumps({"op": "ping", "pad": "x" * 1100}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009


# --- the app ---------------------------------------------------------------------------

APP_PAGES = ["/", "/p/YW-GC-2026-0141", "/follows", "/mine", "/request", "/catalog", "/staff"]


def without_card(page: str) -> str:
    """The shell without the lines of its share card: title, description, og:*."""
    card = re.compile(r'<title>|<meta name="description"|<meta property="og:')
    return "\n".join(line for line in page.splitlines() if not card.match(line))


@pytest.mark.parametrize("path", APP_PAGES)
def test_every_page_is_the_app_shell(shared: ServerProcess, path: str) -> None:
    response = httpx.get(shared.url + path + "?category=land")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self';" in policy and "unsafe-inline" not in policy
    assert "ws:" not in policy  # a bare scheme would allow streams to any host
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    page = response.text
    assert '<html lang="zh-CN">' in page
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert '<script type="module" src="/static/js/app.js"></script>' in page
    # The same shell on every page but for its share card (tests/test_share_cards.py).
    assert without_card(page) == without_card(httpx.get(shared.url + "/").text)
    for url in re.findall(r'(?:href|src)="(/static/[^"]+)"', page):
        assert httpx.get(shared.url + url).status_code == 200, url


def test_the_shell_is_revalidated_not_refetched(shared: ServerProcess) -> None:
    first = httpx.get(shared.url + "/staff")
    again = httpx.get(shared.url + "/staff", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]


def test_service_worker_at_the_root_lists_every_static_file(shared: ServerProcess) -> None:
    worker = httpx.get(shared.url + "/sw.js")
    assert worker.status_code == 200
    assert worker.headers["content-type"] == "text/javascript; charset=utf-8"
    assert worker.headers["cache-control"] == "no-cache"
    build = re.search(r'^const BUILD = "([0-9a-f]{16})";$', worker.text, re.MULTILINE)
    assets = re.search(r"^const ASSETS = (\[.*\]);$", worker.text, re.MULTILINE)
    assert build and assets, "the server fills in the worker's build and file list"
    files = json.loads(assets.group(1))
    on_disk = sorted(
        "/static/" + p.relative_to(ROOT / "pwa" / "static").as_posix()
        for p in (ROOT / "pwa" / "static").rglob("*")
        if p.is_file()
    )
    assert files == on_disk
    for url in files:
        response = httpx.get(shared.url + url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == "no-cache", url
        assert response.headers["x-content-type-options"] == "nosniff", url
    # The same build while nothing changed.
    assert httpx.get(shared.url + "/sw.js").text == worker.text


def test_manifest_makes_the_app_installable(shared: ServerProcess) -> None:
    response = httpx.get(shared.url + "/manifest.webmanifest")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/manifest+json"
    manifest = response.json()
    assert manifest["name"] == "阳光交易" and manifest["short_name"]
    assert manifest["start_url"] == "/" and manifest["scope"] == "/"
    assert manifest["display"] == "standalone" and manifest["lang"] == "zh-CN"
    assert manifest["theme_color"] and manifest["background_color"]
    found = set()
    for icon in manifest["icons"]:
        image = httpx.get(shared.url + icon["src"])
        assert image.status_code == 200, icon
        assert image.headers["content-type"] == icon["type"], icon
        if icon["type"] == "image/png":
            assert image.content[:8] == b"\x89PNG\r\n\x1a\n", icon
            width, height = (int.from_bytes(image.content[i : i + 4]) for i in (16, 20))
            assert icon["sizes"] == f"{width}x{height}", icon
            found.add((icon["sizes"], icon["purpose"]))
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= found


def test_static_files_modules_and_caching(shared: ServerProcess) -> None:
    script = httpx.get(shared.url + "/static/js/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["etag"] and script.headers["last-modified"]
    again = httpx.get(
        shared.url + "/static/js/app.js", headers={"If-None-Match": script.headers["etag"]}
    )
    assert again.status_code == 304
    assert httpx.get(shared.url + "/static/app.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    "path",
    [
        "/static/",
        "/static/js",
        "/static/js/",
        "/static/nope.js",
        "/static/%2e%2e/pyproject.toml",
        "/static/..%2f..%2fpyproject.toml",
        "/static/js/..%2f..%2f..%2fserver%2fapp.py",
        "/p/X/more",
    ],
)
def test_static_files_have_no_listing_and_no_way_out(shared: ServerProcess, path: str) -> None:
    response = httpx.get(shared.url + path)
    assert response.status_code == 404, (path, response.text[:200])
    assert_error(response, 404)


async def test_app_pages_answer_503_when_the_files_are_not_installed(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route

    from server.api.pages import AppPages

    missing = AppPages(tmp_path / "no-pwa")
    app = Starlette(
        routes=[
            Route("/", missing.shell),
            Route("/sw.js", missing.service_worker),
            Mount("/static", app=missing.static_files),
        ]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        for path in ("/", "/sw.js", "/static/js/app.js"):
            response = await client.get(path)
            assert response.status_code == 503, path
            assert response.json()["error"]["code"] == "unavailable"


# --- demo data ------------------------------------------------------------------------


def test_demo_data_loads_once(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(SUNBID_DEMO="1")
    projects = httpx.get(server.url + "/api/projects", params={"limit": "100"}).json()["items"]
    assert len(projects) >= 16
    assert {p["category"] for p in projects} == {
        "construction",
        "gov_procurement",
        "state_assets",
        "land",
        "mining",
        "soe_procurement",
        "rural_property",
        "emission_rights",
    }
    events = httpx.get(server.url + "/api/events", params={"limit": "1000"}).json()
    stages = [e["stage"] for e in events["items"]]
    assert "objection" in stages and "correction" in stages
    by_seq = {e["seq"]: e for e in events["items"]}
    for correction in (e for e in events["items"] if e["stage"] == "correction"):
        corrected = by_seq[correction["data"]["corrects"]]
        assert corrected["project"] == correction["project"]
        assert corrected["seq"] < correction["seq"]
    for event in events["items"]:
        assert RFC3339_CST.match(event["occurred_at"]), event
    head = events["head"]
    assert head == len(events["items"]) > 0
    assert server.cli("verify").returncode == 0

    server.stop()
    server.start()
    assert server.head() == head
    again = httpx.get(server.url + "/api/projects", params={"limit": "100"}).json()["items"]
    assert sorted(p["id"] for p in again) == sorted(p["id"] for p in projects)


def test_no_demo_data_when_turned_off(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/api/projects").json() == {"items": [], "next_cursor": None}


# --- the directory ---------------------------------------------------------------------


def test_directory_names_agencies_and_regions(shared: ServerProcess) -> None:
    response = httpx.get(shared.url + "/api/directory")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert "max-age=300" in response.headers["cache-control"]
    body = response.json()
    assert set(body) == {"agencies", "regions"}
    for item in body["agencies"]:
        assert set(item) == {"code", "zh", "en", "region", "kind"}, item
    for item in body["regions"]:
        assert set(item) == {"code", "zh", "en", "parent"}, item
    agencies = {a["code"]: a for a in body["agencies"]}
    regions = {r["code"]: r for r in body["regions"]}
    assert agencies["YW-GGZY"]["zh"] == "义乌市公共资源交易中心"
    assert agencies["YW-GGZY"]["en"] == "Yiwu Public Resources Trading Center"
    assert regions["330782001"] == {
        "code": "330782001",
        "zh": "稠城街道",
        "en": "Choucheng Subdistrict",
        "parent": "330782",
    }
    assert regions["330782"]["parent"] is None
    # Every agency and region the demo projects use has a name.
    demo = json.loads((ROOT / "server" / "data" / "demo.json").read_text("utf-8"))
    for project in demo["projects"]:
        assert project["agency"] in agencies, project["id"]
        assert project.get("region") is None or project["region"] in regions, project["id"]

    etag = response.headers["etag"]
    again = httpx.get(shared.url + "/api/directory", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    weak = httpx.get(shared.url + "/api/directory", headers={"If-None-Match": f'"x", W/{etag}'})
    assert weak.status_code == 304
    other = httpx.get(shared.url + "/api/directory", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200 and other.content == response.content


def test_a_project_may_use_an_agency_not_in_the_directory(shared_staff: Staff) -> None:
    project = unique("DIR")
    created = shared_staff.project(project, agency="NEW-AGENCY-1", region="999999")
    assert created["agency"] == "NEW-AGENCY-1" and created["region"] == "999999"


def test_an_edited_directory_file_is_served(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    path = tmp_path / "directory.toml"
    path.write_text(
        '[agencies.JH-GGZY]\nzh = "金华市交易中心"\nen = "Jinhua PRTC"\nregion = "330700"\n'
        '[agencies.JH-ZRZY]\nzh = "金华市自然资源局"\nen = "Jinhua NRB"\nkind = "行政机关"\n'
        '[regions.330700]\nzh = "金华市"\nen = "Jinhua"\n',
        "utf-8",
    )
    server = start_server(SUNBID_DIRECTORY_FILE=str(path))
    assert httpx.get(server.url + "/api/directory").json() == {
        "agencies": [
            {
                "code": "JH-GGZY",
                "zh": "金华市交易中心",
                "en": "Jinhua PRTC",
                "region": "330700",
                "kind": None,
            },
            {
                "code": "JH-ZRZY",
                "zh": "金华市自然资源局",
                "en": "Jinhua NRB",
                "region": None,
                "kind": "行政机关",
            },
        ],
        "regions": [{"code": "330700", "zh": "金华市", "en": "Jinhua", "parent": None}],
    }


def test_a_malformed_directory_file_stops_the_server(tmp_path: Path) -> None:
    path = tmp_path / "directory.toml"
    path.write_text('[agencies.YW-GGZY]\nzh = "义乌"\nen = "Yiwu"\nregion = "nowhere"\n', "utf-8")
    env = {
        **os.environ,
        "SUNBID_DATA_DIR": str(tmp_path / "data"),
        "SUNBID_DIRECTORY_FILE": str(path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert f"{path}: agencies.YW-GGZY.region" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


# --- the OpenAPI document ----------------------------------------------------------


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = spec
    for part in ref[2:].split("/"):
        assert part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def conforms(spec: dict[str, Any], schema: dict[str, Any], value: Any, where: str = "$") -> None:
    """Check `value` against the subset of JSON Schema the document uses."""
    if "$ref" in schema:
        conforms(spec, _resolve(spec, schema["$ref"]), value, where)
    for part in schema.get("allOf", []):
        conforms(spec, part, value, where)
    if "anyOf" in schema:
        matched = 0
        for part in schema["anyOf"]:
            try:
                conforms(spec, part, value, where)
                matched += 1
            except AssertionError:
                pass
        assert matched >= 1, f"{where}: {value!r} matches none of anyOf"
    if "oneOf" in schema:
        matched = 0
        for part in schema["oneOf"]:
            try:
                conforms(spec, part, value, where)
                matched += 1
            except AssertionError:
                pass
        assert matched == 1, f"{where}: {value!r} matches {matched} of oneOf"
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        assert any(_TYPES[t](value) for t in types), f"{where}: {value!r} is not {types}"
    if "const" in schema:
        assert value == schema["const"], f"{where}: {value!r} != {schema['const']!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in enum"
    if isinstance(value, str):
        if "pattern" in schema:
            assert re.search(schema["pattern"], value), f"{where}: {value!r} !~ pattern"
        if schema.get("format") == "date-time":
            assert moment(value).tzinfo is not None, f"{where}: {value!r} has no offset"
    if isinstance(value, int | float) and not isinstance(value, bool) and "minimum" in schema:
        assert value >= schema["minimum"], f"{where}: {value!r} < minimum"
    if isinstance(value, dict):
        for name in schema.get("required", []):
            assert name in value, f"{where}: missing {name!r}"
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                conforms(spec, properties[name], item, f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                raise AssertionError(f"{where}: unexpected property {name!r}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            conforms(spec, schema["items"], item, f"{where}[{index}]")


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(path, method) of every route the app serves, read from the app itself."""
    app = create_app(Settings.from_env({"SUNBID_DATA_DIR": str(tmp_path / "routes")}))
    routes = {("/ws", "get")}
    for route in app.http.routes:
        methods = getattr(route, "methods", None) or {"GET"}
        routes |= {(route.path, m.lower()) for m in methods if m != "HEAD"}
    return routes


# What anyone may POST, without a token: subscribe to push, add a channel beside it
# (their own address), confirm or leave it; ask about a project, rate its answer, and
# request information. Every other POST is staff's.
ANYONE_POSTS = frozenset(
    {
        "/api/push/subscriptions",
        "/api/channels",
        "/api/channels/{channel_id}/confirm",
        "/api/channels/{channel_id}/unsubscribe",
        "/api/projects/{project_id}/enquiries",
        "/api/enquiries/{case_id}/rating",
        "/api/disclosure-requests",
    }
)


def test_openapi_document_covers_every_route(server: ServerProcess, tmp_path: Path) -> None:
    response = httpx.get(server.url + "/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    spec = json.loads(response.content)
    assert re.fullmatch(r"3\.1\.\d+", spec["openapi"])
    assert spec["info"]["title"] and spec["info"]["version"]
    assert json.loads(json.dumps(spec)) == spec

    routes = app_routes(tmp_path)
    assert len(routes) >= 10
    for path, method in sorted(routes):
        assert path in spec["paths"], f"{path} is not in the OpenAPI document"
        assert method in spec["paths"][path], f"{method.upper()} {path} is not documented"
    documented = {
        (p, m)
        for p, item in spec["paths"].items()
        for m in item
        if m in {"get", "post", "put", "patch", "delete"}
    }
    assert documented <= routes, f"documented but not served: {documented - routes}"

    for ref in set(_refs(spec)):
        _resolve(spec, ref)
    operation_ids = []
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method == "parameters":
                continue
            operation_ids.append(operation["operationId"])
            assert operation["responses"], (path, method)
            params = [
                _resolve(spec, p["$ref"]) if "$ref" in p else p
                for p in shared + operation.get("parameters", [])
            ]
            declared = {p["name"] for p in params if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (path, method)
            assert all(p["required"] for p in params if p["in"] == "path")
            if method == "post" and path not in ANYONE_POSTS:
                assert operation["security"] == [{"bearer": []}], path
                assert "401" in operation["responses"] and "422" in operation["responses"]
            elif method == "post":
                assert "security" not in operation, path
                assert "401" not in operation["responses"], path
    assert len(operation_ids) == len(set(operation_ids))
    assert spec["components"]["securitySchemes"]["bearer"] == {
        **spec["components"]["securitySchemes"]["bearer"],
        "type": "http",
        "scheme": "bearer",
    }


def test_openapi_schemas_match_what_the_server_serves(staff: Staff) -> None:
    spec = staff.client.get("/api/openapi.json").json()
    schemas = spec["components"]["schemas"]

    def check(name: str, value: Any) -> None:
        conforms(spec, schemas[name], value, name)

    project = staff.client.post("/api/projects", json=new_project("OA-1", budget=10)).json()
    check("Project", project)
    first = staff.publish("OA-1", "notice", data={"deadline": "2026-12-30T09:30:00+08:00"})
    check("Event", first)
    check("Event", staff.publish("OA-1", "correction", data={"corrects": first["seq"]}))
    check("ProjectDetail", staff.client.get("/api/projects/OA-1").json())
    check("ProjectPage", staff.client.get("/api/projects").json())
    check("EventPage", staff.client.get("/api/events").json())
    check("Health", staff.client.get("/healthz").json())
    check("Categories", staff.client.get("/api/categories").json())
    check("Directory", staff.client.get("/api/directory").json())
    check("Error", staff.client.get("/api/projects/NOPE").json())
    check("Error", staff.client.post("/api/projects", json={"id": "x"}).json())
    check(
        "Error",
        staff.client.post(
            "/api/projects/OA-1/events", json={"stage": "auction", "title": "t"}
        ).json(),
    )
    # The documented input schemas accept what the server accepts, and reject the rest.
    conforms(spec, schemas["ProjectInput"], new_project("OA-2", budget=1.5, currency="USD"))
    with pytest.raises(AssertionError):
        conforms(spec, schemas["ProjectInput"], new_project("OA-2", colour="red"))
    conforms(
        spec,
        schemas["EventInput"],
        {
            "stage": "notice",
            "title": "t",
            "body": "",
            "data": {},
            "occurred_at": first["occurred_at"],
        },
    )
