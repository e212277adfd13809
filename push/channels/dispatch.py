"""Sending one queued delivery by SMS, e-mail or WeChat (the push worker's
other half: push/worker.py sends Web Push itself and hands these here).

The decision for a due row: not yet (quiet hours: `Later`), not at all (the
channel is no longer configured, or the subscriber's daily cap is reached),
or the provider's answer. The address is unsealed only for the attempt, and
nothing here logs it or the text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from push.channels import Message, Result, Sender, Sent
from push.channels.contacts import ContactCipher
from push.channels.policy import ChannelPolicy, local_day
from push.queue import CHANNEL_PREFIX, Due

log = logging.getLogger("sunbid.channels")


@dataclass(frozen=True)
class Later:
    at: float  # epoch seconds: when quiet hours end


@dataclass(frozen=True)
class Dropped:
    why: str  # for the log: "not configured", "daily cap"


@dataclass
class ChannelDispatch:
    senders: Mapping[str, Sender]
    cipher: ContactCipher
    policy: ChannelPolicy
    timezone: ZoneInfo
    origin: str | None  # SUNBID_PUBLIC_URL: links in messages need an absolute URL

    def day(self, now: float) -> str:
        """The local date of `now` (SUNBID_TIMEZONE): what the daily cap counts."""
        return local_day(now, self.timezone)

    async def deliver(
        self,
        due: Due,
        event: Mapping[str, Any],
        stage_name: str,
        now: float,
        sent_today: int,
    ) -> Sent | Later | Dropped:
        """`sent_today`: the messages sent to this channel on its local day so
        far (stored ones and those in flight); the daily cap compares it."""
        sender = self.senders.get(due.kind)
        if sender is None or due.address is None:
            return Dropped("not configured")
        policy = self.policy.of(due.kind)
        later = policy.send_at(event["stage"], datetime.fromtimestamp(now, self.timezone))
        if later is not None:
            return Later(later.timestamp())
        if sent_today >= policy.daily_cap:
            return Dropped("daily cap")
        channel_id = due.endpoint.removeprefix(CHANNEL_PREFIX)
        message = event_message(event, stage_name, self.origin, self.unsubscribe_url(channel_id))
        # One message however often it is sent: WeChat and mail collapse a retry.
        message = replace(message, extra={"idempotency_key": f"{due.seq}:{channel_id}"})
        try:
            address = self.cipher.open(due.address)
        except Exception:  # a key that does not fit: the address is lost, not the queue
            log.error("channel %s: its address cannot be unsealed with contacts.key", channel_id)
            return Sent(Result.FAILED, detail="address unreadable")
        return await sender.send(address, message)

    def unsubscribe_url(self, channel_id: str) -> str | None:
        if self.origin is None:
            return None
        token = self.cipher.unsubscribe_token(channel_id)
        return f"{self.origin}/api/channels/{channel_id}/unsubscribe?token={token}"

    async def close(self) -> None:
        for sender in self.senders.values():
            await sender.close()


def event_message(
    event: Mapping[str, Any], stage_name: str, origin: str | None, unsubscribe: str | None
) -> Message:
    """The "event" template: the event's title, its stage, the project's page."""
    title = str(event["title"])
    link = f"{origin}/p/{event['project']}" if origin else ""
    lines = [title, f"{stage_name} · {event['project']}"]
    if link:
        lines.append(link)
    if unsubscribe:
        lines += ["", f"退订：{unsubscribe}"]
    return Message(
        template="event",
        params={"project": title, "stage": stage_name, "link": link},
        subject=f"【{stage_name}】{title}",
        text="\n".join(lines),
        unsubscribe=unsubscribe,
    )


def code_message(code: str) -> Message:
    return Message(
        template="code",
        params={"code": code},
        subject="阳光招采提醒验证码",
        text=f"您的验证码是 {code}，10 分钟内有效。如非本人操作，请忽略。",
    )
