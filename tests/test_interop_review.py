"""The OCDS, Atom and iCalendar endpoints read as an attacker and a strict consumer would.

Each test names a defect found in review: the wrong wall-clock time written in a
calendar's text, corrections of corrections and repeated corrections in OCDS.
Pure where the defect is in a pure function (fast), against a real server where
it is in how a request is answered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import icalendar

from server.directory import Directory
from server.domain import Domain
from server.interop import calendar
from server.interop.names import Names

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
