"""Signed webhooks end to end: a real server and its worker process, a real
receiver on loopback that checks every request with the reference
`standardwebhooks` verifier (tests/webhook_receiver.py)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import ServerProcess, Staff, free_port
from tests.standins import until
from tests.webhook_receiver import WebhookReceiver

FAST = {
    "SUNBID_WEBHOOK_RETRY_BASE_SECONDS": "0.1",
    "SUNBID_WEBHOOK_TIMEOUT_SECONDS": "1",
}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver.in_thread() as running:
        yield running
        assert running.bad == [], "a request failed the standardwebhooks verifier"


def start(tmp_path: Any, receiver: WebhookReceiver, **env: str) -> ServerProcess:
    allowed = f"http://127.0.0.1:{receiver.port}"
    return ServerProcess(
        tmp_path / "data", SUNBID_WEBHOOK_ALLOWED_HOSTS=allowed, **{**FAST, **env}
    ).start()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(
    staff: Staff, receiver: WebhookReceiver, name: str, topics: list[str], **more: Any
) -> str:
    answer = staff.client.post(
        "/api/webhooks", json={"url": receiver.url(name), "topics": topics, **more}
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["secret"].startswith("whsec_")
    receiver.secret(name, created["secret"])
    return str(created["id"])


def webhook(staff: Staff, webhook_id: str) -> dict[str, Any]:
    listed = staff.client.get("/api/webhooks").json()["items"]
    return next(hook for hook in listed if hook["id"] == webhook_id)


def deliveries(staff: Staff, webhook_id: str, limit: int = 1000) -> list[dict[str, Any]]:
    answer = staff.client.get(f"/api/webhooks/{webhook_id}/deliveries", params={"limit": limit})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    return list(answer.json()["items"])


def test_each_matching_event_arrives_signed_in_order_and_is_recorded(
    tmp_path: Any, receiver: WebhookReceiver
) -> None:
    server = start(tmp_path, receiver)
    staff = Staff(server, server.token("admin"))
    try:
        staff.project("W-1")
        staff.project("W-2", category="gov_procurement", agency="YW-ZFCG")
        project = register(staff, receiver, "project", ["project:W-1"])
        awards = register(staff, receiver, "awards", ["all"], stages=["award"])
        published = [staff.publish("W-1", "notice"), staff.publish("W-2", "notice")]
        published.append(staff.publish("W-1", "award"))
        # A burst from many publishers at once: still one at a time, in seq order.
        with ThreadPoolExecutor(8) as pool:
            burst = list(pool.map(lambda i: staff.publish("W-1", "clarification"), range(60)))
        w1 = sorted(e["seq"] for e in [*published, *burst] if e["project"] == "W-1")
        until(lambda: len(receiver.got("project")) >= len(w1), 20)
        assert receiver.seqs("project") == w1, "every W-1 event once, in seq order"
        assert receiver.seqs("awards") == [published[2]["seq"]]
        first = receiver.got("project")[0]
        assert first.payload == {"type": "event", "event": published[0]}
        assert first.msg_id == f"msg_{project}_{published[0]['seq']}"

        listed = staff.client.get("/api/webhooks")
        assert listed.headers["cache-control"] == "no-store"
        assert "secret" not in listed.text and "whsec_" not in listed.text
        shown = webhook(staff, project)
        assert shown["state"] == "active" and shown["topics"] == ["project:W-1"]
        until(lambda: webhook(staff, project)["cursor"] == w1[-1])
        assert webhook(staff, awards)["stages"] == ["award"]
        records = deliveries(staff, project)
        assert [r["seq"] for r in reversed(records)] == w1  # newest first
        assert all(r["status"] == 200 and r["error"] is None for r in records)
        assert all(r["attempt"] == 1 and r["duration_ms"] >= 0 for r in records)

        assert staff.client.delete(f"/api/webhooks/{awards}").status_code == 204
        assert staff.client.delete(f"/api/webhooks/{awards}").status_code == 404
        staff.publish("W-2", "award")
        staff.publish("W-1", "clarification")
        until(lambda: len(receiver.got("project")) == len(w1) + 1)
        time.sleep(0.3)
        assert len(receiver.got("awards")) == 1, "a deleted webhook gets nothing more"

        metrics = httpx.get(server.url + "/metrics").text
        assert f'sunbid_webhook_deliveries_total{{outcome="delivered"}} {len(w1) + 2}.0' in metrics
        verified = server.cli("verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "ok: webhooks" in verified.stdout
    finally:
        staff.client.close()
        server.stop()


def test_failures_are_retried_and_a_hanging_receiver_delays_nobody(
    tmp_path: Any, receiver: WebhookReceiver
) -> None:
    server = start(tmp_path, receiver)
    staff = Staff(server, server.token("admin"))
    try:
        staff.project("R-1")
        hanging = register(staff, receiver, "hang", ["project:R-1"])
        failing = register(staff, receiver, "fail", ["project:R-1"])
        register(staff, receiver, "fine", ["project:R-1"])
        receiver.set_mode("hang", "hang")
        receiver.set_mode("fail", "fail")
        until(lambda: True)
        sent = []
        for _ in range(3):
            began = time.monotonic()
            sent.append(staff.publish("R-1", "clarification")["seq"])
            assert time.monotonic() - began < 0.5, "publishing never waits for a receiver"
        # The healthy receiver has all three long before the hanging one's timeout (1 s).
        began = time.monotonic()
        until(lambda: receiver.seqs("fine") == sent, 5)
        assert time.monotonic() - began < 0.9
        # 500s: tried again with the same webhook-id, then delivered once it recovers.
        until(lambda: receiver.hits.get("fail", 0) >= 3)
        receiver.set_mode("fail", "ok")
        until(lambda: receiver.seqs("fail") == sent, 10)
        failed = [r for r in deliveries(staff, failing) if r["error"] is not None]
        assert failed and all(r["status"] == 500 and r["error"] == "status" for r in failed)
        assert all(r["seq"] == sent[0] for r in failed), "nothing after the head until it passes"
        assert max(r["attempt"] for r in failed) >= 3
        # The hanging receiver: its attempts time out, and are tried again.
        until(lambda: any(r["error"] == "timeout" for r in deliveries(staff, hanging)), 5)
        hang_record = next(r for r in deliveries(staff, hanging) if r["error"] == "timeout")
        assert hang_record["status"] is None and hang_record["duration_ms"] >= 900
        assert webhook(staff, hanging)["state"] == "failing"
        receiver.set_mode("hang", "ok")
        until(lambda: receiver.seqs("hang") == sent, 15)
        assert webhook(staff, hanging)["state"] == "active"
        metrics = httpx.get(server.url + "/metrics").text
        assert 'sunbid_webhook_deliveries_total{outcome="retry"}' in metrics
    finally:
        staff.client.close()
        server.stop()


def test_a_restart_with_deliveries_pending_loses_nothing_and_repeats_nothing(
    tmp_path: Any, receiver: WebhookReceiver
) -> None:
    server = start(tmp_path, receiver)
    staff = Staff(server, server.token("admin"))
    try:
        staff.project("S-1")
        register(staff, receiver, "down", ["project:S-1"])
        register(staff, receiver, "busy", ["project:S-1"])
        receiver.set_mode("down", "fail")
        receiver.set_mode("busy", "slow")  # 40 × 50 ms: most still to send at the kill
        sent = [staff.publish("S-1", "clarification")["seq"] for _ in range(40)]
        until(lambda: len(receiver.got("busy")) >= 5)
        server.stop(signal.SIGKILL)
        assert len(receiver.got("busy")) < len(sent), "killed with deliveries pending"
        receiver.set_mode("down", "ok")
        server.start()
        until(lambda: receiver.seqs("down") == sent, 15)
        until(lambda: sorted(set(receiver.seqs("busy"))) == sent, 15)
        busy = receiver.seqs("busy")
        repeated = len(busy) - len(set(busy))
        assert repeated <= 1, "only the request in flight when it died may come twice"
        assert busy == sorted(busy) or repeated == 1
    finally:
        staff.client.close()
        server.stop()


def test_disabled_after_failing_too_long_then_replay_enables_and_resends(
    tmp_path: Any, receiver: WebhookReceiver
) -> None:
    two_seconds = str(2 / 86_400)
    server = start(tmp_path, receiver, SUNBID_WEBHOOK_DISABLE_AFTER_DAYS=two_seconds)
    staff = Staff(server, server.token("admin"))
    supervisor = server.token("watcher", "supervisor")
    try:
        staff.project("D-1")
        hook = register(staff, receiver, "gone", ["project:D-1"])
        receiver.set_mode("gone", "fail")
        sent = [staff.publish("D-1", "clarification")["seq"] for _ in range(3)]

        async def live_warning() -> dict[str, Any]:
            async with websockets.connect(server.ws_url) as ws:
                await ws.send(json.dumps({"op": "auth", "token": supervisor}))
                assert json.loads(await ws.recv())["op"] == "authed"
                await ws.send(json.dumps({"op": "subscribe", "topics": ["supervision"]}))
                assert json.loads(await ws.recv())["op"] == "subscribed"
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if frame.get("op") == "warning":
                        return dict(frame["warning"])

        warning = asyncio.run(live_warning())
        assert warning["rule"] == "webhook_disabled" and warning["webhook"]["id"] == hook
        assert warning["advisory"] is True and warning["resolved_at"] is None
        assert webhook(staff, hook)["state"] == "disabled"
        listed = httpx.get(
            server.url + "/api/supervision/warnings", headers=bearer(supervisor)
        ).json()["items"]
        assert [w["id"] for w in listed if w["rule"] == "webhook_disabled"] == [warning["id"]]
        attempts = receiver.hits["gone"]
        time.sleep(0.5)
        assert receiver.hits["gone"] == attempts, "a disabled webhook is not tried"

        receiver.set_mode("gone", "ok")
        replay = staff.client.post(f"/api/webhooks/{hook}/replay", json={"since": sent[1]})
        assert replay.status_code == 200, replay.text
        assert replay.json()["state"] == "active" and replay.json()["cursor"] == sent[1]
        until(lambda: receiver.seqs("gone") == [sent[2]])
        # From an earlier seq: sent again, in order, under the same ids (the
        # project's registration, just before the first, included).
        staff.client.post(f"/api/webhooks/{hook}/replay", json={"since": 0})
        until(lambda: receiver.seqs("gone") == [sent[2], sent[0] - 1, *sent])
        ids = [r.msg_id for r in receiver.got("gone")]
        assert ids[0] == ids[-1] == f"msg_{hook}_{sent[2]}"
        resolved = httpx.get(
            server.url + "/api/supervision/warnings",
            headers=bearer(supervisor),
            params={"state": "resolved"},
        ).json()["items"]
        assert [w["id"] for w in resolved] == [warning["id"]]
        head = server.head()
        too_far = staff.client.post(f"/api/webhooks/{hook}/replay", json={"since": head + 1})
        assert too_far.status_code == 422
        for bad in ({"since": -1}, {"since": "3"}, {}, {"since": 1.5}):
            answer = staff.client.post(f"/api/webhooks/{hook}/replay", json=bad)
            assert answer.status_code == 422, bad
        missing = staff.client.post("/api/webhooks/wh_nothing/replay", json={"since": 0})
        assert missing.status_code == 404
    finally:
        staff.client.close()
        server.stop()


def test_only_allowed_public_urls_redirects_never_followed_admins_only(
    tmp_path: Any, receiver: WebhookReceiver
) -> None:
    server = start(tmp_path, receiver)
    staff = Staff(server, server.token("admin"))
    publisher = server.token("pub", "publisher", "YW-GGZY")
    try:
        staff.project("X-1")
        other_port = free_port()
        for url in (
            f"http://127.0.0.1:{other_port}/hook",  # not the allowed origin
            "https://10.0.0.1/hook",  # a private address
            "https://169.254.169.254/latest/meta-data",  # the metadata service
            "https://localhost/hook",
            "https://example.org:8443/hook",
            "ftp://example.org/hook",
            "https://user:pw@example.org/hook",
            "not a url",
            12,
        ):
            answer = staff.client.post("/api/webhooks", json={"url": url, "topics": ["all"]})
            assert answer.status_code == 422, (url, answer.text)
            assert answer.json()["error"]["details"]["field"] == "url"
        for topics in (["supervision"], [], ["nothing:x"], "all"):
            answer = staff.client.post(
                "/api/webhooks", json={"url": receiver.url("x"), "topics": topics}
            )
            assert answer.status_code == 422, topics
        body = {"url": receiver.url("x"), "topics": ["all"]}
        anyone = httpx.post(server.url + "/api/webhooks", json=body)
        assert anyone.status_code == 401 and anyone.headers["cache-control"] == "no-store"
        assert httpx.get(server.url + "/api/webhooks").status_code == 401
        assert (
            httpx.post(
                server.url + "/api/webhooks", json=body, headers=bearer(publisher)
            ).status_code
            == 403
        )
        assert (
            httpx.get(
                server.url + "/api/webhooks/wh_x/deliveries", headers=bearer(publisher)
            ).status_code
            == 403
        )

        moved = register(staff, receiver, "moved", ["project:X-1"])
        receiver.set_mode("moved", "redirect")
        staff.publish("X-1", "clarification")
        until(lambda: any(r["error"] == "redirect" for r in deliveries(staff, moved)))
        assert receiver.hits.get("", 0) == 0, "the redirect's target was never requested"
        assert deliveries(staff, moved)[0]["status"] == 302
        assert staff.client.get("/api/webhooks/wh_x/deliveries").status_code == 404
        assert staff.client.get(f"/api/webhooks/{moved}/deliveries?limit=0").status_code == 422
    finally:
        staff.client.close()
        server.stop()
