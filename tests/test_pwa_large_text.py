"""Large-text mode (适老化) in a real browser at 320 px: remembered, about 1.3× the text,
and no page scrolls sideways."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser import PHONE, BrowserErrors, visit, watch
from tests.conftest import ServerProcess

NARROW = {**PHONE, "viewport": {"width": 320, "height": 640}}


def overflow(page: Any) -> list[str]:
    """What sticks out sideways: the page's widths, and the widest elements beyond the edge."""
    return list(
        page.evaluate(
            """() => {
              const root = document.documentElement;
              if (root.scrollWidth <= root.clientWidth) return [];
              const out = [...document.querySelectorAll('body *')]
                .filter((el) => el.getBoundingClientRect().right > root.clientWidth + 0.5)
                .slice(0, 5).map((el) => el.outerHTML.slice(0, 120));
              return [`scrollWidth ${root.scrollWidth} > clientWidth ${root.clientWidth}`, ...out];
            }"""
        )
    )


def test_large_text_keeps_every_page_within_320_px(
    start_server: Callable[..., ServerProcess], browser: Any, browser_errors: BrowserErrors
) -> None:
    server = start_server(SUNBID_DEMO="1")
    projects = httpx.get(server.url + "/api/projects?limit=100", timeout=10).json()["items"]
    # The project with the most events: the longest page.
    project = max(projects, key=lambda p: p.get("last_seq", 0))["id"]
    token = server.token("pw-large-admin")
    context = browser.new_context(**NARROW)
    watch(context, browser_errors)
    try:
        page = context.new_page()
        pages = ["/", f"/p/{project}", "/follows", "/mine", "/request", "/catalog", "/staff"]
        # Signed in, so /staff shows the whole console, not just the sign-in form.
        visit(page, server.url + "/follows")
        page.evaluate(f"sessionStorage.setItem('sunbid.token', {token!r})")
        # Normal text first, in both languages (English names are longer).
        for lang in ["zh", "en"]:
            page.evaluate(f"localStorage.setItem('sunbid.lang', {lang!r})")
            for path in pages:
                visit(page, server.url + path)
                assert overflow(page) == [], (lang, path, overflow(page))
        page.evaluate("localStorage.setItem('sunbid.lang', 'zh')")

        visit(page, server.url + "/follows")
        base = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        toggle = page.locator("button[data-testid=large-text]")
        assert toggle.bounding_box()["height"] >= 44
        toggle.click()
        expect(toggle).to_have_attribute("aria-pressed", "true")
        large = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert 1.25 <= large / base <= 1.35, (base, large)
        for lang in ["zh", "en"]:
            page.evaluate(f"localStorage.setItem('sunbid.lang', {lang!r})")
            for path in pages:
                visit(page, server.url + path)
                # Remembered across pages and reloads.
                assert page.evaluate("document.documentElement.classList.contains('large-text')")
                if path == "/staff":
                    expect(page.locator("[data-testid=staff-role]")).to_be_visible()
                assert overflow(page) == [], (lang, path, overflow(page))
    finally:
        context.close()
