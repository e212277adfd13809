"""The webhook parts that need no server: signatures (held to the reference
`standardwebhooks` verifier), the retry schedule, and the store's rule that
a replay made while an attempt was in flight wins over that attempt."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from push.webhooks.schedule import RetrySchedule
from push.webhooks.signing import event_body, new_secret, secret_key, signed_headers
from push.webhooks.store import Attempt, WebhookStore


def test_a_signature_is_what_the_reference_verifier_accepts() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret_key(secret)) == 24
    body = event_body(b'{"seq":7,"title":"\xe6\x8b\x9b\xe6\xa0\x87"}')
    headers = signed_headers(secret_key(secret), "msg_wh_1_7", int(time.time()), body)
    payload = Webhook(secret).verify(body, headers)
    assert payload == {"type": "event", "event": {"seq": 7, "title": "招标"}}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"7", b"8"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    stale = signed_headers(secret_key(secret), "msg_wh_1_7", int(time.time()) - 3600, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, stale)


def test_retries_back_off_with_jitter_up_to_a_cap_and_honour_retry_after() -> None:
    schedule = RetrySchedule(base=5.0, disable_after=100.0)
    for failures in range(1, 20):
        expected = min(5.0 * 2 ** (failures - 1), schedule.cap)
        delays = [schedule.delay(failures) for _ in range(50)]
        assert all(0.75 * expected <= d <= 1.25 * expected for d in delays)
        assert len(set(delays)) > 1, "jittered"
    assert schedule.cap == 3600.0
    assert schedule.delay(1, retry_after=120.0) >= 120.0
    assert schedule.delay(1, retry_after=10**9) <= schedule.cap
    assert not schedule.gives_up(failing_since=1000.0, now=1099.0)
    assert schedule.gives_up(failing_since=1000.0, now=1100.0)


def test_a_replay_during_an_attempt_wins_and_disabling_warns_until_replayed(
    tmp_path: Path,
) -> None:
    async def run() -> None:
        store = WebhookStore(tmp_path / "webhooks.db")
        await store.open()
        try:
            hook_id = await store.create(
                "https://example.org/h", ["all"], None, "", b"sealed", "2026-01-01T00:00:00Z", 10
            )
            hook = await store.get(hook_id)
            assert hook is not None and hook.cursor == 10
            ok = Attempt(11, 200, None, 1.0, "2026-01-01T00:00:01Z")
            moved = await store.record(hook, ok, next_attempt_at=0, disable=False, now=1.0)
            assert moved is not None and moved.cursor == 11
            # Replayed from 3 while the attempt at 12 was in flight: the attempt is
            # recorded, the place stays the replay's.
            await store.replay(hook_id, 3, "2026-01-01T00:00:02Z")
            late = Attempt(12, 200, None, 1.0, "2026-01-01T00:00:03Z")
            assert await store.record(moved, late, next_attempt_at=0, disable=False, now=2) is None
            now_hook = await store.get(hook_id)
            assert now_hook is not None and now_hook.cursor == 3
            assert [d["seq"] for d in await store.deliveries(hook_id, 10)] == [12, 11]
            # Failing too long: disabled, with one open warning, resolved by a replay.
            failed = Attempt(4, 500, "status", 1.0, "2026-01-01T00:00:04Z")
            off = await store.record(now_hook, failed, next_attempt_at=9, disable=True, now=3)
            assert off is not None and off.disabled_at == failed.at
            assert [w[1] for w in await store.list_warnings("open", None, 10)] == [
                f"webhook-{hook_id}-{failed.at}"
            ]
            assert await store.ready(now=100.0) == []
            await store.replay(hook_id, 3, "2026-01-01T00:00:05Z")
            assert await store.list_warnings("open", None, 10) == []
            assert len(await store.warnings_changed_after(0)) == 1
            assert await store.last_change() == 2  # made, then resolved
            for seq in range(4, 40):
                hook = await store.get(hook_id)
                assert hook is not None
                ok = Attempt(seq, 204, None, 1.0, "2026-01-01T00:01:00Z")
                await store.record(hook, ok, next_attempt_at=0, disable=False, now=4)
            await store.trim(hook_id, 10)
            kept = await store.deliveries(hook_id, 100)
            assert [d["seq"] for d in kept] == list(range(39, 29, -1))
        finally:
            await store.close()

    asyncio.run(run())
