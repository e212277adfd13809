"""The app in a real browser: Debian's chromium driven by Playwright, at phone size.

Playwright brings its driver, never a browser: `.ci/run` installs the `chromium`
package. Console errors (of the pages and of the service worker) and the pages'
uncaught exceptions fail the test that caused them (conftest's
`pytest_runtest_call`), except what a test declares it expects, such as a
refused connection while the server is deliberately down.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# A mid-range phone: what bidders open the app on.
PHONE: dict[str, Any] = {
    "viewport": {"width": 360, "height": 740},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "service_workers": "allow",
}
WAIT_MS = 10_000
# Events that record the project itself (POST and PATCH /api/projects), not a published stage.
RECORD_STAGES = frozenset({"registered", "amended"})


def require(present: bool, reason: str) -> None:
    """Skip without it, or fail when CI said every service must be there."""
    if present:
        return
    if os.environ.get("SUNBID_REQUIRE_SERVICES") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def require_chromium() -> None:
    require(
        CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK),
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium),"
        " as .ci/run does",
    )


# --- console errors and uncaught exceptions --------------------------------------------------


@dataclass
class BrowserErrors:
    """What went wrong in the pages of one test, less what the test said to expect."""

    seen: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect(self, *patterns: str) -> None:
        self.expected.extend(re.compile(p) for p in patterns)

    def expect_offline(self) -> None:
        """What a page honestly logs while the network or the server is gone."""
        self.expect(
            r"net::ERR_(INTERNET_DISCONNECTED|CONNECTION_REFUSED|CONNECTION_RESET|FAILED)",
            r"WebSocket connection to '.*' failed",
            r"Failed to fetch",
            r"NetworkError",
        )

    def record(self, text: str) -> None:
        self.seen.append(text)

    def unexpected(self) -> list[str]:
        return [e for e in self.seen if not any(p.search(e) for p in self.expected)]


def watch(context: Any, errors: BrowserErrors) -> None:
    """Record console errors of `context` (its pages and workers) and its pages' exceptions."""

    def on_console(message: Any) -> None:
        if message.type == "error":
            where = message.location.get("url", "") if message.location else ""
            errors.record(f"console: {message.text} ({where})")

    def on_error(web_error: Any) -> None:
        page = web_error.page
        errors.record(f"uncaught: {web_error.error} (on {page.url if page else '?'})")

    context.on("console", on_console)
    context.on("weberror", on_error)


# --- waiting on the app ----------------------------------------------------------------------


def wait_ready(page: Any) -> None:
    """Until `window.sunbid.ready` (the first render of the current page) has resolved."""
    page.wait_for_function("() => window.sunbid && window.sunbid.ready", timeout=WAIT_MS)
    page.evaluate("async () => { await window.sunbid.ready; return true; }")


def visit(page: Any, url: str) -> None:
    page.goto(url)
    wait_ready(page)


def timeline_seqs(page: Any) -> list[int]:
    """The timeline's seqs oldest first, as the API lists them (the page shows newest first)."""
    return [
        int(seq)
        for seq in reversed(
            page.eval_on_selector_all(
                "[data-testid=timeline] > li[data-testid=timeline-event]",
                "items => items.map(item => item.dataset.seq)",
            )
        )
    ]


def project_links(page: Any) -> list[str]:
    return list(
        page.eval_on_selector_all(
            "[data-testid=project-list] a[data-testid=project-link]",
            "links => links.map(link => link.getAttribute('href'))",
        )
    )


# Roles a person operates, which a screen reader must be able to name.
CONTROLS = frozenset(
    {
        "button",
        "checkbox",
        "combobox",
        "link",
        "listbox",
        "menuitem",
        "radio",
        "searchbox",
        "slider",
        "spinbutton",
        "switch",
        "tab",
        "textbox",
    }
)


def unnamed_controls(page: Any) -> list[str]:
    """Controls whose accessible name, as chromium computes it for screen readers, is empty."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
        unnamed = []
        for node in nodes:
            role = node.get("role", {}).get("value")
            if node.get("ignored") or role not in CONTROLS:
                continue
            if str(node.get("name", {}).get("value", "")).strip():
                continue
            html = "?"
            if "backendDOMNodeId" in node:
                html = cdp.send("DOM.getOuterHTML", {"backendNodeId": node["backendDOMNodeId"]})[
                    "outerHTML"
                ][:160]
            unnamed.append(f"{role}: {html}")
        return unnamed
    finally:
        cdp.detach()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Bounded polling of something outside the page (the API, the push service)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
