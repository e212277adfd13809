"""Notification channels beside Web Push: SMS, e-mail and WeChat.

Web Push cannot reach most Android phones in China (their Chrome relies on
Google's push service) nor the WeChat browser, so a follower can also be
told by SMS, e-mail or a WeChat message. Deliveries for every channel come
from the one push queue (push/queue.py), derived from the log the same way;
what differs per channel is only how one message is sent, which is what a
`Sender` does. Each sender module reads its own settings (`from_env`), and a
channel whose settings are absent is not offered at all.

A sender is handed the address in clear (decrypted for the attempt, see
contacts.py) and must never log it, nor the message text: its `Sent.detail`
carries the provider's answer code only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol


class Result(Enum):
    DELIVERED = "delivered"  # the provider accepted it
    RETRY = "retry"  # throttled, or the provider or network failed: try again later
    GONE = "gone"  # the address is no longer reachable (revoked number, unsubscribed user)
    FAILED = "failed"  # refused for good (a bad template or parameter, a bad key)


@dataclass(frozen=True)
class Sent:
    result: Result
    retry_after: float | None = None  # seconds, when the provider said how long
    detail: str = ""  # the provider's answer code, for the log: never an address or text


@dataclass(frozen=True)
class Message:
    """One notification, from templates approved in advance (SMS providers and
    WeChat accept nothing else): a template and its parameters, and the same
    as plain text for e-mail.

    template "event": params `project` (the project's title), `stage` (the
    stage's name), `link` (the project's page, an absolute URL).
    template "code": params `code` (a confirmation code).
    """

    template: str
    params: Mapping[str, str]
    subject: str
    text: str
    unsubscribe: str | None = None  # a URL that cancels this channel in one step
    extra: Mapping[str, str] = field(default_factory=dict)


class Sender(Protocol):
    kind: str  # "sms", "email" or "wechat"

    async def send(self, address: str, message: Message) -> Sent: ...

    async def close(self) -> None: ...
