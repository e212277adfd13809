"""A local SMTP server standing in for the mail relay: real SMTP (aiosmtpd) on a free port.

It refuses what a relay refuses: mail from a sender other than the one it
relays for (550 5.7.1), and messages without the headers large mailbox
providers require of bulk senders (From matching the envelope, Date,
Message-ID: 550 5.7.1). What it accepts is kept, parsed, for a test to read:
the code a confirmation mail carries, its subject, its recipient.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.conftest import free_port

REQUIRED_HEADERS = ("From", "To", "Date", "Message-ID", "Subject")


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage

    def text(self) -> str:
        """The plain-text body, decoded."""
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "the mail has no text/plain part"
        return str(part.get_content())

    def code(self) -> str:
        """The 6-digit confirmation code the mail carries (exactly one)."""
        codes = set(re.findall(r"(?<!\d)\d{6}(?!\d)", self.text()))
        assert len(codes) == 1, f"expected one 6-digit code in the mail, found {len(codes)}"
        return codes.pop()


@dataclass
class Inbox:
    """What the relay accepted, and the refusals it gave."""

    sender: str  # the only envelope sender it relays for
    port: int = 0
    mails: list[Mail] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def to(self, address: str) -> list[Mail]:
        with self.lock:
            return [m for m in self.mails if address in m.recipients]

    def wait_for(self, address: str, count: int = 1, timeout: float = 15.0) -> Mail:
        """The `count`-th mail to `address`, once it has arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = self.to(address)
            if len(received) >= count:
                return received[count - 1]
            time.sleep(0.05)
        raise AssertionError(f"no mail #{count} within {timeout} s (refused: {self.refused})")

    # --- aiosmtpd's handler hooks ---------------------------------------------------------

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.lower() != self.sender.lower():
            return self._refuse("550 5.7.1 Sender not allowed to relay through this server")
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        missing = [name for name in REQUIRED_HEADERS if not message[name]]
        if missing:
            return self._refuse(f"550 5.7.1 Message lacks required headers: {', '.join(missing)}")
        _, author = email.utils.parseaddr(str(message["From"]))
        if author.lower() != str(envelope.mail_from).lower():
            return self._refuse("550 5.7.1 From header does not match the envelope sender")
        with self.lock:
            self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 2.0.0 OK: queued"

    def _refuse(self, reply: str) -> str:
        with self.lock:
            self.refused.append(reply)
        return reply


@contextmanager
def running_inbox(sender: str) -> Iterator[Inbox]:
    """An SMTP relay for `sender` on 127.0.0.1, in a thread of its own, for the `with` block."""
    inbox = Inbox(sender, port=free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
