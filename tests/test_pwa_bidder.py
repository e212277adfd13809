"""The bidder's app on a phone: list, project, follow, live updates, restarts, offline.

A real `sunbid serve` (with the demo projects for the list), a real chromium at
360 px, and events published through the staff API as the trading centre would.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import (
    RECORD_STAGES,
    BrowserErrors,
    project_links,
    timeline_seqs,
    unnamed_controls,
    visit,
    wait_ready,
    wait_until,
)
from tests.conftest import ServerProcess, Staff

LIVE_WITHIN = 1.0  # seconds from the publisher's 201 to the bidder's screen
DEMO_PROJECT = "YW-GC-2026-0141"
NOT_LIVE = re.compile("^(connecting|offline)$")
PAGES = ("/", "/p/{id}", "/follows", "/mine", "/request", "/catalog", "/staff")


@dataclass
class Site:
    server: ServerProcess
    token: str
    staff: Staff

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def seqs(self, project: str) -> list[int]:
        return [e["seq"] for e in self.api(f"/api/projects/{project}")["timeline"]]


def start_site(data_dir: Path, **env: str) -> Site:
    server = ServerProcess(data_dir, **env).start()
    token = server.token("pwa-admin")
    return Site(server, token, Staff(server, token))


def stop_site(site: Site) -> None:
    site.staff.client.close()
    if site.server.process is not None:
        site.server.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One server with the demo projects for the tests that only add their own projects."""
    running = start_site(tmp_path_factory.mktemp("pwa") / "data", SUNBID_DEMO="1")
    yield running
    stop_site(running)


def open_project(site: Site, page: Any, project: str) -> None:
    visit(page, f"{site.url}/p/{project}")
    expect(page.locator("h1")).to_contain_text(site.api(f"/api/projects/{project}")["title"])


def follow(page: Any, project: str) -> None:
    button = page.locator("button[data-testid=follow]")
    expect(button).to_have_attribute("aria-pressed", "false")
    button.click()
    expect(button).to_have_attribute("aria-pressed", "true")
    follows = json.loads(page.evaluate("localStorage.getItem('sunbid.follows') || '[]'"))
    assert f"project:{project}" in follows, follows


def live_status(page: Any) -> Any:
    return page.locator("[data-testid=live-status]")


def wait_timeline(site: Site, page: Any, project: str, timeout: float = 10.0) -> list[int]:
    """Until the page's timeline is exactly the project's events as the API serves them."""
    wanted = site.seqs(project)
    wait_until(lambda: timeline_seqs(page) == wanted, f"timeline {wanted}", timeout)
    return wanted


# --- the list -------------------------------------------------------------------------------


def test_list_shows_latest_activity_first_and_filters(site: Site, page: Any) -> None:
    visit(page, site.url + "/")
    expected = [f"/p/{p['id']}" for p in site.api("/api/projects")["items"]]
    shown = project_links(page)
    assert shown and shown == expected[: len(shown)], (shown, expected)

    def shows(query: str) -> None:
        wanted = [f"/p/{p['id']}" for p in site.api(f"/api/projects?{query}")["items"]]
        assert wanted, f"the demo has projects for {query}"
        wait_until(
            lambda: (
                project_links(page)[: len(wanted)] == wanted
                and len(project_links(page)) == len(wanted)
            ),
            f"the list filtered by {query}: {wanted}",
        )

    page.select_option("select[name=category]", "construction")
    shows("category=construction")
    page.select_option("select[name=stage]", "award")
    shows("category=construction&stage=award")
    page.select_option("select[name=category]", "")
    page.select_option("select[name=stage]", "")
    region = page.eval_on_selector(
        "select[name=region]", "s => [...s.options].map(o => o.value).find(v => v)"
    )
    assert region, "the region filter offers the regions of the projects"
    page.select_option("select[name=region]", region)
    shows(f"region={region}")
    page.select_option("select[name=region]", "")

    search = page.locator("input[type=search][name=q]")
    search.fill("排污权")
    search.press("Enter")
    shows("q=排污权")


def test_list_names_agencies_and_regions(site: Site, page: Any) -> None:
    visit(page, f"{site.url}/?q={DEMO_PROJECT}")
    card = page.locator(f'a[data-testid=project-link][href="/p/{DEMO_PROJECT}"]')
    expect(card).to_contain_text("义乌市公共资源交易中心 · 稠城街道")
    expect(card).not_to_contain_text("YW-GGZY")
    option = page.locator("select[name=agency] option[value=YW-GGZY]")
    expect(option).to_have_text("义乌市公共资源交易中心")


# --- follow and live ------------------------------------------------------------------------


def test_followed_project_shows_a_published_event_within_a_second(site: Site, page: Any) -> None:
    project = "PW-LIVE-1"
    site.staff.project(project)
    site.staff.publish(project, "notice")

    visit(page, site.url + "/")
    link = page.locator(f'a[data-testid=project-link][href="/p/{project}"]')
    assert project_links(page)[0] == f"/p/{project}", "the newest activity comes first"
    link.click()
    page.wait_for_url(f"**/p/{project}")
    wait_ready(page)
    expect(page.locator("h1")).to_contain_text(f"测试项目 {project}")
    assert timeline_seqs(page) == site.seqs(project)

    follow(page, project)
    expect(live_status(page)).to_have_attribute("data-state", "live")
    page.evaluate("window.sameDocument = true")

    started = time.monotonic()
    event = site.staff.publish(project, "clarification")
    published = time.monotonic()
    item = page.locator(f'li[data-testid=timeline-event][data-seq="{event["seq"]}"]')
    item.wait_for(state="attached", timeout=5_000)
    seen = time.monotonic()
    assert seen - published < LIVE_WITHIN, (
        f"the event took {seen - published:.3f} s to appear"
        f" (its 201 took {published - started:.3f} s)"
    )
    assert page.evaluate("window.sameDocument === true"), "the page was reloaded"
    expect(item).to_have_class(_has("is-new"))
    earlier = page.locator("li[data-testid=timeline-event]").last  # newest first: the oldest
    expect(earlier).not_to_have_class(_has("is-new"))  # only what arrived live is marked
    assert timeline_seqs(page) == site.seqs(project)
    wait_until(
        lambda: int(page.evaluate("localStorage.getItem('sunbid.cursor')") or 0) >= event["seq"],
        "the resume cursor to reach the event",
    )

    visit(page, site.url + "/follows")
    follows = page.locator("[data-testid=follows]")
    expect(follows).to_contain_text(project)


def test_reconnects_after_a_restart_and_catches_up_without_gap(
    tmp_path: Path, page: Any, browser_errors: BrowserErrors
) -> None:
    site = start_site(tmp_path / "data")
    try:
        project = "PW-RESTART-1"
        site.staff.project(project)
        site.staff.publish(project, "notice")
        open_project(site, page, project)
        follow(page, project)
        expect(live_status(page)).to_have_attribute("data-state", "live")

        browser_errors.expect_offline()  # the page keeps trying while the server is down
        site.staff.client.close()
        site.server.stop()
        expect(live_status(page)).to_have_attribute("data-state", NOT_LIVE)
        site.server.start()
        site.staff = Staff(site.server, site.token)
        # Published the moment the server is back, while the page waits out its reconnect
        # delay (250 ms or more): only the catch-up from its cursor can bring this one.
        missed = site.staff.publish(project, "clarification")
        expect(live_status(page)).to_have_attribute("data-state", "live", timeout=20_000)
        after = site.staff.publish(project, "evaluation")

        seqs = wait_timeline(site, page, project)
        assert missed["seq"] in seqs and after["seq"] in seqs
        timeline = site.api(f"/api/projects/{project}")["timeline"]
        published = [e["seq"] for e in timeline if e["stage"] not in RECORD_STAGES]
        assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs)
        assert len(published) == 3 and set(published) <= set(seqs), (published, seqs)
        cursor = int(page.evaluate("localStorage.getItem('sunbid.cursor')") or 0)
        assert cursor >= after["seq"], cursor
    finally:
        stop_site(site)


def test_offline_reload_shows_the_list_and_projects_seen(
    site: Site, context: Any, page: Any, browser_errors: BrowserErrors
) -> None:
    project = "PW-OFFLINE-1"
    site.staff.project(project)
    for stage in ("notice", "clarification"):
        site.staff.publish(project, stage)

    visit(page, site.url + "/")
    page.evaluate("async () => { await navigator.serviceWorker.ready; return true; }")
    if not page.evaluate("!!navigator.serviceWorker.controller"):
        page.reload()  # a worker that does not claim open pages controls them from the next load
        wait_ready(page)
    assert page.evaluate("!!navigator.serviceWorker.controller"), "the service worker controls /"
    worker = page.evaluate(
        """async () => {
            const registration = await navigator.serviceWorker.ready;
            return [registration.scope, registration.active.scriptURL];
        }"""
    )
    assert worker == [site.url + "/", site.url + "/sw.js"], worker
    expect(page.locator(f'a[data-testid=project-link][href="/p/{project}"]')).to_be_visible()
    expect(page.locator("[data-testid=offline]")).to_be_hidden()
    open_project(site, page, project)
    wanted = wait_timeline(site, page, project)
    expect(live_status(page)).to_have_attribute("data-state", "live")

    browser_errors.expect_offline()
    context.set_offline(True)
    page.reload()
    wait_ready(page)
    expect(page.locator("h1")).to_contain_text(f"测试项目 {project}")
    assert timeline_seqs(page) == wanted
    expect(page.locator("[data-testid=offline]")).to_be_visible()
    expect(live_status(page)).to_have_attribute("data-state", "offline")

    visit(page, site.url + "/")
    expect(page.locator(f'a[data-testid=project-link][href="/p/{project}"]')).to_be_visible()
    expect(page.locator("[data-testid=offline]")).to_be_visible()

    # Back online: live again without a reload; fresh data, and the banner is gone.
    context.set_offline(False)
    expect(live_status(page)).to_have_attribute("data-state", "live", timeout=20_000)
    visit(page, site.url + "/")
    expect(page.locator("[data-testid=offline]")).to_be_hidden()


def test_project_shows_its_open_deadlines_with_the_legal_basis(site: Site, page: Any) -> None:
    project = "PW-DEADLINE-1"
    site.staff.project(project)
    site.staff.publish(project, "notice")  # an award needs a notice
    site.staff.publish(project, "award")  # the contract is due within 30 days (招标投标法 §46)
    deadlines = site.api(f"/api/projects/{project}")["deadlines"]
    assert deadlines, "the award opens a statutory deadline"
    open_project(site, page, project)
    shown = page.locator("[data-testid=deadlines] > [data-testid=deadline]")
    expect(shown).to_have_count(len(deadlines))
    for deadline in deadlines:
        # Cited as the statute books write it: 招标投标法 第四十六条, not §46.
        expect(shown.filter(has_text=citation(deadline["basis"]))).to_have_count(1)
    expect(shown.filter(has_text="§")).to_have_count(0)


# --- accessibility and language -------------------------------------------------------------


def test_main_pages_are_accessible_and_switch_language(site: Site, page: Any) -> None:
    project = DEMO_PROJECT  # its whole process, done: the richest page there is
    problems: list[str] = []
    for path in PAGES:
        visit(page, site.url + path.format(id=project))
        if page.locator("h1").count() != 1:
            problems.append(f"{path}: {page.locator('h1').count()} h1 elements")
        if page.locator("main, [role=main]").count() != 1:
            problems.append(f"{path}: {page.locator('main, [role=main]').count()} main landmarks")
        problems += [f"{path}: unnamed {control}" for control in unnamed_controls(page)]
        if page.evaluate("document.documentElement.lang") != "zh-CN":
            problems.append(f"{path}: <html lang={page.evaluate('document.documentElement.lang')}>")
        if path == "/catalog":
            expect(page.locator("[data-testid=catalog]")).to_be_visible()
            expect(page.locator("[data-testid=scorecard]")).to_be_visible()
    assert not problems, "\n".join(problems)

    # By keyboard alone: Tab reaches the follow button, Enter presses it.
    visit(page, f"{site.url}/p/{project}")
    follow_button = page.locator("button[data-testid=follow]")
    for _ in range(40):
        page.keyboard.press("Tab")
        if follow_button.evaluate("b => b === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the follow button")
    page.keyboard.press("Enter")
    expect(follow_button).to_have_attribute("aria-pressed", "true")

    heading = page.locator("h1").inner_text()
    page.locator("button[data-testid=lang]").click()
    expect(page.locator("html")).to_have_attribute("lang", _starts("en"))
    assert page.locator("h1").inner_text(), "the title is still shown"
    english = page.locator("button[data-testid=follow]").inner_text()
    page.locator("button[data-testid=lang]").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    assert page.locator("h1").inner_text() == heading
    chinese = page.locator("button[data-testid=follow]").inner_text()
    assert chinese != english, "the labels follow the language"


DIGITS = "零一二三四五六七八九"


def chinese_number(n: int) -> str:
    """24 → 二十四, 105 → 一百零五 (up to 999, as article numbers go)."""
    if n < 10:
        return DIGITS[n]
    if n < 20:
        return "十" + (DIGITS[n % 10] if n % 10 else "")
    if n < 100:
        return DIGITS[n // 10] + "十" + (DIGITS[n % 10] if n % 10 else "")
    rest = n % 100
    tail = (
        ""
        if not rest
        else "零" + DIGITS[rest]
        if rest < 10
        else "一" + chinese_number(rest)
        if rest < 20
        else chinese_number(rest)
    )
    return DIGITS[n // 100] + "百" + tail


def citation(basis: str) -> str:
    return re.sub(r"§\s*(\d+)", lambda m: f"第{chinese_number(int(m.group(1)))}条", basis)


def _has(css_class: str) -> re.Pattern[str]:
    return re.compile(rf"(^|\s){re.escape(css_class)}(\s|$)")


def _starts(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}")
