"""The VAPID key file, the subject check, and signed headers cached per audience."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from push.vapid import (
    KEY_FILE,
    VapidKeyError,
    VapidSigner,
    VapidSubjectError,
    audience,
    is_placeholder_subject,
    load_or_create_key,
    validate_subject,
)

SUBJECT = "mailto:push-admin@sunbid.org"


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_of(headers: dict[str, str]) -> tuple[str, str]:
    scheme, _, params = headers["Authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    return fields["t"], fields["k"]


def claims_of(token: str) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(unb64(token.split(".")[1]))
    return result


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the key file -------------------------------------------------------------------------


def test_key_is_created_once_with_owner_only_mode_and_then_reused(tmp_path: Path) -> None:
    first = load_or_create_key(tmp_path / "data", subscriptions_exist=False)
    path = tmp_path / "data" / KEY_FILE
    assert first.path == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]  # no temporary file left
    again = load_or_create_key(tmp_path / "data", subscriptions_exist=True)
    assert again.application_server_key == first.application_server_key


def test_application_server_key_is_the_uncompressed_point_in_base64url(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path, subscriptions_exist=False)
    raw = unb64(key.application_server_key)
    assert len(raw) == 65 and raw[0] == 4
    assert "=" not in key.application_server_key
    loaded = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    assert loaded.public_numbers() == key.private_key.public_key().public_numbers()


def test_created_key_is_owner_only_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_key(tmp_path, subscriptions_exist=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600


def test_missing_key_with_subscriptions_is_a_loud_error_not_a_new_key(tmp_path: Path) -> None:
    with pytest.raises(VapidKeyError) as error:
        load_or_create_key(tmp_path, subscriptions_exist=True)
    message = str(error.value)
    assert str(tmp_path / KEY_FILE) in message
    assert "missing" in message and "backup" in message
    assert not (tmp_path / KEY_FILE).exists()


def test_a_damaged_key_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    for subscriptions_exist in (True, False):
        with pytest.raises(VapidKeyError, match=str(path)):
            load_or_create_key(tmp_path, subscriptions_exist=subscriptions_exist)
    assert b"garbage" in path.read_bytes()


def test_a_key_on_another_curve_is_refused(tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP384R1())
    (tmp_path / KEY_FILE).write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(VapidKeyError, match="P-256"):
        load_or_create_key(tmp_path, subscriptions_exist=True)


def test_an_unreadable_key_path_is_an_error(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).mkdir()  # a directory where the key should be
    with pytest.raises(VapidKeyError, match="cannot read"):
        load_or_create_key(tmp_path, subscriptions_exist=True)


def test_a_key_readable_by_others_is_restricted(tmp_path: Path) -> None:
    load_or_create_key(tmp_path, subscriptions_exist=False)
    (tmp_path / KEY_FILE).chmod(0o644)
    load_or_create_key(tmp_path, subscriptions_exist=True)
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600


# --- the subject --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "normal"),
    [
        ("mailto:push-admin@sunbid.org", "mailto:push-admin@sunbid.org"),
        ("https://sunbid.org/contact", "https://sunbid.org/contact"),
        ("MAILTO:ops@ywggzy.gov.cn", "mailto:ops@ywggzy.gov.cn"),
        ("HTTPS://sunbid.org", "https://sunbid.org"),
    ],
)
def test_real_subjects_are_accepted(subject: str, normal: str) -> None:
    assert validate_subject(f"  {subject} ") == normal


@pytest.mark.parametrize(
    "subject",
    [
        "mailto:admin@localhost",
        "mailto:admin@box.local",
        "mailto:admin@app.localhost",
        "mailto:admin@server",
        "https://localhost/",
        "https://localhost:8000/contact",
        "https://127.0.0.1/",
        "https://10.1.2.3/",
        "https://[::1]/",
        "mailto:not-an-address",
        "mailto:",
        "http://sunbid.org/",
        "admin@sunbid.org",
        "",
        "https://user:pw@sunbid.org/",
    ],
)
def test_local_or_malformed_subjects_are_refused_clearly(subject: str) -> None:
    with pytest.raises(VapidSubjectError, match="SUNBID_VAPID_SUBJECT"):
        validate_subject(subject)


def test_placeholder_subjects_are_recognised() -> None:
    assert is_placeholder_subject("mailto:admin@sunbid.invalid")
    assert is_placeholder_subject("https://example.com/")
    assert not is_placeholder_subject("mailto:push-admin@sunbid.org")


# --- signing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "aud"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc", "https://fcm.googleapis.com"),
        ("https://FCM.googleapis.com:443/fcm/send/abc?x=1", "https://fcm.googleapis.com"),
        ("https://web.push.apple.com:8443/QGZ", "https://web.push.apple.com:8443"),
        ("http://127.0.0.1:9999/push/1", "http://127.0.0.1:9999"),
        ("http://127.0.0.1:80/push/1", "http://127.0.0.1"),
        ("https://[2001:db8::1]/x", "https://[2001:db8::1]"),
    ],
)
def test_audience_is_the_endpoint_origin(endpoint: str, aud: str) -> None:
    assert audience(endpoint) == aud


def test_header_is_a_valid_es256_jwt_for_the_origin(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path, subscriptions_exist=False)
    clock = Clock()
    signer = VapidSigner(key, SUBJECT, clock=clock)
    token, k = token_of(signer.headers_for("https://fcm.googleapis.com/fcm/send/abc"))
    assert k == key.application_server_key
    header_b64, claims_b64, signature_b64 = token.split(".")
    assert orjson.loads(unb64(header_b64)) == {"typ": "JWT", "alg": "ES256"}
    assert claims_of(token) == {
        "aud": "https://fcm.googleapis.com",
        "exp": int(clock.now) + 12 * 3600,
        "sub": SUBJECT,
    }
    signature = unb64(signature_b64)
    assert len(signature) == 64
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(k))
    public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))


def test_one_signature_per_audience_reused_across_a_fan_out(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path, subscriptions_exist=False)
    signer = VapidSigner(key, SUBJECT, clock=Clock())
    signs = 0
    original = signer._sign

    def counting(aud: str, exp: int) -> tuple[str, int]:
        nonlocal signs
        signs += 1
        return original(aud, exp)

    signer._sign = counting  # type: ignore[method-assign]
    fcm = {
        signer.headers_for(f"https://fcm.googleapis.com/fcm/send/{i}")["Authorization"]
        for i in range(10_000)
    }
    apple = signer.headers_for("https://web.push.apple.com/QGZ")
    assert len(fcm) == 1
    assert signs == 2
    assert claims_of(token_of(apple)[0])["aud"] == "https://web.push.apple.com"
    assert claims_of(token_of({"Authorization": fcm.pop()})[0])["aud"] == (
        "https://fcm.googleapis.com"
    )


def test_a_token_is_re_signed_when_less_than_an_hour_is_left(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path, subscriptions_exist=False)
    clock = Clock()
    signer = VapidSigner(key, SUBJECT, clock=clock)
    endpoint = "https://fcm.googleapis.com/fcm/send/abc"
    first = signer.headers_for(endpoint)
    clock.now += 11 * 3600 - 1  # 1 h 1 s left
    assert signer.headers_for(endpoint) == first
    clock.now += 2
    renewed = signer.headers_for(endpoint)
    assert renewed != first
    assert claims_of(token_of(renewed)[0])["exp"] == int(clock.now) + 12 * 3600


def test_returned_headers_can_be_modified_without_affecting_the_cache(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path, subscriptions_exist=False)
    signer = VapidSigner(key, SUBJECT, clock=Clock())
    headers = signer.headers_for("https://fcm.googleapis.com/a")
    headers["Authorization"] = "broken"
    headers["TTL"] = "60"
    assert signer.headers_for("https://fcm.googleapis.com/b")["Authorization"].startswith("vapid ")
    assert "TTL" not in signer.headers_for("https://fcm.googleapis.com/c")


def test_signer_refuses_a_local_subject(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path, subscriptions_exist=False)
    with pytest.raises(VapidSubjectError):
        VapidSigner(key, "mailto:root@localhost")
