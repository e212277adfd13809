"""China's working-day calendar (工作日): official holidays and 调休 make-up workdays.

Sources, the first that knows a date wins:

1. `data/workdays.toml`, kept by staff. Each November the State Council
   announces the next year's schedule; staff add it there, and list the year
   under `covers`, without waiting for a package release.
2. The `chinese-calendar` package, which transcribes the State Council's
   schedules from 2004. Version 1.11 covers 2026, and its 2026 matches the
   notice (Spring Festival 15–23 Feb with Saturdays 14 and 28 Feb worked;
   National Day 1–7 Oct with Sunday 20 Sep and Saturday 10 Oct worked). It
   was chosen over the `holidays` package because it keeps the make-up
   workdays as plain data, says which years it fully knows, and was already
   right for 2026, so the fallback was not needed.
3. Years neither source covers: Monday to Friday, and every answer that
   relied on such a day carries `estimated=True` — never a crash, never a
   silent guess.

Periods follow 民法典 §201 and §203: a period starts the day after its
trigger; one counted in calendar days (日) that ends on a rest day ends
instead on the next working day. Days are Beijing days (Asia/Shanghai)
whatever zone the server runs in: a statutory day is a day in China.

The watchdog computes about a million deadlines at start-up, so nothing here
walks day by day: the calendar numbers every working day once, at load, and a
deadline is two lookups in those numbers.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from itertools import accumulate
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar

from server.core.datafile import DataFileError, Entry, entries, read_toml

LEGAL_TZ = ZoneInfo("Asia/Shanghai")
WORKDAYS_FILE = Path(__file__).parent.parent / "data" / "workdays.toml"
YEARS = range(1949, 2200)  # what an override may describe
MAX_HOLIDAY_DAYS = 31  # a longer holiday in the file is a typo


class CalendarFileError(DataFileError):
    """`workdays.toml` is malformed; the message names file, entry and field."""


class Unit(StrEnum):
    DAY = "day"  # 日: calendar days; a period ending on a rest day ends on the next working day
    WORKDAY = "workday"  # WD: working days


@dataclass(frozen=True, slots=True)
class Due:
    at: datetime  # the last instant of the last day, Beijing time
    estimated: bool  # a day outside the calendar's coverage was counted as Monday–Friday


@dataclass(frozen=True, slots=True)
class Check:
    met: bool
    estimated: bool
    earliest: datetime  # the start of the first day that meets the limit, Beijing time


class WorkCalendar:
    """Which days are working days, and the deadlines that follow from that."""

    def __init__(
        self,
        holidays: Iterable[date] = (),
        workdays: Iterable[date] = (),
        covers: Iterable[int] = (),
    ) -> None:
        """The package's calendar overridden by these rest days and make-up workdays;
        `covers` names the years the overrides describe completely."""
        package_years = _package_years()
        years = set(package_years) | set(covers)
        days: list[tuple[date, bool]] = [
            *((d, False) for d in chinese_calendar.holidays),
            *((d, True) for d in chinese_calendar.workdays),
            *((d, False) for d in holidays),
            *((d, True) for d in workdays),
        ]
        first_year = min([*years, *(d.year for d, _ in days)], default=2000)
        last_year = max([*years, *(d.year for d, _ in days)], default=2000)
        self._years = frozenset(years)
        spans = _spans(years)
        self._span_starts = [start for start, _ in spans]
        self._span_ends = [end for _, end in spans]
        # The table: one flag per day of the years any source speaks of.
        self._start = date(first_year, 1, 1).toordinal()
        self._end = date(last_year + 1, 1, 1).toordinal()
        flags = bytearray((o - 1) % 7 < 5 for o in range(self._start, self._end))
        for day, working in days:  # package first, then overrides: later wins
            flags[day.toordinal() - self._start] = working
        self._flags = bytes(flags)
        # _before[i]: working days in the table before its i-th day;
        # _ordinals[k]: the ordinal of its k-th working day.
        self._ordinals = [self._start + i for i, f in enumerate(flags) if f]
        self._before = [0, *accumulate(flags)]
        self._base = _weekdays_before(self._start)
        self._tail = _weekdays_before(self._end)

    @classmethod
    def load(cls, path: Path = WORKDAYS_FILE) -> WorkCalendar:
        raw = read_toml(path, CalendarFileError, ("covers", "holiday"))
        covers = _covers(path, raw.get("covers", []))
        known = set(_package_years()) | set(covers)
        said: dict[date, tuple[bool, Entry]] = {}  # day -> (working?, the entry saying so)
        for entry in entries(path, raw, "holiday", "name", CalendarFileError):
            for field, day, working in _days_of(entry):
                if day.year not in known:
                    raise entry.fail(
                        field,
                        f"{day} is in {day.year}, which neither `covers` lists nor the "
                        f"package knows: add {day.year} to covers",
                    )
                earlier, where = said.setdefault(day, (working, entry))
                if earlier != working:
                    what = "a make-up workday" if earlier else "a holiday"
                    name = "this entry" if where is entry else where.name
                    raise entry.fail(field, f"{day} is already {what} in {name}")
        for year in covers:
            if not any(d.year == year and not w for d, (w, _) in said.items()):
                raise CalendarFileError(
                    f"{path}: covers: {year} is listed, but no [[holiday]] falls in {year}"
                )
        return cls(
            holidays=[d for d, (w, _) in said.items() if not w],
            workdays=[d for d, (w, _) in said.items() if w],
            covers=covers,
        )

    def is_workday(self, day: date) -> bool:
        i = day.toordinal() - self._start
        if 0 <= i < len(self._flags):
            return bool(self._flags[i])
        return day.weekday() < 5

    def covers(self, day: date) -> bool:
        """Whether an official schedule (package or override) describes this day."""
        return day.year in self._years

    def due(self, trigger: datetime, amount: int, unit: Unit) -> Due:
        """The end of a period of `amount` units starting the day after `trigger`."""
        day = _local_ordinal(trigger)
        if amount < 1:
            raise ValueError(f"a period of at least 1 {unit}; not {amount}")
        if unit == Unit.DAY:
            first = day + amount
            last = self._nth(self._index(first))  # that day, or the next working day
        elif unit == Unit.WORKDAY:
            first = day + 1
            last = self._nth(self._index(first) + amount - 1)
        else:
            raise ValueError(f"unit: one of {', '.join(Unit)}; not {unit!r}")
        return Due(_at(last, time.max), not self._covered(first, last))

    def at_least_met(
        self, trigger: datetime, target: datetime, amount: int, unit: Unit, after: bool = False
    ) -> Check:
        """Whether the days from the day after `trigger` to `target`'s day, both
        included, number at least `amount` (working days for WD); with `after`,
        whether `target` comes only once those days are over (a publicity that
        must run its whole term before the next step).

        No rolling forward here: §203 lengthens a period someone has to act in;
        a minimum interval is met on its last day even if that day is a Sunday,
        and a period counted backward from a deadline ("at least 15 days before
        the bid deadline") is not lengthened by the holidays it spans.
        """
        day = _local_ordinal(trigger)
        if amount < 1:
            raise ValueError(f"a period of at least 1 {unit}; not {amount}")
        if unit == Unit.DAY:
            earliest, estimated = day + amount, False
        elif unit == Unit.WORKDAY:
            earliest = self._nth(self._index(day + 1) + amount - 1)
            estimated = not self._covered(day + 1, earliest)
        else:
            raise ValueError(f"unit: one of {', '.join(Unit)}; not {unit!r}")
        if after:
            earliest += 1
        return Check(_local_ordinal(target) >= earliest, estimated, _at(earliest, time.min))

    def latest_start(self, target: datetime, amount: int, unit: Unit, after: bool = False) -> Due:
        """The last instant a trigger may come and still meet `at_least_met`
        against `target`: the cut-off of a period counted backward ("a
        clarification at least 15 days before the bid deadline"). The search
        starts at the latest day that could do and steps back: a day count is
        met at once, working days after the rest days between."""
        day = _local_ordinal(target) - amount - (1 if after else 0)
        for _ in range(amount * 3 + 60):  # the longest run of rest days is far shorter
            check = self.at_least_met(_at(day, time.max), target, amount, unit, after)
            if check.met:
                return Due(_at(day, time.max), check.estimated)
            day -= 1
        raise OverflowError(f"no day leaves {amount} {unit} before {target.isoformat()}")

    def shift_workdays(self, day: date, n: int) -> date:
        """The n-th working day after `day` (before it if n < 0); `day` itself if n == 0."""
        if n == 0:
            return day
        ordinal = day.toordinal()
        if n > 0:
            return _date(self._nth(self._index(ordinal + 1) + n - 1))
        return _date(self._nth(self._index(ordinal) + n))

    # --- the numbering of working days ------------------------------------

    def _index(self, ordinal: int) -> int:
        """How many working days come before this day (from 0001-01-01 on)."""
        if ordinal <= self._start:
            return _weekdays_before(ordinal)
        if ordinal <= self._end:
            return self._base + self._before[ordinal - self._start]
        return self._base + len(self._ordinals) + _weekdays_before(ordinal) - self._tail

    def _nth(self, index: int) -> int:
        """The ordinal of the working day preceded by `index` working days."""
        if index < self._base:
            return _nth_weekday(index)
        if index < self._base + len(self._ordinals):
            return self._ordinals[index - self._base]
        return _nth_weekday(index - self._base - len(self._ordinals) + self._tail)

    def _covered(self, first: int, last: int) -> bool:
        i = bisect_right(self._span_starts, first) - 1  # the span `first` may be in
        return i >= 0 and last <= self._span_ends[i]


def _package_years() -> range:
    known = chinese_calendar.holidays
    return range(min(known).year, max(known).year + 1)


def _days_of(entry: Entry) -> list[tuple[str, date, bool]]:
    """A [[holiday]]'s days as (field, day, working?)."""
    entry.check_keys(("name",), ("first", "last", "workdays"))
    entry.text("name")  # required, and not blank
    days: list[tuple[str, date, bool]] = []
    if "first" in entry.raw:
        first = entry.day("first")
        last = entry.day("last") if "last" in entry.raw else first
        if last < first:
            raise entry.fail("last", f"on or after first ({first}); not {last}")
        if (last - first).days >= MAX_HOLIDAY_DAYS:
            raise entry.fail("last", f"a holiday of at most {MAX_HOLIDAY_DAYS} days")
        for o in range(first.toordinal(), last.toordinal() + 1):
            days.append(("first" if o == first.toordinal() else "last", date.fromordinal(o), False))
    elif "last" in entry.raw:
        raise entry.fail("first", "missing (a holiday with a last day needs a first)")
    days += [("workdays", d, True) for d in entry.days("workdays")]
    if not days:
        raise entry.fail("first", "missing (give the holiday's days or make-up workdays)")
    return days


def _covers(path: Path, value: Any) -> list[int]:
    if (
        not isinstance(value, list)
        or not all(isinstance(y, int) and not isinstance(y, bool) for y in value)
        or len(set(value)) != len(value)
    ):
        raise CalendarFileError(f"{path}: covers: a list of distinct years such as [2027]")
    for year in value:
        if year not in YEARS:
            raise CalendarFileError(
                f"{path}: covers: {year} is not a year from {YEARS[0]} to {YEARS[-1]}"
            )
    return value


def _spans(years: Iterable[int]) -> list[tuple[int, int]]:
    """Runs of consecutive years as (first ordinal, last ordinal) pairs."""
    spans: list[tuple[int, int]] = []
    for year in sorted(years):
        low, high = date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal()
        if spans and spans[-1][1] + 1 == low:
            low = spans.pop()[0]
        spans.append((low, high))
    return spans


def _weekdays_before(ordinal: int) -> int:
    """Mondays to Fridays before a day; ordinal 1 (0001-01-01) was a Monday."""
    weeks, rest = divmod(ordinal - 1, 7)
    return 5 * weeks + min(rest, 5)


def _nth_weekday(index: int) -> int:
    weeks, rest = divmod(index, 5)
    return 1 + 7 * weeks + rest


def _local_ordinal(moment: datetime) -> int:
    if moment.utcoffset() is None:
        raise ValueError(f"a time with a UTC offset; not {moment.isoformat()}")
    return moment.astimezone(LEGAL_TZ).toordinal()


def _date(ordinal: int) -> date:
    try:
        return date.fromordinal(ordinal)
    except (ValueError, OverflowError):
        raise OverflowError("the period runs outside the years 1 to 9999") from None


def _at(ordinal: int, clock: time) -> datetime:
    return datetime.combine(_date(ordinal), clock, LEGAL_TZ)
