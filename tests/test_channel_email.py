"""E-mail through a real SMTP server on loopback (tests/smtp_service.py).

The server receives real mail over SMTP (with STARTTLS or implicit TLS and
logins when a test asks) and refuses what a provider's MX refuses; each
message is parsed back and read as a mail client would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Literal

import pytest

from push.channels import Message, Result
from push.channels.email import (
    EmailSender,
    classify,
    from_env,
    normalize_email,
    smtp_settings,
)
from server.core.env import SettingsError
from tests.conftest import free_port
from tests.smtp_service import MailServer

FROM = "阳光招采 <noreply@sunbid.example.org>"
TO = "zhang.san@example.com"
SUBJECT = "【开标】义乌市佛堂镇某道路改造工程施工"
TEXT = "义乌市佛堂镇某道路改造工程施工:开标。\n详情 https://sunbid.example.org/p/YW-2026-0001\n"
UNSUBSCRIBE = "https://sunbid.example.org/api/channels/c-41/unsubscribe?t=Zm9vYmFy"


def event(*, unsubscribe: str | None = UNSUBSCRIBE, **extra: str) -> Message:
    return Message(
        template="event",
        params={"project": "义乌市佛堂镇某道路改造工程施工", "stage": "开标"},
        subject=SUBJECT,
        text=TEXT,
        unsubscribe=unsubscribe,
        extra=extra,
    )


@pytest.fixture
async def server() -> AsyncIterator[MailServer]:
    async with MailServer() as running:
        yield running


@pytest.fixture
def sender(server: MailServer) -> EmailSender:
    made = from_env({"SUNBID_SMTP_URL": server.url, "SUNBID_SMTP_FROM": FROM})
    assert made is not None
    return made


def tls_sender(server: MailServer, credentials: str = "") -> EmailSender:
    url = server.url.replace("://", f"://{credentials}@" if credentials else "://")
    return EmailSender(smtp_settings(url, FROM), tls_context=server.client_tls(), timeout=5)


# --- the message --------------------------------------------------------------------


async def test_a_message_arrives_with_the_headers_providers_expect(
    server: MailServer, sender: EmailSender
) -> None:
    sent = await sender.send(TO, event())
    assert (sent.result, sent.detail) == (Result.DELIVERED, "smtp 250")
    [received] = server.received
    assert (received.mail_from, received.rcpt_tos) == ("noreply@sunbid.example.org", [TO])
    assert received.content.isascii()  # no relay on the way needs 8BITMIME
    raw_subject = next(
        line for line in received.content.split(b"\r\n") if line.startswith(b"Subject:")
    )
    assert b"=?utf-8?" in raw_subject.lower()

    mail = received.message()
    assert mail["Subject"] == SUBJECT
    assert mail["From"].addresses[0].display_name == "阳光招采"
    assert mail["From"].addresses[0].addr_spec == "noreply@sunbid.example.org"
    assert mail["To"] == TO
    assert abs(parsedate_to_datetime(mail["Date"]).timestamp() - time.time()) < 60
    assert mail["Message-ID"].startswith("<")
    assert mail["Message-ID"].endswith("@sunbid.example.org>")
    assert mail["Auto-Submitted"] == "auto-generated"
    # A long URL folds onto the next line, as RFC 5322 allows.
    assert mail["List-Unsubscribe"].strip() == f"<{UNSUBSCRIBE}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    assert mail["Content-Transfer-Encoding"] == "base64"
    assert mail.get_content().replace("\r\n", "\n") == TEXT  # text travels with CRLF


async def test_a_line_break_in_the_subject_cannot_add_a_header(
    server: MailServer, sender: EmailSender
) -> None:
    message = Message("event", {}, subject="开标\r\nBcc: all@example.com", text=TEXT)
    assert (await sender.send(TO, message)).result is Result.DELIVERED
    mail = server.received[0].message()
    assert mail["Subject"] == "开标 Bcc: all@example.com"
    assert mail["Bcc"] is None and server.received[0].rcpt_tos == [TO]


async def test_without_an_unsubscribe_url_there_are_no_list_headers(
    server: MailServer, sender: EmailSender
) -> None:
    await sender.send(TO, event(unsubscribe=None))
    mail = server.received[0].message()
    assert mail["List-Unsubscribe"] is None and mail["List-Unsubscribe-Post"] is None


async def test_a_retried_message_keeps_its_message_id(
    server: MailServer, sender: EmailSender
) -> None:
    await sender.send(TO, event(idempotency_key="seq-7:channel-3"))
    await sender.send(TO, event(idempotency_key="seq-7:channel-3"))
    await sender.send(TO, event())
    await sender.send(TO, event())
    ids = [r.message()["Message-ID"] for r in server.received]
    assert ids[0] == ids[1]
    assert len({ids[1], ids[2], ids[3]}) == 3


# --- what the server says -----------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "result", "detail"),
    [
        ("451 4.7.1 Greylisted, try again in 5 minutes", Result.RETRY, "smtp 451 4.7.1"),
        ("550 5.1.1 <zhang.san@example.com>: user unknown", Result.GONE, "smtp 550 5.1.1"),
        ("551 5.1.6 User not local", Result.GONE, "smtp 551 5.1.6"),
        ("553 5.1.3 Mailbox name not allowed", Result.GONE, "smtp 553 5.1.3"),
        ("552 5.2.2 Mailbox full", Result.RETRY, "smtp 552 5.2.2"),
        ("550 5.7.1 Relaying denied", Result.FAILED, "smtp 550 5.7.1"),
        ("554 5.7.1 Rejected by policy", Result.FAILED, "smtp 554 5.7.1"),
        ("550 Requested action not taken", Result.GONE, "smtp 550"),
    ],
)
async def test_a_refused_recipient_is_classified_by_the_reply(
    server: MailServer, sender: EmailSender, reply: str, result: Result, detail: str
) -> None:
    server.refuse(TO, reply)
    sent = await sender.send(TO, event())
    assert (sent.result, sent.detail) == (result, detail)
    assert server.received == []


async def test_greylisted_mail_goes_through_on_the_next_attempt(
    server: MailServer, sender: EmailSender
) -> None:
    server.refuse(TO, "451 4.7.1 Greylisted", times=1)
    assert (await sender.send(TO, event())).result is Result.RETRY
    assert (await sender.send(TO, event())).result is Result.DELIVERED
    assert len(server.received) == 1


async def test_a_server_that_cannot_be_reached_is_retried() -> None:
    url = f"smtp://127.0.0.1:{free_port()}"
    sender = EmailSender(smtp_settings(url, FROM), timeout=2)
    sent = await sender.send(TO, event())
    assert (sent.result, sent.detail) == (Result.RETRY, "smtp connection failed")


async def test_an_invalid_address_is_gone_without_a_connection(
    server: MailServer, sender: EmailSender
) -> None:
    sent = await sender.send("zhang.san@example.com>\r\nBcc: all@example.com", event())
    assert (sent.result, sent.detail) == (Result.GONE, "invalid address")
    assert server.received == []


# --- TLS and login ------------------------------------------------------------------


async def test_starttls_is_used_when_offered_and_the_login_goes_over_it() -> None:
    async with MailServer(tls="starttls", users={"sunbid": "pa:ss@word"}) as server:
        sent = await tls_sender(server, "sunbid:pa%3Ass%40word").send(TO, event())
        assert sent.result is Result.DELIVERED, sent.detail
        await tls_sender(server).send(TO, event())  # no login: still encrypted
    assert [(r.tls, r.login) for r in server.received] == [(True, "sunbid"), (True, None)]


async def test_implicit_tls_with_a_login() -> None:
    async with MailServer(tls="implicit", users={"sunbid": "secret"}) as server:
        assert server.url.startswith("smtps://")
        sent = await tls_sender(server, "sunbid:secret").send(TO, event())
    assert sent.result is Result.DELIVERED, sent.detail
    assert [(r.tls, r.login) for r in server.received] == [(True, "sunbid")]


async def test_no_password_is_sent_to_a_server_without_tls(
    server: MailServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.users["sunbid"] = "secret"
    sent = await tls_sender(server, "sunbid:secret").send(TO, event())
    assert (sent.result, sent.detail) == (
        Result.FAILED,
        "smtp server offers no tls: password not sent",
    )
    assert server.received == []
    assert "password not sent" in caplog.text


async def test_a_wrong_password_fails(caplog: pytest.LogCaptureFixture) -> None:
    async with MailServer(tls="starttls", users={"sunbid": "secret"}) as server:
        sent = await tls_sender(server, "sunbid:guess").send(TO, event())
    assert (sent.result, sent.detail) == (Result.FAILED, "smtp 535 5.7.8")
    assert "guess" not in caplog.text


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_a_certificate_not_trusted_fails(tls: Literal["starttls", "implicit"]) -> None:
    async with MailServer(tls=tls) as server:
        sender = EmailSender(smtp_settings(server.url, FROM), timeout=5)  # the system's CAs
        sent = await sender.send(TO, event())
    assert (sent.result, sent.detail) == (Result.FAILED, "smtp server certificate not trusted")
    assert server.received == []


async def test_logs_carry_no_address_subject_or_text(
    server: MailServer, sender: EmailSender, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gone, refused = "li.si@example.com", "wang.wu@example.com"
    server.refuse(gone, f"550 5.1.1 <{gone}>: user unknown")
    server.refuse(refused, f"554 5.7.1 <{refused}>: rejected")
    for address in (TO, gone, refused):
        await sender.send(address, event())
    assert "refused by the SMTP server (smtp 554 5.7.1)" in caplog.text
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail"))
    for secret in (TO, gone, refused, SUBJECT, TEXT.strip(), UNSUBSCRIBE, "zhang.san"):
        assert secret not in ours


# --- addresses, settings, replies ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (" Zhang.San@Example.COM ", "Zhang.San@example.com"),
        ("a+notices@mail.sub.example.cn", "a+notices@mail.sub.example.cn"),
        ("user@例子.中国", "user@xn--fsqu00a.xn--fiqs8s"),
        ("o'brien_1@qq.com", "o'brien_1@qq.com"),
    ],
)
def test_normalize_email_accepts(text: str, address: str) -> None:
    assert normalize_email(text) == address


@pytest.mark.parametrize(
    "text",
    [
        "",
        "zhang.san",
        "zhang@localhost",
        "a@@example.com",
        "a b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a..b@example.com",
        "a@example..com",
        "a@-example.com",
        "a@1.2.3.4",
        "张三@qq.com",
        "<a@example.com>",
        "a@example.com\r\nBcc: b@example.com",
        "x" * 65 + "@example.com",
        "a@" + "b" * 64 + ".com",
    ],
)
def test_normalize_email_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        normalize_email(text)


def test_settings() -> None:
    assert from_env({}) is None
    plain = smtp_settings("smtp://mail.example.org", "noreply@sunbid.example.org")
    assert (plain.host, plain.port, plain.implicit_tls, plain.username) == (
        "mail.example.org",
        25,
        False,
        None,
    )
    secure = smtp_settings("smtps://us%40er:p%3Ass@smtp.qq.com", FROM)
    assert (secure.port, secure.implicit_tls) == (465, True)
    assert (secure.username, secure.password) == ("us@er", "p:ss")
    assert "p:ss" not in repr(secure)
    assert smtp_settings("smtp://smtp.qq.com:587", FROM).port == 587
    with pytest.raises(SettingsError, match="SUNBID_SMTP_FROM"):
        from_env({"SUNBID_SMTP_URL": "smtp://mail.example.org"})
    with pytest.raises(SettingsError, match="SUNBID_SMTP_FROM"):
        from_env({"SUNBID_SMTP_URL": "smtp://mail.example.org", "SUNBID_SMTP_FROM": "noreply"})
    for url in ("http://mail.example.org", "smtp://u:topsecret@host:port", "smtp://", "smtp://h/x"):
        with pytest.raises(SettingsError, match="SUNBID_SMTP_URL") as bad:
            from_env({"SUNBID_SMTP_URL": url, "SUNBID_SMTP_FROM": FROM})
        assert "topsecret" not in str(bad.value)


def test_replies_are_classified() -> None:
    assert classify(250) is Result.DELIVERED
    assert {classify(c) for c in (421, 450, 451, 452)} == {Result.RETRY}
    assert {classify(c) for c in (550, 551, 553)} == {Result.GONE}
    assert classify(550, "5.7.1") is Result.FAILED
    assert classify(552) is Result.RETRY
    assert classify(552, recipient=False) is Result.FAILED
    assert classify(550, recipient=False) is Result.FAILED
    assert {classify(c) for c in (500, 530, 535, 554)} == {Result.FAILED}
