"""The OCDS, Atom and iCalendar endpoints read as an attacker and a strict consumer would.

Each test names a defect found in review: the wrong wall-clock time written in a
calendar's text, corrections of corrections and repeated corrections in OCDS.
Pure where the defect is in a pure function (fast), against a real server where
it is in how a request is answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import icalendar
import pytest
from libcoveocds.config import LibCoveOCDSConfig

from server.directory import Directory
from server.domain import Domain
from server.interop import calendar
from server.interop.cache import Renderings
from server.interop.names import Names
from server.interop.ocds import record_package
from tests.conftest import ServerProcess, Staff
from tests.test_ocds import CONTEXT, PUBLICATION, cove, event, problems, sample_data

__all__ = ["cove"]  # the validator's fixture, shared with tests/test_ocds.py

DOMAIN = Domain.load()
SHANGHAI = ZoneInfo("Asia/Shanghai")


# --- the calendar's text says the time its DTSTART says ---------------------------------------


def project(**extra: Any) -> dict[str, Any]:
    return {
        "id": "R-TZ-1",
        "title": "时区测试",
        "category": "construction",
        "agency": "YW-GGZY",
        "stage": "notice",
        "updated_at": "2026-12-01T09:00:00.000+08:00",
        **extra,
    }


def test_a_key_date_stated_in_utc_is_written_in_local_time() -> None:
    """A bid deadline published as 01:30Z is 09:30 in Yiwu: the event starts at
    09:30 and its description must say 09:30, not 01:30."""
    key_dates = [{"field": "deadline", "at": "2027-03-01T01:30:00Z", "stage": "notice", "seq": 7}]
    names = Names(DOMAIN, Directory.load())
    entries = calendar.project_entries(
        project(key_dates=key_dates), [], [], names, "https://x", SHANGHAI
    )
    parsed = icalendar.Calendar.from_ical(
        calendar.render("t", entries, SHANGHAI, "x").decode("utf-8")
    )
    (vevent,) = parsed.walk("VEVENT")
    start = vevent.decoded("dtstart")
    assert start == datetime(2027, 3, 1, 1, 30, tzinfo=UTC)
    assert start.astimezone(SHANGHAI).hour == 9
    assert "2027年3月1日 09:30" in str(vevent["description"])
    assert "01:30" not in str(vevent["description"])


# --- OCDS: corrections of corrections, and several corrections of one event ------------------

PROCUREMENT = "gov_procurement"


def award_then(*corrections: tuple[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """A project's registration, its award (seq 2) and `corrections` (seq 3 …)."""
    events = [
        event(PROCUREMENT, "registered", 1, sample_data(PROCUREMENT, "registered", 1)),
        event(PROCUREMENT, "award", 2, {"winner": "甲公司", "amount": 3_598_000}),
    ]
    for seq, (corrects, fix) in enumerate(corrections, start=3):
        events.append(event(PROCUREMENT, "correction", seq, {"corrects": corrects, **fix}))
    return events


def compiled(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    record = record_package(events, CONTEXT, PUBLICATION, uri="http://x/r")["records"][0]
    return record["releases"], record["compiledRelease"]


def test_a_correction_of_a_correction_updates_what_the_first_corrected() -> None:
    """359.8万 → 395.8万 (a correction) → 385.8万 (a correction of that correction):
    the second is an award update too, and the compiled award says 385.8万."""
    events = award_then(
        (2, {"field": "amount", "was": 3_598_000, "now": 3_958_000}),
        (3, {"field": "amount", "was": 3_958_000, "now": 3_858_000}),
    )
    releases, merged = compiled(events)
    second = releases[3]
    assert second["tag"] == ["awardUpdate"]
    amendment = second["awards"][0]["amendments"][0]
    assert amendment["amendsReleaseID"] == "ocds-sunbid-T-gov_procurement-3"
    assert "amendments" not in second.get("tender", {})
    assert merged["awards"][0]["value"]["amount"] == 3_858_000


def test_a_second_correction_of_one_event_keeps_the_first() -> None:
    """Two corrections of one award, of different facts: the second must not put
    back the amount the first corrected."""
    events = award_then(
        (2, {"field": "amount", "was": 3_598_000, "now": 3_958_000}),
        (2, {"field": "duration_days", "was": None, "now": 90}),
    )
    releases, merged = compiled(events)
    award = merged["awards"][0]
    assert award["value"]["amount"] == 3_958_000
    assert award["contractPeriod"]["durationInDays"] == 90
    # and the release of the second correction does not restate the old amount
    assert releases[3]["awards"][0].get("value", {}).get("amount") != 3_598_000


def test_a_correction_of_the_first_corrections_now_corrects_the_same_fact() -> None:
    events = award_then(
        (2, {"field": "amount", "was": 3_598_000, "now": 3_958_000}),
        (3, {"field": "now", "was": 3_958_000, "now": 3_858_000}),
    )
    releases, merged = compiled(events)
    assert releases[3]["tag"] == ["awardUpdate"]
    assert merged["awards"][0]["value"]["amount"] == 3_858_000


def test_a_correction_that_names_itself_or_a_later_event_is_only_an_amendment() -> None:
    """Data the API would refuse (an old log, another writer): no loop, no crash."""
    events = award_then(
        (3, {"field": "now", "was": 1, "now": 2}),
        (9, {"field": "amount", "was": 1, "now": 2}),
    )
    releases, merged = compiled(events)
    assert [r["tag"] for r in releases[2:]] == [["tenderAmendment"], ["tenderAmendment"]]
    assert merged["awards"][0]["value"]["amount"] == 3_598_000


# --- against a real server --------------------------------------------------------------------


class Site:
    def __init__(self, data_dir: Path) -> None:
        self.server = ServerProcess(data_dir).start()
        self.staff = Staff(self.server, self.server.token("review-admin"))
        self.anyone = httpx.Client(base_url=self.server.url, timeout=30)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.anyone.get(path, params=params)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = Site(tmp_path_factory.mktemp("review") / "data")
    yield running
    running.anyone.close()
    running.staff.client.close()
    running.server.stop()


def test_the_feed_and_the_record_agree_on_a_correction_of_a_correction(
    site: Site, cove: LibCoveOCDSConfig
) -> None:
    """Published through the API: the feed's release of each event is the
    record's, byte for byte, and both packages validate."""
    staff = site.staff
    staff.project("R-CC-1", category=PROCUREMENT)
    staff.publish("R-CC-1", "notice", data={"deadline": "2026-01-05T09:30:00+08:00"})
    award = staff.publish("R-CC-1", "award", data={"winner": "甲公司", "amount": 3_598_000})
    fixes = {"field": "amount", "was": 3_598_000, "now": 3_958_000}
    first = staff.publish("R-CC-1", "correction", data={"corrects": award["seq"], **fixes})
    fixes = {"field": "amount", "was": 3_958_000, "now": 3_858_000}
    staff.publish("R-CC-1", "correction", data={"corrects": first["seq"], **fixes})
    staff.publish(
        "R-CC-1", "correction", data={"corrects": award["seq"], "field": "duration_days", "now": 90}
    )

    record = site.get("/api/ocds/records/R-CC-1").json()
    assert problems(record, cove) == []
    merged = record["records"][0]["compiledRelease"]["awards"][0]
    assert merged["value"]["amount"] == 3_858_000
    assert merged["contractPeriod"]["durationInDays"] == 90
    by_id = {r["id"]: r for r in record["records"][0]["releases"]}
    # one event a page: the corrections' releases are made without the others in the page
    for seq in range(award["seq"], award["seq"] + 4):
        page = site.get("/api/ocds/releases", since=seq - 1, limit=1).json()
        assert problems(page, cove) == []
        (released,) = page["releases"]
        assert released == by_id[released["id"]]


# --- what a request can make the server keep ------------------------------------------------


def test_renderings_kept_are_bounded_in_bytes_not_only_in_number() -> None:
    """Without SUNBID_PUBLIC_URL the request's Host is part of every feed's and
    calendar's version: 256 requests with 256 made-up Host headers for the whole
    deadlines calendar (megabytes each with hundreds of projects) would keep 256
    renderings. The bytes kept have a bound too; the newest is always kept."""
    kept = Renderings(kept=256, kept_bytes=10_000)

    def renderer(size: int) -> Any:
        async def render() -> tuple[bytes, datetime | None]:
            return b"x" * size, None

        return render

    async def scenario() -> None:
        for host in range(100):
            made = await kept.get_or_render(f"ics-all|http://h{host}.example", renderer(3_000))
            assert len(made.body) == 3_000
        assert kept.kept_size() <= 10_000
        assert kept.get("ics-all|http://h99.example") is not None
        assert kept.get("ics-all|http://h0.example") is None
        huge = await kept.get_or_render("huge", renderer(50_000))  # still served
        assert len(huge.body) == 50_000 and kept.kept_size() <= 50_000

    asyncio.run(scenario())


def test_a_project_leaving_an_agencys_calendar_makes_it_newer_not_older(site: Site) -> None:
    """Last-Modified of an agency's calendar was its projects' newest activity:
    when the newest project fails (and leaves it), the calendar changed but its
    Last-Modified went back, so a client asking If-Modified-Since got a 304
    and kept the failed project's deadlines."""
    staff = site.staff
    for project_id in ("R-LM-TWO", "R-LM-ONE"):
        staff.project(project_id, agency="R-LM-X")
        staff.publish(project_id, "notice")
        time.sleep(1.1)  # Last-Modified counts whole seconds
    response = site.get("/api/deadlines.ics", agency="R-LM-X", category="construction")
    assert "R-LM-ONE" in response.text and "R-LM-TWO" in response.text
    held = parsedate_to_datetime(response.headers["last-modified"])
    time.sleep(1.1)
    staff.publish("R-LM-ONE", "failed", data={"reason": "终止"})
    # The same projects by another address (the first is remade at most once a minute).
    later = site.get("/api/deadlines.ics", agency="R-LM-X")
    assert "R-LM-ONE" not in later.text and "R-LM-TWO" in later.text
    assert parsedate_to_datetime(later.headers["last-modified"]) > held
    asked = {"If-Modified-Since": response.headers["last-modified"]}
    again = site.anyone.get("/api/deadlines.ics", params={"agency": "R-LM-X"}, headers=asked)
    assert again.status_code == 200
