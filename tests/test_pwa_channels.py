"""Other ways to be told (SMS, e-mail, WeChat) in a real browser, against the real server.

The server sends its confirmation codes to the local stand-ins of the outside
services: real SMTP to tests/smtp_service.py, signed SendSms calls to
tests/sms_service.py, and WeChat's web authorization through
tests/wechat_service.py. A test reads the code where a person would (the mail,
the text message), types it, and checks the server's own view of the channel
(GET /api/channels/{id}) after each step. Only Web Push is stubbed (chromium
has no vendor push service here), as in test_pwa_push_switch.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import PHONE, BrowserErrors, unnamed_controls, visit, watch
from tests.conftest import ServerProcess, Staff
from tests.sms_service import SmsService
from tests.smtp_service import MailServer
from tests.standins import in_thread, until
from tests.targets import small_targets
from tests.test_pwa_push_switch import STUB
from tests.test_pwa_staff import sign_in
from tests.wechat_service import APPID, SECRET, WeChatService

SENDER = "notice@sunbid.example"
ADDRESS = "bidder@example.cn"
NUMBER = "13812345678"
FOLLOWED = "category:construction"
PROJECT = "PW-CHANNELS-1"
SECTION = "[data-testid=channels]"
WECHAT_TEMPLATE = "tpl-event-pwa"
# The WeChat browser on Android: what `/MicroMessenger/i` finds.
WECHAT_UA = (
    "Mozilla/5.0 (Linux; Android 14; V2309A) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160117 MMWEBSDK/20240301"
    " MicroMessenger/8.0.48.2580(0x28003036) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN"
)


@pytest.fixture
def mail() -> Iterator[MailServer]:
    with in_thread(MailServer()) as server:
        yield server


@pytest.fixture
def sms() -> Iterator[SmsService]:
    with in_thread(SmsService()) as service:
        yield service


@pytest.fixture
def wechat() -> Iterator[WeChatService]:
    service = WeChatService()
    service.add_template(WECHAT_TEMPLATE, ["thing1", "thing2"])
    # The account's authorized domain is where the server under test is reached.
    service.oauth_domain = "127.0.0.1"
    with in_thread(service) as running:
        yield running


def mail_env(mail: MailServer) -> dict[str, str]:
    return {"SUNBID_SMTP_URL": mail.url, "SUNBID_SMTP_FROM": SENDER}


def wechat_env(wechat: WeChatService) -> dict[str, str]:
    return {
        "SUNBID_WECHAT_APPID": APPID,
        "SUNBID_WECHAT_SECRET": SECRET,
        "SUNBID_WECHAT_TEMPLATE_EVENT": WECHAT_TEMPLATE,
        "SUNBID_WECHAT_API_BASE": wechat.origin,
        "SUNBID_WECHAT_OAUTH_BASE": wechat.origin,
    }


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """A server with these settings that knows its own public address (WeChat comes back to it)."""
    servers: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        server = ServerProcess(tmp_path / f"data{len(servers)}", **env)
        server.env["SUNBID_PUBLIC_URL"] = server.url
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        if server.process is not None:
            server.stop()


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


def mailed_code(mail: MailServer, address: str) -> str:
    received = until(lambda: [m for m in mail.received if address in m.rcpt_tos])
    [one] = received
    assert one.mail_from == SENDER
    body = one.message().get_body(preferencelist=("plain",))
    assert body is not None
    codes = set(re.findall(r"(?<!\d)\d{6}(?!\d)", str(body.get_content())))
    assert len(codes) == 1, codes
    return codes.pop()


def test_an_email_channel_is_confirmed_with_the_mailed_code_and_cancelled_in_one_step(
    started: Callable[..., ServerProcess],
    mail: MailServer,
    page: Any,
    browser_errors: BrowserErrors,
) -> None:
    browser_errors.expect(r"status of 422 .*/api/channels/[^/]+/confirm")
    server = started(**mail_env(mail))
    visit(page, f"{server.url}/follows")
    section = page.locator(SECTION)
    expect(section.locator("h2")).to_have_text("其他提醒方式")
    # Only what the server is set up for: e-mail, no SMS, no WeChat.
    expect(section).to_contain_text("也可以用电子邮件接收")
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
    pending = server_view(server, channel)
    assert pending.status_code == 200, pending.text
    assert pending.json()["status"] == "pending"
    assert pending.json()["topics"] == [FOLLOWED]

    code = mailed_code(mail, ADDRESS)
    # A wrong code: said so, still pending.
    code_box.fill(f"{(int(code) + 1) % 1_000_000:06d}")
    with page.expect_response(lambda r: r.url.endswith("/confirm")) as wrong:
        item.locator("button[type=submit]").click()
    assert wrong.value.status == 422
    expect(item.locator("[data-testid=channel-message]")).to_contain_text("验证码不对")
    expect(code_box).to_have_attribute("aria-invalid", "true")
    assert server_view(server, channel).json()["status"] == "pending"

    code_box.fill(code)
    with page.expect_response(lambda r: r.url.endswith("/confirm")) as confirmed:
        item.locator("button[type=submit]").click()
    assert confirmed.value.status == 200, confirmed.value.text()
    expect(item.locator("[data-testid=channel-status]")).to_have_text("已开启")
    expect(item).to_contain_text("每有新进展都会发邮件")
    expect(code_box).to_be_hidden()
    assert server_view(server, channel).json()["status"] == "active"
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
    assert server_view(server, channel).status_code == 404


def test_an_sms_channel_says_when_texts_come_and_refuses_a_number_that_is_not_one(
    started: Callable[..., ServerProcess],
    sms: SmsService,
    page: Any,
    browser_errors: BrowserErrors,
) -> None:
    browser_errors.expect(r"status of 422 .*/api/channels")
    server = started(**sms.env())
    visit(page, f"{server.url}/follows")
    section = page.locator(SECTION)
    follow_a_category(page)
    # What happens next is said before anyone types a number.
    expect(section).to_contain_text("短信只提醒重要环节")
    expect(section).to_contain_text("22:00 至次日 07:00 不发短信，紧急事项除外")

    number = section.locator("[data-testid=channel-address-sms]")
    number.fill("1234")
    with page.expect_response(lambda r: r.url.endswith("/api/channels")) as refused:
        section.locator("[data-testid=channel-send-sms]").click()
    assert refused.value.status == 422
    assert refused.value.json()["error"]["details"]["field"] == "address"
    expect(page.locator("#channel-sms-error")).to_contain_text("手机号码不对")
    expect(number).to_have_attribute("aria-invalid", "true")
    expect(number).to_be_focused()
    assert kept_channels(page) == [] and sms.messages == []

    number.fill("138 1234 5678")
    with page.expect_response(lambda r: r.url.endswith("/api/channels")) as posted:
        section.locator("[data-testid=channel-send-sms]").click()
    assert posted.value.status == 202, posted.value.text()
    expect(number).not_to_have_attribute("aria-invalid", "true")
    item = section.locator("[data-testid=channel-list] li[data-kind=sms]")
    expect(item.locator("[data-testid=channel-address]")).to_have_text("138****5678")
    code = until(lambda: [m for m in sms.messages if m.number == NUMBER])[0].params["code"]
    item.locator("[data-testid=channel-code]").fill(code)
    item.locator("button[type=submit]").click()
    expect(item.locator("[data-testid=channel-status]")).to_have_text("已开启")
    [channel] = kept_channels(page)
    assert server_view(server, channel).json()["status"] == "active"
    assert NUMBER not in json.dumps(channel)

    # A supervisor sees what the reminders cost: the code was one message.
    sign_in(page, server, server.token("pw-supervisor", "supervisor"))
    usage = page.locator("[data-testid=channel-usage] tr[data-kind=sms]")
    expect(usage).to_contain_text("短信")
    cells = usage.locator("td")
    expect(cells.nth(0)).to_have_text("1")  # active
    expect(cells.nth(1)).to_have_text("1")  # sent today: the confirmation code
    expect(cells.nth(3)).to_have_text("¥0.05")  # 0.045 a message, to the fen


def test_wechat_is_offered_inside_wechat_and_its_consent_adds_the_channel(
    started: Callable[..., ServerProcess],
    wechat: WeChatService,
    browser: Any,
    page: Any,
    browser_errors: BrowserErrors,
) -> None:
    server = started(**wechat_env(wechat))
    # Outside WeChat: a sentence saying where it works, nothing to tap.
    visit(page, f"{server.url}/follows")
    follow_a_category(page)
    expect(page.locator("[data-testid=channel-wechat-elsewhere]")).to_contain_text(
        "需要在微信里打开本页"
    )
    assert page.locator("[data-testid=channel-wechat]").count() == 0

    # Inside WeChat: one tap, WeChat's consent (its stand-in answers as the follower
    # whose WeChat this is), and back on /follows with the channel.
    follower = wechat.new_follower()
    wechat.browser_user = follower
    inside = browser.new_context(**{**PHONE, "user_agent": WECHAT_UA})
    watch(inside, browser_errors)
    try:
        phone = inside.new_page()
        visit(phone, f"{server.url}/follows")
        follow_a_category(phone)
        start = phone.locator("[data-testid=channel-wechat]")
        expect(start).to_have_text("用微信接收提醒")
        expect(start).to_have_attribute(
            "href", "/api/channels/wechat/authorize?topics=category%3Aconstruction"
        )
        start.click()
        phone.wait_for_url(re.compile(r"/follows(#.*)?$"))
        phone.evaluate("async () => { await window.sunbid.ready; return true; }")
        item = phone.locator("[data-testid=channel-list] li[data-kind=wechat]")
        expect(item.locator("[data-testid=channel-status]")).to_have_text("已开启")
        expect(phone.locator("[data-testid=channels-said]")).to_contain_text("微信提醒已开启")
        # The manage token was in the address only for the way back.
        [channel] = kept_channels(phone)
        assert channel["manage_token"] not in phone.url
        assert phone.evaluate("location.hash") == ""
        described = server_view(server, channel).json()
        assert described["kind"] == "wechat" and described["status"] == "active"
        assert described["topics"] == [FOLLOWED]
        assert follower not in json.dumps(channel)
    finally:
        inside.close()


def test_a_push_service_that_fails_suggests_sms_or_wechat_and_leads_there(
    started: Callable[..., ServerProcess],
    sms: SmsService,
    wechat: WeChatService,
    context: Any,
) -> None:
    server = started(**sms.env(), **wechat_env(wechat))
    staff = Staff(server, server.token("pwa-channels-admin"))
    staff.project(PROJECT)
    staff.client.close()
    context.grant_permissions(["notifications"], origin=server.url)
    context.add_init_script(STUB % json.dumps("fail"))
    page = context.new_page()
    visit(page, f"{server.url}/p/{PROJECT}")
    page.evaluate("async () => { await navigator.serviceWorker.ready; return true; }")
    page.locator("button[data-testid=enable-push]").click()
    expect(page.locator("[data-testid=push-message]")).to_contain_text("连不上浏览器的推送服务")
    alternative = page.locator("[data-testid=push-alternative]")
    expect(alternative).to_contain_text("可以改用短信或微信接收提醒")
    alternative.locator("a").click()
    page.wait_for_url(f"{server.url}/follows#other-ways")
    heading = page.locator("#other-ways")
    expect(heading).to_be_in_viewport()
    expect(heading).to_be_focused()
    expect(page.locator("[data-testid=channel-address-sms]")).to_be_visible()


def test_a_browser_without_push_is_pointed_to_what_the_server_offers(
    started: Callable[..., ServerProcess], mail: MailServer, context: Any
) -> None:
    server = started(**mail_env(mail))
    context.add_init_script("delete window.PushManager;")
    page = context.new_page()
    visit(page, f"{server.url}/follows")
    expect(page.locator("[data-testid=push-unavailable]")).to_contain_text("不支持推送通知")
    alternative = page.locator("[data-testid=push-alternative]")
    expect(alternative).to_contain_text("可以改用电子邮件接收提醒")
    expect(alternative.locator("a")).to_have_attribute("href", "/follows#other-ways")


def test_where_nothing_else_is_offered_nothing_is_suggested(
    server: ServerProcess, context: Any
) -> None:
    context.add_init_script("delete window.PushManager;")
    page = context.new_page()
    visit(page, f"{server.url}/follows")
    expect(page.locator("[data-testid=push-unavailable]")).to_be_visible()
    expect(page.locator("[data-testid=channels-none]")).to_contain_text("暂未开通")
    expect(page.locator("[data-testid=push-alternative]")).to_be_hidden()
