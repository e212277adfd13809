"""The server starts, answers health and serves the vocabulary."""

from __future__ import annotations

import httpx

from tests.conftest import ServerProcess, Staff


def test_health_and_categories(server: ServerProcess) -> None:
    health = httpx.get(server.url + "/healthz").json()
    assert health == {"status": "ok", "head": 0, "node": health["node"]}
    items = httpx.get(server.url + "/api/categories").json()["items"]
    assert [c["code"] for c in items] == [
        "construction",
        "gov_procurement",
        "state_assets",
        "land",
        "mining",
        "soe_procurement",
        "rural_property",
        "emission_rights",
    ]
    construction = items[0]
    assert construction["name"] == {
        "zh": "工程建设项目招标投标",
        "en": "Construction project tendering",
    }
    codes = [s["code"] for s in construction["stages"]]
    assert "bid_opening" in codes and "objection" in codes and "auction" not in codes


def test_publish_then_read(staff: Staff) -> None:
    staff.project("YW-T-1")
    event = staff.publish(
        "YW-T-1", "notice", body="正文", data={"deadline": "2026-12-30T09:30:00+08:00"}
    )
    # Seq 1 is the project's registration, the first entry of its timeline.
    assert event["seq"] == 2 and event["project"] == "YW-T-1" and event["region"] == "330782"
    project = staff.client.get("/api/projects/YW-T-1").json()
    assert project["stage"] == "notice"
    registered, published = project["timeline"]
    assert registered["stage"] == "registered" and published == event
