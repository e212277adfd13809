"""A real SMTP server on loopback (aiosmtpd), as strict as a receiving provider.

It receives mail over real SMTP on the test's event loop, optionally with
STARTTLS offered (`tls="starttls"`) or TLS from the first byte
(`tls="implicit"`), with a certificate of its own that only
`client_tls()` trusts, and with logins (`users`) accepted only over TLS.
Like a provider's MX it refuses what it would refuse for real:

- at RCPT, an address told to `refuse(address, "550 5.1.1 …")` (once,
  or for good) — 451 greylisting, 550 no such user, 552 full…;
- at DATA, a message missing From, Date or Message-ID (554 5.6.0, as Gmail
  does), or with 8-bit bytes not announced as BODY=8BITMIME (554 5.6.1).

Accepted mail is kept as `Received` (envelope, raw bytes, whether TLS and
which login carried it); `Received.message()` parses it back.

    async with MailServer(tls="starttls", users={"sunbid": "pw"}) as server:
        ...
        [mail] = server.received
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import tempfile
from collections import deque
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REQUIRED_HEADERS = ("From", "Date", "Message-ID")


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes  # as it came after DATA
    tls: bool
    login: str | None

    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_RCPT(
        self,
        smtp: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.server._refusal(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if any(b > 0x7F for b in content) and "BODY=8BITMIME" not in envelope.mail_options:
            return "554 5.6.1 8-bit content without BODY=8BITMIME"
        parsed = message_from_bytes(content, policy=policy.default)
        for name in REQUIRED_HEADERS:
            if parsed[name] is None:
                return f"554 5.6.0 the message has no {name} header"
        transport = smtp.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.server.received.append(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), content, tls, login)
        )
        return "250 2.0.0 OK queued"


class MailServer:
    def __init__(
        self,
        *,
        tls: Literal["starttls", "implicit"] | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.tls = tls
        self.users = users or {}
        self.received: list[Received] = []
        self.port = 0
        self._standing: dict[str, str] = {}
        self._once: dict[str, deque[str]] = {}
        self._server: asyncio.Server | None = None
        self._certificate, self._key = _self_signed()

    @property
    def url(self) -> str:
        """A `SUNBID_SMTP_URL` for this server (without credentials)."""
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        return f"{scheme}://127.0.0.1:{self.port}"

    def client_tls(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate, and nothing else."""
        context = ssl.create_default_context(cadata=self._certificate.decode())
        return context

    async def start(self) -> MailServer:
        server_tls = self._server_tls() if self.tls else None
        loop = asyncio.get_running_loop()
        handler = _Handler(self)

        def protocol() -> SMTP:
            return SMTP(
                handler,
                hostname="mx.test",
                loop=loop,
                tls_context=server_tls if self.tls == "starttls" else None,
                # aiosmtpd knows TLS only from STARTTLS; on an implicit-TLS
                # port every session is encrypted already.
                auth_require_tls=self.tls != "implicit",
                authenticator=self._authenticate,
            )

        implicit = server_tls if self.tls == "implicit" else None
        self._server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=implicit)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def __aenter__(self) -> MailServer:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # --- set-up by tests ----------------------------------------------------------------

    def refuse(self, address: str, reply: str, *, times: int | None = None) -> None:
        """Answer RCPT TO `address` with `reply` (`times` times, or for good)."""
        if times is None:
            self._standing[address] = reply
        else:
            self._once.setdefault(address, deque()).extend([reply] * times)

    def _refusal(self, address: str) -> str | None:
        queued = self._once.get(address)
        if queued:
            return queued.popleft()
        return self._standing.get(address)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = data.login.decode(), data.password.decode()
        accepted = user in self.users and self.users[user] == password
        return AuthResult(success=accepted, handled=False, auth_data=data if accepted else None)

    def _server_tls(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            cert.write_bytes(self._certificate)
            key.write_bytes(self._key)
            context.load_cert_chain(cert, key)
        return context


def _self_signed() -> tuple[bytes, bytes]:
    """A certificate for 127.0.0.1 (PEM) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
