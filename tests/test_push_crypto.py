"""RFC 8291 encryption: the RFC's own test vector both ways, round trips, limits."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from push.crypto import (
    MAX_PLAINTEXT,
    DecryptError,
    PayloadTooLarge,
    decrypt,
    encrypt,
    load_public_key,
    public_bytes,
)


def b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def private(text: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(b64(text), "big"), ec.SECP256R1())


# RFC 8291 Appendix A.
PLAINTEXT = b"When I grow up, I want to be a watermelon"
AUTH = b64("BTBZMqHH6r4Tts7J_aSIgg")
RECEIVER_PRIVATE = private("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")
RECEIVER_PUBLIC = b64(
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
SENDER_PRIVATE = private("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")
SENDER_PUBLIC = b64(
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
)
SALT = b64("DGv6ra1nlYgDCS1FRnbzlw")
BODY = b64(
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAm"
    "S6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_"
    "Qulcy4a-fN"
)


def receiver() -> tuple[ec.EllipticCurvePrivateKey, bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, public_bytes(key.public_key()), os.urandom(16)


def test_vector_keys_are_consistent() -> None:
    assert public_bytes(RECEIVER_PRIVATE.public_key()) == RECEIVER_PUBLIC
    assert public_bytes(SENDER_PRIVATE.public_key()) == SENDER_PUBLIC
    assert len(BODY) == 144


def test_encrypt_reproduces_the_rfc_8291_body_exactly() -> None:
    body = encrypt(PLAINTEXT, RECEIVER_PUBLIC, AUTH, salt=SALT, sender_private=SENDER_PRIVATE)
    assert body == BODY


def test_decrypt_recovers_the_rfc_8291_plaintext() -> None:
    assert decrypt(BODY, RECEIVER_PRIVATE, AUTH) == PLAINTEXT


def test_header_layout() -> None:
    _, p256dh, auth = receiver()
    body = encrypt(b"x" * 100, p256dh, auth)
    assert int.from_bytes(body[16:20], "big") == 4096
    assert body[20] == 65
    assert body[21] == 0x04  # the sender's uncompressed point follows
    assert len(body) == 86 + 100 + 1 + 16  # header, text, delimiter, tag: one record


@pytest.mark.parametrize("size", [0, 1, 1000, MAX_PLAINTEXT])
def test_round_trip_with_random_keys(size: int) -> None:
    key, p256dh, auth = receiver()
    plaintext = os.urandom(size)
    body = encrypt(plaintext, p256dh, auth)
    assert len(body) <= 4096
    assert decrypt(body, key, auth) == plaintext


def test_every_message_gets_its_own_salt_and_sender_key() -> None:
    _, p256dh, auth = receiver()
    first, second = encrypt(b"same", p256dh, auth), encrypt(b"same", p256dh, auth)
    assert first[:16] != second[:16]
    assert first[21:86] != second[21:86]


def test_a_preloaded_public_key_gives_the_same_result() -> None:
    body = encrypt(
        PLAINTEXT,
        load_public_key(RECEIVER_PUBLIC),
        AUTH,
        salt=SALT,
        sender_private=SENDER_PRIVATE,
    )
    assert body == BODY


def test_the_largest_plaintext_fits_one_4096_byte_body_and_one_more_byte_is_refused() -> None:
    _, p256dh, auth = receiver()
    assert len(encrypt(b"a" * 3993, p256dh, auth)) == 4096
    with pytest.raises(PayloadTooLarge, match="3994 bytes"):
        encrypt(b"a" * 3994, p256dh, auth)


def test_decrypt_refuses_the_wrong_auth_secret_or_key() -> None:
    with pytest.raises(DecryptError):
        decrypt(BODY, RECEIVER_PRIVATE, os.urandom(16))
    with pytest.raises(DecryptError):
        decrypt(BODY, ec.generate_private_key(ec.SECP256R1()), AUTH)


def test_decrypt_refuses_tampering_and_truncation() -> None:
    tampered = bytearray(BODY)
    tampered[-1] ^= 1
    with pytest.raises(DecryptError):
        decrypt(bytes(tampered), RECEIVER_PRIVATE, AUTH)
    with pytest.raises(DecryptError):
        decrypt(BODY[:90], RECEIVER_PRIVATE, AUTH)


def test_decrypt_refuses_a_body_longer_than_its_record_size() -> None:
    key, p256dh, auth = receiver()
    body = bytearray(encrypt(b"x" * 200, p256dh, auth))
    body[16:20] = (100).to_bytes(4, "big")  # claims 100-byte records: this is several
    with pytest.raises(DecryptError, match="more than one record"):
        decrypt(bytes(body), key, auth)


def test_a_subscriber_key_off_the_curve_is_refused() -> None:
    off_curve = b"\x04" + b"\x01" * 64
    with pytest.raises(ValueError):
        encrypt(b"x", off_curve, os.urandom(16))
