"""Channels beside Web Push through a real server: a follower adds SMS (and
e-mail) on the API, confirms with the code the provider's stand-in received,
a staff publication reaches the stand-in as the approved template with the
project and stage, the receipts count it per channel, and cancelling erases
the address: no file of the data directory (the log, push.db, the server's
own log output) holds the number or the mailbox afterwards."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from push.channels.service import yuan
from tests.conftest import ServerProcess, Staff
from tests.sms_service import UNAVAILABLE, SmsService
from tests.standins import in_thread, until
from tests.wechat_service import APPID as WECHAT_APPID
from tests.wechat_service import SECRET as WECHAT_SECRET
from tests.wechat_service import WeChatService

NUMBER = "13812345678"
PROJECT = "CH-E2E-1"
WECHAT_TEMPLATE = "tpl-event-0001"


@pytest.fixture
def sms() -> Iterator[SmsService]:
    with in_thread(SmsService()) as service:
        yield service


def found_in(directory: Path, needle: str) -> list[str]:
    """The files under `directory` whose bytes contain `needle`."""
    return [
        str(path)
        for path in directory.rglob("*")
        if path.is_file() and needle.encode() in path.read_bytes()
    ]


def test_an_sms_channel_from_confirmation_to_erasure(tmp_path: Path, sms: SmsService) -> None:
    data = tmp_path / "data"
    server = ServerProcess(
        data,
        **sms.env(),
        SUNBID_PUBLIC_URL="https://sunbid.example",
        SUNBID_PUSH_RETRY_BASE_SECONDS="0.2",
    ).start()
    staff = Staff(server, server.token("channels-admin"))
    client = httpx.Client(base_url=server.url, timeout=10)
    try:
        assert client.get("/api/channels/available").json() == {"kinds": ["sms"]}
        staff.project(PROJECT)
        added = client.post(
            "/api/channels",
            json={"kind": "sms", "address": NUMBER, "topics": [f"project:{PROJECT}"]},
        )
        assert added.status_code == 202, added.text
        channel: dict[str, Any] = added.json()
        assert channel["status"] == "pending"
        code = until(lambda: [m for m in sms.messages if "code" in m.params])[0].params["code"]
        wrong = client.post(f"/api/channels/{channel['id']}/confirm", json={"code": "x"})
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "wrong_code"
        confirmed = client.post(f"/api/channels/{channel['id']}/confirm", json={"code": code})
        assert confirmed.json() == {"status": "active"}

        staff.publish(PROJECT, "notice")
        # Urgent, so sent even in the night's quiet hours, whenever this runs.
        clarified = staff.publish(PROJECT, "clarification")
        # The clarification's message: the earlier events' are sent too outside quiet hours.
        message = until(
            lambda: next(
                (m for m in sms.messages if m.params.get("project") == clarified["title"]), None
            )
        )
        assert message.number == NUMBER and message.template.startswith("SMS_")

        def counted() -> dict[str, int] | None:
            receipts = staff.client.get(f"/api/events/{clarified['seq']}/deliveries").json()
            sms_counts: dict[str, int] = receipts["channels"]["sms"]
            return sms_counts if sms_counts["delivered"] == 1 else None

        assert until(counted)["queued"] == 0
        used = staff.client.get("/api/channels/usage").json()["kinds"]["sms"]
        assert used["active"] == 1 and used["sent_today"] >= 1
        assert used["cost_month"] == yuan(used["sent_month"], used["price"])

        manage = {"X-Manage-Token": channel["manage_token"]}
        shown = client.get(f"/api/channels/{channel['id']}", headers=manage).json()
        assert shown["address_hint"] == "138****5678" and shown["status"] == "active"
        assert client.get(f"/api/channels/{channel['id']}").status_code == 404
        assert client.delete(f"/api/channels/{channel['id']}", headers=manage).status_code == 204
        assert client.get(f"/api/channels/{channel['id']}", headers=manage).status_code == 404
    finally:
        client.close()
        staff.client.close()
        server.stop()
    verified = server.cli("verify")
    assert verified.returncode == 0 and "ok: push is what the log yields" in verified.stdout
    assert found_in(data, NUMBER) == [], "the number is erased everywhere, logs included"


@pytest.fixture
def wechat() -> Iterator[WeChatService]:
    with in_thread(WeChatService()) as service:
        service.add_template(WECHAT_TEMPLATE, ["thing1", "thing2"])
        yield service


def wechat_env(wechat: WeChatService) -> dict[str, str]:
    return {
        "SUNBID_WECHAT_APPID": WECHAT_APPID,
        "SUNBID_WECHAT_SECRET": WECHAT_SECRET,
        "SUNBID_WECHAT_TEMPLATE_EVENT": WECHAT_TEMPLATE,
        "SUNBID_WECHAT_API_BASE": wechat.origin,
        "SUNBID_WECHAT_OAUTH_BASE": wechat.origin,
        "SUNBID_PUBLIC_URL": "https://sunbid.example",
    }


def authorized(client: httpx.Client, wechat: WeChatService, openid: str, topics: str) -> str:
    """Through WeChat's consent as a browser would: the fragment /follows gets."""
    asked = client.get("/api/channels/wechat/authorize", params={"topics": topics})
    assert asked.status_code == 302, asked.text
    to_wechat = urlsplit(asked.headers["location"])
    assert to_wechat.netloc == urlsplit(wechat.origin).netloc
    query = parse_qs(to_wechat.query)
    assert query["redirect_uri"] == ["https://sunbid.example/api/channels/wechat/callback"]
    back = client.get(
        "/api/channels/wechat/callback",
        params={"code": wechat.issue_code(openid), "state": query["state"][0]},
    )
    assert back.status_code == 302, back.text
    assert back.headers["location"].startswith("/follows#channel=")
    return urlsplit(back.headers["location"]).fragment


def test_a_wechat_channel_by_consent_until_the_user_unfollows(
    tmp_path: Path, wechat: WeChatService
) -> None:
    openid = wechat.new_follower()
    data = tmp_path / "data"
    server = ServerProcess(data, **wechat_env(wechat), SUNBID_PUSH_RETRY_BASE_SECONDS="0.2").start()
    staff = Staff(server, server.token("channels-admin"))
    client = httpx.Client(base_url=server.url, timeout=10, follow_redirects=False)
    try:
        staff.project(PROJECT)
        fragment = parse_qs(authorized(client, wechat, openid, f"project:{PROJECT}"))
        channel, token = fragment["channel"][0], fragment["token"][0]
        shown = client.get(f"/api/channels/{channel}", headers={"X-Manage-Token": token}).json()
        assert (shown["kind"], shown["status"]) == ("wechat", "active")
        # A state is good once: the same consent cannot make a second channel.
        replay = client.get(
            "/api/channels/wechat/callback",
            params={"code": wechat.issue_code(openid), "state": channel + "0" * 32},
        )
        assert replay.status_code == 422
        # A link to WeChat's page made by someone else, opened by another
        # browser: that browser holds no cookie of the authorization, nothing is added.
        lured = client.get("/api/channels/wechat/authorize", params={"topics": "all"})
        state = parse_qs(urlsplit(lured.headers["location"]).query)["state"][0]
        with httpx.Client(base_url=server.url, timeout=10) as victim:
            taken = victim.get(
                "/api/channels/wechat/callback",
                params={"code": wechat.issue_code(wechat.new_follower()), "state": state},
            )
        assert taken.status_code == 422, taken.text

        staff.publish(PROJECT, "notice")
        clarified = staff.publish(PROJECT, "clarification")  # urgent: sent at any hour
        # The clarification's message: the earlier events' are sent too outside quiet hours.
        message = until(
            lambda: next(
                (m for m in wechat.received(openid) if m.data["thing1"] == clarified["title"][:20]),
                None,
            )
        )
        assert message.url == f"https://sunbid.example/p/{PROJECT}"

        # The user unfollows the account: WeChat answers 43004, the channel goes.
        wechat.unfollow(openid)
        staff.publish(PROJECT, "clarification", title="second clarification 公告")
        until(
            lambda: (
                client.get(
                    f"/api/channels/{channel}", headers={"X-Manage-Token": token}
                ).status_code
                == 404
            )
        )
    finally:
        client.close()
        staff.client.close()
        server.stop()
    assert found_in(data, openid) == [], "the openid is erased everywhere, logs included"


def test_sms_deliveries_pending_over_a_restart_are_sent_once_and_a_revoked_number_goes(
    tmp_path: Path, sms: SmsService
) -> None:
    numbers = ["13800000001", "13800000002", "13800000003"]
    server = ServerProcess(
        tmp_path / "data", **sms.env(), SUNBID_PUSH_RETRY_BASE_SECONDS="0.2"
    ).start()
    staff = Staff(server, server.token("channels-admin"))
    client = httpx.Client(base_url=server.url, timeout=10)
    try:
        staff.project(PROJECT)
        channels = {}
        for n, number in enumerate(numbers):
            added = client.post(
                "/api/channels",
                json={"kind": "sms", "address": number, "topics": [f"project:{PROJECT}"]},
            ).json()
            code = until(lambda n=n: len(sms.messages) > n and sms.messages[n])
            confirmed = client.post(
                f"/api/channels/{added['id']}/confirm", json={"code": code.params["code"]}
            )
            assert confirmed.status_code == 200, confirmed.text
            channels[number] = added
        staff.publish(PROJECT, "notice")
        # The provider fails for a while; the last number has been revoked.
        sms.script(*[UNAVAILABLE] * 5)
        sms.refuse_number(numbers[2])
        clarified = staff.publish(PROJECT, "clarification")  # urgent: sent at any hour
        until(lambda: sum(1 for status, _ in sms.answers if status == 503) >= 3)
        server.stop()  # retries still queued
        server.start()

        def told() -> Counter[str] | None:
            # The clarification's messages only: the notice's are held by the
            # quiet hours (22:00-07:00) or sent, depending on the hour the test runs.
            seen = Counter(
                m.number for m in sms.messages if m.params.get("project") == clarified["title"]
            )
            return seen if sum(seen.values()) >= 2 else None

        assert until(told, 20) == Counter(numbers[:2]), "each once, the revoked one never"

        def stored() -> dict[str, int] | None:  # outcomes are stored a few ms after the send
            receipts = staff.client.get(f"/api/events/{clarified['seq']}/deliveries").json()
            sms_counts: dict[str, int] = receipts["channels"]["sms"]
            return sms_counts if sms_counts["queued"] == 0 else None

        assert until(stored)["delivered"] == 2
        revoked = channels[numbers[2]]
        shown = client.get(
            f"/api/channels/{revoked['id']}", headers={"X-Manage-Token": revoked["manage_token"]}
        )
        assert shown.status_code == 404, "a revoked number's channel is gone, its address erased"
    finally:
        client.close()
        staff.client.close()
        server.stop()
