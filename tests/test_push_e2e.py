"""Web Push end to end: a real `sunbid serve` process and a real push service on loopback.

The push service (tests/push_service.py) checks every request the way a browser
vendor's service does (VAPID JWT signed with the subscription's key, `aud`,
`exp`, `TTL`, `Urgency`, `Topic`, size) and decrypts it with the subscriber's
private key, so what is asserted here is what a browser would be handed.

Every subscription request goes out from its own loopback address (127.1.x.y),
so the per-address creation limit only bites in the test that means it to.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from server.settings import Settings
from tests.conftest import ROOT, ServerProcess, Staff
from tests.push_service import (
    ACCEPT,
    GONE,
    HANG,
    NOT_FOUND,
    SERVER_ERROR,
    Answer,
    Message,
    PushService,
    slow_down,
)

SUBJECT = "mailto:ops@sunbid.org"
REAL_SERVICES = (
    "fcm.googleapis.com,updates.push.services.mozilla.com,*.push.apple.com,*.notify.windows.com"
)
POLICY = tomllib.loads((ROOT / "push" / "policy.toml").read_text("utf-8"))
STAGE_NAMES = {
    code: entry["zh"]
    for code, entry in tomllib.loads(
        (ROOT / "server" / "data" / "categories.toml").read_text("utf-8")
    )["stages"].items()
}
STATES = ("queued", "delivered", "failed", "gone")
KEY_FILE = "vapid_private.pem"
WAIT = 10.0
# Held until `release()`, then answered 503: a hung request that never counts as delivered.
HANG_THEN_503 = Answer(503, hang=True)
TOPIC_HEADER = re.compile(r"[A-Za-z0-9_-]{32}")

_addresses = itertools.count()


def fresh_address() -> str:
    n = next(_addresses)
    return f"127.1.{n // 250}.{n % 250 + 1}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def assert_error(response: httpx.Response, status: int, field: str | None = None) -> None:
    """The contract's error shape: {"error": {"code", "message", "details"?}}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert "Traceback" not in response.text and str(ROOT) not in response.text
    if field is not None:
        assert error["details"]["field"] == field, error


# --- what the push service saw --------------------------------------------------------------


def messages(service: PushService, endpoint: str) -> list[Message]:
    """Pushes accepted (and decrypted) for one subscriber, in arrival order."""
    sid = endpoint.rsplit("/", 1)[1]
    return [m for m in list(service.messages) if m.subscriber == sid]


def seqs(service: PushService, endpoint: str, among: Any = None) -> list[int]:
    got = [m.payload["event"]["seq"] for m in messages(service, endpoint)]
    return got if among is None else [s for s in got if s in among]


def statuses(service: PushService, endpoint: str) -> list[int]:
    return [a.status for a in service.tries(endpoint)]


def got_all(service: PushService, endpoints: list[str], wanted: list[int]) -> Callable[[], bool]:
    return lambda: all(set(wanted) <= set(seqs(service, e)) for e in endpoints)


# --- the server under test -----------------------------------------------------------------


def push_env(service: PushService, **extra: str) -> dict[str, str]:
    return {
        "SUNBID_PUSH_ALLOWED_HOSTS": f"{REAL_SERVICES},{service.origin}",
        "SUNBID_VAPID_SUBJECT": SUBJECT,
        "SUNBID_PUSH_RETRY_BASE_SECONDS": "0.2",
        **extra,
    }


class Push:
    """A running server seen through its HTTP API, with an admin's client."""

    def __init__(self, server: ServerProcess, token: str) -> None:
        self.server = server
        self.staff = Staff(server, token)
        response = httpx.get(server.url + "/api/push/vapid-key", timeout=10)
        assert response.status_code == 200, response.text
        self.key: str = response.json()["publicKey"]

    def close(self) -> None:
        self.staff.client.close()

    def request(
        self, method: str, path: str, *, address: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request on its own connection, from `address` (a fresh one by default)."""
        transport = httpx.HTTPTransport(local_address=address or fresh_address())
        with httpx.Client(base_url=self.server.url, transport=transport, timeout=10) as client:
            return client.request(method, path, **kwargs)

    def subscribe(
        self,
        subscription: dict[str, Any],
        topics: Any,
        stages: Any = None,
        *,
        address: str | None = None,
    ) -> httpx.Response:
        self.caught_up()
        body: dict[str, Any] = {"subscription": subscription, "topics": topics}
        if stages is not None:
            body["stages"] = stages
        return self.request("POST", "/api/push/subscriptions", json=body, address=address)

    def follow(
        self,
        service: PushService,
        topics: list[str],
        stages: list[str] | None = None,
        answer: Answer | None = None,
    ) -> str:
        """A new subscriber (bound to the server's key) following `topics`; its endpoint."""
        subscription = service.new_subscriber(application_server_key=self.key, answer=answer)
        response = self.subscribe(subscription, topics, stages)
        assert response.status_code == 201, response.text
        return str(subscription["endpoint"])

    def caught_up(self) -> None:
        """Wait until the push worker has derived every event published so far.

        The worker matches an event to the subscriptions that exist when it
        derives it: a subscription made while it still lags behind an earlier
        event (a project's registration, just appended) would get that one too.
        Following "from now" in these tests means from where the worker is.
        """
        head = self.server.head()
        if head == 0:
            return  # nothing to derive (the worker writes its cursor with its first event)

        def worker_cursor() -> bool:
            path = self.server.data_dir / "push.db"
            uri = f"file:{path}?mode=ro"
            with (
                contextlib.suppress(sqlite3.Error),
                contextlib.closing(sqlite3.connect(uri, uri=True)) as db,
            ):
                row = db.execute("SELECT seq FROM cursor WHERE id = 1").fetchone()
                return row is not None and row[0] >= head
            return False

        wait_until(worker_cursor, f"the push worker to derive up to seq {head}")

    def unsubscribe(self, endpoint: str) -> httpx.Response:
        return self.request("DELETE", "/api/push/subscriptions", json={"endpoint": endpoint})

    def publish(self, project: str, stage: str = "notice", **fields: Any) -> dict[str, Any]:
        return self.staff.publish(project, stage, **fields)

    def timed_publish(self, project: str, stage: str = "notice") -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        event = self.publish(project, stage)
        return event, time.monotonic() - started

    def retried(
        self,
        service: PushService,
        condition: Callable[[], Any],
        what: str,
        timeout: float = 5.0,
    ) -> None:
        """Wait for what a retry brings, with nothing else waking the sender."""
        wait_until(condition, what, timeout)

    def counts(self, seq: int) -> dict[str, int]:
        response = self.staff.client.get(f"/api/events/{seq}/deliveries")
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"seq", "channels", *STATES} and body["seq"] == seq, body
        assert body["channels"] == {}, "no channel beside Web Push is configured here"
        return {state: body[state] for state in STATES}

    def settled(self, seq: int, timeout: float = WAIT, **expected: int) -> None:
        """Wait until the delivery counts of `seq` are exactly `expected` (others 0)."""
        wanted = {state: expected.get(state, 0) for state in STATES}
        seen: list[dict[str, int]] = []

        def done() -> bool:
            seen.append(self.counts(seq))
            return seen[-1] == wanted

        try:
            wait_until(done, f"deliveries of seq {seq} to be {wanted}", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen {seen[-1]}") from None


def start_push_server(data_dir: Path, service: PushService, **env: str) -> Push:
    server = ServerProcess(data_dir, **push_env(service, **env)).start()
    return Push(server, server.token("push-admin"))


def stop(push: Push) -> None:
    push.close()
    if push.server.process is not None:
        push.server.stop()


@pytest.fixture(scope="module")
def service() -> Iterator[PushService]:
    with PushService.in_thread() as running:
        yield running


@pytest.fixture(scope="module")
def push(service: PushService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Push]:
    """One server for the API, delivery and answer tests: 1 s timeout, 2 attempts."""
    running = start_push_server(
        tmp_path_factory.mktemp("push") / "data",
        service,
        SUNBID_PUSH_TIMEOUT_SECONDS="1",
        SUNBID_PUSH_MAX_ATTEMPTS="2",
    )
    yield running
    stop(running)


# --- 1. subscribing -------------------------------------------------------------------------


def test_subscribe_update_and_unsubscribe(push: Push, service: PushService) -> None:
    for project in ("SU-A", "SU-B"):
        push.staff.project(project)
    subscription = service.new_subscriber(application_server_key=push.key)
    endpoint = subscription["endpoint"]
    control = push.follow(service, ["project:SU-A", "project:SU-B"])

    created = push.subscribe(subscription, ["project:SU-A"])
    assert created.status_code == 201, created.text
    assert created.json() == {"id": created.json()["id"], "topics": ["project:SU-A"]}
    assert isinstance(created.json()["id"], int)

    updated = push.subscribe(subscription, ["project:SU-B"])
    assert updated.status_code == 200, updated.text
    assert updated.json() == {"id": created.json()["id"], "topics": ["project:SU-B"]}

    # The topics were replaced: SU-A no longer reaches it, SU-B does.
    on_a, on_b = push.publish("SU-A"), push.publish("SU-B")
    wait_until(got_all(service, [control], [on_a["seq"], on_b["seq"]]), "the control's pushes")
    wait_until(lambda: seqs(service, endpoint) == [on_b["seq"]], "the SU-B push")
    push.settled(on_a["seq"], delivered=1)
    push.settled(on_b["seq"], delivered=2)

    for _ in range(2):
        gone = push.unsubscribe(endpoint)
        assert gone.status_code == 204, gone.text
        assert gone.content == b""

    later = push.publish("SU-B")
    wait_until(got_all(service, [control], [later["seq"]]), "the control's push")
    push.settled(later["seq"], delivered=1)
    assert seqs(service, endpoint) == [on_b["seq"]]
    assert len(service.tries(endpoint)) == 1

    again = push.subscribe(subscription, ["project:SU-B"])
    assert again.status_code == 201, again.text  # it really was removed
    for each in (endpoint, control):
        assert push.unsubscribe(each).status_code == 204
    assert service.rejections == []


def test_invalid_subscriptions_are_refused_and_never_contacted(
    push: Push, service: PushService
) -> None:
    push.staff.project("INV-1")
    topics = ["project:INV-1"]
    port = service.port
    refused: list[str] = []  # endpoints at the push service that must never be used

    def at_service(**keys: Any) -> dict[str, Any]:
        subscription = service.new_subscriber(application_server_key=push.key)
        refused.append(subscription["endpoint"])
        subscription["keys"].update(keys)
        return subscription

    valid = service.new_subscriber(application_server_key=push.key)
    sid = valid["endpoint"].rsplit("/", 1)[1]
    refused.append(valid["endpoint"])
    # Where the reason would otherwise hide behind a failed DNS look-up (offline, the
    # allowed host does not resolve either), the message must name it.
    endpoints: list[tuple[str, str | None]] = [
        ("https://169.254.169.254/x.apple.com/", None),
        ("https://169.254.169.254/latest/meta-data/", None),
        ("https://fcm.googleapis.com.evil.com/x", None),
        ("https://x.push.apple.com@169.254.169.254/", None),
        ("http://fcm.googleapis.com/fcm/send/x", "https"),
        ("https://fcm.googleapis.com:8443/fcm/send/x", "443"),
        ("https://user:secret@fcm.googleapis.com/fcm/send/x", "user"),
        ("https://web.push.apple.com.169.254.169.254.nip.io/x", None),
        ("ftp://fcm.googleapis.com/x", None),
        ("not a url", None),
        # The push service itself, but not the exact origin the allow-list names:
        (f"http://localhost:{port}/push/{sid}", None),
        (f"https://127.0.0.1:{port}/push/{sid}", None),
        (f"http://127.0.0.1:{port + 1}/push/{sid}", None),
        (f"http://me@127.0.0.1:{port}/push/{sid}", None),
        (f"http://2130706433:{port}/push/{sid}", None),
    ]
    for endpoint, reason in endpoints:
        response = push.subscribe({**valid, "endpoint": endpoint}, topics)
        assert_error(response, 422, "subscription.endpoint")
        if reason is not None:
            assert reason in response.json()["error"]["message"], (endpoint, response.text)

    point = unb64(valid["keys"]["p256dh"])
    compressed = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point).public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    off_curve = b"\x04" + (1).to_bytes(32, "big") + (1).to_bytes(32, "big")
    bad_keys: list[dict[str, Any]] = [
        {"p256dh": b64(off_curve)},
        {"p256dh": b64(compressed)},  # 33 bytes: the compressed form
        {"p256dh": b64(point[1:])},  # 64 bytes, no 0x04
        {"p256dh": b64(point + b"\x00")},
        {"p256dh": "not base64!"},
        {"auth": b64(bytes(15))},
        {"auth": b64(bytes(17))},
        {"auth": b64(bytes(32))},
        {"auth": 16},
    ]
    for keys in bad_keys:
        assert_error(push.subscribe(at_service(**keys), topics), 422, "subscription.keys")
    no_keys = at_service()
    del no_keys["keys"]
    assert_error(push.subscribe(no_keys, topics), 422, "subscription.keys")

    for bad_topics in (
        ["bogus:1"],
        ["category:no_such_category"],
        ["project:has space"],
        [],
        "project:INV-1",
        None,
    ):
        assert_error(push.subscribe(at_service(), bad_topics), 422)
    for staff_topics in (["supervision"], ["project:INV-1", "supervision"]):
        # The staff-topic rule of every transport (server/core/topics.py): push takes no token.
        forbidden = push.subscribe(at_service(), staff_topics)
        assert_error(forbidden, 403)
        assert forbidden.json()["error"]["code"] == "forbidden"
    for bad_stages in (["no_such_stage"], "award", [1], {"award": True}):
        assert_error(push.subscribe(at_service(), topics, bad_stages), 422)
    assert_error(push.request("POST", "/api/push/subscriptions", json=[]), 422)
    assert_error(push.request("POST", "/api/push/subscriptions", json={"topics": topics}), 422)

    not_json = push.request(
        "POST",
        "/api/push/subscriptions",
        content=b'{"subscription": {',
        headers={"Content-Type": "application/json"},
    )
    assert_error(not_json, 400)
    not_declared = push.request(
        "POST",
        "/api/push/subscriptions",
        content=b"endpoint=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(not_declared, 415)

    # None of them was stored: an event on their topic reaches only the control.
    control = push.follow(service, topics)
    event = push.publish("INV-1")
    wait_until(got_all(service, [control], [event["seq"]]), "the control's push")
    push.settled(event["seq"], delivered=1)
    never = {e.rsplit("/", 1)[1] for e in refused}
    assert [a for a in list(service.attempts) if a.subscriber in never] == []
    assert service.rejections == []


def test_subscription_creation_is_rate_limited_per_address(
    push: Push, service: PushService
) -> None:
    address = fresh_address()
    burst = Settings.from_env({}).subscribe_burst  # SUNBID_SUBSCRIBE_BURST's default
    for n in range(burst):
        response = push.subscribe(service.new_subscriber(), [f"project:RL-{n}"], address=address)
        assert response.status_code == 201, (n, response.text)
    # The bucket refills meanwhile (one every few seconds): a few more may pass.
    for _ in range(burst // 4):
        refused = service.new_subscriber()
        limited = push.subscribe(refused, ["project:RL-X"], address=address)
        if limited.status_code != 201:
            break
    assert_error(limited, 429)
    assert limited.headers["Retry-After"].isdigit(), limited.headers
    assert 1 <= int(limited.headers["Retry-After"]) <= 3600
    # Another address is not held back, and the refused one was not stored.
    again = push.subscribe(refused, ["project:RL-X"])
    assert again.status_code == 201, again.text


# --- 2. delivery ------------------------------------------------------------------------------


def test_payload_and_headers_follow_the_contract(push: Push, service: PushService) -> None:
    push.staff.project("PD-1", agency="AG-PD", region="RPD1")
    push.staff.project("PD-2", agency="AG-PD", region="RPD1")
    push.publish("PD-2", "notice")  # before the follow: an award needs a notice
    endpoint = push.follow(service, ["project:PD-1", "project:PD-2"])

    notice = push.publish(
        "PD-1",
        "notice",
        body="投标截止时间 2026-12-01 09:30，地点 义乌市公共资源交易中心",
        data={"deadline": "2026-12-01T09:30:00+08:00"},  # passed: the opening may follow
    )
    opening = push.publish("PD-1", "bid_opening", data={"bidders": 7})
    award = push.publish("PD-2", "award", body="中标人：某某建设有限公司")
    long = push.publish(
        "PD-1", "clarification", body="澄清内容" * 2500, data={"rows": list(range(300))}
    )
    events = [notice, opening, award, long]
    wanted = [e["seq"] for e in events]
    wait_until(lambda: sorted(seqs(service, endpoint)) == wanted, "4 pushes")
    for seq in wanted:
        push.settled(seq, delivered=1)

    got = {m.payload["event"]["seq"]: m for m in messages(service, endpoint)}
    for event in events:
        message = got[event["seq"]]
        payload = message.payload
        assert {"title", "body", "url", "tag", "event"} <= set(payload), payload
        assert payload["url"] == f"/p/{event['project']}"
        assert payload["tag"] == event["project"]
        assert STAGE_NAMES[event["stage"]] in payload["title"], payload["title"]
        assert isinstance(payload["body"], str) and payload["body"]
        if event is long:
            # Trimmed to fit one record, yet still the same event.
            assert payload["event"]["truncated"] is True
            for name in ("seq", "hash", "project", "stage", "published_at"):
                assert payload["event"][name] == event[name], name
            assert len(payload["event"]["body"]) < len(event["body"])
        else:
            assert payload["event"] == event
            assert event["title"] in payload["title"]
        policy = POLICY["stages"][event["stage"]]
        assert policy["ttl"] - 10 <= message.ttl <= policy["ttl"], (event["stage"], message.ttl)
        assert message.urgency == policy["urgency"]
        assert 0 < message.exp - message.received_at <= 24 * 3600
        assert message.topic is not None and TOPIC_HEADER.fullmatch(message.topic)

    assert got[notice["seq"]].urgency == "normal"
    assert got[long["seq"]].urgency == "normal"
    assert got[opening["seq"]].urgency == "high"
    assert got[award["seq"]].urgency == "high"
    topics = {seq: got[seq].topic for seq in wanted}
    assert topics[notice["seq"]] == topics[opening["seq"]] == topics[long["seq"]]
    assert topics[award["seq"]] != topics[notice["seq"]]
    assert service.rejections == []


def test_topics_and_stages_select_what_is_delivered_once(push: Push, service: PushService) -> None:
    push.staff.project("MT-1", category="land", agency="AG-MT", region="RMT1")
    push.staff.project("MT-2", category="land", agency="AG-MTX", region="RMT2")
    push.staff.project("MT-3", category="mining", agency="AG-MT", region=None)
    push.staff.project("MT-4", category="mining", agency="AG-MTY", region="RMT1")
    follows: dict[str, tuple[list[str], list[str] | None]] = {
        "all": (["all"], None),
        "category": (["category:land"], None),
        "agency": (["agency:AG-MT"], None),
        "region": (["region:RMT1"], None),
        "every topic of MT-1": (
            ["project:MT-1", "category:land", "agency:AG-MT", "region:RMT1"],
            None,
        ),
        "awards of two topics": (["category:land", "agency:AG-MT"], ["award"]),
        "notices of all": (["all"], ["notice"]),
        "nothing": (["project:MT-9", "category:emission_rights", "region:RMT9"], None),
    }
    push.publish("MT-2", "notice")  # before the follows: an award needs a notice
    endpoints = {name: push.follow(service, t, s) for name, (t, s) in follows.items()}
    e1 = push.publish("MT-1", "notice")["seq"]
    e2 = push.publish("MT-2", "award")["seq"]
    e3 = push.publish("MT-3", "notice")["seq"]
    e4 = push.publish("MT-4", "auction")["seq"]
    e5 = push.publish("MT-1", "award")["seq"]
    published = [e1, e2, e3, e4, e5]
    expected = {
        "all": published,
        "category": [e1, e2, e5],
        "agency": [e1, e3, e5],
        "region": [e1, e4, e5],
        "every topic of MT-1": published,
        "awards of two topics": [e2, e5],
        "notices of all": [e1, e3],
        "nothing": [],
    }
    try:
        for name, wanted in expected.items():
            wait_until(
                lambda n=name, w=wanted: set(w) <= set(seqs(service, endpoints[n])),
                f"the pushes of {name!r}",
            )
        per_event = Counter(seq for wanted in expected.values() for seq in wanted)
        for seq in published:
            push.settled(seq, delivered=per_event[seq])
        for name, wanted in expected.items():
            got = seqs(service, endpoints[name], among=published)
            assert Counter(got) == Counter(wanted), name
    finally:
        for endpoint in endpoints.values():
            assert push.unsubscribe(endpoint).status_code == 204
    assert service.rejections == []


# --- 3. what the push service answers ---------------------------------------------------------


def test_404_and_410_remove_the_subscription(push: Push, service: PushService) -> None:
    push.staff.project("AN-GONE")
    topics = ["project:AN-GONE"]
    not_found, gone = push.follow(service, topics), push.follow(service, topics)
    service.queue(not_found, NOT_FOUND)
    service.queue(gone, GONE)
    control = push.follow(service, topics)

    first = push.publish("AN-GONE")["seq"]
    push.settled(first, delivered=1, gone=2)
    assert statuses(service, not_found) == [404]
    assert statuses(service, gone) == [410]

    later = push.publish("AN-GONE", "clarification")["seq"]
    wait_until(got_all(service, [control], [first, later]), "the control's pushes")
    push.settled(later, delivered=1)
    assert statuses(service, not_found) == [404]  # the later event was not sent to them
    assert statuses(service, gone) == [410]
    assert messages(service, not_found) == messages(service, gone) == []
    push.settled(first, delivered=1, gone=2)
    assert service.rejections == []


def test_400_403_413_are_failed_and_not_retried(push: Push, service: PushService) -> None:
    push.staff.project("AN-4XX")
    topics = ["project:AN-4XX"]
    refused = {
        status: push.follow(service, topics, answer=Answer(status)) for status in (400, 403, 413)
    }
    control = push.follow(service, topics)

    first = push.publish("AN-4XX")["seq"]
    push.settled(first, delivered=1, failed=3)
    for status, endpoint in refused.items():
        assert statuses(service, endpoint) == [status]

    # Still subscribed (only 404/410 remove): the next event is tried once more, once.
    later = push.publish("AN-4XX", "clarification")["seq"]
    push.settled(later, delivered=1, failed=3)
    for status, endpoint in refused.items():
        assert statuses(service, endpoint) == [status, status]
    assert seqs(service, control) == [first, later]
    push.settled(first, delivered=1, failed=3)
    assert service.rejections == []


def test_429_is_retried_after_retry_after(push: Push, service: PushService) -> None:
    push.staff.project("AN-429")
    endpoint = push.follow(service, ["project:AN-429"])
    service.queue(endpoint, slow_down(1))

    seq = push.publish("AN-429")["seq"]
    push.retried(service, lambda: seqs(service, endpoint) == [seq], "the retried push")
    push.settled(seq, delivered=1)
    tries = service.tries(endpoint)
    assert [t.status for t in tries] == [429, 201]
    assert tries[1].at - tries[0].at >= 1.0, "Retry-After: 1 was not honoured"
    assert service.rejections == []


def test_500_is_retried_until_the_service_recovers(push: Push, service: PushService) -> None:
    push.staff.project("AN-500")
    endpoint = push.follow(service, ["project:AN-500"])
    service.queue(endpoint, SERVER_ERROR)

    seq = push.publish("AN-500")["seq"]
    push.retried(service, lambda: seqs(service, endpoint) == [seq], "the retried push")
    push.settled(seq, delivered=1)
    tries = service.tries(endpoint)
    assert [t.status for t in tries] == [500, 201]
    assert tries[1].at - tries[0].at >= 0.05, "retried without backing off"
    assert service.rejections == []


def test_a_hanging_service_times_out_and_is_retried(push: Push, service: PushService) -> None:
    push.staff.project("AN-HANG")
    endpoint = push.follow(service, ["project:AN-HANG"])
    service.queue(endpoint, HANG_THEN_503)
    assert service.hanging == 0
    try:
        published_at = time.time()
        seq = push.publish("AN-HANG")["seq"]
        push.retried(service, lambda: seqs(service, endpoint) == [seq], "the retried push")
        push.settled(seq, delivered=1)
        assert messages(service, endpoint)[0].received_at - published_at >= 1.0
        assert service.hanging == 1  # the first request is still held: it was given up on
    finally:
        service.release()
    wait_until(lambda: len(service.tries(endpoint)) == 2, "the released request")
    assert sorted(statuses(service, endpoint)) == [201, 503]
    push.settled(seq, delivered=1)
    assert service.rejections == []


def test_gives_up_after_max_attempts(push: Push, service: PushService) -> None:
    push.staff.project("AN-MAX")
    endpoint = push.follow(service, ["project:AN-MAX"], answer=SERVER_ERROR)

    seq = push.publish("AN-MAX")["seq"]
    push.retried(service, lambda: len(service.tries(endpoint)) >= 2, "the retry")
    push.settled(seq, failed=1)
    assert statuses(service, endpoint) == [500, 500]  # SUNBID_PUSH_MAX_ATTEMPTS=2
    assert messages(service, endpoint) == []
    assert service.rejections == []


def test_due_retries_go_out_without_outside_help(push: Push, service: PushService) -> None:
    # Rounds of five deliveries answered 500 once: each is retried 0.1-0.3 s later,
    # and nothing else happens on the server meanwhile to wake its send loop.
    for round_ in range(8):
        project = f"AN-RETRY-{round_}"
        push.staff.project(project)
        endpoints = [push.follow(service, [f"project:{project}"]) for _ in range(5)]
        for endpoint in endpoints:
            service.queue(endpoint, SERVER_ERROR)
        seq = push.publish(project)["seq"]
        push.settled(seq, delivered=len(endpoints), timeout=3.0)
        for endpoint in endpoints:
            assert statuses(service, endpoint) == [500, 201]


def test_deliveries_needs_staff_and_a_known_seq(push: Push) -> None:
    push.staff.project("AN-AUTH")
    seq = push.publish("AN-AUTH")["seq"]
    url = f"{push.server.url}/api/events/{seq}/deliveries"
    assert_error(httpx.get(url, timeout=10), 401)
    assert_error(httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=10), 401)

    supervisor = push.server.token("push-supervisor", role="supervisor")
    response = httpx.get(url, headers={"Authorization": f"Bearer {supervisor}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "seq": seq,
        "queued": 0,
        "delivered": 0,
        "failed": 0,
        "gone": 0,
        "channels": {},
    }

    head = push.server.head()
    for unknown in (head + 1, head + 1000, 0, 2**63 - 1):
        assert_error(push.staff.client.get(f"/api/events/{unknown}/deliveries"), 404)
    for not_a_seq in ("abc", "-1", "1.5", "١٢٣", 2**63, "9" * 4_301):
        response = push.staff.client.get(f"/api/events/{not_a_seq}/deliveries")
        assert_error(response, 422, "seq")


# --- 4. durability ----------------------------------------------------------------------------


def test_publishing_never_waits_for_pushes(service: PushService, tmp_path: Path) -> None:
    # A long timeout: the pushes hang for as long as the test holds them.
    push = start_push_server(tmp_path / "data", service, SUNBID_PUSH_TIMEOUT_SECONDS="60")
    assert service.hanging == 0
    try:
        push.staff.project("DU-FAST")
        endpoints = [push.follow(service, ["project:DU-FAST"]) for _ in range(20)]
        for endpoint in endpoints:
            service.queue(endpoint, HANG)

        first, took_first = push.timed_publish("DU-FAST")
        wait_until(lambda: service.hanging == len(endpoints), "every first push to hang")
        timings = [took_first]
        wanted = [first["seq"]]
        for stage in ("clarification", "evaluation"):
            event, took = push.timed_publish("DU-FAST", stage)
            wanted.append(event["seq"])
            timings.append(took)
        assert max(timings) < 1.0, timings
        assert push.counts(first["seq"])["queued"] == len(endpoints)

        service.release()  # the held requests are answered 201 now
        wait_until(got_all(service, endpoints, wanted), "every push")
        for seq in wanted:
            push.settled(seq, delivered=len(endpoints))
        for endpoint in endpoints:
            assert sorted(seqs(service, endpoint)) == wanted
        assert service.rejections == []
    finally:
        service.release()
        stop(push)


def test_sigkill_with_deliveries_queued_loses_none(service: PushService, tmp_path: Path) -> None:
    # One request at a time, and it hangs: one in flight, the rest queued.
    push = start_push_server(
        tmp_path / "data",
        service,
        SUNBID_PUSH_CONCURRENCY="1",
        SUNBID_PUSH_TIMEOUT_SECONDS="60",
    )
    assert service.hanging == 0
    try:
        push.staff.project("DU-KILL")
        endpoints = [
            push.follow(service, ["project:DU-KILL"], answer=HANG_THEN_503) for _ in range(12)
        ]
        first, took = push.timed_publish("DU-KILL")
        assert took < 1.0, took
        wait_until(lambda: service.hanging == 1, "the first push to hang")
        assert push.counts(first["seq"]) == {
            "queued": len(endpoints),
            "delivered": 0,
            "failed": 0,
            "gone": 0,
        }
        second, took = push.timed_publish("DU-KILL", "clarification")
        assert took < 1.0, took
        assert push.server.stop(signal.SIGKILL) == -signal.SIGKILL

        for endpoint in endpoints:
            service.answer(ACCEPT, endpoint)
        service.release()  # the request held when the server died answers a dead socket
        push.server.start()
        wanted = [first["seq"], second["seq"]]
        wait_until(got_all(service, endpoints, wanted), "every push after the restart")
        for seq in wanted:
            push.settled(seq, delivered=len(endpoints))
        total = 0
        for endpoint in endpoints:
            got = Counter(seqs(service, endpoint))
            assert set(got) == set(wanted), got
            assert all(1 <= n <= 2 for n in got.values()), got
            total += sum(got.values())
        assert total <= 2 * len(endpoints) + 1  # one request was in flight
        assert service.rejections == []
    finally:
        service.release()
        stop(push)


def worker_pid(server: ServerProcess) -> int:
    """The push worker process the server started (its only child)."""
    assert server.process is not None
    pid = server.process.pid
    children: list[str] = []

    def found() -> bool:
        children[:] = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return len(children) == 1

    wait_until(found, "the server to start its push worker")
    assert "push.process" in Path(f"/proc/{children[0]}/cmdline").read_text()
    return int(children[0])


def alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def stuck_at(pid: int) -> str:
    """The state and kernel wait channel of a process, for a failure message."""
    try:
        state = next(
            line
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("State:")
        )
        return f"{state}, waiting in {Path(f'/proc/{pid}/wchan').read_text() or '-'}"
    except (FileNotFoundError, StopIteration):
        return "gone"


def test_a_dead_worker_is_restarted_and_never_outlives_the_server(
    service: PushService, tmp_path: Path
) -> None:
    push = start_push_server(tmp_path / "data", service)
    try:
        push.staff.project("DU-PROC")
        endpoint = push.follow(service, ["project:DU-PROC"])
        first = worker_pid(push.server)
        os.kill(first, signal.SIGKILL)
        # Published while no worker runs: the log keeps it, the next worker sends it.
        seq = push.publish("DU-PROC")["seq"]
        wait_until(lambda: seqs(service, endpoint) == [seq], "the push after the restart")
        second = worker_pid(push.server)
        assert second != first

        assert push.server.stop(signal.SIGKILL) == -signal.SIGKILL
        try:
            wait_until(lambda: not alive(second), "the worker to exit with its server", 5)
        except AssertionError as exc:  # say where it was stuck
            raise AssertionError(
                f"{exc}; {stuck_at(second)}; log: {push.server.log_tail()}"
            ) from None
    finally:
        stop(push)


def test_push_service_down_for_a_while_loses_nothing(tmp_path: Path) -> None:
    with PushService.in_thread() as service:
        # 8 attempts from 0.1 s apart, doubling: a 1.5 s outage uses about 4 of them.
        push = start_push_server(tmp_path / "data", service, SUNBID_PUSH_RETRY_BASE_SECONDS="0.1")
        try:
            push.staff.project("DU-DOWN")
            endpoints = [push.follow(service, ["project:DU-DOWN"]) for _ in range(4)]
            before = push.publish("DU-DOWN")["seq"]
            wait_until(got_all(service, endpoints, [before]), "the pushes before the outage")

            port = service.port
            service.call(service.stop())
            during = [push.timed_publish("DU-DOWN", stage) for stage in ("clarification", "award")]
            assert max(took for _, took in during) < 1.0
            time.sleep(1.5)
            for event, _ in during:  # retried meanwhile, neither sent nor given up
                assert push.counts(event["seq"])["queued"] == len(endpoints)

            service.call(service.start())
            assert service.port == port
            wanted = [before, *(event["seq"] for event, _ in during)]
            push.retried(
                service, got_all(service, endpoints, wanted), "the pushes after the outage", 8.0
            )
            for seq in wanted:
                push.settled(seq, delivered=len(endpoints))
            for endpoint in endpoints:
                assert sorted(seqs(service, endpoint)) == wanted
            assert service.rejections == []
        finally:
            stop(push)


# --- 5. keys ------------------------------------------------------------------------------------


def vapid_show(server: ServerProcess) -> subprocess.CompletedProcess[str]:
    return server.cli("vapid", "show")


def serving(server: ServerProcess) -> bool:
    try:
        return httpx.get(server.url + "/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def refused_start(server: ServerProcess, marker: str, grace: float = 3.0) -> tuple[int | None, str]:
    """Start a server that must refuse to run.

    Returns its exit code (None if it was still running `grace` s after its
    log showed `marker`; it is killed then) and what it logged.
    """
    server.data_dir.mkdir(parents=True, exist_ok=True)
    offset = server.log.stat().st_size if server.log.exists() else 0
    with open(server.log, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(server.port)],
            cwd=ROOT,
            env=server.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    marked_at: float | None = None
    try:
        while child.poll() is None:
            now = time.monotonic()
            logged = server.log.read_bytes()[offset:].decode("utf-8", "replace")
            if marked_at is None and marker in logged:
                marked_at = now
            if (marked_at is not None and now - marked_at > grace) or now > deadline:
                break
            assert not serving(server), f"the server started: {logged[-2000:]}"
            time.sleep(0.05)
    finally:
        code = child.poll()
        if code is None:
            child.kill()
            child.wait(10)
    return code, server.log.read_bytes()[offset:].decode("utf-8", "replace")


def test_vapid_key_is_created_once_private_and_kept(service: PushService, tmp_path: Path) -> None:
    push = start_push_server(tmp_path / "data", service)
    try:
        path = push.server.data_dir / KEY_FILE
        point = unb64(push.key)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)  # a P-256 point
        assert len(point) == 65 and point[0] == 4
        shown = vapid_show(push.server)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.strip().splitlines()[-1] == push.key

        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        pem = path.read_bytes()
        private = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        public = private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        assert b64(public) == push.key

        push.staff.project("KEY-1")
        endpoint = push.follow(service, ["project:KEY-1"])
        push.server.stop()
        push.server.start()
        again = httpx.get(push.server.url + "/api/push/vapid-key", timeout=10)
        assert again.json() == {"publicKey": push.key}
        assert path.read_bytes() == pem
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert vapid_show(push.server).stdout.strip().splitlines()[-1] == push.key

        # The push service refuses (403) anything signed with another key.
        seq = push.publish("KEY-1")["seq"]
        wait_until(lambda: seqs(service, endpoint) == [seq], "a push after the restart")
        assert service.rejections == []
    finally:
        stop(push)


@pytest.fixture
def keyless(service: PushService, tmp_path: Path) -> ServerProcess:
    """A data dir with a push subscription whose VAPID key file was deleted."""
    push = start_push_server(tmp_path / "data", service)
    try:
        push.staff.project("KEY-2")
        push.follow(service, ["project:KEY-2"])
    finally:
        stop(push)
    (push.server.data_dir / KEY_FILE).unlink()
    return push.server


def test_missing_key_file_is_refused_never_replaced(keyless: ServerProcess) -> None:
    path = keyless.data_dir / KEY_FILE
    shown = vapid_show(keyless)
    assert shown.returncode != 0
    assert str(path) in shown.stderr
    assert not path.exists()

    _, logged = refused_start(keyless, str(path), grace=0.5)
    assert str(path) in logged
    assert "missing" in logged
    assert not path.exists(), "a new VAPID key was created"
    assert not list(keyless.data_dir.glob(f".{KEY_FILE}*"))


def test_missing_key_file_makes_start_up_exit_non_zero(keyless: ServerProcess) -> None:
    code, logged = refused_start(keyless, str(keyless.data_dir / KEY_FILE))
    assert str(keyless.data_dir / KEY_FILE) in logged
    assert code is not None, "the server neither served nor exited"
    assert code != 0
    assert not (keyless.data_dir / KEY_FILE).exists()


@pytest.mark.parametrize("subject", ["mailto:a@localhost", "https://localhost/contact"])
def test_localhost_vapid_subject_is_refused_at_start_up(tmp_path: Path, subject: str) -> None:
    server = ServerProcess(tmp_path / "data", SUNBID_VAPID_SUBJECT=subject)
    code, logged = refused_start(server, "SUNBID_VAPID_SUBJECT")
    assert code is not None and code != 0, (code, logged)
    assert "SUNBID_VAPID_SUBJECT" in logged and "localhost" in logged, logged
    assert "Traceback" not in logged
    assert not (server.data_dir / KEY_FILE).exists()
