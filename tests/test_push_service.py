"""The local push service used by end-to-end tests really verifies and decrypts.

If it accepted what a real push service refuses, every end-to-end push test
built on it would prove nothing; these tests pin its strictness.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import pytest

from push.crypto import encrypt
from push.policy import topic_for
from push.vapid import VapidKey, VapidSigner, load_or_create_key
from tests.push_service import (
    GONE,
    HANG,
    NOT_FOUND,
    SERVER_ERROR,
    TOO_LARGE,
    Answer,
    PushService,
    slow_down,
)

SUBJECT = "mailto:push-admin@sunbid.org"
PAYLOAD = {"title": "【开标】义乌市某道路工程开标", "url": "/p/YW-2026-0001", "event": {"seq": 7}}


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
async def service() -> AsyncIterator[PushService]:
    async with PushService() as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def key(tmp_path: Path) -> VapidKey:
    return load_or_create_key(tmp_path, subscriptions_exist=False)


def request_for(
    subscription: dict[str, Any],
    signer: VapidSigner,
    payload: Any = PAYLOAD,
    **headers: str | None,
) -> tuple[dict[str, str], bytes]:
    body = encrypt(
        orjson.dumps(payload),
        unb64(subscription["keys"]["p256dh"]),
        unb64(subscription["keys"]["auth"]),
    )
    sent = {
        **signer.headers_for(subscription["endpoint"]),
        "TTL": "86400",
        "Urgency": "high",
        "Topic": topic_for("YW-2026-0001"),
        "Content-Encoding": "aes128gcm",
    }
    for name, value in headers.items():
        name = name.replace("_", "-")
        if value is None:
            sent.pop(name, None)
        else:
            sent[name] = value
    return sent, body


async def send(
    session: aiohttp.ClientSession,
    endpoint: str,
    headers: Mapping[str, str],
    body: bytes,
) -> aiohttp.ClientResponse:
    async with session.post(endpoint, headers=headers, data=body) as response:
        await response.read()
        return response


async def test_a_correct_push_is_verified_decrypted_and_recorded(
    service: PushService, session: aiohttp.ClientSession, key: VapidKey
) -> None:
    subscription = service.new_subscriber(application_server_key=key.application_server_key)
    assert subscription["endpoint"].startswith(service.origin + "/push/")
    assert len(unb64(subscription["keys"]["p256dh"])) == 65
    assert len(unb64(subscription["keys"]["auth"])) == 16
    signer = VapidSigner(key, SUBJECT)
    response = await send(session, subscription["endpoint"], *request_for(subscription, signer))
    assert response.status == 201
    assert response.headers["Location"].startswith("/m/")
    assert service.received(subscription["endpoint"]) == [PAYLOAD]
    message = service.messages[0]
    assert (message.ttl, message.urgency, message.topic) == (
        86400,
        "high",
        topic_for("YW-2026-0001"),
    )
    assert service.rejections == []


async def test_messages_are_kept_per_subscriber(
    service: PushService, session: aiohttp.ClientSession, key: VapidKey
) -> None:
    signer = VapidSigner(key, SUBJECT)
    first, second = service.new_subscriber(), service.new_subscriber()
    await send(session, first["endpoint"], *request_for(first, signer, {"n": 1}))
    await send(session, second["endpoint"], *request_for(second, signer, {"n": 2}))
    await send(session, first["endpoint"], *request_for(first, signer, {"n": 3}))
    assert service.received(first["endpoint"]) == [{"n": 1}, {"n": 3}]
    assert service.received(second["endpoint"]) == [{"n": 2}]
    assert service.connections == 1  # one pooled connection served all three


def forged_signature(headers: dict[str, str]) -> dict[str, str]:
    token, _, k = headers["Authorization"].removeprefix("vapid t=").partition(", k=")
    head, claims, signature = token.split(".")
    raw = bytearray(unb64(signature))
    raw[5] ^= 1
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return {**headers, "Authorization": f"vapid t={head}.{claims}.{forged}, k={k}"}


def other_key_same_k(headers: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A token signed by another key, presented with the subscription's `k`."""
    other = VapidSigner(load_or_create_key(tmp_path / "other", subscriptions_exist=False), SUBJECT)
    token = other.headers_for(_endpoint_of(headers))["Authorization"].split(",")[0]
    k = headers["Authorization"].partition(", k=")[2]
    return {**headers, "Authorization": f"{token}, k={k}"}


def _endpoint_of(headers: dict[str, str]) -> str:
    token = headers["Authorization"].removeprefix("vapid t=").split(",")[0]
    aud: str = orjson.loads(unb64(token.split(".")[1]))["aud"]
    return aud + "/push/x"


class Clock:
    def __init__(self, offset: float) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("forged signature", 401, "signature"),
        ("signed by another key", 401, "signature"),
        ("wrong aud", 401, "aud"),
        ("aud with a path", 401, "aud"),
        ("expired", 401, "expired"),
        ("exp over 24 h ahead", 401, "24 hours"),
        ("no Authorization", 401, "vapid"),
        ("legacy WebPush scheme", 401, "vapid"),
        ("k not a key", 401, "k="),
        ("missing TTL", 400, "TTL"),
        ("TTL not a number", 400, "TTL"),
        ("negative TTL", 400, "TTL"),
        ("bad Urgency", 400, "Urgency"),
        ("Topic too long", 400, "Topic"),
        ("Topic not base64url", 400, "Topic"),
        ("old aesgcm encoding", 400, "aes128gcm"),
        ("oversized body", 413, "4097"),
        ("tampered ciphertext", 400, "decrypt"),
        ("not JSON", 400, "JSON"),
    ],
)
async def test_bad_pushes_are_refused_and_the_reason_recorded(
    service: PushService,
    session: aiohttp.ClientSession,
    key: VapidKey,
    tmp_path: Path,
    case: str,
    status: int,
    reason: str,
) -> None:
    subscription = service.new_subscriber()
    endpoint = subscription["endpoint"]
    signer = VapidSigner(key, SUBJECT)
    headers, body = request_for(subscription, signer)
    if case == "forged signature":
        headers = forged_signature(headers)
    elif case == "signed by another key":
        headers = other_key_same_k(headers, tmp_path)
    elif case == "wrong aud":
        headers.update(signer.headers_for("https://fcm.googleapis.com/fcm/send/x"))
    elif case == "aud with a path":
        headers["Authorization"] = signer._sign(endpoint, int(time.time()) + 3600)[0]
    elif case == "expired":
        headers.update(VapidSigner(key, SUBJECT, clock=Clock(-13 * 3600)).headers_for(endpoint))
    elif case == "exp over 24 h ahead":
        headers.update(VapidSigner(key, SUBJECT, clock=Clock(13 * 3600)).headers_for(endpoint))
    elif case == "no Authorization":
        del headers["Authorization"]
    elif case == "legacy WebPush scheme":
        headers["Authorization"] = "WebPush " + headers["Authorization"].split("t=")[1]
    elif case == "k not a key":
        headers["Authorization"] = headers["Authorization"].split(", k=")[0] + ", k=AAAA"
    elif case == "missing TTL":
        del headers["TTL"]
    elif case == "TTL not a number":
        headers["TTL"] = "1 day"
    elif case == "negative TTL":
        headers["TTL"] = "-1"
    elif case == "bad Urgency":
        headers["Urgency"] = "urgent"
    elif case == "Topic too long":
        headers["Topic"] = "a" * 33
    elif case == "Topic not base64url":
        headers["Topic"] = "YW-2026.0001"
    elif case == "old aesgcm encoding":
        headers["Content-Encoding"] = "aesgcm"
    elif case == "oversized body":
        body = body + b"\x00" * (4097 - len(body))
    elif case == "tampered ciphertext":
        body = body[:-1] + bytes([body[-1] ^ 1])
    elif case == "not JSON":
        body = encrypt(
            b"\xff not json",
            unb64(subscription["keys"]["p256dh"]),
            unb64(subscription["keys"]["auth"]),
        )
    response = await send(session, endpoint, headers, body)
    assert response.status == status
    assert service.messages == []
    [rejection] = service.rejections
    assert rejection.status == status
    assert reason in rejection.reason


async def test_the_key_the_subscription_was_made_with_is_enforced(
    service: PushService, session: aiohttp.ClientSession, key: VapidKey, tmp_path: Path
) -> None:
    subscription = service.new_subscriber(application_server_key=key.application_server_key)
    regenerated = load_or_create_key(tmp_path / "new", subscriptions_exist=False)
    response = await send(
        session,
        subscription["endpoint"],
        *request_for(subscription, VapidSigner(regenerated, SUBJECT)),
    )
    assert response.status == 403
    assert "not the one the subscription was made with" in service.rejections[0].reason


async def test_an_unknown_subscription_is_404(
    service: PushService, session: aiohttp.ClientSession, key: VapidKey
) -> None:
    subscription = service.new_subscriber()
    headers, body = request_for(subscription, VapidSigner(key, SUBJECT))
    response = await send(session, service.origin + "/push/nobody", headers, body)
    assert response.status == 404
    assert service.rejections[0].reason == "no such subscription"


@pytest.mark.parametrize(
    ("answer", "status"),
    [(NOT_FOUND, 404), (GONE, 410), (TOO_LARGE, 413), (SERVER_ERROR, 500), (slow_down(7), 429)],
)
async def test_set_answers_per_subscriber(
    service: PushService,
    session: aiohttp.ClientSession,
    key: VapidKey,
    answer: Answer,
    status: int,
) -> None:
    signer = VapidSigner(key, SUBJECT)
    failing = service.new_subscriber(answer=answer)
    healthy = service.new_subscriber()
    response = await send(session, failing["endpoint"], *request_for(failing, signer))
    assert response.status == status
    assert response.headers.get("Retry-After") == ("7" if status == 429 else None)
    assert (await send(session, healthy["endpoint"], *request_for(healthy, signer))).status == 201
    assert service.received(failing["endpoint"]) == []
    assert service.received(healthy["endpoint"]) == [PAYLOAD]
    assert [a.status for a in service.tries(failing["endpoint"])] == [status]
    assert service.rejections == []  # verified, then answered as told


async def test_queued_answers_come_first_then_the_standing_one(
    service: PushService, session: aiohttp.ClientSession, key: VapidKey
) -> None:
    signer = VapidSigner(key, SUBJECT)
    subscription = service.new_subscriber()
    endpoint = subscription["endpoint"]
    service.queue(endpoint, slow_down(1), SERVER_ERROR)
    statuses = [
        (await send(session, endpoint, *request_for(subscription, signer))).status for _ in range(3)
    ]
    assert statuses == [429, 500, 201]
    assert len(service.received(endpoint)) == 1
    service.answer(GONE)  # globally
    assert (await send(session, endpoint, *request_for(subscription, signer))).status == 410
    service.answer(Answer(), endpoint)  # this subscriber overrides the global answer
    assert (await send(session, endpoint, *request_for(subscription, signer))).status == 201


async def test_a_hanging_push_service_answers_only_when_released(
    service: PushService, session: aiohttp.ClientSession, key: VapidKey
) -> None:
    signer = VapidSigner(key, SUBJECT)
    subscription = service.new_subscriber(answer=HANG)
    headers, body = request_for(subscription, signer)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await send(session, subscription["endpoint"], headers, body)
    assert service.received(subscription["endpoint"]) == []
    pending = asyncio.create_task(send(session, subscription["endpoint"], headers, body))
    await service.wait_for(lambda: service.hanging >= 1)
    await asyncio.sleep(0.05)
    assert not pending.done()
    service.release()
    assert (await pending).status == 201
    # The request whose sender gave up is completed too, as a real push service
    # may deliver a message whose sender timed out: hence the Topic header.
    await service.wait_for(lambda: len(service.received(subscription["endpoint"])) >= 2)
    assert service.received(subscription["endpoint"]) == [PAYLOAD, PAYLOAD]


async def test_fast_mode_accepts_without_checking(
    service: PushService, session: aiohttp.ClientSession
) -> None:
    service.fast = True
    subscription = service.new_subscriber()
    response = await send(session, subscription["endpoint"], {}, b"not even encrypted")
    assert response.status == 201
    assert [a.status for a in service.attempts] == [201]
    assert service.messages == []


def test_runs_in_a_background_thread_for_sync_tests(key: VapidKey) -> None:
    with PushService.in_thread() as service:
        subscription = service.new_subscriber()
        headers, body = request_for(subscription, VapidSigner(key, SUBJECT))
        assert (
            httpx.post(subscription["endpoint"], headers=headers, content=body).status_code == 201
        )
        service.wait_for_sync(lambda: len(service.messages) == 1)
        assert service.received(subscription["endpoint"]) == [PAYLOAD]
        bad = httpx.post(subscription["endpoint"], headers={**headers, "TTL": "x"}, content=body)
        assert bad.status_code == 400
        service.answer(HANG)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(subscription["endpoint"], headers=headers, content=body, timeout=0.3)
        service.release()
    with pytest.raises(httpx.ConnectError):
        httpx.post(subscription["endpoint"], headers=headers, content=body)
