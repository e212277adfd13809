"""Other ways to be told (SMS, e-mail, WeChat) in a real browser, against the real server.

The server sends its confirmation codes over real SMTP to a local relay
(tests/smtp_inbox.py) that refuses what a relay refuses; the test reads the
code from the mail as a person would, types it, and checks the server's own
view of the channel (GET /api/channels/{id}) after each step. Only Web Push is
stubbed (chromium has no vendor push service here), as in test_pwa_push_switch.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import BrowserErrors, unnamed_controls, visit
from tests.conftest import ServerProcess
from tests.smtp_inbox import Inbox, running_inbox
from tests.targets import small_targets
from tests.test_pwa_push_switch import STUB

SENDER = "notice@sunbid.example"
ADDRESS = "bidder@example.cn"
FOLLOWED = "category:construction"
SECTION = "[data-testid=channels]"
WECHAT_UA = (
    "Mozilla/5.0 (Linux; Android 14; V2309A) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160117 MMWEBSDK/20240301"
    " MicroMessenger/8.0.48.2580(0x28003036) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN"
)


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with running_inbox(SENDER) as running:
        yield running


def mail_env(inbox: Inbox) -> dict[str, str]:
    return {"SUNBID_SMTP_URL": inbox.url, "SUNBID_SMTP_FROM": SENDER}


@pytest.fixture
def mail_server(start_server: Callable[..., ServerProcess], inbox: Inbox) -> ServerProcess:
    return start_server(**mail_env(inbox))


def kept_channels(page: Any) -> list[dict[str, Any]]:
    """What the device keeps of its channels (localStorage)."""
    return list(json.loads(page.evaluate("localStorage.getItem('sunbid.channels') || '[]'")))


def server_view(server: ServerProcess, channel: dict[str, Any]) -> httpx.Response:
    return httpx.get(
        f"{server.url}/api/channels/{channel['id']}",
        headers={"X-Manage-Token": channel["manage_token"]},
    )


def follow_a_category(page: Any) -> None:
    page.select_option("#add-category", FOLLOWED.split(":")[1])
    page.locator("form:has(#add-category) button[type=submit]").click()
    expect(page.locator(f"[data-topic='{FOLLOWED}']")).to_be_visible()


def test_an_email_channel_is_confirmed_with_the_mailed_code_and_cancelled_in_one_step(
    mail_server: ServerProcess, inbox: Inbox, page: Any, browser_errors: BrowserErrors
) -> None:
    browser_errors.expect(r"status of 422 .*/api/channels/[^/]+/confirm")
    visit(page, f"{mail_server.url}/follows")
    section = page.locator(SECTION)
    expect(section.locator("h2")).to_have_text("其他提醒方式")
    # Only what the server is set up for: e-mail, no SMS, no WeChat.
    expect(section).to_contain_text("电子邮件")
    assert section.locator("[data-testid=channel-address-sms]").count() == 0
    assert section.locator("[data-testid^=channel-wechat]").count() == 0
    # Nothing followed yet: nothing to be told of.
    expect(section.locator("[data-testid=channel-topics]")).to_contain_text("先关注项目或类别")
    expect(section.locator("[data-testid=channel-address-email]")).to_be_hidden()

    follow_a_category(page)
    expect(section.locator("[data-testid=channel-topics]")).to_contain_text("现在关注的 1 项内容")
    section.locator("[data-testid=channel-address-email]").fill(ADDRESS)
    with page.expect_response(lambda r: r.url.endswith("/api/channels")) as posted:
        section.locator("[data-testid=channel-send-email]").click()
    assert posted.value.status == 202, posted.value.text()
    item = section.locator("[data-testid=channel-list] li")
    expect(item).to_have_count(1)
    expect(item.locator("[data-testid=channel-status]")).to_have_text("待输入验证码")
    expect(item.locator("[data-testid=channel-address]")).to_have_text("b***@example.cn")
    expect(item.locator("[data-testid=channel-sent]")).to_contain_text(
        "验证码已发送到 b***@example.cn"
    )
    code_box = item.locator("[data-testid=channel-code]")
    expect(code_box).to_be_focused()

    # Kept on the device with its key, never with the address itself.
    [channel] = kept_channels(page)
    assert channel["kind"] == "email" and channel["manage_token"]
    assert channel["topics"] == [FOLLOWED]
    assert ADDRESS not in json.dumps(channel)
    pending = server_view(mail_server, channel)
    assert pending.status_code == 200, pending.text
    assert pending.json()["status"] == "pending"
    assert pending.json()["topics"] == [FOLLOWED]

    mail = inbox.wait_for(ADDRESS)
    assert mail.recipients == [ADDRESS]
    code = mail.code()

    # A wrong code: said so, still pending.
    code_box.fill(f"{(int(code) + 1) % 1_000_000:06d}")
    with page.expect_response(lambda r: r.url.endswith("/confirm")) as wrong:
        item.locator("button[type=submit]").click()
    assert wrong.value.status == 422
    expect(item.locator("[data-testid=channel-message]")).to_contain_text("验证码不对")
    expect(code_box).to_have_attribute("aria-invalid", "true")
    assert server_view(mail_server, channel).json()["status"] == "pending"

    code_box.fill(code)
    with page.expect_response(lambda r: r.url.endswith("/confirm")) as confirmed:
        item.locator("button[type=submit]").click()
    assert confirmed.value.status == 200, confirmed.value.text()
    expect(item.locator("[data-testid=channel-status]")).to_have_text("已开启")
    expect(item).to_contain_text("每有新进展都会发邮件")
    expect(code_box).to_be_hidden()
    assert server_view(mail_server, channel).json()["status"] == "active"
    assert small_targets(page) == []
    assert unnamed_controls(page) == []

    # Remembered: a reload lists it again, as the server sees it.
    page.reload()
    expect(item.locator("[data-testid=channel-status]")).to_have_text("已开启")

    # One tap cancels it: gone here and on the server.
    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        item.locator("[data-testid=channel-cancel]").click()
    assert deleted.value.status == 204
    expect(item).to_have_count(0)
    expect(section.locator("[data-testid=channels-said]")).to_contain_text("已取消")
    assert kept_channels(page) == []
    assert server_view(mail_server, channel).status_code == 404


def test_an_address_the_server_refuses_is_marked_and_nothing_is_kept_or_sent(
    mail_server: ServerProcess, inbox: Inbox, page: Any, browser_errors: BrowserErrors
) -> None:
    browser_errors.expect(r"status of 422 .*/api/channels")
    visit(page, f"{mail_server.url}/follows")
    follow_a_category(page)
    address = page.locator("[data-testid=channel-address-email]")
    address.fill("not-an-address")
    with page.expect_response(lambda r: r.url.endswith("/api/channels")) as posted:
        page.locator("[data-testid=channel-send-email]").click()
    assert posted.value.status == 422
    assert posted.value.json()["error"]["details"]["field"] == "address"
    expect(page.locator("#channel-email-error")).to_contain_text("邮箱地址不对")
    expect(address).to_have_attribute("aria-invalid", "true")
    expect(address).to_be_focused()
    assert kept_channels(page) == []
    assert page.locator("[data-testid=channel-list] li").count() == 0
    assert inbox.mails == []


def test_a_channel_named_in_the_address_is_kept_and_its_token_leaves_the_address_bar(
    mail_server: ServerProcess, inbox: Inbox, page: Any
) -> None:
    """How the app comes back from WeChat's authorization: /follows#channel=<id>&token=<secret>."""
    made = httpx.post(
        f"{mail_server.url}/api/channels",
        json={"kind": "email", "address": ADDRESS, "topics": [FOLLOWED]},
    )
    assert made.status_code == 202, made.text
    channel = made.json()
    back = f"#channel={channel['id']}&token={channel['manage_token']}"
    visit(page, f"{mail_server.url}/follows{back}")
    item = page.locator(f"[data-channel='{channel['id']}']")
    expect(item.locator("[data-testid=channel-address]")).to_have_text("b***@example.cn")
    assert page.evaluate("location.hash") == ""
    assert channel["manage_token"] not in page.url
    [kept] = kept_channels(page)
    assert kept["manage_token"] == channel["manage_token"]
    assert kept["kind"] == "email"  # as the server says, whatever the way back assumed


def test_without_push_in_this_browser_the_switch_points_to_the_other_ways(
    mail_server: ServerProcess, context: Any
) -> None:
    context.add_init_script("delete window.PushManager;")
    page = context.new_page()
    visit(page, f"{mail_server.url}/follows")
    expect(page.locator("[data-testid=push-unavailable]")).to_contain_text("不支持推送通知")
    alternative = page.locator("[data-testid=push-alternative]")
    expect(alternative).to_contain_text("可以改用电子邮件接收提醒")
    expect(alternative.locator("a")).to_have_attribute("href", "/follows#other-ways")


def test_a_push_service_that_fails_suggests_the_other_ways_and_leads_there(
    mail_server: ServerProcess, context: Any
) -> None:
    context.grant_permissions(["notifications"], origin=mail_server.url)
    context.add_init_script(STUB % json.dumps("fail"))
    page = context.new_page()
    visit(page, f"{mail_server.url}/follows")
    follow_a_category(page)
    page.evaluate("async () => { await navigator.serviceWorker.ready; return true; }")
    page.locator("button[data-testid=enable-push]").click()
    expect(page.locator("[data-testid=push-message]")).to_contain_text("连不上浏览器的推送服务")
    alternative = page.locator("[data-testid=push-alternative]")
    expect(alternative).to_contain_text("可以改用电子邮件接收提醒")
    alternative.locator("a").click()
    heading = page.locator("#other-ways")
    expect(heading).to_be_in_viewport()


def test_where_nothing_else_is_offered_the_switch_suggests_nothing(
    server: ServerProcess, context: Any
) -> None:
    context.add_init_script("delete window.PushManager;")
    page = context.new_page()
    visit(page, f"{server.url}/follows")
    expect(page.locator("[data-testid=push-unavailable]")).to_be_visible()
    expect(page.locator("[data-testid=channels-none]")).to_be_visible()
    assert page.locator("[data-testid=push-alternative]:visible").count() == 0
