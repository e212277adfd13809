"""Channels beside Web Push as the web server's handlers see them
(server/api/channels.py): adding one, confirming it, reading and cancelling
it, WeChat's web authorization.

A channel is confirmed before anything is sent to it: SMS and e-mail by a
code sent to the address (six digits, ten minutes, five tries), WeChat by
the user's own step through its web authorization, in the browser that
started it (which gives the openid of whoever it was).
Until then its subscription follows nothing. The device that added it keeps
a manage token (only its digest is stored) to read or cancel it; every
message carries a one-step 退订 link (contacts.py `unsubscribe_token`).

The confirmation code is sent from this process, in a task of its own: the
request does not wait for the provider, and nothing about the attempt but
the provider's answer code is logged.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from push.channels import Result, Sender
from push.channels.contacts import (
    CODE_SECONDS,
    CODE_TRIES,
    ContactCipher,
    hint,
    matches,
    new_code,
    new_token,
    secret_digest,
)
from push.channels.dispatch import code_message
from push.channels.policy import ChannelPolicy, local_day
from push.channels.wechat import WeChatSender
from push.queue import Channel, NewChannel, PushQueue
from server.core.errors import ApiError, invalid

log = logging.getLogger("sunbid.channels")

CHANNELS_PER_ADDRESS = 3  # pending or confirmed: one number cannot be signed up without end
CODES_PER_HOUR = 5  # to one address, however often a channel to it is added and cancelled
STATE_SECONDS = 600  # how long a WeChat authorization may take
SECRET_HEX = 32  # the one-time secret in WeChat's `state`, after the channel's id


@dataclass
class ChannelService:
    queue: PushQueue
    cipher: ContactCipher
    senders: Mapping[str, Sender]
    policy: ChannelPolicy
    normalizers: Mapping[str, Callable[[str], str]]  # kind → address check (ValueError)
    public_url: str | None
    timezone: ZoneInfo  # SUNBID_TIMEZONE: what "today" means for usage
    clock: Callable[[], float] = time.time
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def kinds(self) -> list[str]:
        return sorted(self.senders)

    async def add(
        self, kind: object, address: object, topics: list[str], stages: list[str] | None, now: str
    ) -> dict[str, Any]:
        """A channel by SMS or e-mail, pending until its code comes back."""
        if not isinstance(kind, str) or kind not in self.senders or kind == "wechat":
            offered = [k for k in self.kinds if k != "wechat"]
            raise invalid("kind", f"one of {offered} (WeChat: /api/channels/wechat/authorize)")
        if not isinstance(address, str) or len(address) > 320:
            raise invalid("address", "a phone number or e-mail address, as text")
        try:
            normal = self.normalizers[kind](address)
        except ValueError as exc:
            raise invalid("address", str(exc)) from None
        digest = self.cipher.digest(kind, normal)
        if await self.queue.codes_sent(digest, self.clock() - 3600) >= CODES_PER_HOUR:
            raise ApiError(
                429,
                "too_many_requests",
                f"{CODES_PER_HOUR} codes went to this address in the last hour: try again later",
                headers={"Retry-After": "3600"},
            )
        if await self.queue.channels_of_address(digest) >= CHANNELS_PER_ADDRESS:
            raise ApiError(
                429,
                "too_many_requests",
                f"this address has {CHANNELS_PER_ADDRESS} channels already: cancel one first",
            )
        code, token = new_code(), new_token()
        channel_id = await self.queue.add_channel(
            NewChannel(
                kind,
                self.cipher.seal(normal),
                digest,
                hint(kind, normal),
                secret_digest(token),
                secret_digest(code),
                self.clock() + CODE_SECONDS,
            ),
            topics,
            self._stages(kind, stages),
            now,
        )
        await self.queue.note_code(digest, self.clock())
        task = asyncio.create_task(self._send_code(kind, normal, code))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return {"id": channel_id, "status": "pending", "manage_token": token}

    async def usage(self, month: str | None) -> dict[str, Any]:
        """For admins: each kind's channels, messages sent (handed to the
        provider) today and in `month` (local, YYYY-MM; this month if None),
        and what they cost at the policy's price."""
        today = local_day(self.clock(), self.timezone)
        month = month or today[:7]
        # Days are ISO dates: compared as text, "-31" ends every month.
        in_month = await self.queue.usage(f"{month}-01", f"{month}-31")
        on_day = await self.queue.usage(today, today)
        counts = await self.queue.channel_counts()
        kinds = {}
        for kind in sorted(set(self.kinds) | set(counts) | set(in_month)):
            price = self.policy.of(kind).price
            kinds[kind] = {
                **counts.get(kind, {"active": 0, "pending": 0}),
                "sent_today": on_day.get(kind, 0),
                "sent_month": in_month.get(kind, 0),
                "price": price,
                "cost_month": yuan(in_month.get(kind, 0), price),
            }
        return {"month": month, "currency": "CNY", "kinds": kinds}

    async def confirm(self, channel_id: str, code: object, now: str) -> dict[str, Any]:
        channel = await self._found(channel_id)
        if channel.kind == "wechat":  # confirmed by WeChat's consent, never by a code
            raise _not_found()
        if channel.confirmed:
            return {"status": "active"}
        if channel.code_expires_at is not None and self.clock() > channel.code_expires_at:
            raise ApiError(422, "code_expired", "the code has expired: add the channel again")
        if not await self.queue.use_try(channel, CODE_TRIES):
            raise ApiError(
                429, "too_many_tries", "too many wrong codes: cancel and add the channel again"
            )
        if not isinstance(code, str) or not matches(code.strip(), channel.code_digest):
            raise ApiError(422, "wrong_code", "that is not the code sent", {"field": "code"})
        await self.queue.confirm_channel(channel, now)
        return {"status": "active"}

    async def describe(self, channel_id: str, token: str | None) -> dict[str, Any]:
        channel = await self._managed(channel_id, token)
        return {
            "id": channel.channel_id,
            "kind": channel.kind,
            "status": "active" if channel.confirmed else "pending",
            "topics": channel.topics,
            "stages": channel.stages,
            "address_hint": channel.hint,
        }

    async def cancel(self, channel_id: str, token: str | None) -> None:
        await self.queue.delete_channel(await self._managed(channel_id, token))

    async def unsubscribe(self, channel_id: str, token: str | None) -> None:
        """The 退订 link of a message (or the device's manage token)."""
        channel = await self._found(channel_id)
        expected = self.cipher.unsubscribe_token(channel_id).encode()
        if not (
            isinstance(token, str)
            and (
                hmac.compare_digest(token.encode(), expected)
                or matches(token, channel.manage_digest)
            )
        ):
            raise _not_found()
        await self.queue.delete_channel(channel)

    # --- WeChat's web authorization ----------------------------------------------

    async def wechat_authorize_url(
        self, topics: list[str], stages: list[str] | None, now: str
    ) -> tuple[str, str]:
        """Where to send the browser (WeChat's consent page), and the secret the
        browser keeps (a cookie) to be recognised when WeChat sends it back. The
        follows wait in a pending channel with no address; the `state` WeChat
        hands back (at most 128 letters and digits) is its id and the secret."""
        sender = self.senders.get("wechat")
        if not isinstance(sender, WeChatSender):
            raise invalid("kind", "WeChat is not configured here")
        if self.public_url is None:
            raise ApiError(503, "unavailable", "WeChat needs SUNBID_PUBLIC_URL to come back to")
        secret = _state_secret()
        channel_id = await self.queue.add_channel(
            NewChannel(
                "wechat",
                b"",
                "",
                "微信",
                "",
                secret_digest(secret),
                self.clock() + STATE_SECONDS,
            ),
            topics,
            self._stages("wechat", stages),
            now,
        )
        redirect = f"{self.public_url}/api/channels/wechat/callback"
        return sender.oauth_url(redirect, channel_id + secret), secret

    async def wechat_complete(
        self, code: object, state: object, browser: object, now: str
    ) -> tuple[str, str]:
        """(channel id, manage token) of a WeChat channel, confirmed by consent.
        `browser`: the secret the authorizing browser was given (a cookie), so
        a link to WeChat's page made by someone else adds nothing for whoever
        opens it."""
        sender = self.senders.get("wechat")
        if not isinstance(state, str) or len(state) != 16 + SECRET_HEX:
            raise invalid("state", "start again from the app: the authorization is not valid")
        channel = await self.queue.channel(state[:16]) if _plain(state[:16]) else None
        if (
            not isinstance(sender, WeChatSender)
            or channel is None
            or channel.kind != "wechat"
            or channel.confirmed
            or not isinstance(browser, str)
            or not hmac.compare_digest(browser.encode(), state[16:].encode())
            or not matches(state[16:], channel.code_digest)
            or (channel.code_expires_at or 0) < self.clock()
            or not isinstance(code, str)
        ):
            raise invalid("state", "start again from the app: the authorization is not valid")
        try:
            openid = await sender.openid_for(code)
        except Exception as exc:
            log.warning("wechat authorization failed: %s", type(exc).__name__)
            raise invalid("code", "WeChat did not confirm the authorization: try again") from None
        digest = self.cipher.digest("wechat", openid)
        if await self.queue.channels_of_address(digest) >= CHANNELS_PER_ADDRESS:
            await self.queue.delete_channel(channel)
            raise ApiError(
                429,
                "too_many_requests",
                f"this WeChat user has {CHANNELS_PER_ADDRESS} channels already: cancel one first",
            )
        token = new_token()
        confirmed = await self.queue.confirm_channel(
            channel,
            now,
            address=(
                self.cipher.seal(openid),
                digest,
                hint("wechat", openid),
                secret_digest(token),
            ),
        )
        if not confirmed:
            raise invalid("state", "start again from the app: the authorization is not valid")
        return channel.channel_id, token

    # --- inside ---------------------------------------------------------------------

    def _stages(self, kind: str, asked: Sequence[str] | None) -> list[str] | None:
        """What the channel follows: the stages asked for that its kind carries
        (an SMS for a stage it does not carry is never queued)."""
        carried = self.policy.of(kind).stages
        if carried is None:
            return None if asked is None else sorted(asked)
        chosen = sorted(carried if asked is None else set(asked) & carried)
        if not chosen:
            raise invalid("stages", f"{kind} carries only {sorted(carried)}")
        return chosen

    async def _found(self, channel_id: str) -> Channel:
        channel = await self.queue.channel(channel_id) if _plain(channel_id) else None
        if channel is None:
            raise _not_found()
        return channel

    async def _managed(self, channel_id: str, token: str | None) -> Channel:
        """The channel, if `token` is its manage token; else a 404 that does not
        say whether the id exists."""
        channel = await self._found(channel_id)
        if token is None or not matches(token, channel.manage_digest):
            raise _not_found()
        return channel

    async def _send_code(self, kind: str, address: str, code: str) -> None:
        try:
            sent = await self.senders[kind].send(address, code_message(code))
        except Exception as exc:  # the user asks again; never the address in the log
            log.warning("sending a %s confirmation code failed: %s", kind, type(exc).__name__)
            return
        if sent.result is Result.DELIVERED:
            await self.queue.count_code(kind, local_day(self.clock(), self.timezone))
        else:
            log.warning(
                "sending a %s confirmation code: %s %s", kind, sent.result.value, sent.detail
            )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sender in self.senders.values():
            await sender.close()


def yuan(messages: int, price: float) -> float:
    """What `messages` cost at `price` each, to the fen, halves rounded up."""
    cost = Decimal(str(price)) * messages
    return float(cost.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _state_secret() -> str:
    return secrets.token_hex(SECRET_HEX // 2)


def _plain(channel_id: str) -> bool:
    return len(channel_id) == 16 and all(c in "0123456789abcdef" for c in channel_id)


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "no such channel, or not yours to manage")
