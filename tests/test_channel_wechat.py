"""WeChat template messages and web authorization against a strict local WeChat.

The stand-in (tests/wechat_service.py) checks tokens, openids, templates and
field lengths as WeChat does, so a message it accepted is one WeChat would
show; these tests drive the sender through it, including the token's whole
life: shared, refreshed ahead of expiry, replaced when refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from push.channels import Message, Result
from push.channels.wechat import (
    WeChatError,
    WeChatSender,
    WeChatSettings,
    classify,
    event_keys,
    fit,
    from_env,
)
from server.core.env import SettingsError
from tests.conftest import free_port
from tests.wechat_service import APPID, OAUTH_DOMAIN, SECRET, WeChatService

TEMPLATE = "tpl-event-7Yq2"
PROJECT = "义乌市佛堂镇某道路改造工程施工"
LINK = "https://sunbid.example.org/p/YW-2026-0001"


def event(project: str = PROJECT, stage: str = "开标", **extra: str) -> Message:
    return Message(
        template="event",
        params={"project": project, "stage": stage, "link": LINK},
        subject=f"【{stage}】{project}",
        text=f"{project}:{stage}。详情 {LINK}",
        extra=extra,
    )


def env_for(wechat: WeChatService, **more: str) -> dict[str, str]:
    return {
        "SUNBID_WECHAT_APPID": APPID,
        "SUNBID_WECHAT_SECRET": SECRET,
        "SUNBID_WECHAT_TEMPLATE_EVENT": TEMPLATE,
        "SUNBID_WECHAT_API_BASE": wechat.origin,
        "SUNBID_WECHAT_OAUTH_BASE": wechat.origin,
        **more,
    }


@pytest.fixture
async def wechat() -> AsyncIterator[WeChatService]:
    async with WeChatService() as running:
        running.add_template(TEMPLATE, ["thing1", "thing2"])
        yield running


@pytest.fixture
async def sender(wechat: WeChatService) -> AsyncIterator[WeChatSender]:
    made = from_env(env_for(wechat))
    assert made is not None
    yield made
    await made.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- sending ------------------------------------------------------------------------


async def test_an_event_reaches_a_follower_with_its_fields_and_link(
    wechat: WeChatService, sender: WeChatSender
) -> None:
    openid = wechat.new_follower()
    sent = await sender.send(openid, event())
    assert (sent.result, sent.detail) == (Result.DELIVERED, "errcode 0")
    [message] = wechat.received(openid)
    assert message.template_id == TEMPLATE
    assert message.data == {"thing1": PROJECT, "thing2": "开标"}
    assert message.url == LINK


async def test_values_are_cut_to_what_each_field_type_holds(wechat: WeChatService) -> None:
    wechat.add_template("tpl-phrase", ["thing1", "phrase2"])
    made = from_env(
        env_for(
            wechat,
            SUNBID_WECHAT_TEMPLATE_EVENT="tpl-phrase",
            SUNBID_WECHAT_TEMPLATE_EVENT_KEYS="project=thing1, stage=phrase2",
        )
    )
    assert made is not None
    openid = wechat.new_follower()
    title = "浙江省金华市义乌市佛堂镇某道路改造提升工程施工总承包项目\n二标段"
    try:
        sent = await made.send(openid, event(title, "中标候选人公示"))
    finally:
        await made.close()
    # Uncut, WeChat refuses both values (47003) and nothing is shown.
    assert sent.result is Result.DELIVERED, sent.detail
    [message] = wechat.received(openid)
    assert message.data == {"thing1": title[:19] + "…", "phrase2": "中标候选人"}


async def test_concurrent_sends_share_one_token_fetch(
    wechat: WeChatService, sender: WeChatSender
) -> None:
    wechat.token_delay = 0.05  # long enough for every send to want a token at once
    followers = [wechat.new_follower() for _ in range(20)]
    results = await asyncio.gather(*(sender.send(o, event()) for o in followers))
    assert {r.result for r in results} == {Result.DELIVERED}
    assert wechat.token_fetches == 1
    assert len(wechat.messages) == 20


async def test_an_expired_token_is_replaced_and_the_send_tried_once_more(
    wechat: WeChatService, sender: WeChatSender
) -> None:
    openid = wechat.new_follower()
    assert (await sender.send(openid, event())).result is Result.DELIVERED
    wechat.expire_tokens()
    sent = await sender.send(openid, event("第二个项目"))
    assert sent.result is Result.DELIVERED
    assert wechat.errcodes() == [0, 42001, 0]
    assert wechat.token_fetches == 2
    assert [m.data["thing1"] for m in wechat.received(openid)] == [PROJECT, "第二个项目"]


async def test_a_token_refused_again_after_a_fresh_fetch_is_retried_later(
    wechat: WeChatService, sender: WeChatSender
) -> None:
    # Another process fetching its own token retires ours: a race, not a fault.
    wechat.fail_next(40001, 40001)
    sent = await sender.send(wechat.new_follower(), event())
    assert (sent.result, sent.detail) == (Result.RETRY, "errcode 40001")
    assert wechat.token_fetches == 2


async def test_the_token_is_replaced_ahead_of_its_expiry(wechat: WeChatService) -> None:
    clock = Clock()
    settings = WeChatSettings(
        appid=APPID,
        secret=SECRET,
        event_template=TEMPLATE,
        event_keys={"project": "thing1", "stage": "thing2"},
        api_base=wechat.origin,
    )
    sender = WeChatSender(settings, clock=clock)
    openid = wechat.new_follower()
    try:
        await sender.send(openid, event())
        clock.now += 7200 - 301  # more than five minutes left: kept
        await sender.send(openid, event())
        assert wechat.token_fetches == 1
        clock.now += 2  # less than five minutes left: replaced before anything fails
        await sender.send(openid, event())
        assert wechat.token_fetches == 2
    finally:
        await sender.close()
    assert wechat.errcodes() == [0, 0, 0]


async def test_a_user_who_stopped_following_is_gone(
    wechat: WeChatService, sender: WeChatSender
) -> None:
    openid = wechat.new_follower()
    wechat.unfollow(openid)
    sent = await sender.send(openid, event())
    assert (sent.result, sent.detail) == (Result.GONE, "errcode 43004")
    stranger = "oAbCdEfGhIjKlMnOpQrStUvWxYz0"
    assert (await sender.send(stranger, event())).detail == "errcode 40003"
    assert wechat.messages == []


@pytest.mark.parametrize(
    ("fault", "detail"),
    [(45009, "errcode 45009"), (-1, "errcode -1"), (503, "http 503")],
)
async def test_limits_busy_and_server_errors_are_retried(
    wechat: WeChatService, sender: WeChatSender, fault: int, detail: str
) -> None:
    openid = wechat.new_follower()
    wechat.fail_next(fault, fault)
    for _ in range(2):
        sent = await sender.send(openid, event())
        assert (sent.result, sent.detail) == (Result.RETRY, detail)
    assert (await sender.send(openid, event())).result is Result.DELIVERED
    assert len(wechat.received(openid)) == 1


async def test_wechat_unreachable_is_retried() -> None:
    settings = WeChatSettings(
        appid=APPID,
        secret=SECRET,
        event_template=TEMPLATE,
        event_keys={"project": "thing1"},
        api_base=f"http://127.0.0.1:{free_port()}",
    )
    sender = WeChatSender(settings, timeout=2)
    try:
        sent = await sender.send("oAbCdEfGhIjKlMnOpQrStUvWxYz0", event())
    finally:
        await sender.close()
    assert (sent.result, sent.detail) == (Result.RETRY, "token network error")


async def test_an_unknown_template_fails_for_good(wechat: WeChatService) -> None:
    made = from_env(env_for(wechat, SUNBID_WECHAT_TEMPLATE_EVENT="tpl-withdrawn"))
    assert made is not None
    try:
        sent = await made.send(wechat.new_follower(), event())
    finally:
        await made.close()
    assert (sent.result, sent.detail) == (Result.FAILED, "errcode 40037")


async def test_a_wrong_secret_fails_and_logs_no_secret_address_or_text(
    wechat: WeChatService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "0f9e8d7c6b5a49382716051423324150"
    made = from_env(env_for(wechat, SUNBID_WECHAT_SECRET=wrong))
    assert made is not None
    openid = wechat.new_follower()
    try:
        sent = await made.send(openid, event())
    finally:
        await made.close()
    assert (sent.result, sent.detail) == (Result.FAILED, "token errcode 40125")
    assert "token errcode 40125" in caplog.text
    for secret in (wrong, openid, PROJECT, LINK):
        assert secret not in caplog.text


async def test_logs_name_no_openid_nor_text(
    wechat: WeChatService, sender: WeChatSender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    following, gone = wechat.new_follower(), wechat.new_follower()
    wechat.unfollow(gone)
    wechat.fail_next(45009)
    for openid in (following, gone, following):
        await sender.send(openid, event())
    wechat.expire_tokens()
    await sender.send(following, event())
    assert len(wechat.received(following)) == 2
    for secret in (following, gone, PROJECT, LINK, SECRET):
        assert secret not in caplog.text


async def test_a_repeated_idempotency_key_is_shown_once(
    wechat: WeChatService, sender: WeChatSender
) -> None:
    openid = wechat.new_follower()
    for key in ("seq-7:sub-3", "seq-7:sub-3", "seq-8:sub-3"):
        assert (await sender.send(openid, event(idempotency_key=key))).result is Result.DELIVERED
    assert len(wechat.received(openid)) == 2


async def test_a_template_wechat_has_no_counterpart_for_fails(sender: WeChatSender) -> None:
    code = Message(template="code", params={"code": "123456"}, subject="", text="")
    sent = await sender.send("oAbCdEfGhIjKlMnOpQrStUvWxYz0", code)
    assert sent.result is Result.FAILED


# --- web authorization --------------------------------------------------------------


async def test_web_authorization_gives_the_openid_once(
    wechat: WeChatService, sender: WeChatSender
) -> None:
    openid = wechat.new_follower()
    wechat.browser_user = openid
    redirect_uri = f"https://{OAUTH_DOMAIN}/wechat/return?next=%2Fp%2FYW-1"
    url = sender.oauth_url(redirect_uri, "s7Kq2")
    assert url.endswith("#wechat_redirect")
    query = parse_qs(urlsplit(url).query)
    assert query == {
        "appid": [APPID],
        "redirect_uri": [redirect_uri],
        "response_type": ["code"],
        "scope": ["snsapi_base"],
        "state": ["s7Kq2"],
    }
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(url, allow_redirects=False) as page,
    ):
        assert page.status == 302, await page.text()
        back = urlsplit(page.headers["Location"])
    assert (back.hostname, back.path) == (OAUTH_DOMAIN, "/wechat/return")
    answer = parse_qs(back.query)
    assert answer["state"] == ["s7Kq2"] and answer["next"] == ["/p/YW-1"]
    assert await sender.openid_for(answer["code"][0]) == openid
    with pytest.raises(WeChatError) as used:
        await sender.openid_for(answer["code"][0])
    assert (used.value.errcode, used.value.retryable) == (40029, False)


async def test_web_authorization_refuses_a_foreign_redirect(
    wechat: WeChatService, sender: WeChatSender
) -> None:
    wechat.browser_user = wechat.new_follower()
    url = sender.oauth_url("https://elsewhere.example.com/return", "x")
    async with aiohttp.ClientSession() as browser, browser.get(url) as page:
        assert page.status == 400
        assert "10003" in await page.text()


async def test_an_unknown_code_raises(sender: WeChatSender) -> None:
    with pytest.raises(WeChatError) as unknown:
        await sender.openid_for("not-a-code")
    assert unknown.value.errcode == 40029
    assert str(unknown.value) == "errcode 40029"


def test_state_is_letters_and_digits() -> None:
    sender = WeChatSender(WeChatSettings(APPID, SECRET, TEMPLATE, {"project": "thing1"}))
    with pytest.raises(ValueError):
        sender.oauth_url("https://sunbid.example.org/r", "a&b")
    with pytest.raises(ValueError):
        sender.oauth_url("https://sunbid.example.org/r", "a" * 129)


# --- settings and the pure parts ----------------------------------------------------


def test_settings() -> None:
    assert from_env({}) is None
    full = {
        "SUNBID_WECHAT_APPID": APPID,
        "SUNBID_WECHAT_SECRET": SECRET,
        "SUNBID_WECHAT_TEMPLATE_EVENT": TEMPLATE,
    }
    sender = from_env(full)
    assert sender is not None
    assert sender.settings.api_base == "https://api.weixin.qq.com"
    assert sender.settings.oauth_base == "https://open.weixin.qq.com"
    assert dict(sender.settings.event_keys) == {"project": "thing1", "stage": "thing2"}
    assert SECRET not in repr(sender.settings)
    for missing in ("SUNBID_WECHAT_SECRET", "SUNBID_WECHAT_TEMPLATE_EVENT"):
        with pytest.raises(SettingsError, match=missing):
            from_env({k: v for k, v in full.items() if k != missing})
    with pytest.raises(SettingsError, match="SUNBID_WECHAT_API_BASE"):
        from_env({**full, "SUNBID_WECHAT_API_BASE": "api.weixin.qq.com"})
    with pytest.raises(SettingsError, match="SUNBID_WECHAT_OAUTH_BASE"):
        from_env({**full, "SUNBID_WECHAT_OAUTH_BASE": "ftp://open.weixin.qq.com"})


@pytest.mark.parametrize(
    "value", ["project=thing1,winner=thing2", "project=Thing1", "stage=thing2", "project"]
)
def test_bad_event_keys_are_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="SUNBID_WECHAT_TEMPLATE_EVENT_KEYS"):
        event_keys({"SUNBID_WECHAT_TEMPLATE_EVENT_KEYS": value})


def test_errcodes_are_classified() -> None:
    assert classify(0) is Result.DELIVERED
    assert {classify(c) for c in (43004, 40003)} == {Result.GONE}
    assert {classify(c) for c in (45009, 45047, -1)} == {Result.RETRY}
    assert {classify(c) for c in (40037, 47003, 40125, 48001)} == {Result.FAILED}


def test_fit() -> None:
    twenty = "一二三四五六七八九十" * 2
    assert fit("thing1", "开标") == "开标"
    assert fit("thing1", twenty) == twenty
    assert fit("thing12", twenty + "一") == twenty[:19] + "…"
    assert fit("phrase3", "中标候选人公示") == "中标候选人"
    assert fit("character_string2", "YW-2026-" + "0" * 30) == ("YW-2026-" + "0" * 30)[:32]
    assert fit("time4", "a\nb") == "a b"
