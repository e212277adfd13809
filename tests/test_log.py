"""The event log: an independently checkable hash chain, gapless seq under
concurrent publishing, idempotent publishing, `sunbid verify` against a
tampered file, and corrections."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import REQUIRED_FACTS, ROOT, ServerProcess, Staff, with_facts

GENESIS = "0" * 64
EVENT_KEYS = {
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
}


def expected_hash(previous: str, event: dict[str, Any]) -> str:
    """The contract's definition, written out here on purpose (not imported)."""
    unhashed = {key: value for key, value in event.items() if key != "hash"}
    canonical = json.dumps(unhashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(previous.encode("ascii") + canonical.encode("utf-8")).hexdigest()


def check_chain(events: list[dict[str, Any]]) -> None:
    previous = GENESIS
    for position, event in enumerate(events, start=1):
        assert event["seq"] == position, f"gap before {event['seq']}"
        assert set(event) == EVENT_KEYS, sorted(event)
        assert re.fullmatch(r"[0-9a-f]{64}", event["hash"])
        assert event["hash"] == expected_hash(previous, event), f"seq {event['seq']}"
        previous = event["hash"]


def read_log(server: ServerProcess) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while True:
            since = events[-1]["seq"] if events else 0
            response = client.get("/api/events", params={"since": since, "limit": 1000})
            assert response.status_code == 200
            events += response.json()["items"]
            if len(response.json()["items"]) < 1000:
                return events


def post_event(
    client: httpx.Client, project: str, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(f"/api/projects/{project}/events", json=body, headers=headers)


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


# --- the hash chain ------------------------------------------------------------------

AWKWARD_DATA: dict[str, Any] = {
    "bidders": 7,
    "price": 12345678.9,
    "ratio": 0.1,
    "third": 1 / 3,
    "tiny": 1e-7,
    "huge": 1e21,
    "negative_zero": -0.0,
    "whole_float": 3.0,
    "int64_max": 2**63 - 1,
    "int64_min": -(2**63),
    "nothing": None,
    "flags": [True, False, None],
    "empty": {"object": {}, "list": [], "text": ""},
    "中文键": "义乌市国际商贸城",
    "Zebra": 1,
    "apple": 2,
    "Äpfel": 3,
    "中": 4,
    "😀": 5,  # key order by code point
    "nested": {
        "列表": [
            1,
            2.5,
            None,
            "文字",
            {
                "深": {
                    "更深": [
                        "emoji 😀🇨🇳",
                        "line\u2028separator",
                        "nbsp\u00a0zwsp\u200bzwj\u200d",  # control characters are refused
                        "tab\tand\nnewline",
                        'quote " and backslash \\',
                        "</script>",
                        "é (precomposed) e\u0301 (combining)",
                    ]
                }
            },
        ]
    },
}


def test_every_hash_matches_an_independent_recomputation(
    server: ServerProcess, staff: Staff
) -> None:
    staff.project("H-1")
    staff.project("H-NOREGION", category="land", agency="YW-LAND", region=None)
    published = [
        staff.publish(
            "H-1",
            "notice",
            body="招标公告正文 🏗️",
            data=AWKWARD_DATA,
            occurred_at="2026-12-01T01:30:00Z",
        ),
        staff.publish("H-NOREGION", "notice"),  # region null, body "", only the required data
        staff.publish(
            "H-1",
            "clarification",
            title="  澄清：第１号  ",
            data={"floats": [0.1 + 0.2, 1e300, -1.5e-300, 5e-324]},
        ),
        staff.publish("H-NOREGION", "auction", data={"bids": [{"出价": 1.05e7, "人": None}]}),
        staff.publish("H-1", "correction", data={"corrects": 3, "字段": "body"}),
    ]
    log = read_log(server)
    check_chain(log)
    # Seq 1 and 2: the registrations, whose hashes the chain covers like any other.
    assert [e["stage"] for e in log[:2]] == ["registered", "registered"]
    assert log[1]["region"] is None and log[1]["data"]["region"] is None
    assert log[2:] == published  # served the same way by POST and by /api/events
    assert log[2]["occurred_at"] == "2026-12-01T09:30:00+08:00"  # in SUNBID_TIMEZONE
    assert log[2]["data"] == {**REQUIRED_FACTS["notice"], **AWKWARD_DATA}  # a notice's facts too
    assert (
        log[3]["region"] is None
        and log[3]["body"] == ""
        and log[3]["data"] == REQUIRED_FACTS["notice"]
    )
    assert log[4]["title"] == "澄清：第１号"

    # The stream carries the very same events, so a subscriber can check them too.
    async def stream() -> list[dict[str, Any]]:
        async with connect(
            server.ws_url + "?topics=all&since=0", proxy=None, compression=None
        ) as ws:
            messages = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(8)]
        assert messages[0]["op"] == "subscribed"
        return [m["event"] for m in messages[1:]]

    assert asyncio.run(stream()) == log


async def test_seq_is_gapless_under_16_concurrent_publishers(
    server: ServerProcess, admin: str
) -> None:
    projects = [f"C-{n}" for n in range(4)]
    async with httpx.AsyncClient(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {admin}"}
    ) as setup:
        for project in projects:
            response = await setup.post(
                "/api/projects",
                json={
                    "id": project,
                    "title": project,
                    "category": "construction",
                    "agency": "YW-GGZY",
                },
            )
            assert response.status_code == 201

    async def publisher(n: int) -> list[int]:
        mine = []
        async with httpx.AsyncClient(
            base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {admin}"}
        ) as client:
            for i in range(40):
                response = await client.post(
                    f"/api/projects/{projects[n % 4]}/events",
                    json=with_facts("notice", title=f"p{n} #{i}", data={"p": n, "i": i}),
                )
                assert response.status_code == 201, response.text
                mine.append(response.json()["seq"])
        return mine

    results = await asyncio.gather(*(publisher(n) for n in range(16)))
    every = sorted(seq for mine in results for seq in mine)
    assert every == list(range(5, 16 * 40 + 5))  # no gap, no seq given twice (1-4: projects)
    for mine in results:  # one publisher's later event always gets a later seq
        assert mine == sorted(mine)
    log = read_log(server)
    check_chain(log)
    assert sorted((e["data"]["p"], e["data"]["i"]) for e in log[4:]) == [
        (p, i) for p in range(16) for i in range(40)
    ]
    result = verify(server)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "644" in result.stdout


# --- idempotency -------------------------------------------------------------------------


def test_a_repeated_idempotency_key_returns_the_same_event(
    server: ServerProcess, staff: Staff
) -> None:
    staff.project("ID-1")
    body = with_facts("notice", title="招标公告", data={"v": 1.5})
    first = post_event(staff.client, "ID-1", body, key="notice-2026-001")
    assert first.status_code == 201, first.text
    again = post_event(staff.client, "ID-1", body, key="notice-2026-001")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert server.head() == 2  # the registration and the one event
    # Still so after a restart: the key is kept with the log.
    server.stop()
    server.start()
    later = post_event(staff.client, "ID-1", body, key="notice-2026-001")
    assert later.status_code == 200 and later.json() == first.json()
    other = post_event(staff.client, "ID-1", body, key="notice-2026-002")
    assert other.status_code == 201 and other.json()["seq"] == 3
    assert [e["seq"] for e in read_log(server)] == [1, 2, 3]


async def test_concurrent_repeats_of_one_key_create_exactly_one_event(
    server: ServerProcess, staff: Staff, admin: str
) -> None:
    staff.project("ID-2")
    async with httpx.AsyncClient(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {admin}"}
    ) as client:

        async def attempt(key: str) -> httpx.Response:
            return await client.post(
                "/api/projects/ID-2/events",
                headers={"Idempotency-Key": key},
                json=with_facts("notice", title=f"公告 {key}"),
            )

        keys = [f"k{n % 5}" for n in range(100)]
        responses = await asyncio.gather(*(attempt(key) for key in keys))
    by_key: dict[str, list[httpx.Response]] = {}
    for key, response in zip(keys, responses, strict=True):
        by_key.setdefault(key, []).append(response)
    for key, answers in by_key.items():
        codes = sorted(r.status_code for r in answers)
        assert codes == [200] * 19 + [201], (key, codes)
        assert len({r.content for r in answers}) == 1  # the identical event every time
    log = read_log(server)
    assert sorted(e["title"] for e in log[1:]) == [f"公告 k{n}" for n in range(5)]
    check_chain(log)


def test_same_key_with_a_different_body_is_a_conflict(server: ServerProcess, staff: Staff) -> None:
    staff.project("ID-3")
    body = with_facts("notice", title="原公告")
    assert post_event(staff.client, "ID-3", body, key="k").status_code == 201
    for changed in (
        {**body, "title": "改过的公告"},
        {**body, "stage": "clarification"},
        {**body, "data": {**body["data"], "x": 1}},
    ):
        assert_error(post_event(staff.client, "ID-3", changed, key="k"), 409)
    assert server.head() == 2  # the registration and the one event
    assert post_event(staff.client, "ID-3", body, key="k").status_code == 200


# --- sunbid verify ----------------------------------------------------------------------


def verify(server: ServerProcess, timeout: float = 5) -> subprocess.CompletedProcess[str]:
    """`sunbid verify` on the server's data; a hang is a failure, not a stuck suite."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "server", "verify"],
            cwd=ROOT,
            env=server.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"sunbid verify still running after {timeout} s: {exc.stdout!r} {exc.stderr!r}"
        ) from None


def _edit_doc(
    db: sqlite3.Connection, seq: int, change: Callable[[dict[str, Any]], None], rehash: bool = False
) -> None:
    doc = json.loads(db.execute("SELECT doc FROM events WHERE seq=?", (seq,)).fetchone()[0])
    change(doc)
    if rehash:  # a careful forger: the row's own hash is right again
        previous = (
            GENESIS
            if seq == 1
            else json.loads(
                db.execute("SELECT doc FROM events WHERE seq=?", (seq - 1,)).fetchone()[0]
            )["hash"]
        )
        doc["hash"] = expected_hash(previous, doc)
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    db.execute("UPDATE events SET doc=? WHERE seq=?", (text, seq))


TAMPERING: dict[str, tuple[Callable[[sqlite3.Connection], None], set[int]]] = {
    "edit a title": (lambda db: _edit_doc(db, 5, lambda d: d.update(title="篡改的标题")), {5}),
    "edit a number in data": (lambda db: _edit_doc(db, 5, lambda d: d["data"].update(n=5000)), {5}),
    "edit and re-hash the row": (
        lambda db: _edit_doc(db, 5, lambda d: d.update(body="改"), rehash=True),
        {5, 6},
    ),
    "move an event to another project": (
        lambda db: db.execute("UPDATE events SET project='V-2' WHERE seq=5"),
        {5},
    ),
    "delete a middle row": (lambda db: db.execute("DELETE FROM events WHERE seq=5"), {5}),
    "delete the first row": (lambda db: db.execute("DELETE FROM events WHERE seq=1"), {1}),
    "delete the last rows": (lambda db: db.execute("DELETE FROM events WHERE seq>=9"), {9}),
    "garble the last row": (
        lambda db: db.execute("UPDATE events SET doc=x'7b00' WHERE seq=12"),
        {12},
    ),
}


@pytest.fixture(scope="module")
def intact_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data dir whose log holds 12 events (2 registrations, 10 notices), checked by
    `sunbid verify` while served."""
    server = ServerProcess(tmp_path_factory.mktemp("intact") / "data").start()
    try:
        staff = Staff(server, server.token("admin-verify"))
        staff.project("V-1")
        staff.project("V-2")
        for n in range(10):
            staff.publish("V-1" if n % 3 else "V-2", "notice", data={"n": n})
        staff.client.close()
        result = verify(server)  # while the server runs
        assert result.returncode == 0, result.stdout + result.stderr
        assert "BAD" not in result.stdout and "12" in result.stdout
    finally:
        server.stop()
    yield server.data_dir


@pytest.mark.parametrize("how", TAMPERING)
def test_verify_detects_tampering_and_names_the_first_bad_seq(
    intact_log: Path, tmp_path: Path, how: str
) -> None:
    copy = ServerProcess(tmp_path / "data")  # not started: its settings point at the copy
    shutil.copytree(intact_log, copy.data_dir)

    db = sqlite3.connect(copy.data_dir / "sunbid.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM events WHERE seq=5")  # the triggers stop accidents
    db.execute("DROP TRIGGER events_no_update")
    db.execute("DROP TRIGGER events_no_delete")
    tamper, first_bad = TAMPERING[how]
    tamper(db)
    db.commit()
    db.close()

    result = verify(copy)
    assert result.returncode != 0, result.stdout
    named = re.search(r"BAD at seq (\d+)", result.stdout)
    assert named, result.stdout + result.stderr
    assert int(named.group(1)) in first_bad, result.stdout


# --- corrections ---------------------------------------------------------------------


def test_a_correction_must_point_at_an_earlier_event_of_the_same_project(
    server: ServerProcess, staff: Staff
) -> None:
    staff.project("COR-1")
    staff.project("COR-2")
    original = staff.publish("COR-1", "notice", body="开标时间 2026-12-01 09:30")
    foreign = staff.publish("COR-2", "notice")
    fixed = staff.publish(
        "COR-1",
        "correction",
        title="更正公告",
        body="开标时间改为 2026-12-02 09:30",
        data={"corrects": original["seq"], "field": "body"},
    )
    assert fixed["stage"] == "correction" and fixed["data"]["corrects"] == original["seq"]
    timeline = staff.client.get("/api/projects/COR-1").json()["timeline"]
    assert timeline[0]["stage"] == "registered"
    assert [e["seq"] for e in timeline[1:]] == [original["seq"], fixed["seq"]]
    # A correction of a correction is a correction of the same project too.
    staff.publish("COR-1", "correction", data={"corrects": fixed["seq"]})

    head = server.head()
    for corrects in (foreign["seq"], head + 1, 999_999, 0, -1, "1", True, None, 1.0):
        response = post_event(
            staff.client,
            "COR-1",
            {"stage": "correction", "title": "更正", "data": {"corrects": corrects}},
        )
        error = assert_error(response, 422)
        assert "corrects" in json.dumps(error), error
    response = post_event(staff.client, "COR-1", {"stage": "correction", "title": "更正"})
    assert_error(response, 422)
    assert server.head() == head  # nothing was published by the refusals
    check_chain(read_log(server))


def test_the_head_survives_a_restart_and_the_chain_goes_on(
    server: ServerProcess, staff: Staff
) -> None:
    staff.project("R-1")
    before = [staff.publish("R-1", "notice") for _ in range(3)]
    server.stop(signal.SIGKILL)
    server.start()
    assert server.head() == 4  # the registration and three notices
    after = staff.publish("R-1", "clarification")
    assert after["seq"] == 5
    log = read_log(server)
    assert log[1:4] == before
    check_chain(log)
