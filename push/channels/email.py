"""E-mail over SMTP: one message to one address, and what the server said.

The deployment hands mail to its own relay or mail provider
(`SUNBID_SMTP_URL`): `smtp://[user:pass@]host[:port]` upgrades with
STARTTLS whenever the server offers it, `smtps://` speaks TLS from the
first byte (port 465). A user name and password are only ever sent over
TLS: a server that offers no STARTTLS gets no login and the send fails, a
setting to fix rather than a password to leak. Each message has its own
connection; the worker bounds how many are open at once.

The message is what receiving providers (QQ Mail, 163, Gmail) expect of
automated mail: UTF-8 text sent 7-bit clean (base64), a Subject in
RFC 2047 encoded words, Date, a Message-ID, `Auto-Submitted:
auto-generated` so that out-of-office replies stay away, and for a message
with an unsubscribe URL `List-Unsubscribe` with `List-Unsubscribe-Post:
List-Unsubscribe=One-Click` (RFC 8058; the relay must sign them with
DKIM). A retried message keeps its Message-ID when the caller gives an
`idempotency_key`, so a duplicate after a lost answer can be recognised.

The SMTP reply decides the outcome (`classify`): accepted is DELIVERED;
4xx and a connection that failed are RETRY; 550/551/553 to the recipient
(mailbox unavailable, not local, name not allowed) is GONE, unless its
enhanced status is 5.7.x (a policy refusal of us, not of the address);
552 to the recipient is a full mailbox, treated as 452 (RFC 5321
§4.5.3.1.10); any other 5xx is FAILED. `Sent.detail` is the reply code
and enhanced status only: the server's text often repeats the address.
"""

from __future__ import annotations

import hashlib
import logging
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from urllib.parse import unquote, urlsplit

import aiosmtplib

from push.channels import Message, Result, Sent
from server.core.env import SettingsError, environ

log = logging.getLogger("sunbid.channels.email")

PORTS = {"smtp": 25, "smtps": 465}
GONE_CODES = frozenset({550, 551, 553})
# 7-bit clean bodies (base64 for Chinese text): no relay on the way needs 8BITMIME.
MAIL_POLICY = policy.SMTP.clone(cte_type="7bit")
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_ENHANCED = re.compile(r"\s*([245]\.\d{1,3}\.\d{1,3})\b")


def normalize_email(text: str) -> str:
    """`text` as an address to send to (`name@domain`, the domain lower-case
    and in its ASCII form); ValueError if it is not one.

    Reasonable rather than RFC 5322-complete: no quoted local parts, comments
    or address literals, and a local part in ASCII (few Chinese providers
    accept SMTPUTF8)."""
    value = text.strip()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("an e-mail address is name@domain")
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        raise ValueError("the part before @ has characters an address cannot have")
    try:
        domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError("the domain is not a domain name") from None
    labels = domain.split(".")
    if (
        len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError("the domain is not a domain name such as example.com")
    address = f"{local}@{domain}"
    if len(address) > 254:
        raise ValueError("an e-mail address is at most 254 characters")
    return address


def classify(code: int, enhanced: str = "", *, recipient: bool = True) -> Result:
    """What an SMTP reply means for the delivery; `recipient` when it is the
    answer to RCPT TO (only then can it be about the address)."""
    if 200 <= code < 300:
        return Result.DELIVERED
    if 400 <= code < 500 or (recipient and code == 552):
        return Result.RETRY
    if recipient and code in GONE_CODES and not enhanced.startswith("5.7."):
        return Result.GONE
    return Result.FAILED


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    implicit_tls: bool
    sender: Address  # the From header, and its address the envelope sender
    username: str | None = None
    password: str | None = field(default=None, repr=False)


class _Unusable(Exception):
    """The server cannot be used as configured (no TLS for the password, no
    login, a certificate not trusted): a setting to fix, for every message."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class EmailSender:
    kind = "email"

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,  # the system's trusted CAs by default
    ) -> None:
        self.settings = settings
        self._timeout = timeout
        self._tls_context = tls_context

    async def send(self, address: str, message: Message) -> Sent:
        try:
            recipient = normalize_email(address)
        except ValueError:
            return Sent(Result.GONE, detail="invalid address")
        mail = build_message(self.settings.sender, recipient, message)
        try:
            await self._transmit(recipient, mail)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return _refused(exc.recipients[0], recipient=True)
        except aiosmtplib.SMTPResponseException as exc:
            return _refused(exc, recipient=isinstance(exc, aiosmtplib.SMTPRecipientRefused))
        except _Unusable as exc:
            log.warning("email: %s", exc.detail)
            return Sent(Result.FAILED, detail=exc.detail)
        except (aiosmtplib.SMTPException, OSError):
            return Sent(Result.RETRY, detail="smtp connection failed")
        return Sent(Result.DELIVERED, detail="smtp 250")

    async def close(self) -> None:
        """Nothing is held between messages."""

    async def _transmit(self, recipient: str, mail: EmailMessage) -> None:
        settings = self.settings
        client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            use_tls=settings.implicit_tls,
            start_tls=False if settings.implicit_tls else None,  # None: when offered
            tls_context=self._tls_context,
            timeout=self._timeout,
        )
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            # Implicit TLS wraps the verification error; STARTTLS raises it as is.
            if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
                exc.__cause__, ssl.SSLCertVerificationError
            ):
                raise _Unusable("smtp server certificate not trusted") from None
            raise
        try:
            if settings.username is not None:
                await self._login(client)
            await client.send_message(
                mail, sender=settings.sender.addr_spec, recipients=[recipient]
            )
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()  # the message's fate is already known

    async def _login(self, client: aiosmtplib.SMTP) -> None:
        if client.get_transport_info("sslcontext") is None:
            raise _Unusable("smtp server offers no tls: password not sent")
        try:
            await client.login(self.settings.username or "", self.settings.password or "")
        except aiosmtplib.SMTPResponseException:
            raise  # 535 and the like: classified from the reply
        except aiosmtplib.SMTPException:
            raise _Unusable("smtp server offers no login") from None


def _refused(exc: aiosmtplib.SMTPResponseException, *, recipient: bool) -> Sent:
    match = _ENHANCED.match(exc.message)
    enhanced = match.group(1) if match else ""
    result = classify(exc.code, enhanced, recipient=recipient)
    detail = f"smtp {exc.code} {enhanced}".rstrip()
    if result is Result.FAILED:
        log.warning("email: refused by the SMTP server (%s)", detail)
    return Sent(result, detail=detail)


def build_message(
    sender: Address, recipient: str, message: Message, now: datetime | None = None
) -> EmailMessage:
    """The message as it goes on the wire (headers, UTF-8 plain text)."""
    mail = EmailMessage(policy=MAIL_POLICY)
    mail["From"] = sender
    mail["To"] = recipient
    mail["Subject"] = " ".join(message.subject.split())  # a title's line break ends no header
    mail["Date"] = format_datetime(now or datetime.now(UTC))
    mail["Message-ID"] = _message_id(sender.domain, message.extra.get("idempotency_key"))
    mail["Auto-Submitted"] = "auto-generated"
    if message.unsubscribe:
        mail["List-Unsubscribe"] = f"<{message.unsubscribe}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail.set_content(message.text, charset="utf-8")
    return mail


def _message_id(domain: str, key: str | None) -> str:
    if not key:
        return make_msgid(domain=domain)
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def from_env(env: Mapping[str, str] | None = None) -> EmailSender | None:
    """The sender `SUNBID_SMTP_URL` and `SUNBID_SMTP_FROM` describe; None when
    e-mail is not configured (no URL), `SettingsError` when half configured."""
    env = environ(env)
    url = env.get("SUNBID_SMTP_URL")
    if not url:
        return None
    return EmailSender(smtp_settings(url, env.get("SUNBID_SMTP_FROM") or ""))


def smtp_settings(url: str, sender: str) -> SmtpSettings:
    # Messages name the variable, never its value: the URL may hold a password.
    usage = "SUNBID_SMTP_URL must be smtp://[user:pass@]host[:port] or smtps://…"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise SettingsError(f"{usage} (the port is not a number)") from None
    if parts.scheme not in PORTS or not parts.hostname or parts.path not in ("", "/"):
        raise SettingsError(usage)
    if parts.query or parts.fragment:
        raise SettingsError(f"{usage} (no query or fragment)")
    if not sender:
        raise SettingsError("SUNBID_SMTP_FROM must be set when SUNBID_SMTP_URL is")
    return SmtpSettings(
        host=parts.hostname,
        port=port or PORTS[parts.scheme],
        implicit_tls=parts.scheme == "smtps",
        sender=sender_address(sender),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def sender_address(text: str) -> Address:
    """`SUNBID_SMTP_FROM`: `noreply@example.org` or `阳光招采 <noreply@example.org>`."""
    name, addr = parseaddr(text)
    try:
        local, _, domain = normalize_email(addr).rpartition("@")
    except ValueError as exc:
        raise SettingsError(f"SUNBID_SMTP_FROM: {exc}") from None
    return Address(display_name=name, username=local, domain=domain)
