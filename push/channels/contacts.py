"""Addresses of the channels beside Web Push, kept as the personal data they are.

A phone number, an e-mail address or a WeChat openid is personal information
(个人信息保护法): it is stored apart from the log (in the push tables, never in
an event, a payload or a log line), encrypted at rest with a key of its own
in the data directory (`contacts.key`, AES-256-GCM), and erased when its
channel is cancelled. What else is kept beside it says nothing by itself:

- a keyed digest of the address (HMAC-SHA256 with a key derived from the
  same file), to find the same address again (limits, a repeated request)
  without decrypting every row;
- a hint for the app to show ("138****5678");
- digests of the confirmation code and of the manage token, never the
  values: the code goes to the address, the token to the device.

A lost key file makes the stored addresses unreadable (the channels must be
added again); it is created once, like the VAPID key, and never replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from push.vapid import create_exclusive

KEY_FILE = "contacts.key"
CODE_DIGITS = 6
CODE_SECONDS = 600.0  # a confirmation code is good for ten minutes
CODE_TRIES = 5  # wrong codes before the channel must be asked for again
NONCE_BYTES = 12


class ContactKeyError(Exception):
    """The key file exists but cannot be used: never replaced automatically."""


@dataclass(frozen=True)
class ContactCipher:
    key: bytes  # 32 bytes: AES-256-GCM

    @classmethod
    def for_data_dir(cls, data_dir: Path, *, needed: bool) -> ContactCipher:
        """The data directory's key; where no channel is configured (`needed`
        false) and there is none, a key of the moment, written nowhere: the
        file is made only once there is an address to seal."""
        if needed or (data_dir / KEY_FILE).exists():
            return cls.load_or_create(data_dir)
        return cls(secrets.token_bytes(32))

    @classmethod
    def load_or_create(cls, data_dir: Path) -> ContactCipher:
        path = data_dir / KEY_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            create_exclusive(path, secrets.token_bytes(32))  # or another process's, below
        key = path.read_bytes()
        if len(key) != 32:
            raise ContactKeyError(
                f"{path} does not hold a 32-byte key: restore it from a backup. It encrypts"
                " the addresses of SMS, e-mail and WeChat channels; it is never replaced"
                " automatically, since a new key would make every stored address unreadable."
            )
        return cls(key)

    def seal(self, address: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + AESGCM(self.key).encrypt(nonce, address.encode(), b"sunbid-contact")

    def open(self, sealed: bytes) -> str:
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        return AESGCM(self.key).decrypt(nonce, body, b"sunbid-contact").decode()

    def unsubscribe_token(self, channel_id: str) -> str:
        """The token of a channel's one-step 退订 link: the worker puts it in
        each message without storing anything (the manage token is the device's)."""
        mac = hmac.new(self.key, f"unsubscribe:{channel_id}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def digest(self, kind: str, address: str) -> str:
        """The same (kind, address) always gives the same digest; nothing else does."""
        lookup_key = hashlib.sha256(b"sunbid-contact-digest" + self.key).digest()
        return hmac.new(lookup_key, f"{kind}:{address}".encode(), hashlib.sha256).hexdigest()


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def secret_digest(value: str) -> str:
    """Codes and manage tokens are kept as digests (compared in constant time)."""
    return hashlib.sha256(value.encode()).hexdigest()


def matches(value: str, digest: str | None) -> bool:
    return digest is not None and hmac.compare_digest(secret_digest(value), digest)


def hint(kind: str, address: str) -> str:
    """What the app shows of an address: enough to recognise it, not to use it."""
    if kind == "sms":
        digits = address.removeprefix("+86")
        return digits[:3] + "****" + digits[-4:]
    if kind == "email":
        local, _, domain = address.partition("@")
        return local[:1] + "***@" + domain
    return "微信"
