"""「RSS」 and 「订阅到日历」 in the app: on a project's page and on a category's or agency's
list, each link leading to a feed or calendar a reader or a phone can read.

A real `sunbid serve`, a real chromium at 360 px in Chinese (and once as an Android phone);
each link's target is fetched as the subscriber would (webcal:// is the http URL under
another scheme) and parsed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import icalendar
import pytest
from playwright.sync_api import expect

from tests.browser import visit
from tests.conftest import FAR, ServerProcess, Staff

A = "{http://www.w3.org/2005/Atom}"
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0 Mobile Safari/537.36"
)


class Site:
    def __init__(self, data_dir: Path) -> None:
        self.server = ServerProcess(data_dir).start()
        self.staff = Staff(self.server, self.server.token("pwa-feeds"))
        self.url = self.server.url
        self.staff.project("PF-1")
        self.notice = self.staff.publish("PF-1", "notice", title="某工程施工招标公告")

    def atom(self, href: str) -> ET.Element:
        response = httpx.get(self.url + href if href.startswith("/") else href, timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/atom+xml")
        return ET.fromstring(response.content)

    def ics(self, href: str) -> icalendar.Calendar:
        url = href.replace("webcal://", "http://", 1) if href.startswith("webcal:") else href
        response = httpx.get(self.url + url if url.startswith("/") else url, timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/calendar")
        return icalendar.Calendar.from_ical(response.content)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = Site(tmp_path_factory.mktemp("pwa-feeds") / "data")
    yield running
    running.staff.client.close()
    running.server.stop()


def uids(calendar: icalendar.Calendar) -> set[str]:
    return {str(event["UID"]) for event in calendar.walk("VEVENT")}


def test_a_projects_page_links_its_feed_and_calendar(site: Site, page: Any) -> None:
    visit(page, f"{site.url}/p/PF-1")
    links = page.locator("[data-testid=subscribe]")
    expect(links.locator("[data-testid=rss-link]")).to_have_text("RSS")
    expect(links.locator("[data-testid=calendar-link]")).to_have_text("订阅到日历")

    feed = site.atom(links.locator("[data-testid=rss-link]").get_attribute("href") or "")
    ids = [e.findtext(f"{A}id") for e in feed.findall(f"{A}entry")]
    assert any(i and i.endswith(f"/{site.notice['seq']}") for i in ids), ids

    webcal = links.locator("[data-testid=calendar-link]").get_attribute("href") or ""
    assert webcal.startswith("webcal://127.0.0.1:")  # a subscription on iPhone and Mac
    assert any(u.startswith("key-deadline-PF-1@") for u in uids(site.ics(webcal)))
    plain = links.locator("[data-testid=ics-link]").get_attribute("href") or ""
    assert uids(site.ics(plain)) == uids(site.ics(webcal))
    [deadline] = [e for e in site.ics(plain).walk("VEVENT") if e["UID"].startswith("key-deadline-")]
    assert deadline.decoded("DTSTART") == datetime.fromisoformat(FAR)


def test_a_category_and_agency_list_links_their_feed_and_calendar(site: Site, page: Any) -> None:
    visit(page, f"{site.url}/?category=construction&agency=YW-GGZY")
    links = page.locator("[data-testid=subscribe]")
    rss = links.locator("[data-testid=rss-link]").get_attribute("href") or ""
    assert parse_qs(urlsplit(rss).query)["topics"] == ["category:construction,agency:YW-GGZY"]
    assert site.atom(rss).findall(f"{A}entry"), "the feed has the category's events"
    ics = links.locator("[data-testid=ics-link]").get_attribute("href") or ""
    assert parse_qs(urlsplit(ics).query) == {"agency": ["YW-GGZY"], "category": ["construction"]}
    assert any(u.startswith("key-deadline-PF-1@") for u in uids(site.ics(ics)))
    # Without a category or agency chosen there is nothing particular to subscribe to.
    page.locator("[data-testid=clear-filters]").click()
    expect(page.locator("[data-testid=subscribe]")).to_have_count(0)


def test_on_android_the_calendar_link_adds_the_subscription_to_google_calendar(
    site: Site, browser: Any
) -> None:
    android = browser.new_context(
        viewport={"width": 360, "height": 740}, is_mobile=True, user_agent=ANDROID
    )
    try:
        page = android.new_page()
        visit(page, f"{site.url}/p/PF-1")
        href = page.locator("[data-testid=calendar-link]").get_attribute("href") or ""
        assert href.startswith("https://calendar.google.com/calendar/r?cid=webcal")
        [webcal] = parse_qs(urlsplit(href).query)["cid"]
        assert any(u.startswith("key-deadline-PF-1@") for u in uids(site.ics(webcal)))
    finally:
        android.close()
