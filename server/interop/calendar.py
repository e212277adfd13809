"""A project's dates as iCalendar (RFC 5545), for a phone's or a desk's calendar.

Three kinds of date, each a VEVENT with a UID that stays the same while the
date moves (a clarification postponing the bid deadline changes the event,
not adds one), and a SEQUENCE that grows with the log (the seq of the event
that set it), so a calendar that re-reads the subscription updates in place:

- key dates (投标截止, 开标时间, 挂牌截止 …: the vocabulary's `key_date` fields,
  as the project's events state them last): timed events at that moment, no
  DTEND (RFC 5545 3.6.1: it ends when it starts), in SUNBID_TIMEZONE, with a
  reminder a day before;
- open statutory deadlines (the watchdog's `deadlines`): a `due_within` one
  is due by the end of its last day, so it is an all-day event on that day
  with a reminder at 09:00 the day before; an earliest allowed date
  (`not_before`, e.g. no award before the candidates' publicity ends) is an
  all-day event on that day, without a reminder;
- cut-offs (the watchdog's `cutoffs`: the last day a clarification can be
  issued 15 days before the bid deadline): all-day, with a reminder.

Pure: from the project record, the watchdog's lists and the vocabulary to
bytes. DTSTAMP and LAST-MODIFIED are the project's latest activity, not the
time of rendering, so the same log renders the same bytes (and ETag).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import icalendar

from server.interop.names import Names

PRODID = "-//Sunbid//阳光交易 deadlines//ZH"
REFRESH = timedelta(hours=1)  # RFC 7986 REFRESH-INTERVAL: how often a subscriber re-reads
REMIND_TIMED = timedelta(days=-1)
REMIND_ALL_DAY = timedelta(hours=-15)  # 09:00 the day before an all-day event
# The VTIMEZONE's span (icalendar writes the zone's transitions in it): no
# deadline is before 2000, and Asia/Shanghai has had none since 1991.
VTIMEZONE_SPAN = (date(2000, 1, 1), date(2100, 1, 1))


@dataclass(frozen=True)
class Entry:
    uid: str  # unique within the deployment; "@host" makes it unique everywhere
    summary: str
    description: str
    start: datetime | date  # a moment, or a whole day
    url: str
    sequence: int
    stamp: datetime
    categories: tuple[str, ...]
    remind: bool


def project_entries(
    project: Mapping[str, Any],
    deadlines: Sequence[Mapping[str, Any]],
    cutoffs: Sequence[Mapping[str, Any]],
    names: Names,
    origin: str,
    zone: ZoneInfo,
) -> list[Entry]:
    """Every date of one project: key dates, open statutory deadlines, cut-offs.
    Times in the text are written in `zone`, as DTSTART is.

    `cutoffs` are left out once the project is concluded (award, contract,
    failed): there is nothing left to clarify.
    """
    pid, title, category = project["id"], project["title"], project["category"]
    page = f"{origin}/p/{quote(pid, safe='')}"
    stamp = datetime.fromisoformat(project["updated_at"])
    about = (
        f"项目：{title}（{pid}）\n{names.category(category)} · {names.agency(project['agency'])}"
    )
    tags = (names.category(category),)
    entries = []
    for key_date in project.get("key_dates") or ():
        label = names.key_date(key_date["field"])
        at = datetime.fromisoformat(key_date["at"])
        stage = names.stage(category, key_date["stage"])
        entries.append(
            Entry(
                uid=f"key-{key_date['field']}-{pid}",
                summary=f"{label}｜{title}",
                description=(
                    f"{label}：{_written(at, zone)}\n{about}\n见{stage}\n{page}#e{key_date['seq']}"
                ),
                start=at,
                url=f"{page}#e{key_date['seq']}",
                sequence=key_date["seq"],
                stamp=stamp,
                categories=(*tags, label),
                remind=True,
            )
        )
    for deadline in deadlines:
        due = deadline.get("due")
        day = datetime.fromisoformat(due or deadline["not_before"]).date()
        word = "截止" if due else "最早"
        entries.append(
            Entry(
                uid=f"rule-{deadline['rule']}-{pid}" + (f"-{deadline['trigger']}" if due else ""),
                summary=f"{deadline['name']}（{word}）｜{title}",
                description=_rule_text(deadline, f"{word}：{_day(day)}", about, page),
                start=day,
                url=page,
                sequence=deadline["trigger"],
                stamp=stamp,
                categories=(*tags, "法定时限"),
                remind=bool(due),
            )
        )
    if project.get("stage") not in names.domain.concluding_stages:
        for cutoff in cutoffs:
            day = datetime.fromisoformat(cutoff["latest"]).date()
            before = datetime.fromisoformat(cutoff["before"])
            entries.append(
                Entry(
                    uid=f"cutoff-{cutoff['rule']}-{pid}",
                    summary=f"{cutoff['name']}（最后一日）｜{title}",
                    description=_rule_text(
                        cutoff,
                        f"最后一日：{_day(day)}（须在 {_written(before, zone)} 之前至少"
                        f" {cutoff['amount']} {_unit(cutoff['unit'])}）",
                        about,
                        page,
                    ),
                    start=day,
                    url=page,
                    sequence=cutoff["source"],
                    stamp=stamp,
                    categories=(*tags, "法定时限"),
                    remind=True,
                )
            )
    return entries


def render(name: str, entries: Iterable[Entry], zone: ZoneInfo, host: str) -> bytes:
    """One VCALENDAR: the entries in start order, times in `zone` (with its VTIMEZONE)."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("name", name)  # RFC 7986
    calendar.add("x-wr-calname", name)  # what Apple, Google and Outlook show
    calendar.add("x-wr-timezone", zone.key)
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", "PT1H")  # the same, for Outlook
    calendar.add_component(_vtimezone(zone.key))
    for entry in sorted(entries, key=lambda e: (_sort_key(e.start, zone), e.uid)):
        calendar.add_component(_event(entry, zone, host))
    return bytes(calendar.to_ical())


@functools.cache
def _vtimezone(key: str) -> icalendar.Timezone:
    """The zone's VTIMEZONE, made once: icalendar works out every transition of
    the span from the tz database (20 ms), and it is the same in every calendar."""
    return icalendar.Timezone.from_tzid(
        key, first_date=VTIMEZONE_SPAN[0], last_date=VTIMEZONE_SPAN[1]
    )


def _event(entry: Entry, zone: ZoneInfo, host: str) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", f"{entry.uid}@{host}")
    event.add("dtstamp", entry.stamp)
    event.add("last-modified", entry.stamp)
    event.add("sequence", entry.sequence)
    if isinstance(entry.start, datetime):
        event.add("dtstart", entry.start.astimezone(zone))
    else:
        event.add("dtstart", entry.start)
        event.add("dtend", entry.start + timedelta(days=1))
        event.add("transp", "TRANSPARENT")  # a due date, not a busy day
    event.add("summary", entry.summary)
    event.add("description", entry.description)
    event.add("url", entry.url)
    event.add("categories", list(entry.categories))
    if entry.remind:
        alarm = icalendar.Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", entry.summary)
        timed = isinstance(entry.start, datetime)
        alarm.add("trigger", REMIND_TIMED if timed else REMIND_ALL_DAY)
        event.add_component(alarm)
    return event


def _rule_text(rule: Mapping[str, Any], when: str, about: str, page: str) -> str:
    """The rule's name and legal basis, in Chinese and, where the file has them, English."""
    lines = [when, about, f"规则：{rule['name']}", f"依据：{rule['basis']}"]
    if rule.get("advisory"):
        lines.append("（地方惯例，非法定时限）")
    if rule.get("estimated"):
        lines.append("（预计：所跨年份的节假日安排尚未公布，按周一至周五计）")
    if rule.get("name_en"):
        lines.append(f"Rule: {rule['name_en']}")
    if rule.get("basis_en"):
        lines.append(f"Basis: {rule['basis_en']}")
    lines.append(page)
    return "\n".join(lines)


def _sort_key(start: datetime | date, zone: ZoneInfo) -> datetime:
    if isinstance(start, datetime):
        return start
    return datetime(start.year, start.month, start.day, tzinfo=zone)


def _written(moment: datetime, zone: ZoneInfo) -> str:
    # An event may state a time with any offset (01:30Z); a reader reads the
    # text beside a DTSTART in the calendar's zone, so the text is in it too.
    local = moment.astimezone(zone)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def _day(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _unit(unit: str) -> str:
    return "个工作日" if unit == "workday" else "日"
