"""The SMS channel: Alibaba Cloud SendSms, against a stand-in that verifies signatures.

The signing is checked byte for byte against the worked example of Alibaba
Cloud's signature V3 documentation, both the sender's and the stand-in's
independent one; then the sender talks to the stand-in (tests/sms_service.py)
over real HTTP on loopback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
from yarl import URL

from push.channels import Message, Result, Sender, Sent
from push.channels.acs3 import Credentials, acs_date, canonical_query, signed_headers
from push.channels.sms import (
    SmsSender,
    classify,
    fit,
    from_env,
    normalize_phone,
    seconds_to_china_midnight,
    settings_from_env,
)
from server.core.env import SettingsError
from tests import sms_service
from tests.sms_service import SmsService

NUMBER = "13812345678"
TITLE = "杭州市西湖区文三路地下综合管廊及配套道路工程施工总承包（EPC）项目第二标段"


def event(project: str = "西湖区文三路管廊工程", stage: str = "中标候选人公示") -> Message:
    return Message(
        template="event",
        params={"project": project, "stage": stage, "link": "https://sunbid.example.org/p/42"},
        subject=f"{project}：{stage}",
        text=f"{project}：{stage} https://sunbid.example.org/p/42",
    )


# No Content-Type for an empty body: the sender's own session leaves it out too.
BARE = ("Content-Type",)
CODE = Message(template="code", params={"code": "482913"}, subject="验证码", text="验证码 482913")


@pytest.fixture
async def service() -> AsyncIterator[SmsService]:
    async with SmsService() as running:
        yield running


@pytest.fixture
async def sender(service: SmsService) -> AsyncIterator[SmsSender]:
    made = from_env(service.env())
    assert made is not None
    channel: Sender = made  # what the delivery worker holds it as
    assert channel.kind == "sms"
    yield made
    await made.close()


# --- signing, against the documentation ---------------------------------------------------

# Alibaba Cloud, "Request syntax and signature method V3", section "Fixed parameter values".
DOC_QUERY = {
    "ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
    "RegionId": "cn-shanghai",
}
DOC_SIGNATURE = "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
DOC_SIGNED = "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"


def test_signing_reproduces_the_documented_example() -> None:
    headers = signed_headers(
        Credentials("YourAccessKeyId", "YourAccessKeySecret"),
        method="POST",
        host="ecs.cn-shanghai.aliyuncs.com",
        action="RunInstances",
        version="2014-05-26",
        date="2023-10-26T10:22:32Z",
        nonce="3156853299f313e23d1673dc12e1703d",
        query=DOC_QUERY,
    )
    assert headers["authorization"] == (
        f"ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders={DOC_SIGNED},"
        f"Signature={DOC_SIGNATURE}"
    )
    assert headers["x-acs-content-sha256"] == EMPTY_SHA256


def test_the_stand_ins_verifier_reproduces_the_documented_example() -> None:
    signature = sms_service.expected_signature(
        "YourAccessKeySecret",
        method="POST",
        path="/",
        raw_query="RegionId=cn-shanghai&ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
        headers={
            "host": "ecs.cn-shanghai.aliyuncs.com",
            "x-acs-action": "RunInstances",
            "x-acs-content-sha256": EMPTY_SHA256,
            "x-acs-date": "2023-10-26T10:22:32Z",
            "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
            "x-acs-version": "2014-05-26",
        },
        body=b"",
    )
    assert signature == DOC_SIGNATURE


def test_the_query_is_encoded_as_rfc_3986_with_utf_8() -> None:
    query = {"b": "a b*~", "TemplateParam": '{"p":"管廊"}', "a": "+/"}
    assert canonical_query(query) == (
        "TemplateParam=%7B%22p%22%3A%22%E7%AE%A1%E5%BB%8A%22%7D&a=%2B%2F&b=a%20b%2A~"
    )


# --- sending ------------------------------------------------------------------------------


async def test_an_event_reaches_the_provider_with_the_template_and_its_variables(
    service: SmsService, sender: SmsSender
) -> None:
    sent = await sender.send("+86 138 1234 5678", event())
    assert sent == Sent(Result.DELIVERED, detail="OK")
    [accepted] = service.messages
    assert accepted.number == NUMBER
    assert accepted.sign_name == sms_service.SIGN_NAME
    assert accepted.template == sms_service.TEMPLATE_EVENT
    assert accepted.params == {
        "project": "西湖区文三路管廊工程",
        "stage": "中标候选人公示",
        "link": "p/42",
    }


async def test_a_confirmation_code_uses_the_code_template(
    service: SmsService, sender: SmsSender
) -> None:
    assert (await sender.send(NUMBER, CODE)).result is Result.DELIVERED
    assert service.messages[0].template == sms_service.TEMPLATE_CODE
    assert service.messages[0].params == {"code": "482913"}


async def test_a_long_project_title_is_cut_to_what_the_template_takes(
    service: SmsService, sender: SmsSender
) -> None:
    assert len(TITLE) > 35
    assert (await sender.send(NUMBER, event(project=TITLE))).result is Result.DELIVERED
    project = service.messages[0].params["project"]
    assert len(project) == 35
    assert project == TITLE[:34] + "…"


async def test_the_stand_in_refuses_an_overlong_variable(
    service: SmsService, sender: SmsSender
) -> None:
    """The truncation above is needed: what the provider does without it."""
    message = replace(event(), template="code", params={"code": "1234567"})
    sent = await sender.send(NUMBER, message)
    assert sent == Sent(Result.FAILED, detail="isv.PARAM_LENGTH_LIMIT")
    assert service.messages == []


async def test_messages_share_one_connection(service: SmsService, sender: SmsSender) -> None:
    for _ in range(3):
        assert (await sender.send(NUMBER, CODE)).result is Result.DELIVERED
    assert len(service.messages) == 3
    assert len(service.peers) == 1


async def test_a_retry_is_signed_afresh(service: SmsService, sender: SmsSender) -> None:
    """Each attempt has its own nonce, or the provider would refuse the retry as a replay."""
    service.script(sms_service.UNAVAILABLE)
    assert (await sender.send(NUMBER, CODE)).result is Result.RETRY
    assert (await sender.send(NUMBER, CODE)).result is Result.DELIVERED


# --- refusals -----------------------------------------------------------------------------


async def test_a_wrong_secret_fails_for_good(service: SmsService) -> None:
    sender = from_env(service.env(SUNBID_SMS_ACCESS_KEY_SECRET="not-the-secret"))
    assert sender is not None
    try:
        sent = await sender.send(NUMBER, CODE)
    finally:
        await sender.close()
    assert sent == Sent(Result.FAILED, detail="SignatureDoesNotMatch")
    assert service.answers == [(400, "SignatureDoesNotMatch")]
    assert service.messages == []


async def test_an_unknown_access_key_fails_for_good(service: SmsService) -> None:
    sender = from_env(service.env(SUNBID_SMS_ACCESS_KEY_ID="LTAI5tSomeoneElse"))
    assert sender is not None
    try:
        sent = await sender.send(NUMBER, CODE)
    finally:
        await sender.close()
    assert sent == Sent(Result.FAILED, detail="InvalidAccessKeyId.NotFound")
    assert service.answers == [(404, "InvalidAccessKeyId.NotFound")]


async def test_a_clock_more_than_15_minutes_off_is_refused(service: SmsService) -> None:
    settings = settings_from_env(service.env())
    assert settings is not None
    sender = SmsSender(settings, clock=lambda: time.time() - 16 * 60)
    try:
        sent = await sender.send(NUMBER, CODE)
    finally:
        await sender.close()
    assert sent == Sent(Result.FAILED, detail="InvalidTimeStamp.Expired")
    assert service.messages == []


async def test_a_replayed_request_is_refused(service: SmsService) -> None:
    """The stand-in remembers nonces: a captured request sent again is not a second SMS."""
    query = {
        "PhoneNumbers": NUMBER,
        "SignName": sms_service.SIGN_NAME,
        "TemplateCode": sms_service.TEMPLATE_CODE,
        "TemplateParam": '{"code":"482913"}',
    }
    url = URL(f"{service.origin}/?{canonical_query(query)}", encoded=True)
    headers = signed_headers(
        Credentials(sms_service.ACCESS_KEY_ID, sms_service.ACCESS_KEY_SECRET),
        method="POST",
        host=url.raw_authority,
        action="SendSms",
        version="2017-05-25",
        date=acs_date(time.time()),
        nonce="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        query=query,
    )
    async with aiohttp.ClientSession(skip_auto_headers=BARE) as session:
        for _ in range(2):
            async with session.post(url, headers=headers) as response:
                await response.read()
    assert service.answers == [(200, "OK"), (400, "SignatureNonceUsed")]
    assert len(service.messages) == 1


async def test_a_tampered_parameter_breaks_the_signature(service: SmsService) -> None:
    query = {
        "PhoneNumbers": NUMBER,
        "SignName": sms_service.SIGN_NAME,
        "TemplateCode": sms_service.TEMPLATE_CODE,
        "TemplateParam": '{"code":"482913"}',
    }
    headers = signed_headers(
        Credentials(sms_service.ACCESS_KEY_ID, sms_service.ACCESS_KEY_SECRET),
        method="POST",
        host=f"127.0.0.1:{service.port}",
        action="SendSms",
        version="2017-05-25",
        date=acs_date(time.time()),
        nonce="a1b2c3d4e5f60718293a4b5c6d7e8f90",
        query=query,
    )
    tampered = canonical_query({**query, "PhoneNumbers": "13900000000"})
    async with (
        aiohttp.ClientSession(skip_auto_headers=BARE) as session,
        session.post(URL(f"{service.origin}/?{tampered}", encoded=True), headers=headers) as r,
    ):
        assert r.status == 400
        assert (await r.json())["Code"] == "SignatureDoesNotMatch"
    assert service.messages == []


@pytest.mark.parametrize(
    ("variable", "value", "code"),
    [
        ("SUNBID_SMS_TEMPLATE_CODE", "SMS_999999999", "isv.SMS_TEMPLATE_ILLEGAL"),
        ("SUNBID_SMS_SIGN_NAME", "别的签名", "isv.SMS_SIGNATURE_ILLEGAL"),
    ],
)
async def test_an_unapproved_template_or_sign_name_fails_for_good(
    service: SmsService, variable: str, value: str, code: str
) -> None:
    sender = from_env(service.env(**{variable: value}))
    assert sender is not None
    try:
        sent = await sender.send(NUMBER, CODE)
    finally:
        await sender.close()
    assert sent == Sent(Result.FAILED, detail=code)


async def test_an_illegal_number_is_gone(service: SmsService, sender: SmsSender) -> None:
    service.refuse_number(NUMBER)
    assert await sender.send(NUMBER, event()) == Sent(
        Result.GONE, detail="isv.MOBILE_NUMBER_ILLEGAL"
    )
    assert (await sender.send("13900000000", event())).result is Result.DELIVERED


async def test_a_number_that_opted_out_is_gone(service: SmsService, sender: SmsSender) -> None:
    service.refuse_number(NUMBER, "isv.CUSTOMER_REFUSED")
    assert await sender.send(NUMBER, event()) == Sent(Result.GONE, detail="isv.CUSTOMER_REFUSED")


async def test_an_address_that_is_no_mobile_number_is_gone_without_a_request(
    service: SmsService, sender: SmsSender
) -> None:
    assert (await sender.send("+852 9123 4567", event())).result is Result.GONE
    assert service.answers == []


# --- throttling and outages ---------------------------------------------------------------


async def test_business_flow_control_is_retried_after_its_window(
    service: SmsService, sender: SmsSender
) -> None:
    service.script(sms_service.business_limit("分钟级"), sms_service.business_limit("小时级", 5))
    first = await sender.send(NUMBER, CODE)
    second = await sender.send(NUMBER, CODE)
    third = await sender.send(NUMBER, CODE)
    assert first == Sent(Result.RETRY, 60.0, "isv.BUSINESS_LIMIT_CONTROL")
    assert second == Sent(Result.RETRY, 3600.0, "isv.BUSINESS_LIMIT_CONTROL")
    assert third.result is Result.DELIVERED
    assert len(service.messages) == 1


async def test_gateway_throttling_is_retried(service: SmsService, sender: SmsSender) -> None:
    service.script(sms_service.GATEWAY_THROTTLED)
    assert await sender.send(NUMBER, CODE) == Sent(Result.RETRY, None, "Throttling.User")
    assert service.answers == [(429, "Throttling.User")]


async def test_the_daily_cap_is_retried_after_midnight_in_beijing(service: SmsService) -> None:
    settings = settings_from_env(service.env())
    assert settings is not None
    now = time.time()
    sender = SmsSender(settings, clock=lambda: now)
    service.script(sms_service.DAY_LIMIT)
    try:
        sent = await sender.send(NUMBER, CODE)
    finally:
        await sender.close()
    assert sent == Sent(Result.RETRY, seconds_to_china_midnight(now), "isv.DAY_LIMIT_CONTROL")


def test_midnight_in_beijing_is_counted_in_beijing_time() -> None:
    # 2026-03-01 23:00 in Beijing is 15:00 UTC: one hour to go.
    assert seconds_to_china_midnight(1772377200.0) == 3600.0


@pytest.mark.parametrize("answer", [sms_service.INTERNAL_ERROR, sms_service.UNAVAILABLE])
async def test_a_server_error_is_retried(
    service: SmsService, sender: SmsSender, answer: sms_service.Answer
) -> None:
    service.script(answer)
    assert await sender.send(NUMBER, CODE) == Sent(Result.RETRY, None, answer.code)


async def test_no_answer_in_time_is_retried(service: SmsService) -> None:
    settings = settings_from_env(service.env())
    assert settings is not None
    sender = SmsSender(settings, timeout=0.3)
    service.script(sms_service.HANG)
    try:
        started = time.monotonic()
        sent = await sender.send(NUMBER, CODE)
        assert time.monotonic() - started < 2
    finally:
        service.release()
        await sender.close()
    assert sent == Sent(Result.RETRY, detail="timeout")


async def test_an_unreachable_provider_is_retried(service: SmsService, sender: SmsSender) -> None:
    await service.stop()
    assert await sender.send(NUMBER, CODE) == Sent(Result.RETRY, detail="network")


@pytest.mark.parametrize(
    ("status", "answer", "expected"),
    [
        (200, {"Code": "OK"}, Sent(Result.DELIVERED, detail="OK")),
        (200, {"Code": "isv.DENY_IP_RANGE"}, Sent(Result.FAILED, detail="isv.DENY_IP_RANGE")),
        (200, {"Code": "isv.OUT_OF_SERVICE"}, Sent(Result.FAILED, detail="isv.OUT_OF_SERVICE")),
        (
            200,
            {"Code": "isv.AMOUNT_NOT_ENOUGH"},
            Sent(Result.FAILED, detail="isv.AMOUNT_NOT_ENOUGH"),
        ),
        (200, {"Code": "isp.SYSTEM_ERROR"}, Sent(Result.RETRY, detail="isp.SYSTEM_ERROR")),
        (400, {"Code": "Throttling"}, Sent(Result.RETRY, detail="Throttling")),
        (502, None, Sent(Result.RETRY, detail="http-502")),
        (404, None, Sent(Result.FAILED, detail="http-404")),
        (200, {"Code": "isv.SOMETHING_NEW"}, Sent(Result.FAILED, detail="isv.SOMETHING_NEW")),
    ],
)
def test_classification(status: int, answer: dict[str, str] | None, expected: Sent) -> None:
    assert classify(status, answer) == expected


def test_a_retry_after_header_is_honoured() -> None:
    sent = classify(429, {"Code": "Throttling.User"}, retry_after_header="7")
    assert sent == Sent(Result.RETRY, 7.0, "Throttling.User")


# --- privacy ------------------------------------------------------------------------------


async def test_no_number_nor_text_is_logged(
    service: SmsService, sender: SmsSender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service.refuse_number("13900000000")
    service.script(sms_service.business_limit())
    message = event(project=TITLE)
    await sender.send(NUMBER, message)  # throttled
    await sender.send(NUMBER, message)  # delivered
    await sender.send("+86 139 0000 0000", message)  # gone
    assert "isv.BUSINESS_LIMIT_CONTROL" in caplog.text  # the codes are there...
    assert "isv.MOBILE_NUMBER_ILLEGAL" in caplog.text
    for secret in (NUMBER, "1234 5678", "13900000000", "139 0000", TITLE[:10], "p/42"):
        assert secret not in caplog.text  # ...and nothing personal
    assert sms_service.ACCESS_KEY_SECRET not in caplog.text
    assert sms_service.ACCESS_KEY_SECRET not in repr(sender)


# --- settings -----------------------------------------------------------------------------


def test_the_channel_is_off_without_a_provider() -> None:
    assert from_env({}) is None
    assert from_env({"SUNBID_SMS_ACCESS_KEY_ID": "LTAI5t"}) is None


def test_the_public_endpoint_is_the_default(service: SmsService) -> None:
    env = service.env()
    del env["SUNBID_SMS_API_BASE"]
    settings = settings_from_env(env)
    assert settings is not None
    assert settings.api_base == "https://dysmsapi.aliyuncs.com"
    assert settings.templates == {
        "event": sms_service.TEMPLATE_EVENT,
        "code": sms_service.TEMPLATE_CODE,
    }


@pytest.mark.parametrize(
    "variable",
    [
        "SUNBID_SMS_ACCESS_KEY_ID",
        "SUNBID_SMS_ACCESS_KEY_SECRET",
        "SUNBID_SMS_SIGN_NAME",
        "SUNBID_SMS_TEMPLATE_EVENT",
        "SUNBID_SMS_TEMPLATE_CODE",
    ],
)
def test_a_missing_setting_is_named(service: SmsService, variable: str) -> None:
    env = service.env()
    del env[variable]
    with pytest.raises(SettingsError, match=variable):
        from_env(env)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SUNBID_SMS_PROVIDER", "tencent"),
        ("SUNBID_SMS_ACCESS_KEY_ID", "LTAI 5t"),
        ("SUNBID_SMS_SIGN_NAME", "【阳光招标】"),
        ("SUNBID_SMS_TEMPLATE_EVENT", "480000001"),
        ("SUNBID_SMS_TEMPLATE_CODE", "SMS_"),
        ("SUNBID_SMS_API_BASE", "http://dysmsapi.aliyuncs.com"),
        ("SUNBID_SMS_API_BASE", "https://dysmsapi.aliyuncs.com/v1"),
        ("SUNBID_SMS_API_BASE", "dysmsapi.aliyuncs.com"),
    ],
)
def test_a_bad_setting_is_named(service: SmsService, variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        from_env(service.env(**{variable: value}))


# --- numbers and variables ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "13812345678",
        "+86 138 1234 5678",
        "+8613812345678",
        "008613812345678",
        "8613812345678",
        "138-1234-5678",
        "１３８１２３４５６７８",  # full-width, as a Chinese input method types it
    ],
)
def test_a_mainland_mobile_number_is_normalized(text: str) -> None:
    assert normalize_phone(text) == "+8613812345678"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1381234567",  # 10 digits
        "138123456789",  # 12 digits
        "12812345678",  # no mobile range starts 12
        "+852 9123 4567",  # Hong Kong
        "+1 415 555 0100",
        "057188888888",  # a landline
        "+86 138 1234 567x",
        "86+13812345678",
    ],
)
def test_anything_else_is_not_a_mobile_number(text: str) -> None:
    with pytest.raises(ValueError):
        normalize_phone(text)


def test_fit_keeps_short_text_and_cuts_long_text_with_an_ellipsis() -> None:
    assert fit("中标候选人公示") == "中标候选人公示"
    assert fit("a\n b") == "a b"
    assert fit("x" * 35) == "x" * 35
    assert fit("x" * 36) == "x" * 34 + "…"


async def test_an_unsigned_header_the_gateway_wants_signed_is_refused(service: SmsService) -> None:
    query = {"PhoneNumbers": NUMBER}
    url = URL(f"{service.origin}/?{canonical_query(query)}", encoded=True)
    headers = signed_headers(
        Credentials(sms_service.ACCESS_KEY_ID, sms_service.ACCESS_KEY_SECRET),
        method="POST",
        host=url.raw_authority,
        action="SendSms",
        version="2017-05-25",
        date=acs_date(time.time()),
        nonce="5d4c3b2a1908f7e6d5c4b3a291807f6e",
        query=query,
    )
    async with (
        aiohttp.ClientSession() as session,  # which adds Content-Type: application/octet-stream
        session.post(url, headers=headers) as response,
    ):
        assert response.status == 400
        assert (await response.json())["Code"] == "IncompleteSignature"
