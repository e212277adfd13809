"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

A secret is `whsec_` + base64 of 24 random bytes. Each request carries
`webhook-id` (the same on every attempt of one message), `webhook-timestamp`
(seconds, of this attempt) and `webhook-signature: v1,<base64 of
HMAC-SHA256(secret bytes, "id.timestamp.body")>`: what the reference
`standardwebhooks` libraries verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_…` secret stands for."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def message_id(webhook_id: str, seq: int) -> str:
    """One message per (webhook, event): retries and replays carry the same id,
    so a receiver that remembers ids handles each event once."""
    return f"msg_{webhook_id}_{seq}"


def signed_headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    signed = b"%s.%d.%s" % (msg_id.encode("ascii"), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode("ascii"),
        "content-type": "application/json",
    }


def event_body(event_json: bytes) -> bytes:
    """`{"type":"event","event":{…}}` around the event's stored bytes (never re-serialized)."""
    return b'{"type":"event","event":' + event_json + b"}"
