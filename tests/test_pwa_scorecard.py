"""The scorecard you can tap, in a real browser: from an agency's late figure to each late
item, its rule in words and due vs done, and on to the project; a notice period left
too short reads 时限不足, never 已超期."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser import visit
from tests.conftest import ServerProcess, Staff
from tests.targets import small_targets

BEIJING = timezone(timedelta(hours=8))


def days_ago(days: int) -> str:
    return (datetime.now(BEIJING) - timedelta(days=days)).isoformat(timespec="seconds")


def test_drill_down_from_the_late_figure_to_the_project(
    server: ServerProcess, staff: Staff, page: Any
) -> None:
    # 收到评标报告之日起3日内公示中标候选人: the report came ten days ago, the publicity today.
    staff.project("PW-LATE-1", must_tender=True)
    staff.publish("PW-LATE-1", "evaluation", occurred_at=days_ago(10))
    staff.publish("PW-LATE-1", "candidates")
    # A publicity period of at least 3 days, cut short by an award the same day.
    staff.project("PW-SHORT-1", must_tender=True)
    staff.publish("PW-SHORT-1", "notice", occurred_at=days_ago(40), data={"deadline": days_ago(15)})
    staff.publish("PW-SHORT-1", "candidates")
    staff.publish("PW-SHORT-1", "award", data={"winner": "某某建设有限公司", "amount": 1200000})

    visit(page, server.url + "/catalog")
    card = page.locator("[data-testid=scorecard] > li[data-agency=YW-GGZY]")
    late = card.locator("button[data-testid=drill-late]")
    expect(late).to_be_visible()
    assert late.bounding_box()["height"] >= 44
    late.click()
    expect(late).to_have_attribute("aria-expanded", "true")
    items = card.locator("[data-testid=item]")
    expect(items.first).to_be_visible()

    slow = card.locator("[data-testid=item][data-project=PW-LATE-1]")
    expect(slow).to_contain_text("公示中标候选人")  # the rule, in words
    expect(slow).to_contain_text("已逾期")
    expect(slow).to_contain_text("应于")  # due …
    expect(slow).to_contain_text("实际")  # … vs done
    expect(slow).to_contain_text("第五十四条")  # the basis as the statute book writes it
    expect(slow).not_to_contain_text("§")
    # Too short is not late: it has a figure and a list of its own.
    expect(card.locator("[data-testid=item]").filter(has_text="时限不足")).to_have_count(0)
    card.locator("button[data-testid=drill-too_short]").click()
    short = card.locator("[data-testid=item][data-project=PW-SHORT-1]")
    expect(short).to_contain_text("时限不足")
    expect(short).not_to_contain_text("已超期")
    expect(late).to_have_attribute("aria-expanded", "false")
    assert small_targets(page) == []

    late.click()
    slow.locator("a[data-testid=item-project]").click()
    page.wait_for_url(server.url + "/p/PW-LATE-1")
    expect(page.locator("h1")).to_contain_text("PW-LATE-1")


def test_the_month_selector_shows_that_month_only(
    server: ServerProcess, staff: Staff, page: Any
) -> None:
    staff.project("PW-MONTH-1", must_tender=True)
    staff.publish("PW-MONTH-1", "evaluation", occurred_at=days_ago(10))
    staff.publish("PW-MONTH-1", "candidates")
    visit(page, server.url + "/catalog")
    # A late item counts in the month it was due: three days after the report.
    due_month = (datetime.now(BEIJING) - timedelta(days=7)).strftime("%Y-%m")
    month = page.locator("select[data-testid=month]")
    month.select_option(due_month)
    page.wait_for_url(f"{server.url}/catalog?month={due_month}")
    page.wait_for_function("() => window.sunbid.ready")
    expect(page.locator("select[data-testid=month]")).to_have_value(due_month)
    expect(
        page.locator("[data-testid=scorecard] > li[data-agency=YW-GGZY] [data-testid=drill-late]")
    ).to_be_visible()
    # A month long before any of it: nothing due, nothing to tap.
    visit(page, server.url + "/catalog?month=2001-01")
    expect(page.locator("[data-testid=drill-late]")).to_have_count(0)


def test_local_practice_is_counted_apart_from_the_law(
    server: ServerProcess, staff: Staff, page: Any
) -> None:
    # 农村产权: 竞价结束后10个工作日内公布交易结果 is local practice, not law. The result
    # comes a month after the bidding (and the bidding on the notice's publication day).
    staff.project("PW-RURAL-1", category="rural_property", agency="YW-NCCQ")
    staff.publish(
        "PW-RURAL-1", "notice", occurred_at=days_ago(60), data={"listing_ends": days_ago(30)}
    )
    staff.publish("PW-RURAL-1", "auction", occurred_at=days_ago(30))
    staff.publish("PW-RURAL-1", "award")
    # The same agency misses a statutory limit too: 收到评标报告之日起3日内公示中标候选人.
    staff.project("PW-LEGAL-1", agency="YW-NCCQ", must_tender=True)
    staff.publish("PW-LEGAL-1", "evaluation", occurred_at=days_ago(10))
    staff.publish("PW-LEGAL-1", "candidates")
    [figures] = httpx.get(server.url + "/api/compliance", params={"agency": "YW-NCCQ"}).json()[
        "agencies"
    ]
    assert (figures["late"], figures["advisory_late"]) == (1, 2), figures

    visit(page, server.url + "/catalog")
    expect(page.locator("[data-testid=legal-only]")).to_have_text(
        "只统计法定时限；地方惯例和政策性时限另列。"
    )
    card = page.locator("[data-testid=scorecard] > li[data-agency=YW-NCCQ]")
    late = card.locator("button[data-testid=drill-late]")
    expect(late).to_have_text("逾期 1")  # the law only
    expect(card.locator("[data-testid=advisory]")).to_contain_text("地方惯例")
    advisory = card.locator("button[data-testid=drill-advisory_late]")
    expect(advisory).to_have_text("逾期 2")

    late.click()
    items = card.locator("[data-testid=item]")
    expect(items).to_have_count(1)
    expect(items).to_have_attribute("data-project", "PW-LEGAL-1")
    expect(items.locator("[data-testid=advisory-tag]")).to_have_count(0)

    advisory.click()
    expect(late).to_have_attribute("aria-expanded", "false")
    expect(items).to_have_count(2)
    expect(card.locator("[data-testid=item][data-project=PW-RURAL-1]")).to_have_count(2)
    expect(items.first.locator("[data-testid=advisory-tag]")).to_have_text("地方惯例")
    assert small_targets(page) == []

    # The rules say when they apply, whether they are law, and how sure they are.
    page.locator("section[aria-labelledby=h-rules] summary").click()
    notice = page.locator(".rules > li[data-rule='construction.notice-deadline']")
    expect(notice).to_contain_text("仅依法必须招标的项目")
    expect(notice).to_contain_text("✔ 已核对法条原文")
    expect(notice.locator("[data-testid=advisory-tag]")).to_have_count(0)
    rural = page.locator(".rules > li[data-rule='rural_property.auction-award']")
    expect(rural.locator("[data-testid=advisory-tag]")).to_have_text("地方惯例（非法定）")
    expect(rural).to_contain_text("○ 待核实")
    expect(page.locator(".rules > li[data-rule='all.information-published']")).to_contain_text(
        "仅行政机关、法律法规授权组织"
    )
    assert small_targets(page) == []

    # The project's own page marks the late result as local practice, not law.
    visit(page, server.url + "/p/PW-RURAL-1")
    marks = page.locator("[data-testid=late]")
    expect(marks.first).to_be_visible()
    expect(marks.locator("[data-testid=advisory-tag]").first).to_have_text("地方惯例")
