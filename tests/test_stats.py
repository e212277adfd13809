"""Statistics (统计分析): the fold on lists of events, and `GET /api/stats` and
its CSV tables against real `sunbid serve` processes (SQLite and PostgreSQL)
holding a small log whose figures are worked out by hand below."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from server.core.events import StoredEvent
from server.domain import Domain
from server.stats.figures import TABLES
from server.stats.fold import ProjectFacts, StatsFold, epoch_us, yuan
from tests.conftest import CLOSED, ServerProcess, Staff
from tests.services import postgres_url, unique_name

# --- the fold --------------------------------------------------------------------------

_seqs = itertools.count(1)
LIFECYCLE = Domain.load().lifecycle_stages


def event(
    project: str, stage: str, occurred: str, published: str | None = None, **data: Any
) -> StoredEvent:
    doc = {
        "project": project,
        "stage": stage,
        "data": data,
        "occurred_at": occurred,
        "published_at": published or occurred,
    }
    return StoredEvent(
        next(_seqs), project, "construction", "YW-GGZY", None, stage, orjson.dumps(doc)
    )


def test_amounts_as_publishing_accepts_them() -> None:
    assert yuan(1200) == 1200.0
    assert yuan("1285万元") == 12_850_000.0
    assert yuan("3.5亿元") == 350_000_000.0
    assert yuan("800元") == 800.0
    for bad in (True, -1, "abc", "12 万元", None, float("nan"), float("inf")):
        assert yuan(bad) is None


def test_the_fold_of_one_tender() -> None:
    fold = StatsFold(LIFECYCLE)
    registered = event("p1", "registered", "2026-01-20T10:00:00+08:00")
    notice = event(
        "p1", "notice", "2026-02-01T09:00:00+08:00", deadline="2026-02-21T09:30:00+08:00"
    )
    opening = event("p1", "bid_opening", "2026-02-21T10:00:00+08:00", bidders=4)
    award = event("p1", "award", "2026-03-03T09:00:00+08:00", amount="1285万元", bidders=3)
    fix = event(
        "p1",
        "correction",
        "2026-03-04T09:00:00+08:00",
        corrects=award.seq,
        field="amount",
        now=12_000_000,
    )
    other = event(
        "p1", "correction", "2026-03-05T09:00:00+08:00", corrects=notice.seq, field="amount", now=1
    )
    # Published on 31 January 16:30 UTC: 1 February in Beijing, the month it counts in.
    late = event("p1", "performance", "2026-01-31T16:30:00+00:00")
    fold.apply([registered, notice])
    assert fold.records["p1"].month == 202602  # the notice's month, no longer the registration's
    fold.apply([opening, award, fix, other, late])
    assert fold.records["p1"] == ProjectFacts(
        id="p1",
        month=202602,
        category="construction",
        agency="YW-GGZY",
        stage="performance",  # the latest lifecycle stage (a correction is none)
        noticed_us=epoch_us("2026-02-01T09:00:00+08:00"),
        award_us=epoch_us("2026-03-03T09:00:00+08:00"),
        award_seq=award.seq,
        award_amount=12_000_000.0,  # corrected; the other correction was not of the award
        bidders=3,  # the award's count, the latest
        bidders_seq=award.seq,
        outcome="awarded",
        last_seq=late.seq,  # the performance event moved the stage
    )
    assert fold.cursor == late.seq
    assert dict(fold.months) == {
        (202601, "construction", "YW-GGZY"): 1,
        (202602, "construction", "YW-GGZY"): 3,  # notice, opening, and the late one
        (202603, "construction", "YW-GGZY"): 3,
    }


def test_failed_unnoticed_and_corrected_bidders() -> None:
    fold = StatsFold(LIFECYCLE)
    plan = event("p2", "plan", "2025-11-11T09:00:00+08:00")
    failed = event("p2", "failed", "2025-12-01T09:00:00+08:00", bidders=2)
    fix = event(
        "p2", "correction", "2025-12-02T09:00:00+08:00", corrects=failed.seq, field="bidders", now=1
    )
    fold.apply([plan, failed, fix])
    facts = fold.records["p2"]
    assert facts.month == 202511  # no notice: the month of its first event
    assert facts.noticed_us is None and facts.award_us is None
    assert (facts.outcome, facts.bidders) == ("failed", 1)
    # An award after a failure (re-tendered under the same project): the latest counts.
    fold.apply([event("p2", "award", "2026-01-05T09:00:00+08:00", amount=10)])
    assert fold.records["p2"].outcome == "awarded"
    assert fold.records["p2"].award_amount == 10.0


# --- the API on a real server ----------------------------------------------------------

AGENCY_A, AGENCY_B = "YW-GGZY", "YW-ZFCG"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    """A server with four projects whose figures are known (see `expected`)."""
    data: Path = tmp_path_factory.mktemp("stats") / "data"
    env: dict[str, str] = {}
    if request.param == "postgresql":
        env = {
            "SUNBID_DATABASE_URL": postgres_url(),
            "SUNBID_DATABASE_SCHEMA": unique_name("stats_"),
        }
    server = ServerProcess(data, **env).start()
    staff = Staff(server, server.token("stats-admin"))
    seqs = publish_world(staff)
    yield server, seqs
    staff.client.close()
    server.stop()
    if request.param == "postgresql":
        from tests.services import drop_schema

        drop_schema(postgres_url(), env["SUNBID_DATABASE_SCHEMA"])


def create(staff: Staff, project_id: str, category: str, agency: str, budget: float | None) -> None:
    body: dict[str, Any] = {
        "id": project_id,
        "title": f"统计 {project_id}",
        "category": category,
        "agency": agency,
        "region": "330782",
    }
    if budget is not None:
        body["budget"] = budget
    response = staff.client.post("/api/projects", json=body)
    assert response.status_code == 201, response.text


def at(day: str) -> str:
    return f"{day}T10:00:00+08:00"


def publish_world(staff: Staff) -> dict[str, Any]:
    """s1, s2 (construction, agency A), s3 (procurement, B), s4 (construction, B)."""
    create(staff, "s1", "construction", AGENCY_A, 1_000_000)
    create(staff, "s2", "construction", AGENCY_A, 2_000_000)
    create(staff, "s3", "gov_procurement", AGENCY_B, 500_000)
    create(staff, "s4", "construction", AGENCY_B, None)
    staff.publish("s1", "notice", occurred_at=at("2026-01-05"), data=CLOSED)
    award = staff.publish(
        "s1", "award", occurred_at=at("2026-01-25"), data={"amount": 900_000, "bidders": 3}
    )
    staff.publish(
        "s1",
        "correction",
        occurred_at=at("2026-01-26"),
        data={"corrects": award["seq"], "field": "amount", "was": 900_000, "now": 950_000},
    )
    staff.publish("s2", "notice", occurred_at=at("2026-01-10"), data=CLOSED)
    staff.publish("s2", "bid_opening", occurred_at=at("2026-01-12"), data={"bidders": 1})
    staff.publish("s2", "award", occurred_at=at("2026-02-19"), data={"amount": "180万元"})
    staff.publish("s3", "notice", occurred_at=at("2026-02-01"))
    staff.publish(
        "s3", "failed", occurred_at=at("2026-02-20"), data={"bidders": 0, "reason": "无人投标"}
    )
    staff.publish("s4", "notice", occurred_at=at("2025-12-20"), data=CLOSED)
    staff.publish("s4", "bid_opening", occurred_at=at("2026-01-06"), data={"bidders": 7})
    staff.publish("s4", "award", occurred_at=at("2026-01-09"), data={"amount": 3_000_000})
    return {"head": staff.server.head()}


def stats(server: ServerProcess, **params: Any) -> dict[str, Any]:
    response = httpx.get(server.url + "/api/stats", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def rows_by(rows: list[dict[str, Any]], key: str = "category") -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in rows}


def test_the_figures_of_a_known_log(world: tuple[ServerProcess, dict[str, Any]]) -> None:
    server, known = world
    found = stats(server)
    assert found["log_head"] == known["head"] and found["currency"] == "CNY"
    assert found["filters"] == {"year": None, "month": None, "category": None, "agency": None}
    assert sorted(
        (r["category"], r["stage"], r["projects"]) for r in found["projects_by_stage"]
    ) == [
        ("construction", "award", 3),
        ("gov_procurement", "failed", 1),
    ]
    assert sorted(
        (r["month"], r["category"], r["projects"]) for r in found["projects_by_month"]
    ) == [
        ("2025-12", "construction", 1),
        ("2026-01", "construction", 2),
        ("2026-02", "gov_procurement", 1),
    ]
    # Every event of the log counts, in the month it was published (now).
    assert sum(r["events"] for r in found["events_by_month"]) == known["head"]
    assert len(found["events_by_month"]) in (1, 2)  # this month (and the last, at midnight)
    amounts = rows_by(found["amounts"])
    assert amounts["construction"] == {
        "category": "construction",
        "projects": 3,
        "budget_count": 2,
        "budget_sum": 3_000_000.0,
        "budget_median": 1_500_000.0,
        "award_count": 3,
        "award_sum": 950_000 + 1_800_000 + 3_000_000.0,  # s1 as corrected, s2 "180万元"
        "award_median": 1_800_000.0,
    }
    assert amounts["gov_procurement"]["award_count"] == 0
    assert amounts["gov_procurement"]["award_median"] is None
    competition = rows_by(found["competition"])
    assert competition["construction"] == {
        "category": "construction",
        "counted": 3,
        "mean_bidders": round((3 + 1 + 7) / 3, 2),
        "bidders_0": 0,
        "bidders_1": 1,
        "bidders_2": 0,
        "bidders_3_5": 1,
        "bidders_6_plus": 1,
    }
    durations = rows_by(found["durations"])
    # s1: 20 days, s2: 40 days, s4: 20 days from notice to award.
    assert durations["construction"] == {
        "category": "construction",
        "awarded": 3,
        "failed": 0,
        "failure_rate": 0.0,
        "timed": 3,
        "median_days": 20.0,
    }
    assert durations["gov_procurement"]["failure_rate"] == 1.0
    totals = found["totals"]
    assert totals["projects"] == 4 and totals["events"] == known["head"]
    assert totals["budget_sum"] == 3_500_000.0 and totals["budget_median"] == 1_000_000.0
    assert totals["award_sum"] == 5_750_000.0 and totals["award_median"] == 1_800_000.0
    assert (totals["awarded"], totals["failed"], totals["failure_rate"]) == (3, 1, 0.25)
    assert totals["median_days"] == 20.0
    assert totals["mean_bidders"] == round((3 + 1 + 0 + 7) / 4, 2)
    assert (totals["single_bidder"], totals["counted_bidders"]) == (1, 4)
    # The on-time figures are the compliance scorecard's, summed.
    scorecard = httpx.get(server.url + "/api/compliance").json()["agencies"]
    assert totals["due"] == sum(a["due"] for a in scorecard) > 0
    assert totals["on_time"] == sum(a["on_time"] for a in scorecard)
    assert sum(r["due"] for r in found["on_time"]) == totals["due"]


def test_filters(world: tuple[ServerProcess, dict[str, Any]]) -> None:
    server, _ = world
    january = stats(server, year=2026, month=1)
    assert january["totals"]["projects"] == 2  # s1, s2: noticed in January
    assert january["totals"]["award_sum"] == 950_000 + 1_800_000.0
    assert rows_by(january["durations"])["construction"]["median_days"] == 30.0  # 20 and 40
    year = stats(server, year=2026)
    assert year["totals"]["projects"] == 3  # s4 was noticed in December 2025
    procurement = stats(server, category="gov_procurement")
    assert procurement["totals"]["projects"] == 1 and procurement["totals"]["failed"] == 1
    assert [r["category"] for r in procurement["on_time"]] == ["gov_procurement"]
    b = stats(server, agency=AGENCY_B)
    assert b["totals"]["projects"] == 2  # s3, s4
    assert b["totals"]["mean_bidders"] == 3.5
    empty = stats(server, year=2000)
    assert empty["totals"]["projects"] == 0 and empty["totals"]["events"] == 0
    assert empty["totals"]["median_days"] is None and empty["amounts"] == []
    unknown = stats(server, agency="NOBODY")
    assert unknown["totals"]["projects"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"year": "1999"}, "year"),
        ({"year": "2101"}, "year"),
        ({"year": "20x6"}, "year"),
        ({"year": "2026", "month": "13"}, "month"),
        ({"year": "2026", "month": "0"}, "month"),
        ({"month": "3"}, "month"),
        ({"category": "no_such"}, "category"),
        ({"agency": "bad code!"}, "agency"),
        ({"year": "9" * 40}, "year"),
    ],
)
def test_bad_parameters(
    world: tuple[ServerProcess, dict[str, Any]], params: dict[str, str], field: str
) -> None:
    server, _ = world
    for path in ("/api/stats", "/api/stats/amounts.csv"):
        response = httpx.get(server.url + path, params=params)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_parameter" and error["details"]["field"] == field
    missing = httpx.get(server.url + "/api/stats/nothing.csv")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_each_table_as_csv(world: tuple[ServerProcess, dict[str, Any]]) -> None:
    server, _ = world
    params: dict[str, Any] = {"year": 2026, "agency": AGENCY_A}
    found = stats(server, **params)
    for table, columns in TABLES.items():
        response = httpx.get(server.url + f"/api/stats/{table}.csv", params=params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] == (
            f'attachment; filename="sunbid-stats-{table.replace("_", "-")}-2026-{AGENCY_A}.csv"'
        )
        assert response.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs
        parsed = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert parsed[0] == list(columns)
        expected = [
            ["" if row[c] is None else str(row[c]) for c in columns] for row in found[table]
        ]
        assert parsed[1:] == expected
    assert len(found["amounts"]) == 1  # agency A: construction only


def test_verify_and_rebuild_check_the_table(world: tuple[ServerProcess, dict[str, Any]]) -> None:
    server, _ = world
    result = server.cli("verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: stats is what the log yields" in result.stdout
