"""What a bidder needs first, on a phone: the key dates of a project with a countdown, the list's
open-for-bids filter, each category's own stage names, and facts exactly as published.

A real `sunbid serve` (with the demo projects), a real chromium at 360 px in Chinese, and events
published through the staff API as the trading centre would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import project_links, timeline_seqs, visit, wait_until
from tests.conftest import ServerProcess, Staff

BEIJING = timezone(timedelta(hours=8))
SCREEN_HEIGHT = 740  # tests/browser.py PHONE
LAND_SALE = "YW-TD-2026-0017"  # the demo's land sale: a notice, then a clarification


class Site:
    def __init__(self, data_dir: Path) -> None:
        self.server = ServerProcess(data_dir, SUNBID_DEMO="1").start()
        self.staff = Staff(self.server, self.server.token("pwa-key-dates"))
        self.url = self.server.url

    def api(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def vocabulary(self) -> Any:
        return self.api("/api/categories")

    def publish(
        self, project: str, stage: str, data: dict[str, Any], **fields: Any
    ) -> dict[str, Any]:
        """A publication carrying `data`, plus whatever else the vocabulary requires of it
        (and nothing more: another closing date would change the project's closes_at)."""
        body = {"stage": stage, "title": f"{stage} 公告", **fields}
        body["data"] = {**self.required(project, stage), **data}
        response = self.staff.client.post(f"/api/projects/{project}/events", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def required(self, project: str, stage: str) -> dict[str, Any]:
        vocabulary = self.vocabulary()
        category = self.api(f"/api/projects/{project}")["category"]
        [entry] = [c for c in vocabulary["items"] if c["code"] == category]
        [own] = [s for s in entry["stages"] if s["code"] == stage]
        fields = vocabulary.get("fields", {})
        return {key: example(fields.get(key, {}).get("kind")) for key in own.get("required", [])}


def example(kind: str | None) -> Any:
    """A plausible value of a kind, for a required fact a test does not care about."""
    if kind in ("datetime", "date"):
        return at(days=30)
    if kind in ("amount", "number", "integer"):
        return 1000
    if kind == "percent":
        return 0.1
    if kind == "boolean":
        return True
    if kind == "list":
        return ["一项"]
    return "测试"


def at(days: float = 0, hour: int = 9, minute: int = 30) -> str:
    """A Beijing time `days` from now at hour:minute, as staff publish it."""
    moment = (datetime.now(BEIJING) + timedelta(days=days)).replace(
        hour=hour, minute=minute, second=0, microsecond=0
    )
    return moment.isoformat()


def written(moment: str) -> str:
    """How the app writes a moment: 2026年12月18日 09:30 (24:00 for the last instant of a day)."""
    when = datetime.fromisoformat(moment)
    time = "24:00" if (when.hour, when.minute, when.second) == (23, 59, 59) else f"{when:%H:%M}"
    return f"{when.year}年{when.month}月{when.day}日 {time}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = Site(tmp_path_factory.mktemp("pwa-key-dates") / "data")
    yield running
    running.staff.client.close()
    running.server.stop()


# --- key dates --------------------------------------------------------------------------------


def test_a_tender_still_open_shows_its_deadline_first_with_a_countdown(
    site: Site, page: Any
) -> None:
    project = "PW-KEY-1"
    site.staff.project(project)
    first = at(days=20)
    site.publish(project, "notice", {"deadline": first})
    # A clarification that moves the deadline replaces the notice's.
    deadline = at(days=25, hour=10, minute=0)
    site.publish(project, "clarification", {"deadline": deadline, "deadline_changed": True})

    visit(page, f"{site.url}/p/{project}")
    panel = page.locator("[data-testid=key-dates]")
    expect(panel).to_be_visible()
    top = panel.bounding_box()
    assert top and top["y"] < SCREEN_HEIGHT / 2, f"the key dates open the page: {top}"
    close = panel.locator("[data-testid=key-date][data-field=deadline]")
    expect(close).to_have_count(1)
    expect(close).to_contain_text(written(deadline))
    expect(close).not_to_contain_text(written(first))
    expect(close.locator(".countdown")).to_have_text(re.compile(r"^还有 2[45] 天( \d+ 小时)?$"))
    # Bids are opened when they close: the opening time is the deadline, here and in 接下来.
    expect(panel.locator("[data-testid=key-date][data-field=bid_opening]")).to_contain_text(
        written(deadline)
    )
    opening = page.locator("#next > li[data-stage=bid_opening] [data-testid=next-date]")
    expect(opening).to_contain_text(written(deadline))

    # The timeline: the current stage first, older steps behind a control.
    seqs = site.api(f"/api/projects/{project}")["timeline"]
    assert timeline_seqs(page) == [e["seq"] for e in seqs]
    events = page.locator("[data-testid=timeline] > li[data-testid=timeline-event]")
    expect(events.first).to_have_attribute("data-stage", "clarification")
    expect(events.first).to_have_attribute("aria-current", "step")
    notice = page.locator("li[data-testid=timeline-event][data-stage=notice]")
    expect(notice).to_be_hidden()
    toggle = page.locator("[data-testid=older-toggle]")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(notice).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")


def test_a_closed_tender_says_so(site: Site, page: Any) -> None:
    project = "PW-KEY-2"
    site.staff.project(project)
    past = at(days=-1)
    site.publish(project, "notice", {"deadline": past})
    visit(page, f"{site.url}/p/{project}")
    close = page.locator("[data-testid=key-dates] [data-testid=key-date][data-field=deadline]")
    expect(close).to_contain_text(written(past))
    expect(close.locator(".countdown")).to_have_text("已截止")


def test_a_step_published_late_is_marked_on_the_timeline(site: Site, page: Any) -> None:
    project = "PW-LATE-1"
    site.staff.project(project)
    site.publish(project, "notice", {"deadline": at(days=-55)}, occurred_at=at(days=-80))
    site.publish(
        project,
        "award",
        {"winner": "义乌市某建设有限公司", "amount": 1000000},
        occurred_at=at(days=-45),
    )
    # The contract is due within 30 days of the award: signed 40 days after it.
    contract = site.publish(
        project, "contract", {"signed_at": at(days=-5)}, occurred_at=at(days=-5)
    )
    items = site.api(f"/api/compliance/items?project={project}&status=late")["items"]
    [late] = [item for item in items if item["target_seq"] == contract["seq"]]
    days = (datetime.fromisoformat(late["done_at"]) - datetime.fromisoformat(late["due_at"])).days

    visit(page, f"{site.url}/p/{project}")
    step = page.locator(f'li[data-testid=timeline-event][data-seq="{contract["seq"]}"]')
    mark = step.locator("[data-testid=late]")
    expect(mark).to_contain_text(re.compile(rf"逾期 ({days}|{days + 1}) 天"))
    expect(mark).to_contain_text(f"应于 {written(late['due_at'])} 前公开")
    expect(page.locator("[data-testid=late]")).to_have_count(len(items))


# --- the list ---------------------------------------------------------------------------------


def test_the_open_for_bids_filter_and_the_cards_next_date(site: Site, page: Any) -> None:
    soon, later, closed = "PW-OPEN-SOON", "PW-OPEN-LATER", "PW-OPEN-CLOSED"
    for project in (soon, later, closed):
        site.staff.project(project)
    soon_at, later_at = at(days=2), at(days=30)
    site.publish(soon, "notice", {"deadline": soon_at})
    site.publish(later, "notice", {"deadline": later_at})
    site.publish(closed, "notice", {"deadline": at(days=-2)})

    def shows(query: str) -> list[str]:
        wanted = [f"/p/{p['id']}" for p in site.api(f"/api/projects?{query}")["items"]]
        wait_until(lambda: project_links(page) == wanted, f"the list for {query}: {wanted}")
        return wanted

    visit(page, site.url + "/")
    page.select_option("select[name=status]", "open")
    opened = shows("status=open")
    assert f"/p/{soon}" in opened and f"/p/{later}" in opened, opened
    assert f"/p/{closed}" not in opened, opened
    chip = page.locator("[data-testid=filter-chip][data-filter=status]")
    expect(chip).to_contain_text("投标中")

    card = page.locator(f'a[data-testid=project-link][href="/p/{later}"]')
    date = datetime.fromisoformat(later_at)
    year = "" if date.year == datetime.now(BEIJING).year else f"{date.year}年"
    expect(card.locator("[data-testid=next-key-date]")).to_have_text(
        re.compile(rf"^投标截止 {year}{date.month}月{date.day}日 09:30 · 还有 (29|30) 天")
    )

    page.select_option("select[name=sort]", "closes")
    ordered = shows("status=open&sort=closes")
    assert ordered.index(f"/p/{soon}") < ordered.index(f"/p/{later}"), ordered

    page.select_option("select[name=status]", "closing")
    closing = shows("status=closing&sort=closes")
    assert f"/p/{soon}" in closing and f"/p/{later}" not in closing, closing
    expect(chip).to_contain_text("即将截止")

    # Chips say which filter they are; 清除筛选 removes them all, and the URL follows.
    page.select_option("select[name=category]", "construction")
    expect(page.locator("[data-testid=filter-chip][data-filter=category]")).to_have_text(
        re.compile("^类别：工程建设")
    )
    page.locator("[data-testid=clear-filters]").click()
    expect(page.locator("[data-testid=filter-chip]")).to_have_count(0)
    assert page.evaluate("() => location.search") == ""
    shows("")


def test_search_takes_several_words(site: Site, page: Any) -> None:
    visit(page, site.url + "/")
    search = page.locator("input[type=search][name=q]")
    search.fill("义乌 道路")
    search.press("Enter")
    wanted = [f"/p/{p['id']}" for p in site.api("/api/projects?q=义乌 道路")["items"]]
    assert wanted, "the demo has a road project in Yiwu"
    wait_until(lambda: project_links(page) == wanted, f"the search result {wanted}")
    chip = page.locator("[data-testid=filter-chip][data-filter=q]")
    expect(chip).to_have_text(re.compile("^搜索：义乌 道路"))
    chip.click()
    expect(search).to_have_value("")


# --- copy -------------------------------------------------------------------------------------


def test_a_land_sale_shows_its_own_stage_names(site: Site, page: Any) -> None:
    visit(page, f"{site.url}/p/{LAND_SALE}")
    page.locator("[data-testid=older-toggle]").click()
    notice = page.locator("li[data-testid=timeline-event][data-stage=notice] h3 .stage")
    expect(notice).to_have_text("出让公告")
    assert "招标/采购" not in page.locator("main").inner_text()
    assert "§" not in page.locator("main").inner_text()
    for label in ("依据二手资料", "待核实", "依据法规原文"):
        assert label not in page.locator("main").inner_text(), label

    visit(page, f"{site.url}/?category=land")
    expect(page.locator("select[name=stage] option[value=notice]")).to_have_text("出让公告")


def test_tap_targets_are_44_px(site: Site, page: Any) -> None:
    small: list[str] = []
    for path in (f"/p/{LAND_SALE}", "/?status=open&category=land"):
        visit(page, site.url + path)
        toggle = page.locator("[data-testid=older-toggle]")
        if toggle.count() and toggle.is_visible():
            toggle.click()  # every step shown, with its links
        small += page.eval_on_selector_all(
            "main a, main button, main select, main input",
            """items => items.filter(el => el.getClientRects().length)
                .map(el => [el.getBoundingClientRect().height, el.outerHTML.slice(0, 100)])
                .filter(([height]) => height < 44)
                .map(([height, html]) => `${height}px ${html}`)""",
        )
    assert not small, "\n".join(small)


# --- facts, exactly as published -----------------------------------------------------------------


def test_facts_are_shown_exactly_as_published_with_names_and_units(site: Site, page: Any) -> None:
    project = "PW-EXACT-1"
    site.staff.project(project, category="mining")
    site.publish(
        project,
        "notice",
        {
            "area_km2": 0.0935,
            "start_price": "1285万元",
            "deposit": 12850000,
            "mystery_ratio": 0.125,
            "indicators": [
                {"pollutant": "COD", "tonnes_per_year": 2.5},
                {"pollutant": "NH3-N", "tonnes_per_year": 0.25},
            ],
        },
    )
    fields = site.vocabulary()["fields"]
    visit(page, f"{site.url}/p/{project}")
    notice = page.locator("li[data-testid=timeline-event][data-stage=notice]")

    def fact(key: str) -> tuple[Any, Any]:
        return notice.locator(f"dt[data-field={key}]"), notice.locator(f"dd[data-field={key}]")

    label, value = fact("area_km2")
    expect(label).to_have_text(fields["area_km2"]["zh"])
    unit = (fields["area_km2"].get("unit") or {}).get("zh", "")
    expect(value).to_have_text(f"0.0935 {unit}".strip())
    label, value = fact("start_price")
    expect(value).to_have_text("1285万元")  # as staff wrote it
    label, value = fact("deposit")
    expect(label).to_have_text(fields["deposit"]["zh"])
    expect(value).to_have_text("12,850,000 元")
    label, value = fact("mystery_ratio")
    expect(label).to_have_text("mystery_ratio")  # not in the vocabulary: its key, never dropped
    expect(value).to_have_text("0.125")
    label, value = fact("indicators")
    expect(value.locator("li")).to_have_count(2)
    expect(value.locator("li").nth(1)).to_contain_text("0.25")


def test_numbers_and_citations_are_written_exactly(site: Site, page: Any) -> None:
    """The app's own formats, as the page runs them: never rounded, cited as the books do."""
    visit(page, site.url + "/")
    written = page.evaluate(
        """async () => {
            const parts = await import('/static/js/views/parts.js');
            return {
                numbers: [0.0935, 12680000, 2.5, -1234.5].map(parts.exactNumber),
                budgets: [11586000, 12850000, 4520.5, 123456789.12].map((n) => parts.budgetText(n)),
                text: parts.factValue('start_price', '1285万元', {}),
                bases: ['招标投标法 §46', '实施条例 §10', '§21', '§105', '§110']
                    .map(parts.citation),
                moment: parts.dateTime('2026-12-18T23:59:59+08:00'),
            };
        }"""
    )
    assert written["numbers"] == ["0.0935", "12,680,000", "2.5", "-1,234.5"], written
    assert written["budgets"] == ["1,158.6 万元", "1,285 万元", "4,520.5 元", "12,345.678912 万元"]
    assert written["text"] == "1285万元"
    assert written["bases"] == [
        "招标投标法 第四十六条",
        "实施条例 第十条",
        "第二十一条",
        "第一百零五条",
        "第一百一十条",
    ], written
    assert written["moment"] == "2026年12月18日 24:00"
