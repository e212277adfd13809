"""Channels beside Web Push, in-process: addresses sealed and erased
(push/channels/contacts.py), the stage policy (policy.py), the queue's
channel rows on SQLite and PostgreSQL (push/queue.py), and the rules of
adding, confirming and cancelling one (service.py) with a sender that
records what it is handed. The providers' own stand-ins are exercised in
test_channel_sms.py, test_channel_email.py, test_channel_wechat.py, and the
whole path through a real server in test_channels_e2e.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from push.channels import Message, Result, Sent
from push.channels.contacts import KEY_FILE, ContactCipher, ContactKeyError, hint
from push.channels.dispatch import ChannelDispatch, Dropped, Later
from push.channels.policy import ChannelPolicy, ChannelPolicyError
from push.channels.service import ChannelService, yuan
from push.derive import Pending
from push.queue import Due, NewChannel, Outcome, PushQueue, State
from server.core.errors import ApiError
from server.migrations.postgres import check_versions, read_versions
from tests.services import postgres_schema

TZ = ZoneInfo("Asia/Shanghai")
NOW = 1_800_000_000.0
STAMP = "2026-12-01T09:30:00.000+08:00"


def event(seq: int, stage: str = "notice") -> Pending:
    return Pending(seq, ("all", "project:P1"), stage, expires_at=NOW + 3600)


# --- addresses ------------------------------------------------------------------------------


def test_an_address_is_sealed_with_a_key_of_the_data_directory(tmp_path: Path) -> None:
    cipher = ContactCipher.load_or_create(tmp_path)
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600
    sealed = cipher.seal("+8613812345678")
    assert b"13812345678" not in sealed and sealed != cipher.seal("+8613812345678")
    again = ContactCipher.load_or_create(tmp_path)  # the same key, never a new one
    assert again.open(sealed) == "+8613812345678"
    assert again.digest("sms", "+8613812345678") == cipher.digest("sms", "+8613812345678")
    assert cipher.digest("sms", "+8613812345678") != cipher.digest("email", "+8613812345678")
    assert hint("sms", "+8613812345678") == "138****5678"
    assert hint("email", "zhang@example.cn") == "z***@example.cn"


def test_a_damaged_key_file_is_refused_not_replaced(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_bytes(b"short")
    with pytest.raises(ContactKeyError, match="never replaced"):
        ContactCipher.load_or_create(tmp_path)
    assert (tmp_path / KEY_FILE).read_bytes() == b"short"


# --- the stage policy -------------------------------------------------------------------------


def test_sms_carries_the_stages_that_matter_and_keeps_quiet_at_night() -> None:
    sms = ChannelPolicy.load().of("sms")
    assert sms.carries("notice") and sms.carries("award") and not sms.carries("evaluation")
    night = datetime(2026, 12, 6, 23, 15, tzinfo=TZ)
    assert sms.send_at("notice", night) == datetime(2026, 12, 7, 7, 0, tzinfo=TZ)
    assert sms.send_at("notice", datetime(2026, 12, 7, 6, 59, tzinfo=TZ)) == datetime(
        2026, 12, 7, 7, 0, tzinfo=TZ
    )
    assert sms.send_at("notice", datetime(2026, 12, 7, 7, 0, tzinfo=TZ)) is None
    assert sms.send_at("clarification", night) is None, "urgent: sent at night too"
    assert ChannelPolicy.load().of("email").send_at("notice", night) is None


@pytest.mark.parametrize(
    "toml, field",
    [
        ("[fax]\n", "unknown table"),
        ('[sms]\ndaily_cap = 5\nstages = "notice"\n', "stages"),
        ('[sms]\ndaily_cap = 5\nquiet_from = "22:00"\n', "quiet_from/quiet_until"),
        ("[sms]\ndaily_cap = 0\n", "daily_cap"),
        ("[sms]\ndaily_cap = 5\nprice = -1\n", "price"),
        ("[sms]\ndaily_cap = 5\ncolour = 1\n", "colour"),
    ],
)
def test_a_bad_policy_file_names_the_entry(tmp_path: Path, toml: str, field: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(toml)
    with pytest.raises(ChannelPolicyError, match=field.replace("/", ".")):
        ChannelPolicy.load(path)


# --- the queue's channel rows, on both engines ---------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PushQueue]:
    if request.param == "sqlite":
        opened = PushQueue(tmp_path / "push.db")
        await opened.open()
        yield opened
        await opened.close()
        return
    with postgres_schema() as (url, schema):
        opened = PushQueue(tmp_path / "unused.db", database_url=url, database_schema=schema)
        await opened.open()
        yield opened
        await opened.close()


def new_channel(cipher: ContactCipher, address: str, code_digest: str | None = "c") -> NewChannel:
    return NewChannel(
        "sms",
        cipher.seal(address),
        cipher.digest("sms", address),
        hint("sms", address),
        "m",
        code_digest,
        NOW + 600,
    )


async def test_a_channel_gets_deliveries_only_once_confirmed(
    queue: PushQueue, tmp_path: Path
) -> None:
    cipher = ContactCipher.load_or_create(tmp_path)
    channel_id = await queue.add_channel(
        new_channel(cipher, "+8613812345678"), ["project:P1"], None, STAMP
    )
    await queue.enqueue([event(1)], up_to=1, now=NOW)
    assert await queue.depth() == 0, "pending: it follows nothing yet"
    assert await queue.count() == 0, "not a Web Push subscription: no VAPID key needed for it"
    channel = await queue.channel(channel_id)
    assert channel is not None and not channel.confirmed and channel.hint == "138****5678"
    await queue.confirm_channel(channel, STAMP)
    await queue.enqueue([event(2), event(3, "award")], up_to=3, now=NOW)
    due = await queue.due(NOW, 10)
    assert [(d.seq, d.kind) for d in due] == [(2, "sms"), (3, "sms")]
    assert due[0].address is not None and cipher.open(due[0].address) == "+8613812345678"
    counts = await queue.counts_by_kind(2)
    assert counts == {"sms": {"queued": 1, "delivered": 0, "failed": 0, "gone": 0}}


async def test_cancelling_erases_the_address_and_gives_up_its_deliveries(
    queue: PushQueue, tmp_path: Path
) -> None:
    cipher = ContactCipher.load_or_create(tmp_path)
    channel_id = await queue.add_channel(
        new_channel(cipher, "+8613812345678", code_digest=None), ["all"], None, STAMP
    )
    await queue.enqueue([event(1)], up_to=1, now=NOW)
    channel = await queue.channel(channel_id)
    assert channel is not None and channel.confirmed  # confirmed by consent (WeChat's way)
    await queue.delete_channel(channel)
    assert await queue.channel(channel_id) is None
    assert int((await queue.rows("SELECT COUNT(*) FROM contacts"))[0][0]) == 0
    # The row stays, with no one behind it (counted as push: its kind went too).
    assert (await queue.counts_by_kind(1))["push"]["gone"] == 1
    assert await queue.channels_of_address(cipher.digest("sms", "+8613812345678")) == 0


async def test_messages_sent_are_counted_per_channel_and_day_with_their_outcomes(
    queue: PushQueue, tmp_path: Path
) -> None:
    cipher = ContactCipher.load_or_create(tmp_path)
    channel_id = await queue.add_channel(
        new_channel(cipher, "+8613812345678", code_digest=None), ["all"], None, STAMP
    )
    await queue.enqueue([event(1), event(2), event(3)], up_to=3, now=NOW)
    channel = await queue.channel(channel_id)
    assert channel is not None
    sub = channel.subscription_id
    sent = [
        Outcome(1, sub, State.DELIVERED, None, sent=("sms", "2026-12-06")),
        Outcome(2, sub, State.QUEUED, None, next_at=NOW + 60, sent=("sms", "2026-12-06")),
        Outcome(3, sub, State.DELIVERED, None, sent=("sms", "2026-12-07")),
    ]
    await queue.record(sent[:2])
    due = (await queue.due(NOW + 60, 10))[0]
    assert due.sent_on("2026-12-06") == 2 and due.sent_on("2026-12-07") == 0
    await queue.record(sent[2:])  # a new day starts a new count
    stored = await queue.rows(
        "SELECT sent_day, sent_count FROM contacts WHERE subscription_id = ?", (sub,)
    )
    assert tuple(stored[0]) == ("2026-12-07", 1)
    assert await queue.usage("2026-12-01", "2026-12-31") == {"sms": 3}
    assert await queue.usage("2026-12-07", "2026-12-07") == {"sms": 1}


# --- adding, confirming, cancelling ---------------------------------------------------------------


class Recording:
    """A sender of our own interface that keeps what it is handed."""

    kind = "sms"

    def __init__(self) -> None:
        self.sent: list[tuple[str, Message]] = []

    async def send(self, address: str, message: Message) -> Sent:
        self.sent.append((address, message))
        return Sent(Result.DELIVERED)

    async def close(self) -> None:
        pass


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[ChannelService, Recording, list[float]]]:
    queue = PushQueue(tmp_path / "push.db")
    await queue.open()
    sender, now = Recording(), [NOW]

    def phone(text: str) -> str:
        digits = text.replace(" ", "").removeprefix("+86")
        if not (len(digits) == 11 and digits.isdigit() and digits[0] == "1"):
            raise ValueError("a mainland mobile number")
        return "+86" + digits

    made = ChannelService(
        queue,
        ContactCipher.load_or_create(tmp_path),
        {"sms": sender},
        ChannelPolicy.load(),
        {"sms": phone},
        "https://sunbid.example",
        TZ,
        clock=lambda: now[0],
    )
    yield made, sender, now
    await made.close()
    await queue.close()


async def sent_code(sender: Recording) -> str:
    import asyncio

    for _ in range(100):
        if sender.sent:
            return sender.sent[-1][1].params["code"]
        await asyncio.sleep(0.01)
    raise AssertionError("no code was sent")


async def test_a_channel_is_confirmed_by_the_code_sent_to_it(service: Any) -> None:
    channels, sender, _ = service
    added = await channels.add("sms", "138 1234 5678", ["project:P1"], None, STAMP)
    assert added["status"] == "pending" and len(added["id"]) == 16
    code = await sent_code(sender)
    assert sender.sent[0][0] == "+8613812345678" and sender.sent[0][1].template == "code"
    with pytest.raises(ApiError) as wrong:
        await channels.confirm(added["id"], "000000" if code != "000000" else "111111", STAMP)
    assert (wrong.value.status, wrong.value.code) == (422, "wrong_code")
    assert await channels.confirm(added["id"], code, STAMP) == {"status": "active"}
    described = await channels.describe(added["id"], added["manage_token"])
    assert described["status"] == "active" and described["address_hint"] == "138****5678"
    # SMS carries only the stages that matter: the channel follows those.
    assert described["stages"] == sorted(ChannelPolicy.load().of("sms").stages or ())


async def test_codes_run_out_and_expire(service: Any) -> None:
    channels, sender, now = service
    added = await channels.add("sms", "13812345678", ["all"], None, STAMP)
    code = await sent_code(sender)
    for _ in range(5):
        with pytest.raises(ApiError):
            await channels.confirm(added["id"], "x", STAMP)
    with pytest.raises(ApiError) as tries:
        await channels.confirm(added["id"], code, STAMP)
    assert tries.value.status == 429
    other = await channels.add("sms", "13912345678", ["all"], None, STAMP)
    now[0] += 601
    with pytest.raises(ApiError) as expired:
        await channels.confirm(other["id"], await sent_code(sender), STAMP)
    assert expired.value.code == "code_expired"


async def test_bad_requests_and_strangers_learn_nothing(service: Any) -> None:
    channels, _, _ = service
    for kind, address, field in [
        ("fax", "1", "kind"),
        ("sms", "12345", "address"),
        ("sms", 13812345678, "address"),
    ]:
        with pytest.raises(ApiError) as bad:
            await channels.add(kind, address, ["all"], None, STAMP)
        assert bad.value.status == 422 and bad.value.details == {"field": field}
    with pytest.raises(ApiError) as stages:
        await channels.add("sms", "13812345678", ["all"], ["evaluation"], STAMP)
    assert stages.value.details == {"field": "stages"}
    added = await channels.add("sms", "13812345678", ["all"], None, STAMP)
    for channel_id, token in [
        (added["id"], "wrong"),
        (added["id"], None),
        ("0" * 16, added["manage_token"]),
        ("../../etc", added["manage_token"]),
    ]:
        with pytest.raises(ApiError) as hidden:
            await channels.describe(channel_id, token)
        assert hidden.value.status == 404 and "channel" in hidden.value.message
    for _ in range(2):
        await channels.add("sms", "13812345678", ["all"], None, STAMP)
    with pytest.raises(ApiError) as many:
        await channels.add("sms", "+86 138 1234 5678", ["all"], None, STAMP)
    assert many.value.status == 429


async def test_cancelling_and_the_unsubscribe_link(service: Any) -> None:
    channels, _, _ = service
    first = await channels.add("sms", "13812345678", ["all"], None, STAMP)
    await channels.cancel(first["id"], first["manage_token"])
    with pytest.raises(ApiError):
        await channels.describe(first["id"], first["manage_token"])
    second = await channels.add("sms", "13812345678", ["all"], None, STAMP)
    with pytest.raises(ApiError):
        await channels.unsubscribe(second["id"], "forged")
    await channels.unsubscribe(second["id"], channels.cipher.unsubscribe_token(second["id"]))
    assert int((await channels.queue.rows("SELECT COUNT(*) FROM contacts"))[0][0]) == 0


# --- sending a queued delivery -----------------------------------------------------------------


async def test_dispatch_waits_out_quiet_hours_and_stops_at_the_daily_cap(tmp_path: Path) -> None:
    cipher = ContactCipher.load_or_create(tmp_path)
    sender = Recording()
    dispatch = ChannelDispatch(
        {"sms": sender}, cipher, ChannelPolicy.load(), TZ, "https://sunbid.example"
    )
    due = Due(
        7, 1, "channel:" + "a" * 16, b"", b"", 0, NOW + 86_400, "sms", cipher.seal("+8613812345678")
    )
    notice = {"stage": "notice", "title": "某工程招标公告", "project": "P1"}
    night = datetime(2026, 12, 6, 23, 30, tzinfo=TZ).timestamp()
    later = await dispatch.deliver(due, notice, "招标公告", night, 0)
    assert later == Later(datetime(2026, 12, 7, 7, 0, tzinfo=TZ).timestamp())
    morning = datetime(2026, 12, 7, 9, 0, tzinfo=TZ).timestamp()
    assert dispatch.day(morning) == "2026-12-07" and dispatch.day(night) == "2026-12-06"
    sent = await dispatch.deliver(due, notice, "招标公告", morning, 9)
    assert sent == Sent(Result.DELIVERED)
    address, message = sender.sent[0]
    assert address == "+8613812345678" and message.template == "event"
    assert message.params == {
        "project": "某工程招标公告",
        "stage": "招标公告",
        "link": "https://sunbid.example/p/P1",
    }
    assert message.unsubscribe is not None and "/api/channels/" + "a" * 16 in message.unsubscribe
    capped = await dispatch.deliver(due, notice, "招标公告", morning, 10)  # sms: 10 a day
    assert capped == Dropped("daily cap") and len(sender.sent) == 1


async def test_channels_never_confirmed_are_erased_an_hour_after_their_code(
    queue: PushQueue, tmp_path: Path
) -> None:
    cipher = ContactCipher.load_or_create(tmp_path)
    pending = await queue.add_channel(
        new_channel(cipher, "+8613812345678"), ["all"], None, STAMP
    )  # its code runs out at NOW + 600
    kept = await queue.add_channel(
        new_channel(cipher, "+8613912345678", code_digest=None), ["all"], None, STAMP
    )
    assert await queue.prune_unconfirmed(NOW + 600) == 0
    assert await queue.prune_unconfirmed(NOW + 601) == 1
    assert await queue.channel(pending) is None and await queue.channel(kept) is not None


async def test_a_postgresql_push_schema_from_before_the_channels_is_upgraded_when_opened(
    tmp_path: Path,
) -> None:
    with postgres_schema() as (url, schema):
        older = PushQueue(tmp_path / "unused.db", database_url=url, database_schema=schema)
        await older.open()
        for statement in (
            "ALTER TABLE subscriptions DROP COLUMN kind",
            "DROP TABLE contacts",
            "DROP TABLE channel_usage",
            "UPDATE schema_versions SET version = 1 WHERE name = 'push'",
        ):
            await older.db.execute(statement)
        await older.close()
        found = await read_versions(url, schema)
        assert found["push"] == 1
        assert any("brought to 2" in line for line in check_versions(found, schema))
        queue = PushQueue(tmp_path / "unused.db", database_url=url, database_schema=schema)
        await queue.open()
        try:
            cipher = ContactCipher.load_or_create(tmp_path)
            channel_id = await queue.add_channel(
                new_channel(cipher, "+8613812345678"), ["all"], None, STAMP
            )
            assert await queue.channel(channel_id) is not None
        finally:
            await queue.close()
        assert (await read_versions(url, schema))["push"] == 2


async def test_codes_to_one_address_are_limited_however_often_it_is_cancelled(
    service: Any,
) -> None:
    channels, _, now = service
    for _ in range(5):
        added = await channels.add("sms", "13812345678", ["all"], None, STAMP)
        await channels.cancel(added["id"], added["manage_token"])
    with pytest.raises(ApiError) as flooded:
        await channels.add("sms", "+86 138 1234 5678", ["all"], None, STAMP)
    assert flooded.value.status == 429 and flooded.value.headers == {"Retry-After": "3600"}
    assert (await channels.add("sms", "13912345678", ["all"], None, STAMP))["status"] == "pending"
    now[0] += 3601
    assert (await channels.add("sms", "13812345678", ["all"], None, STAMP))["status"] == "pending"


def test_the_cost_is_counted_to_the_fen_halves_up() -> None:
    assert yuan(1, 0.045) == 0.05 and yuan(3, 0.045) == 0.14 and yuan(0, 0.045) == 0.0
    assert yuan(10_000, 0.045) == 450.0
