"""The app on slow networks and offline: what a first visit fetches, pages drawn from
the copy kept on the device and then brought up to date, and what an offline page says.

How fast is measured by bench/app_3g.py (docs/benchmarks.md), not here: these tests
check the behaviour the figures rest on, without timing anything.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import BrowserErrors, timeline_seqs, visit, wait_ready
from tests.test_pwa_bidder import Site, start_site, stop_site

DEMO_PROJECT = "YW-GC-2026-0141"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = start_site(tmp_path_factory.mktemp("fast") / "data", SUNBID_DEMO="1")
    yield running
    stop_site(running)


GZIP = {"Accept-Encoding": "gzip, deflate, br"}
IDENTITY = {"Accept-Encoding": "identity"}


def raw_get(site: Site, path: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
    with httpx.Client(base_url=site.url) as client:
        answer = client.send(client.build_request("GET", path, headers=headers), stream=True)
        return answer, b"".join(answer.iter_raw())


@pytest.mark.parametrize("path", ["/api/categories", f"/api/projects/{DEMO_PROJECT}"])
def test_public_json_is_gzipped_for_clients_that_accept_it(site: Site, path: str) -> None:
    plain, plain_body = raw_get(site, path, IDENTITY)
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    packed, packed_body = raw_get(site, path, GZIP)
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["vary"] == "Accept-Encoding"
    assert int(packed.headers["content-length"]) == len(packed_body) < len(plain_body) / 2
    assert gzip.decompress(packed_body) == plain_body


def test_staff_answers_small_ones_and_etagged_ones_are_sent_as_they_are(site: Site) -> None:
    staff, _ = raw_get(site, "/api/catalog", {**GZIP, "Authorization": f"Bearer {site.token}"})
    assert staff.status_code == 200 and "content-encoding" not in staff.headers
    directory, _ = raw_get(site, "/api/directory", GZIP)  # its ETag names one representation
    assert "etag" in directory.headers and "content-encoding" not in directory.headers
    small, body = raw_get(site, "/api/projects/NO-SUCH-PROJECT", GZIP)  # an error: 80 bytes
    assert small.status_code == 404 and "content-encoding" not in small.headers, body
    refused, _ = raw_get(site, "/api/categories", {"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


def preloads(site: Site, path: str) -> list[str]:
    """The URLs the shell's Link header has the browser fetch for `path`."""
    link = httpx.get(site.url + path).headers["link"]
    return re.findall(r"<([^>]+)>", link)


def until_ready(page: Any, url: str) -> list[str]:
    """The same-origin requests of one cold visit, up to the first render."""
    asked: list[str] = []
    site_origin = re.match(r"https?://[^/]+", url)
    assert site_origin
    origin = site_origin.group(0)

    def on_request(request: Any) -> None:
        if request.url.startswith(origin):
            asked.append(request.url.removeprefix(origin))

    page.on("request", on_request)
    visit(page, url)
    page.remove_listener("request", on_request)
    return asked


@pytest.mark.parametrize("path", ["/", f"/p/{DEMO_PROJECT}"])
def test_a_first_visit_fetches_what_the_shell_names_once(site: Site, page: Any, path: str) -> None:
    named = preloads(site, path)
    assert "/api/categories" in named and "/api/directory" in named
    view = "/static/js/views/list.js" if path == "/" else "/static/js/views/project.js"
    data = "/api/projects?limit=20" if path == "/" else f"/api/projects/{DEMO_PROJECT}"
    assert view in named and data in named, named

    asked = until_ready(page, site.url + path)
    # Each named URL is fetched once: the app's own requests were answered by the preloads.
    for url in named:
        assert asked.count(url) == 1, (url, asked)
    # And the first render asked for no data the shell did not name.
    api = {url for url in asked if url.startswith("/api/")}
    assert api <= set(named), api - set(named)
    # The other pages' modules wait until they are visited.
    others = {"/static/js/views/catalog.js", "/static/js/views/follows.js"}
    others |= {"/static/js/views/project.js" if path == "/" else "/static/js/views/list.js"}
    assert not others & set(asked), others & set(asked)


def test_the_shell_names_only_the_plain_list_and_escapes_ids(site: Site) -> None:
    assert not any(url.startswith("/api/projects") for url in preloads(site, "/?category=land"))
    assert not any(
        url.startswith("/api/") and "categories" not in url and "directory" not in url
        for url in preloads(site, "/catalog")
    )
    odd = preloads(site, "/p/A%20B%3Cc%3E%2C")
    assert "/api/projects/A%20B%3Cc%3E%2C" in odd, odd


def test_a_page_seen_before_is_brought_up_to_date_before_it_is_ready(site: Site, page: Any) -> None:
    project = "PW-FAST-1"
    site.staff.project(project)
    site.staff.publish(project, "notice")
    visit(page, f"{site.url}/p/{project}")
    assert timeline_seqs(page) == site.seqs(project)

    # Published while nobody looks: the next visit draws the kept copy, then the news.
    site.staff.publish(project, "clarification")
    page.goto(site.url + "/")
    wait_ready(page)
    visit(page, f"{site.url}/p/{project}")
    assert timeline_seqs(page) == site.seqs(project)
    expect(page.locator("[data-testid=offline]")).to_be_hidden()


def test_offline_a_page_not_seen_says_what_can_be_seen(
    site: Site, context: Any, page: Any, browser_errors: BrowserErrors
) -> None:
    seen = "PW-FAST-SEEN"
    site.staff.project(seen)
    title = f"测试项目 {seen}"
    site.staff.publish(seen, "notice")
    visit(page, site.url + "/")
    page.evaluate("async () => { await navigator.serviceWorker.ready; return true; }")
    if not page.evaluate("() => Boolean(navigator.serviceWorker.controller)"):
        page.reload()  # a worker that does not claim open pages controls them from the next load
        wait_ready(page)
    visit(page, f"{site.url}/p/{seen}")
    expect(page.locator("h1")).to_have_text(title)
    visit(page, f"{site.url}/?category=land")
    land = next(c for c in site.api("/api/categories")["items"] if c["code"] == "land")

    browser_errors.expect_offline()
    context.set_offline(True)
    visit(page, f"{site.url}/p/PW-FAST-NEVER-SEEN")
    help_box = page.locator("[data-testid=offline-help]")
    expect(help_box).to_contain_text("离线时只能查看之前打开过的项目和列表")
    kept = page.locator("[data-testid=kept-pages] a")
    expect(kept.filter(has_text=title)).to_have_attribute("href", f"/p/{seen}")
    expect(kept.filter(has_text="全部项目")).to_have_attribute("href", "/")
    # A kept list says its filters by name, not by code.
    expect(kept.filter(has_text=land["name"]["zh"])).to_have_attribute("href", "/?category=land")

    # The project kept is one tap away, and says how old its data is.
    kept.filter(has_text=title).click()
    wait_ready(page)
    expect(page.locator("h1")).to_have_text(title)
    expect(page.locator("[data-testid=offline]")).to_contain_text("离线 · 数据截至")
    context.set_offline(False)
