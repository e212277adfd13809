"""Web Push in a real browser, end to end, with nothing of the app's code replaced.

The one thing chromium cannot do here is reach a vendor's push service, so
`PushManager.prototype.subscribe` is stubbed in the page (an init script) to
hand the app a subscription of the local push service (tests/push_service.py),
made with the server's VAPID key. From there everything is real:

1. the app subscribes on a tap of `enable-push` and POSTs the subscription;
2. a publication makes the server send an RFC 8291 encrypted, VAPID-signed push
   to the local push service, which verifies and decrypts it like a vendor's
   service and the browser would;
3. that decrypted payload is delivered to the app's service worker with the
   DevTools protocol (`ServiceWorker.deliverPushMessage`), as the browser's
   push client would deliver it; the worker's `push` handler shows the
   notification, which `registration.getNotifications()` then returns and
   which reaches the desktop's notification daemon;
4. the click: chromium shows web notifications through the desktop's
   `org.freedesktop.Notifications` daemon on the session D-Bus. The test owns
   that name on a private bus and
   answers `ActionInvoked(id, "default")`, exactly what a daemon sends when a
   person clicks (tests/notifications.py). Chromium then fires a trusted `notificationclick` in the
   worker, with the window-interaction right that `clients.openWindow()` and
   `WindowClient.focus()` require (a synthetic `NotificationEvent` dispatched
   from test code has neither that right nor a working `waitUntil`, so it
   could not show that the click opens the project). Chromium routes clicks to
   regular profiles only, so this test runs in a persistent profile.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PHONE,
    BrowserErrors,
    visit,
    wait_until,
    watch,
)
from tests.conftest import CLOSED, ServerProcess, Staff
from tests.notifications import NotificationServer, notification_server
from tests.push_service import PushService
from tests.test_push_e2e import push_env

PROJECT = "PW-PUSH-1"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)

# In the page before any of the app's scripts: PushManager hands out the test's subscription.
STUB_PUSH_MANAGER = """
(() => {
  const subscription = %s;
  const KEY = "test.push.subscribed";
  const encode = (key) => {
    if (typeof key === "string") return key.replace(/=+$/, "");
    const bytes = new Uint8Array(key instanceof ArrayBuffer ? key : key.buffer);
    return btoa(String.fromCharCode(...bytes))
      .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  };
  const decode = (text) => {
    const plain = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(plain, (c) => c.charCodeAt(0)).buffer;
  };
  const made = (options) => ({
    endpoint: subscription.endpoint,
    expirationTime: null,
    options,
    getKey: (name) => decode(subscription.keys[name]),
    toJSON: () => JSON.parse(JSON.stringify(subscription)),
    unsubscribe: async () => { localStorage.removeItem(KEY); return true; },
  });
  window.testPush = { calls: [] };
  PushManager.prototype.subscribe = async function (options = {}) {
    window.testPush.calls.push({
      userVisibleOnly: options.userVisibleOnly,
      applicationServerKey: options.applicationServerKey && encode(options.applicationServerKey),
    });
    localStorage.setItem(KEY, "1");
    return made(options);
  };
  PushManager.prototype.getSubscription = async function () {
    return localStorage.getItem(KEY) ? made({ userVisibleOnly: true }) : null;
  };
  PushManager.prototype.permissionState = async function () { return "granted"; };
})();
"""


@pytest.fixture
def service() -> Iterator[PushService]:
    with PushService.in_thread() as running:
        yield running


@pytest.fixture
def push_server(tmp_path: Path, service: PushService) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data", **push_env(service)).start()
    yield server
    server.stop()


@pytest.fixture
def push_staff(push_server: ServerProcess) -> Iterator[Staff]:
    member = Staff(push_server, push_server.token("pwa-push-admin"))
    yield member
    member.client.close()


@pytest.fixture
def desktop(
    playwright: Any, tmp_path: Path, browser_errors: BrowserErrors
) -> Iterator[tuple[Any, NotificationServer]]:
    """A phone-sized chromium profile whose notifications go to a daemon the test controls."""
    with notification_server() as notifications:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": notifications.address},
            **PHONE,
        )
        context.set_default_timeout(10_000)
        watch(context, browser_errors)
        try:
            yield context, notifications
        finally:
            context.close()


def registration_id(page: Any, origin: str) -> tuple[Any, str]:
    """A DevTools session on `page` and the id of the service worker registration for `/`."""
    cdp = page.context.new_cdp_session(page)
    found: dict[str, str] = {}

    def updated(event: dict[str, Any]) -> None:
        for registration in event["registrations"]:
            if registration["scopeURL"] == origin + "/" and not registration["isDeleted"]:
                found["id"] = registration["registrationId"]

    cdp.on("ServiceWorker.workerRegistrationUpdated", updated)
    cdp.send("ServiceWorker.enable")
    for _ in range(250):  # the events arrive while the driver waits on the page
        if "id" in found:
            return cdp, found["id"]
        page.wait_for_timeout(20)
    raise AssertionError("no service worker registration for / was reported")


def deliver(page: Any, origin: str, payload: Any) -> None:
    cdp, registration = registration_id(page, origin)
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": origin,
            "registrationId": registration,
            "data": json.dumps(payload, ensure_ascii=False),
        },
    )
    cdp.detach()


def test_a_published_event_reaches_the_phone_as_a_notification_that_opens_the_project(
    push_server: ServerProcess,
    push_staff: Staff,
    service: PushService,
    desktop: tuple[Any, NotificationServer],
) -> None:
    context, notifications = desktop
    origin, staff = push_server.url, push_staff
    staff.project(PROJECT)
    staff.publish(PROJECT, "notice", data=CLOSED)  # its bid deadline passed: an opening may follow
    key = httpx.get(origin + "/api/push/vapid-key", timeout=10).json()["publicKey"]
    subscription = service.new_subscriber(application_server_key=key)
    endpoint = subscription["endpoint"]
    context.grant_permissions(["notifications"], origin=origin)
    context.add_init_script(STUB_PUSH_MANAGER % json.dumps(subscription))

    page = context.pages[0] if context.pages else context.new_page()
    visit(page, f"{origin}/p/{PROJECT}")
    page.evaluate("async () => { await navigator.serviceWorker.ready; return true; }")
    follow = page.locator("button[data-testid=follow]")
    follow.click()
    expect(follow).to_have_attribute("aria-pressed", "true")

    # 1. The app subscribes with the server's key and hands the subscription to the server.
    with page.expect_response(
        lambda r: r.url == origin + "/api/push/subscriptions" and r.request.method == "POST"
    ) as posted:
        page.locator("button[data-testid=enable-push]").click()
    response = posted.value
    assert response.status in (200, 201), response.text()
    sent = response.request.post_data_json
    assert sent["subscription"]["endpoint"] == endpoint, sent
    assert f"project:{PROJECT}" in sent["topics"], sent
    [call] = page.evaluate("window.testPush.calls")
    assert call == {"userVisibleOnly": True, "applicationServerKey": key}, call
    # The server has it: posting the same subscription again is an update (200), not a creation.
    again = httpx.post(origin + "/api/push/subscriptions", json=sent, timeout=10)
    assert again.status_code == 200, again.text

    # 2. A publication becomes a real encrypted push at the push service.
    event = staff.publish(PROJECT, "clarification")
    wait_until(
        lambda: any(p["event"]["seq"] == event["seq"] for p in service.received(endpoint)),
        "the push for the clarification",
    )
    [payload] = [p for p in service.received(endpoint) if p["event"]["seq"] == event["seq"]]
    assert payload["url"] == f"/p/{PROJECT}" and payload["tag"] == PROJECT, payload
    assert payload["title"] and PROJECT in json.dumps(payload, ensure_ascii=False)
    assert service.rejections == []

    # 3. The browser's push client hands it to the service worker, which shows it.
    deliver(page, origin, payload)
    shown = notifications.wait_shown(payload["title"])
    listed = page.evaluate(
        """async () => (await (await navigator.serviceWorker.ready).getNotifications())
            .map(n => ({title: n.title, body: n.body, tag: n.tag, data: n.data}))"""
    )
    assert len(listed) == 1, listed
    assert listed[0]["title"] == payload["title"] and listed[0]["data"]["url"] == payload["url"]
    assert listed[0]["tag"] == payload["tag"], listed  # a later stage replaces it on the phone
    assert "default" in shown.actions, shown

    # 4a. Clicked while the app is open elsewhere: the project is shown, in one window.
    visit(page, origin + "/")
    notifications.click(shown)
    page.wait_for_url(f"{origin}/p/{PROJECT}")
    assert [p.url for p in context.pages] == [page.url], "the open window was reused"
    assert wait_until(lambda: shown.id in notifications.closed, "the notification to close")

    # 4b. Clicked with no window open: a window opens on the project.
    later = staff.publish(PROJECT, "bid_opening")
    wait_until(
        lambda: any(p["event"]["seq"] == later["seq"] for p in service.received(endpoint)),
        "the push for the bid opening",
    )
    [payload] = [p for p in service.received(endpoint) if p["event"]["seq"] == later["seq"]]
    current = context.pages[0]
    before = len(notifications.shown)
    deliver(current, origin, payload)
    second = notifications.wait_shown(payload["title"], after=before)
    current.close()
    with context.expect_page() as opened:
        notifications.click(second)
    window = opened.value
    window.wait_for_url(re.compile(rf"/p/{re.escape(PROJECT)}$"))


def test_ios_explains_that_notifications_need_the_home_screen(
    server: ServerProcess, staff: Staff, browser: Any, page: Any, browser_errors: BrowserErrors
) -> None:
    staff.project(PROJECT)
    staff.publish(PROJECT, "notice")
    visit(page, f"{server.url}/p/{PROJECT}")
    expect(page.locator("[data-testid=ios-hint]")).to_be_hidden()

    iphone = browser.new_context(**{**PHONE, "user_agent": IPHONE})
    watch(iphone, browser_errors)
    try:
        safari = iphone.new_page()
        visit(safari, f"{server.url}/p/{PROJECT}")
        expect(safari.locator("[data-testid=ios-hint]")).to_be_visible()
    finally:
        iphone.close()
