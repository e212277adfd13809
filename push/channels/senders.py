"""The channels this deployment can send by: each sender module reads its
own settings, and a kind whose settings are absent is simply not here (the
API does not offer it, and nothing is sent by it)."""

from __future__ import annotations

from collections.abc import Mapping

from push.channels import Sender, sms, wechat
from push.channels.contacts import ContactCipher
from push.channels.dispatch import ChannelDispatch
from push.channels.email import from_env as email_from_env
from push.channels.email import normalize_email
from push.channels.policy import ChannelPolicy
from push.channels.service import ChannelService
from push.queue import PushQueue
from push.settings import PushSettings


def configured(env: Mapping[str, str]) -> dict[str, Sender]:
    """kind → sender, for the kinds configured in `env` (SettingsError if one
    is configured wrongly: the server stops at start, naming the variable)."""
    found: dict[str, Sender | None] = {
        "sms": sms.from_env(env),
        "email": email_from_env(env),
        "wechat": wechat.from_env(env),
    }
    return {kind: sender for kind, sender in found.items() if sender is not None}


def dispatch_for(settings: PushSettings) -> ChannelDispatch | None:
    """What the push worker sends channels' deliveries with (None: no channel
    is configured)."""
    senders = configured(settings.environ)
    if not senders:
        return None
    return ChannelDispatch(
        senders,
        ContactCipher.load_or_create(settings.data_dir),
        ChannelPolicy.load(),
        settings.timezone,
        settings.public_url,
    )


def service_for(settings: PushSettings, queue: PushQueue) -> ChannelService:
    """What the web server's handlers add, confirm and cancel channels with
    (it sends confirmation codes itself, so it has senders of its own)."""
    senders = configured(settings.environ)
    return ChannelService(
        queue,
        ContactCipher.for_data_dir(settings.data_dir, needed=bool(senders)),
        senders,
        ChannelPolicy.load(),
        {"sms": sms.normalize_phone, "email": normalize_email},
        settings.public_url,
        settings.timezone,
    )
