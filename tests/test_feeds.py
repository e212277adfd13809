"""Atom feeds and iCalendar deadlines, read back as a feed reader and a phone's calendar would.

One real server (SQLite, or PostgreSQL with SUNBID_TEST_BACKEND) with SUNBID_PUBLIC_URL set;
the Atom parsed with ElementTree against the Atom namespace (RFC 4287's required elements),
the calendars with icalendar.Calendar.from_ical, each compared with what the API says.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import icalendar
import pytest

from server.compliance.calendar import Unit, WorkCalendar
from server.interop.cache import Renderings
from tests.conftest import ServerProcess, Staff

A = "{http://www.w3.org/2005/Atom}"
ORIGIN = "https://jy.example.gov.cn"
BEIJING = timezone(timedelta(hours=8))


class Site:
    def __init__(self, data_dir: Path) -> None:
        self.server = ServerProcess(data_dir, SUNBID_PUBLIC_URL=ORIGIN).start()
        self.staff = Staff(self.server, self.server.token("feeds-admin"))
        self.anyone = httpx.Client(base_url=self.server.url, timeout=30)

    def feed(self, **params: str) -> tuple[httpx.Response, ET.Element]:
        response = self.anyone.get("/api/feed.atom", params=params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
        return response, ET.fromstring(response.content)

    def calendar(self, path: str, **params: str) -> tuple[httpx.Response, icalendar.Calendar]:
        response = self.anyone.get(path, params=params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/calendar; charset=utf-8"
        return response, icalendar.Calendar.from_ical(response.content)

    def project(self, project_id: str) -> dict[str, Any]:
        response = self.anyone.get(f"/api/projects/{project_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def deadlines_seen(self, project_id: str, rule: str) -> dict[str, Any]:
        """The project's open deadline of `rule`, once the watchdog has seen its trigger."""
        give_up = time.monotonic() + 10
        while time.monotonic() < give_up:
            for deadline in self.project(project_id)["deadlines"]:
                if deadline["rule"] == rule:
                    return dict(deadline)
            time.sleep(0.05)
        raise AssertionError(f"no {rule} deadline on {project_id}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = Site(tmp_path_factory.mktemp("feeds") / "data")
    yield running
    running.anyone.close()
    running.staff.client.close()
    running.server.stop()


def at(days: int, hour: int = 9, minute: int = 30) -> str:
    moment = datetime.now(BEIJING) + timedelta(days=days)
    return moment.replace(hour=hour, minute=minute, second=0, microsecond=0).isoformat()


def events(feed: ET.Element) -> list[ET.Element]:
    return feed.findall(f"{A}entry")


def text(element: ET.Element, name: str) -> str:
    found = element.find(f"{A}{name}")
    assert found is not None and found.text, f"no {name} in {element.tag}"
    return found.text


def vevents(calendar: icalendar.Calendar) -> dict[str, Any]:
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


# --- Atom --------------------------------------------------------------------------------------


def test_a_category_feed_is_valid_atom_with_every_event_of_that_category(site: Site) -> None:
    site.staff.project("FD-GC-1", category="construction")
    site.staff.project("FD-CG-1", category="gov_procurement", agency="YW-ZFCG")
    mine = [
        site.staff.publish("FD-GC-1", "notice", title="某道路工程施工招标公告 <第1号> & 说明"),
        site.staff.publish(
            "FD-GC-1", "clarification", title="澄清（第1号）", body="投标截止不变。"
        ),
    ]
    other = site.staff.publish("FD-CG-1", "notice", title="采购公告")

    response, feed = site.feed(topics="category:construction")
    assert feed.tag == f"{A}feed"
    # RFC 4287 4.1.1: id, title and updated; an author, since not every entry need have one.
    assert text(feed, "id").startswith("tag:jy.example.gov.cn,2026:feed?")
    assert "工程建设" in text(feed, "title")
    author = feed.find(f"{A}author")
    assert author is not None and text(author, "name")
    links = {link.get("rel"): link.get("href") for link in feed.findall(f"{A}link")}
    assert links["self"] == f"{ORIGIN}/api/feed.atom?topics=category:construction"
    assert links["alternate"] == f"{ORIGIN}/?category=construction"
    entries = events(feed)
    ids = [text(e, "id") for e in entries]
    assert len(ids) == len(set(ids)), "entry ids are unique"
    by_id = {text(e, "id"): e for e in entries}
    assert f"tag:jy.example.gov.cn,2026:event/{other['seq']}" not in by_id
    # Newest first, each as published: the title in Chinese with its markup characters intact.
    newest = entries[0]
    assert text(newest, "id") == f"tag:jy.example.gov.cn,2026:event/{mine[1]['seq']}"
    assert text(feed, "updated") == text(newest, "updated")
    assert datetime.fromisoformat(text(feed, "updated")) == datetime.fromisoformat(
        mine[1]["published_at"]
    )
    for event in mine:
        entry = by_id[f"tag:jy.example.gov.cn,2026:event/{event['seq']}"]
        assert text(entry, "title") == event["title"]
        assert datetime.fromisoformat(text(entry, "updated")) == datetime.fromisoformat(
            event["published_at"]
        )
        assert text(entry, "content") == (event["body"] or event["title"])
        [link] = entry.findall(f"{A}link")
        assert link.get("href") == f"{ORIGIN}/p/FD-GC-1#e{event['seq']}"
        terms = {c.get("term") for c in entry.findall(f"{A}category")}
        assert {"category:construction", "agency:YW-GGZY", f"stage:{event['stage']}"} <= terms
        by = entry.find(f"{A}author")
        assert by is not None and text(by, "name") == "义乌市公共资源交易中心"
    assert "Last-Modified" in response.headers and "public" in response.headers["Cache-Control"]


def test_topics_and_stages_select_like_the_event_listing(site: Site) -> None:
    site.staff.project("FD-TD-1", category="land", agency="YW-ZRZY", region="330782001")
    site.staff.publish("FD-TD-1", "notice", title="国有建设用地使用权挂牌出让公告")
    site.staff.publish("FD-TD-1", "clarification", title="挂牌出让补充公告")
    query = {"topics": "category:land,agency:YW-ZFCG", "stages": "notice"}
    _, feed = site.feed(**query)
    listed = site.anyone.get("/api/events", params={**query, "limit": "1000"}).json()["items"]
    expected = [f"tag:jy.example.gov.cn,2026:event/{e['seq']}" for e in reversed(listed)]
    assert [text(e, "id") for e in events(feed)] == expected[:50]
    assert all(e["stage"] == "notice" for e in listed) and len(listed) >= 2
    # The same topics in another order are the same feed.
    _, again = site.feed(topics="agency:YW-ZFCG,category:land", stages="notice")
    assert text(again, "id") == text(feed, "id")


def test_a_feed_holds_the_newest_fifty(site: Site) -> None:
    site.staff.project("FD-MANY")
    published = [site.staff.publish("FD-MANY", "performance", title=f"履约 {i}") for i in range(52)]
    _, feed = site.feed(topics="project:FD-MANY")
    seqs = [int(text(e, "id").rsplit("/", 1)[1]) for e in events(feed)]
    assert seqs == [e["seq"] for e in reversed(published)][:50]


def test_staff_topics_and_bad_parameters_are_refused_in_the_contracts_shape(site: Site) -> None:
    for params, status, code in [
        ({"topics": "supervision"}, 403, "forbidden"),
        ({"topics": "category:construction,supervision"}, 403, "forbidden"),
        ({"topics": "category:nope"}, 422, "invalid_topic"),
        ({"topics": "weather:today"}, 422, "invalid_topic"),
        ({"topics": ",".join(f"project:P{i}" for i in range(65))}, 422, "too_many_topics"),
        ({"stages": "notice,bogus"}, 422, "invalid_stage"),
    ]:
        response = site.anyone.get("/api/feed.atom", params=params)
        assert response.status_code == status, (params, response.text)
        assert response.json()["error"]["code"] == code
    for path, params, status in [
        ("/api/projects/NOPE-1/deadlines.ics", {}, 404),
        ("/api/deadlines.ics", {"category": "bogus"}, 422),
        ("/api/deadlines.ics", {"agency": "not a code"}, 422),
    ]:
        response = site.anyone.get(path, params=params)
        assert response.status_code == status, (path, response.text)
        assert set(response.json()["error"]) >= {"code", "message"}


def test_an_unchanged_feed_is_a_304_until_a_matching_event_comes(site: Site) -> None:
    site.staff.project("FD-ETAG")
    site.staff.publish("FD-ETAG", "notice", title="招标公告")
    first, _ = site.feed(topics="project:FD-ETAG")
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    same = site.anyone.get(
        "/api/feed.atom", params={"topics": "project:FD-ETAG"}, headers={"If-None-Match": etag}
    )
    assert same.status_code == 304 and same.content == b"" and same.headers["ETag"] == etag
    since = site.anyone.get(
        "/api/feed.atom",
        params={"topics": "project:FD-ETAG"},
        headers={"If-Modified-Since": modified},
    )
    assert since.status_code == 304
    site.staff.publish("FD-GC-1", "performance", title="别的项目")  # another topic: no change
    assert site.feed(topics="project:FD-ETAG")[0].headers["ETag"] == etag
    site.staff.publish("FD-ETAG", "clarification", title="澄清")
    changed = site.anyone.get(
        "/api/feed.atom", params={"topics": "project:FD-ETAG"}, headers={"If-None-Match": etag}
    )
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


# --- iCalendar ---------------------------------------------------------------------------------


def test_a_projects_calendar_has_its_key_dates_deadlines_and_cut_off(site: Site) -> None:
    project = "FD-ICS-1"
    site.staff.project(project)
    deadline = at(days=30)
    site.staff.publish(project, "notice", title="招标公告", data={"deadline": deadline})
    site.staff.publish(project, "evaluation", title="评标结束", occurred_at=at(days=-1))
    due = site.deadlines_seen(project, "construction.evaluation-candidates")

    first, calendar = site.calendar(f"/api/projects/{project}/deadlines.ics")
    assert str(calendar["PRODID"]) and str(calendar["VERSION"]) == "2.0"
    assert str(calendar["X-WR-CALNAME"]).startswith(f"测试项目 {project}")
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["Asia/Shanghai"]
    found = vevents(calendar)
    for event in found.values():
        assert {"UID", "DTSTAMP", "DTSTART", "SUMMARY", "DESCRIPTION", "URL"} <= set(event)
        assert str(event["URL"]).startswith(f"{ORIGIN}/p/{project}")
    # The bid deadline: a timed event at the moment published, in Beijing time.
    bid = found[f"key-deadline-{project}@jy.example.gov.cn"]
    assert bid.decoded("DTSTART") == datetime.fromisoformat(deadline)
    assert str(bid["DTSTART"].params["TZID"]) == "Asia/Shanghai"
    assert str(bid["SUMMARY"]).startswith("投标截止｜")
    # The statutory deadline: all day on its last day, the rule's name and basis in it.
    [statutory] = [e for uid, e in found.items() if uid.startswith("rule-")]
    assert statutory.decoded("DTSTART") == datetime.fromisoformat(due["due"]).date()
    assert statutory.decoded("DTEND") - statutory.decoded("DTSTART") == timedelta(days=1)
    assert due["name"] in str(statutory["SUMMARY"])
    description = str(statutory["DESCRIPTION"])
    assert due["name"] in description and due["basis"] in description
    assert statutory.walk("VALARM"), "a reminder before a statutory deadline"
    # The last day for a clarification: 15 days before the bid deadline (never lengthened).
    cutoff = found[f"cutoff-construction.clarification-deadline-{project}@jy.example.gov.cn"]
    last_day = datetime.fromisoformat(deadline).date() - timedelta(days=15)
    assert cutoff.decoded("DTSTART") == last_day
    assert "招标投标法 §23" in str(cutoff["DESCRIPTION"])

    # Asked again: the same bytes, the same UIDs; with its ETag, a 304.
    again = site.anyone.get(f"/api/projects/{project}/deadlines.ics")
    assert again.content == first.content
    cached = site.anyone.get(
        f"/api/projects/{project}/deadlines.ics", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert cached.status_code == 304

    # A clarification postpones the bid deadline: the same events, moved, a later SEQUENCE.
    later = at(days=40, hour=10, minute=0)
    site.staff.publish(project, "clarification", title="延期", data={"deadline": later})
    give_up = time.monotonic() + 10
    while True:
        moved, calendar = site.calendar(f"/api/projects/{project}/deadlines.ics")
        now_found = vevents(calendar)
        if now_found[cutoff["UID"]].decoded("DTSTART") != last_day or time.monotonic() > give_up:
            break
        time.sleep(0.05)
    assert set(now_found) == set(found)
    assert now_found[bid["UID"]].decoded("DTSTART") == datetime.fromisoformat(later)
    assert now_found[bid["UID"]]["SEQUENCE"] > bid["SEQUENCE"]
    moved_day = datetime.fromisoformat(later).date() - timedelta(days=15)
    assert now_found[cutoff["UID"]].decoded("DTSTART") == moved_day
    assert moved.headers["ETag"] != first.headers["ETag"]


def test_an_agencys_calendar_holds_its_projects_only(site: Site) -> None:
    site.staff.project("FD-AG-1", category="gov_procurement", agency="YW-ZFCG")
    site.staff.publish("FD-AG-1", "notice", title="采购公告", data={"deadline": at(days=25)})
    site.staff.project("FD-AG-2", category="construction", agency="YW-GGZY")
    site.staff.publish("FD-AG-2", "notice", title="招标公告", data={"deadline": at(days=26)})

    _, theirs = site.calendar("/api/deadlines.ics", agency="YW-ZFCG")
    uids = set(vevents(theirs))
    assert "key-deadline-FD-AG-1@jy.example.gov.cn" in uids
    assert not any(uid.endswith("-FD-AG-2@jy.example.gov.cn") for uid in uids)
    assert "义乌市政府采购中心" in str(theirs["X-WR-CALNAME"])
    _, tenders = site.calendar("/api/deadlines.ics", category="construction")
    assert "key-deadline-FD-AG-2@jy.example.gov.cn" in set(vevents(tenders))
    assert not any(uid.endswith("-FD-AG-1@jy.example.gov.cn") for uid in vevents(tenders))
    # Everyone's, and each project's events are those of its own calendar.
    everything, every = site.calendar("/api/deadlines.ics")
    _, own = site.calendar("/api/projects/FD-AG-2/deadlines.ics")
    assert set(vevents(own)) <= set(vevents(every))
    cached = site.anyone.get(
        "/api/deadlines.ics", headers={"If-None-Match": everything.headers["ETag"]}
    )
    assert cached.status_code == 304


# --- the cut-off's arithmetic, without a server ------------------------------------------------


@pytest.mark.parametrize("unit", [Unit.DAY, Unit.WORKDAY])
@pytest.mark.parametrize("after", [False, True])
def test_the_latest_start_is_the_last_day_that_meets_the_period(unit: Unit, after: bool) -> None:
    calendar = WorkCalendar.load()
    for offset in range(0, 400, 7):  # across the Spring Festival and National Day
        target = datetime(2026, 1, 3, 9, 30, tzinfo=BEIJING) + timedelta(days=offset)
        cutoff = calendar.latest_start(target, 15, unit, after).at
        assert calendar.at_least_met(cutoff, target, 15, unit, after).met
        next_day = cutoff + timedelta(days=1)
        assert not calendar.at_least_met(next_day, target, 15, unit, after).met
        assert cutoff.date() < target.date() and isinstance(cutoff.date(), date)


# --- renderings kept by version, without a server ----------------------------------------------


def test_a_rendering_is_made_once_per_version_and_a_costly_one_at_most_once_a_while() -> None:
    made: list[str] = []

    def renderer(version: str) -> Any:
        async def render() -> tuple[bytes, datetime | None]:
            made.append(version)
            return version.encode(), None

        return render

    async def scenario() -> None:
        kept = Renderings(kept=2)
        first = await kept.get_or_render("v1", renderer("v1"))
        assert (await kept.get_or_render("v1", renderer("v1"))) is first
        assert first.etag == Renderings.etag("v1") != Renderings.etag("v2")
        # A costly rendering: a newer version within the window gets the kept one.
        assert kept.throttled("agency", "v1", 60) == "v1"
        assert kept.throttled("agency", "v2", 60) == "v1"
        assert kept.throttled("agency", "v2", 0) == "v2"
        await kept.get_or_render("v2", renderer("v2"))
        await kept.get_or_render("v3", renderer("v3"))  # only two are kept: v1 goes
        await kept.get_or_render("v1", renderer("v1"))

    asyncio.run(scenario())
    assert made == ["v1", "v2", "v3", "v1"]
