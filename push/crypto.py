"""RFC 8291 message encryption (`aes128gcm`, RFC 8188), one record per message.

Written on `cryptography` directly rather than through `http_ece`: the key
schedule is five HMAC-SHA256 calls, which `hmac.digest` does in C far faster
than building HKDF objects, and `http_ece` silently splits a long plaintext
into several records, which push services reject. Here a plaintext that does
not fit one 4,096-byte record is an error.

Each message gets a fresh sender key pair and salt, as RFC 8291 requires, so
nothing secret is shared between subscribers or messages.
"""

from __future__ import annotations

import hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

RECORD_SIZE = 4096
SALT_BYTES = 16
KEY_BYTES = 65  # an uncompressed P-256 point: 0x04 | x | y
TAG_BYTES = 16
HEADER_BYTES = SALT_BYTES + 4 + 1 + KEY_BYTES  # 86
# One record of 4,096 bytes holds the header, the tag and the 0x02 delimiter.
MAX_PLAINTEXT = RECORD_SIZE - HEADER_BYTES - TAG_BYTES - 1  # 3,993

_CURVE = ec.SECP256R1()
_ECDH = ec.ECDH()
_HEADER = struct.Struct("!16sIB65s")
_KEY_INFO = b"WebPush: info\x00"
_CEK_INFO = b"Content-Encoding: aes128gcm\x00\x01"
_NONCE_INFO = b"Content-Encoding: nonce\x00\x01"


class PayloadTooLarge(ValueError):
    """The plaintext does not fit in one record; trim it (see push.payload)."""


class DecryptError(ValueError):
    """The body is not a valid single-record aes128gcm message for this key."""


def load_public_key(p256dh: bytes) -> ec.EllipticCurvePublicKey:
    """A subscriber's `p256dh` as a key; raises ValueError if it is not on P-256."""
    return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, p256dh)


def public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def encrypt(
    plaintext: bytes,
    p256dh: bytes | ec.EllipticCurvePublicKey,
    auth: bytes,
    *,
    salt: bytes | None = None,
    sender_private: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """The whole request body: salt | rs | idlen | sender key | one record.

    `p256dh` may be passed already loaded (see `load_public_key`) by a caller
    that sends to the same subscriber often. `salt` and `sender_private` exist
    for the RFC's test vector; in use they must be left to this function.
    """
    if len(plaintext) > MAX_PLAINTEXT:
        raise PayloadTooLarge(
            f"push plaintext is {len(plaintext)} bytes; one record holds at most {MAX_PLAINTEXT}"
        )
    if isinstance(p256dh, bytes):
        receiver_bytes, receiver = p256dh, load_public_key(p256dh)
    else:
        receiver_bytes, receiver = public_bytes(p256dh), p256dh
    sender = ec.generate_private_key(_CURVE) if sender_private is None else sender_private
    sender_bytes = public_bytes(sender.public_key())
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    cek, nonce = _derive(sender.exchange(_ECDH, receiver), auth, salt, receiver_bytes, sender_bytes)
    # The 0x02 delimiter marks the last (here: only) record; no padding added.
    record = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    return _HEADER.pack(salt, RECORD_SIZE, KEY_BYTES, sender_bytes) + record


def decrypt(body: bytes, receiver_private: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """The plaintext of a single-record body, as a browser would recover it."""
    if len(body) < HEADER_BYTES + TAG_BYTES + 1:
        raise DecryptError("body shorter than an aes128gcm header and one record")
    salt, record_size, id_length, sender_bytes = _HEADER.unpack_from(body)
    if id_length != KEY_BYTES:
        raise DecryptError(f"key id is {id_length} bytes, expected a {KEY_BYTES}-byte P-256 key")
    record = body[HEADER_BYTES:]
    if record_size < TAG_BYTES + 2 or len(record) > record_size:
        raise DecryptError("body holds more than one record")
    try:
        sender = load_public_key(sender_bytes)
    except ValueError:
        raise DecryptError("sender key is not a point on P-256") from None
    receiver_bytes = public_bytes(receiver_private.public_key())
    cek, nonce = _derive(
        receiver_private.exchange(_ECDH, sender), auth, salt, receiver_bytes, sender_bytes
    )
    try:
        padded = AESGCM(cek).decrypt(nonce, record, None)
    except InvalidTag:
        raise DecryptError("authentication tag does not match (wrong key or auth secret)") from None
    text = padded.rstrip(b"\x00")
    if not text.endswith(b"\x02"):
        raise DecryptError("record lacks the last-record delimiter 0x02")
    return text[:-1]


def _derive(
    shared: bytes, auth: bytes, salt: bytes, receiver: bytes, sender: bytes
) -> tuple[bytes, bytes]:
    """RFC 8291 §3.3-3.4 and RFC 8188 §2.2: content key and nonce.

    Every HKDF-Expand here asks for at most one hash length, so each is a single
    HMAC over `info || 0x01`.
    """
    prk_key = hmac.digest(auth, shared, "sha256")
    ikm = hmac.digest(prk_key, _KEY_INFO + receiver + sender + b"\x01", "sha256")
    prk = hmac.digest(salt, ikm, "sha256")
    cek = hmac.digest(prk, _CEK_INFO, "sha256")[:16]
    nonce = hmac.digest(prk, _NONCE_INFO, "sha256")[:12]
    return cek, nonce
