"""The working-day calendar against the real 2026 schedule (国务院办公厅关于2026年
部分节假日安排的通知, as the chinese-calendar package records it), overrides from a
real file, and the Monday–Friday fallback for years nobody has described yet.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import chinese_calendar
import pytest

from server.compliance.calendar import LEGAL_TZ, CalendarFileError, Unit, WorkCalendar

CAL = WorkCalendar.load()
LAST_KNOWN_YEAR = max(chinese_calendar.holidays).year
UNKNOWN_YEAR = 2035  # years from now: no source will describe it for a long while


def at(day: str, clock: str = "10:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}+08:00")


def end_of(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time.max, LEGAL_TZ)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workdays.toml"
    path.write_text(text, "utf-8")
    return path


# --- the 2026 schedule ------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    [
        *("2026-02-15", "2026-02-16", "2026-02-20", "2026-02-23"),  # 春节 15–23 Feb
        *("2026-10-01", "2026-10-05", "2026-10-06", "2026-10-07"),  # 国庆节 1–7 Oct
        *("2026-01-01", "2026-01-02", "2026-04-06", "2026-05-04", "2026-05-05"),
    ],
)
def test_official_holidays_of_2026_are_not_workdays(day: str) -> None:
    assert not CAL.is_workday(date.fromisoformat(day))


@pytest.mark.parametrize(
    "day",
    ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"],
)
def test_make_up_weekend_days_of_2026_are_workdays(day: str) -> None:
    assert date.fromisoformat(day).weekday() >= 5
    assert CAL.is_workday(date.fromisoformat(day))


def test_ordinary_days_of_2026() -> None:
    assert CAL.is_workday(date(2026, 2, 24))  # the Tuesday after Spring Festival
    assert CAL.is_workday(date(2026, 10, 8))
    assert not CAL.is_workday(date(2026, 3, 7))  # an ordinary Saturday
    assert CAL.covers(date(2026, 12, 31))


# --- periods ----------------------------------------------------------------


def test_a_day_period_ending_on_a_holiday_ends_on_the_next_working_day() -> None:
    # Ten days after 21 Sep is 1 Oct, National Day: the period ends on Thursday 8 Oct.
    assert CAL.due(at("2026-09-21"), 10, Unit.DAY).at == end_of("2026-10-08")
    # ... and one ending on an ordinary Saturday ends on Monday.
    assert CAL.due(at("2026-03-02"), 5, Unit.DAY).at == end_of("2026-03-09")
    # A period ending on a working day stays there, even across a weekend.
    assert CAL.due(at("2026-03-02"), 3, Unit.DAY).at == end_of("2026-03-05")


def test_workdays_count_across_spring_festival() -> None:
    # Thursday 12 Feb: Fri 13 (1), make-up Sat 14 (2), 15–23 off, Tue 24 (3).
    assert CAL.due(at("2026-02-12"), 3, Unit.WORKDAY).at == end_of("2026-02-24")
    # Seven working days (a 质疑 reply): ... 25, 26, 27 and the make-up Saturday 28.
    assert CAL.due(at("2026-02-12"), 7, Unit.WORKDAY).at == end_of("2026-02-28")


def test_the_period_starts_the_day_after_the_trigger_in_beijing() -> None:
    # 20:00 UTC on 13 Feb is already 04:00 on Saturday 14 Feb in Beijing, a make-up
    # workday, so the first working day of the period is Tuesday 24 Feb.
    late = datetime(2026, 2, 13, 20, 0, tzinfo=UTC)
    assert CAL.due(late, 1, Unit.WORKDAY).at == end_of("2026-02-24")
    assert CAL.due(at("2026-02-13", "23:59"), 1, Unit.WORKDAY).at == end_of("2026-02-14")


def test_due_is_the_last_instant_of_the_day_in_beijing() -> None:
    due = CAL.due(at("2026-03-02"), 20, Unit.DAY)
    assert due.at.utcoffset() == timedelta(hours=8)
    assert (due.at.hour, due.at.minute, due.at.second, due.at.microsecond) == (23, 59, 59, 999999)
    assert not due.estimated


def test_a_time_without_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        CAL.due(datetime(2026, 3, 2, 10, 0), 3, Unit.DAY)


def test_due_agrees_with_counting_day_by_day() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        trigger = at("2025-01-01") + timedelta(hours=rng.randrange(2 * 365 * 24))
        amount, unit = rng.randint(1, 40), rng.choice(list(Unit))
        day = trigger.astimezone(LEGAL_TZ).date()
        if unit == Unit.DAY:
            day += timedelta(days=amount)
            while not CAL.is_workday(day):
                day += timedelta(days=1)
        else:
            counted = 0
            while counted < amount:
                day += timedelta(days=1)
                counted += CAL.is_workday(day)
        assert CAL.due(trigger, amount, unit).at.date() == day, (trigger, amount, unit)


def test_at_least_counts_days_up_to_and_including_the_target() -> None:
    notice = at("2026-03-02")
    met = CAL.at_least_met(notice, at("2026-03-22", "09:30"), 20, Unit.DAY)
    assert met.met and not met.estimated
    assert met.earliest == datetime(2026, 3, 22, tzinfo=LEGAL_TZ)
    assert not CAL.at_least_met(notice, at("2026-03-21", "23:59"), 20, Unit.DAY).met


def test_at_least_in_workdays_skips_holidays() -> None:
    # From Monday 21 Sep: 22–24 (3), 28–30 (6), 8–10 Oct with the make-up Saturday (9),
    # 12–16 (14), 19–23 (19), and Monday 26 Oct is the 20th working day.
    check = CAL.at_least_met(at("2026-09-21"), at("2026-10-26"), 20, Unit.WORKDAY)
    assert check.met and check.earliest == datetime(2026, 10, 26, tzinfo=LEGAL_TZ)
    assert not CAL.at_least_met(at("2026-09-21"), at("2026-10-24"), 20, Unit.WORKDAY).met


# --- shifting by working days ----------------------------------------------


@pytest.mark.parametrize(
    ("day", "n", "expected"),
    [
        ("2026-02-13", 1, "2026-02-14"),  # Friday → the make-up Saturday
        ("2026-02-14", 1, "2026-02-24"),  # over Spring Festival
        ("2026-02-24", -1, "2026-02-14"),  # back over it
        ("2026-10-08", -1, "2026-09-30"),  # back over National Day
        ("2026-10-10", -2, "2026-10-08"),  # from a make-up Saturday
        ("2026-10-03", 1, "2026-10-08"),  # from inside a holiday
        ("2026-10-03", -1, "2026-09-30"),
        ("2026-10-03", 0, "2026-10-03"),
    ],
)
def test_shift_workdays(day: str, n: int, expected: str) -> None:
    assert CAL.shift_workdays(date.fromisoformat(day), n) == date.fromisoformat(expected)


# --- years no source covers -------------------------------------------------


def test_a_year_no_source_covers_falls_back_to_monday_to_friday() -> None:
    first = date(UNKNOWN_YEAR, 1, 1)
    assert not CAL.covers(first)
    for offset in range(14):
        day = first + timedelta(days=offset)
        assert CAL.is_workday(day) == (day.weekday() < 5)
    # Thursday 1 March: Fri 2, then Mon 5 to Thu 8.
    due = CAL.due(at(f"{UNKNOWN_YEAR}-03-01"), 5, Unit.WORKDAY)
    assert due.at == end_of(f"{UNKNOWN_YEAR}-03-08") and due.estimated
    check = CAL.at_least_met(
        at(f"{UNKNOWN_YEAR}-03-01"), at(f"{UNKNOWN_YEAR}-03-08"), 5, Unit.WORKDAY
    )
    assert check.met and check.estimated


def test_a_period_running_past_the_last_known_year_is_estimated() -> None:
    inside = CAL.due(at(f"{LAST_KNOWN_YEAR}-12-01"), 5, Unit.WORKDAY)
    across = CAL.due(at(f"{LAST_KNOWN_YEAR}-12-28"), 10, Unit.WORKDAY)
    assert not inside.estimated
    assert across.estimated and across.at.year == LAST_KNOWN_YEAR + 1


# --- the override file ------------------------------------------------------


def test_an_override_file_describes_a_new_year_and_corrects_a_known_one(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        f"""
covers = [{UNKNOWN_YEAR}]

[[holiday]]
name = "元旦"
first = {UNKNOWN_YEAR}-01-01

[[holiday]]
name = "春节"
first = {UNKNOWN_YEAR}-02-07
last = {UNKNOWN_YEAR}-02-13
workdays = [{UNKNOWN_YEAR}-02-03]

[[holiday]]
name = "国庆节（假设的更正）"
first = 2026-10-08
workdays = [2026-10-03]
""",
    )
    cal = WorkCalendar.load(path)
    assert cal.covers(date(UNKNOWN_YEAR, 6, 1))
    assert not cal.is_workday(date(UNKNOWN_YEAR, 1, 1))  # a Monday
    assert cal.is_workday(date(UNKNOWN_YEAR, 2, 3))  # a Saturday
    due = cal.due(at(f"{UNKNOWN_YEAR}-02-06"), 1, Unit.WORKDAY)
    assert due.at == end_of(f"{UNKNOWN_YEAR}-02-14") and not due.estimated
    # Overrides win over the package: 8 Oct off, 3 Oct worked.
    assert not cal.is_workday(date(2026, 10, 8)) and cal.is_workday(date(2026, 10, 3))
    assert cal.due(at("2026-09-21"), 10, Unit.DAY).at == end_of("2026-10-03")
    assert cal.due(at("2026-09-29"), 9, Unit.DAY).at == end_of("2026-10-09")
    assert cal.shift_workdays(date(2026, 9, 30), 1) == date(2026, 10, 3)


def test_the_shipped_override_file_loads() -> None:
    assert CAL.covers(date(2026, 1, 1))


BAD_FILES = [
    ("holdays = []", "holdays"),
    ("covers = 2027", "covers"),
    ("covers = [2027]", "covers"),  # listed, but no holiday in it
    ("covers = [3000]", "covers"),
    ("[[holiday]]\nfirst = 2026-10-01", "holiday #1: name"),
    ('[[holiday]]\nname = "国庆节"\nfirst = 2026-10-07\nlast = 2026-10-01', "'国庆节': last"),
    ('[[holiday]]\nname = "国庆节"\nfirst = 2026-10-01T00:00:00', "'国庆节': first"),
    ('[[holiday]]\nname = "国庆节"\nlast = 2026-10-01', "'国庆节': first"),
    ('[[holiday]]\nname = "国庆节"', "'国庆节': first"),
    ('[[holiday]]\nname = "国庆节"\nfirst = 2026-10-01\nlast = 2026-12-01', "'国庆节': last"),
    ('[[holiday]]\nname = "国庆节"\nfirst = 2026-10-01\nlastday = 2026-10-07', "lastday"),
    ('[[holiday]]\nname = "国庆节"\nfirst = 2026-10-01\nworkdays = "2026-10-10"', "workdays"),
    (
        '[[holiday]]\nname = "国庆节"\nfirst = 2026-10-01\nlast = 2026-10-07\n'
        "workdays = [2026-10-03]",
        "'国庆节': workdays",
    ),
    (
        '[[holiday]]\nname = "国庆节"\nfirst = 2026-10-01\n'
        '[[holiday]]\nname = "调休"\nworkdays = [2026-10-01]',
        "holiday #2 '调休': workdays",
    ),
    ('[[holiday]]\nname = "春节"\nfirst = 2040-02-01', "'春节': first"),  # year not in covers
    ('[[holiday]\nname = "春节"', "workdays.toml"),  # not TOML
]


@pytest.mark.parametrize(("text", "where"), BAD_FILES)
def test_a_bad_override_file_names_file_entry_and_field(
    tmp_path: Path, text: str, where: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CalendarFileError) as caught:
        WorkCalendar.load(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert where in message, message
