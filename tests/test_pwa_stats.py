"""The statistics page (/stats) in a real browser on a 360 px phone, on the demo's log:
each figure is an inline SVG chart named for screen readers, with the same figures in a
table and a CSV link that downloads that table; the filters ask the API again; nothing
is wider than the screen."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser import visit
from tests.conftest import ROOT, ServerProcess

CHARTS = (
    "events-by-month",
    "projects-by-category",
    "projects-by-month",
    "amounts",
    "competition",
    "durations",
    "on-time",
    "answers",
)
SCREENSHOT = ROOT / "docs" / "screenshots" / "stats.png"


def no_wider_than_the_screen(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, width


def test_charts_tables_csv_and_filters(
    start_server: Callable[..., ServerProcess], page: Any
) -> None:
    server = start_server(SUNBID_DEMO="1")
    figures = httpx.get(server.url + "/api/stats", timeout=30).json()
    visit(page, server.url + "/stats")
    expect(page.locator("h1")).to_have_text("统计分析")
    expect(page.locator("nav.tabs a[data-nav=stats]")).to_have_attribute("aria-current", "page")
    for name in CHARTS:
        figure = page.locator(f"figure[data-testid=chart-{name}]")
        expect(figure.locator("figcaption")).not_to_be_empty()
        expect(figure.locator("details table")).to_have_count(1)
        svg = figure.locator("svg[role=img]")
        if svg.count():  # a figure with nothing to draw says so instead
            title_id = svg.get_attribute("aria-labelledby")
            expect(svg.locator(f"title#{title_id}")).to_have_count(1)
    # The demo's log has publications, projects, awards and bidders: those are drawn.
    for name in ("events-by-month", "projects-by-category", "amounts", "competition"):
        drawn = page.locator(f"figure[data-testid=chart-{name}] svg rect.c-bar")
        expect(drawn.first).to_be_attached()
        assert (
            max(float(w) for w in drawn.evaluate_all("rs => rs.map(r => r.getAttribute('width'))"))
            > 0
        )
    # A column per month, a row per month in its table: the same figures.
    months = figures["events_by_month"]
    monthly = page.locator("figure[data-testid=chart-events-by-month]")
    expect(monthly.locator("rect.c-bar")).to_have_count(len(months))
    expect(monthly.locator("tbody tr")).to_have_count(len(months))
    expect(page.locator("[data-testid=totals] dd").first).to_have_text(
        f"{figures['totals']['projects']:,}"
    )
    no_wider_than_the_screen(page)
    page.locator("figure[data-testid=chart-events-by-month]").scroll_into_view_if_needed()
    if os.environ.get("SUNBID_SCREENSHOTS"):  # docs/screenshots/stats.png, made on request
        page.screenshot(path=str(SCREENSHOT), full_page=False)

    # Every table opened: still no wider than the screen (a wide table scrolls in its box).
    for summary in page.locator("details.data-table > summary").all():
        summary.click()
    expect(page.locator("figure[data-testid=chart-amounts] table")).to_be_visible()
    no_wider_than_the_screen(page)

    # The CSV link downloads that table, as the API serves it.
    link = page.locator("a[data-testid=csv-amounts]")
    with page.expect_download() as started:
        link.click()
    download = started.value
    assert download.suggested_filename == "sunbid-stats-amounts.csv"
    body = Path(download.path()).read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert [r["category"] for r in rows] == [r["category"] for r in figures["amounts"]]

    # A filter asks the API again and draws its answer.
    page.locator("select[data-testid=filter-category]").select_option("construction")
    page.wait_for_url(server.url + "/stats?category=construction")
    only = httpx.get(server.url + "/api/stats", params={"category": "construction"}).json()
    bars = page.locator("figure[data-testid=chart-projects-by-category] rect.c-bar")
    expect(bars).to_have_count(1 if only["totals"]["projects"] else 0)
    expect(page.locator("a[data-testid=csv-amounts]")).to_have_attribute(
        "href", "/api/stats/amounts.csv?category=construction"
    )
    no_wider_than_the_screen(page)
