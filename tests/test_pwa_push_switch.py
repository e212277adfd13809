"""The notification switch in a real browser: it reads "on" only once the server accepted
the subscription, and when it cannot get there it ends off, with one plain sentence.

Chromium here has no vendor push service, so `PushManager.prototype.subscribe` is
replaced in the page (an init script) by one that hangs, fails as a browser without
a reachable push service fails, or hands out a given subscription; the server and
the rest of the app are real.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser import BrowserErrors, visit
from tests.conftest import ServerProcess, Staff
from tests.push_service import PushService
from tests.targets import small_targets
from tests.test_push_e2e import push_env

PROJECT = "PW-SWITCH-1"

# How subscribe() behaves: "hang" (never answers), "fail" (rejects as Chromium does without
# a push service), or a subscription object to hand out.
STUB = """
(() => {
  const behaviour = %s;
  window.testPush = { calls: 0, unsubscribed: 0 };
  const made = (s) => ({
    endpoint: s.endpoint, expirationTime: null, options: {},
    toJSON: () => JSON.parse(JSON.stringify(s)),
    unsubscribe: async () => { window.testPush.unsubscribed += 1; return true; },
  });
  PushManager.prototype.subscribe = function () {
    window.testPush.calls += 1;
    if (behaviour === "hang") return new Promise(() => {});
    if (behaviour === "fail") {
      const failure = "Registration failed - push service not available";
      return Promise.reject(new DOMException(failure, "AbortError"));
    }
    return Promise.resolve(made(behaviour));
  };
  PushManager.prototype.getSubscription = async () => null;
})();
"""

SWITCH = "button[data-testid=enable-push]"
STATE = "[data-testid=push-state]"
MESSAGE = "[data-testid=push-message]"


def _open(context: Any, server: ServerProcess, staff: Staff, behaviour: Any) -> Any:
    staff.project(PROJECT)
    deadline = (datetime.now() + timedelta(days=30)).astimezone().isoformat(timespec="seconds")
    staff.publish(PROJECT, "notice", data={"deadline": deadline})
    context.grant_permissions(["notifications"], origin=server.url)
    context.add_init_script(STUB % json.dumps(behaviour))
    page = context.new_page()
    return page


def _follow_and_wait_worker(page: Any, server: ServerProcess) -> None:
    visit(page, f"{server.url}/p/{PROJECT}")
    page.evaluate("async () => { await navigator.serviceWorker.ready; return true; }")


def _never_on(page: Any) -> None:
    switch = page.locator(SWITCH)
    expect(switch).to_have_attribute("aria-pressed", "false")
    expect(page.locator(STATE)).not_to_contain_text("已开启")
    assert page.locator("text=已开启").count() == 0


def test_a_server_that_refuses_the_push_service_leaves_the_switch_off_with_a_reason(
    server: ServerProcess, staff: Staff, context: Any, browser_errors: BrowserErrors
) -> None:
    browser_errors.expect(r"status of 422 .*/api/push/subscriptions")
    # A push service the server does not deliver to: it answers 422, as for any such browser.
    refused = {
        "endpoint": "https://push.example.invalid/send/abc",
        "expirationTime": None,
        "keys": {
            "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1X"
            "bjhazAkj7I99e8QcYP7DkM",
            "auth": "tBHItJI5svbpez7KI4CCXg",
        },
    }
    page = _open(context, server, staff, refused)
    _follow_and_wait_worker(page, server)
    with page.expect_response(lambda r: r.url.endswith("/api/push/subscriptions")) as posted:
        page.locator(SWITCH).click()
    assert posted.value.status == 422, posted.value.text()
    expect(page.locator(MESSAGE)).to_contain_text("本站不接受这个浏览器的推送服务")
    _never_on(page)
    # The browser keeps no subscription the server does not know of.
    assert page.evaluate("window.testPush.unsubscribed") == 1
    # /follows says the same: the project is followed, notifications are off.
    page.locator("a[data-nav=follows]").click()
    expect(page.locator(f"[data-topic='project:{PROJECT}']")).to_be_visible()
    _never_on(page)
    assert page.locator("[data-testid=notified]").count() == 0
    assert small_targets(page) == []


def test_a_push_service_that_never_answers_ends_in_a_message_and_a_second_tap_does_nothing(
    server: ServerProcess, staff: Staff, context: Any
) -> None:
    page = _open(context, server, staff, "hang")
    page.clock.install()
    _follow_and_wait_worker(page, server)
    switch = page.locator(SWITCH)
    switch.click()
    expect(page.locator(STATE)).to_contain_text("推送服务")  # the step under way is named
    expect(switch).to_have_attribute("aria-busy", "true")
    switch.click()  # a second tap while it works: nothing more happens
    expect(switch).to_have_attribute("aria-busy", "true")
    assert page.evaluate("window.testPush.calls") == 1
    _never_on(page)
    page.clock.run_for(16_000)
    expect(page.locator(MESSAGE)).to_contain_text("推送服务 15 秒内没有回应")
    expect(switch).not_to_have_attribute("aria-busy", "true")
    _never_on(page)


def test_a_browser_without_a_reachable_push_service_is_told_so(
    server: ServerProcess, staff: Staff, context: Any
) -> None:
    page = _open(context, server, staff, "fail")
    _follow_and_wait_worker(page, server)
    page.locator(SWITCH).click()
    expect(page.locator(MESSAGE)).to_contain_text("连不上浏览器的推送服务")
    _never_on(page)


@pytest.fixture
def service() -> Iterator[PushService]:
    with PushService.in_thread() as running:
        yield running


def test_the_switch_reads_on_only_after_the_server_accepted_and_follows_agree(
    start_server: Callable[..., ServerProcess], service: PushService, context: Any
) -> None:
    server = start_server(**push_env(service))
    staff = Staff(server, server.token("pw-switch-admin"))
    # A subscription at the local push service, which this server is set to deliver to.
    accepted = service.new_subscriber()
    page = _open(context, server, staff, accepted)
    staff.client.close()
    _follow_and_wait_worker(page, server)
    with page.expect_response(lambda r: r.url.endswith("/api/push/subscriptions")) as posted:
        page.locator(SWITCH).click()
    assert posted.value.status in (200, 201), posted.value.text()
    switch = page.locator(SWITCH)
    expect(switch).to_have_attribute("aria-pressed", "true")
    expect(page.locator(STATE)).to_contain_text("已开启")
    assert page.locator(MESSAGE).count() == 0
    page.locator("a[data-nav=follows]").click()
    expect(page.locator(SWITCH)).to_have_attribute("aria-pressed", "true")
    expect(
        page.locator(f"[data-topic='project:{PROJECT}'] [data-testid=notified]")
    ).to_contain_text("会收到通知")
    # Remembered on this device: a reload still reads on.
    page.reload()
    expect(page.locator(SWITCH)).to_have_attribute("aria-pressed", "true")
