"""Key dates, the open-for-bids listing and search, as clients see them (real server)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.compliance.calendar import LEGAL_TZ
from tests.conftest import ServerProcess, Staff
from tests.test_api import assert_error

NOW = datetime.now(LEGAL_TZ).replace(microsecond=0)


def at(hours: float) -> str:
    return (NOW + timedelta(hours=hours)).isoformat()


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staff]:
    """One server with projects in every state the listing tells apart."""
    proc = ServerProcess(Path(tmp_path_factory.mktemp("listing")) / "data").start()
    staff = Staff(proc, proc.token("listing-admin"))

    def publish(project_id: str, stage: str, **fields: Any) -> None:
        """Exactly these facts (Staff.publish would add defaults that are key dates too)."""
        body = {"title": f"{stage} 公告", **fields, "stage": stage}
        response = staff.client.post(f"/api/projects/{project_id}/events", json=body)
        assert response.status_code == 201, response.text

    # Closes in 10 days, then a clarification moves the deadline to 2 days: closing.
    staff.project("K-SOON")
    publish(
        "K-SOON", "notice", body="市政道路 Asphalt 改造", data={"deadline": at(240), "bid_bond": 1}
    )
    publish("K-SOON", "clarification", data={"deadline": at(48)})
    # Open for 20 days.
    staff.project("K-LATER", category="land")
    publish(
        "K-LATER",
        "notice",
        title="国有建设用地使用权挂牌出让公告",
        data={"listing_ends": at(480), "auction_starts": at(470)},
    )
    # Its deadline passed.
    staff.project("K-PAST")
    publish("K-PAST", "notice", data={"deadline": at(-24)})
    # Awarded before its (future) deadline: concluded, not open.
    staff.project("K-AWARDED")
    publish("K-AWARDED", "notice", data={"deadline": at(100)})
    publish(
        "K-AWARDED",
        "award",
        body="中标人：某建设集团",
        data={"winner": "某建设集团", "amount": 1_000_000},
    )
    # No closing date at all.
    staff.project("K-NONE", category="gov_procurement")
    publish("K-NONE", "plan", title="采购意向公开", body="办公家具 asphalt")
    yield staff
    staff.client.close()
    if proc.process is not None:
        proc.stop()


def ids(staff: Staff, **params: Any) -> list[str]:
    response = staff.client.get("/api/projects", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["items"]]


def test_key_dates_are_the_latest_of_each_field_ascending(listed: Staff) -> None:
    project = listed.client.get("/api/projects/K-LATER").json()
    assert project["key_dates"] == [
        {"field": "auction_starts", "at": at(470), "stage": "notice", "seq": 5},
        {"field": "listing_ends", "at": at(480), "stage": "notice", "seq": 5},
    ]
    assert project["closes_at"] == at(480) and project["open"] is True
    soon = listed.client.get("/api/projects/K-SOON").json()
    [deadline] = soon["key_dates"]
    assert deadline["at"] == at(48) and deadline["stage"] == "clarification", "replaced"
    assert soon["closes_at"] == at(48)
    [item] = [p for p in listed.client.get("/api/projects").json()["items"] if p["id"] == "K-SOON"]
    assert item["key_dates"] == soon["key_dates"] and item["open"] is True
    assert listed.client.get("/api/projects/K-NONE").json()["closes_at"] is None


def test_open_and_closing(listed: Staff) -> None:
    assert sorted(ids(listed, status="open")) == ["K-LATER", "K-SOON"]
    assert ids(listed, status="closing") == ["K-SOON"]
    awarded = listed.client.get("/api/projects/K-AWARDED").json()
    assert awarded["closes_at"] is not None and awarded["open"] is False
    assert listed.client.get("/api/projects/K-PAST").json()["open"] is False
    assert ids(listed, status="open", category="land") == ["K-LATER"]


def test_sort_by_closing_pages_with_cursors(listed: Staff) -> None:
    everything = ids(listed, sort="closes")
    assert everything == ["K-PAST", "K-SOON", "K-AWARDED", "K-LATER", "K-NONE"]
    assert ids(listed, sort="closes", status="open") == ["K-SOON", "K-LATER"]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sort": "closes", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = listed.client.get("/api/projects", params=params).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything, "paging gives each project once, in order"
    by_activity = listed.client.get("/api/projects", params={"limit": 1}).json()
    assert by_activity["items"][0]["id"] == "K-NONE", "activity stays the default order"
    assert_error(
        listed.client.get(
            "/api/projects", params={"sort": "closes", "cursor": by_activity["next_cursor"]}
        ),
        422,
        "invalid_parameter",
        "cursor",
    )
    closes_page = listed.client.get("/api/projects", params={"sort": "closes", "limit": 1}).json()
    assert_error(
        listed.client.get("/api/projects", params={"cursor": closes_page["next_cursor"]}),
        422,
        "invalid_parameter",
        "cursor",
    )
    forged = base64.urlsafe_b64encode(b"c99999999999999999999:K-1").decode().rstrip("=")
    assert_error(
        listed.client.get("/api/projects", params={"sort": "closes", "cursor": forged}),
        422,
        "invalid_parameter",
        "cursor",
    )


def test_bad_status_and_sort_are_refused(listed: Staff) -> None:
    assert_error(
        listed.client.get("/api/projects", params={"status": "closed"}),
        422,
        "invalid_parameter",
        "status",
    )
    assert_error(
        listed.client.get("/api/projects", params={"sort": "budget"}),
        422,
        "invalid_parameter",
        "sort",
    )
    too_many = " ".join(f"w{n}" for n in range(11))
    assert_error(
        listed.client.get("/api/projects", params={"q": too_many}), 422, "invalid_parameter", "q"
    )


def test_every_word_must_appear_in_id_title_or_an_events_text(listed: Staff) -> None:
    assert ids(listed, q="asphalt") == ["K-NONE", "K-SOON"]
    assert ids(listed, q="ASPHALT 市政") == ["K-SOON"], "case-insensitive, all words"
    assert ids(listed, q="asphalt 挂牌") == []
    assert ids(listed, q="挂牌 k-later") == ["K-LATER"], "the id counts"
    assert ids(listed, q="某建设集团") == ["K-AWARDED"], "an event's body counts"
    assert ids(listed, q="  测试项目   K-SOON ") == ["K-SOON"], "runs of spaces separate words"
    assert ids(listed, q="100%") == [] and ids(listed, q="_") == [], "wildcards are text"
    assert ids(listed, q="asphalt", status="open") == ["K-SOON"]


def test_verify_checks_the_folded_columns(listed: Staff) -> None:
    result = listed.server.cli("verify")
    assert result.returncode == 0, result.stdout + result.stderr
