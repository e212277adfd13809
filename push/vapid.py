"""VAPID (RFC 8292): the server's P-256 key, its subject, and signed headers.

Push services bind each subscription to the key the browser subscribed with,
so a new key silently orphans every subscription: the key is created once and
a missing or broken key file is a start-up error whenever subscriptions exist.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

KEY_FILE = "vapid_private.pem"
TOKEN_LIFETIME = 12 * 3600  # RFC 8292 caps exp at 24 h (Apple enforces it); room for clock skew
RESIGN_BEFORE = 3600  # a cached token is replaced once less than this is left
MAX_AUDIENCES = 4096  # one per push-service host; bounds memory if hosts churn

log = logging.getLogger(__name__)

_JWT_HEADER = base64.urlsafe_b64encode(b'{"typ":"JWT","alg":"ES256"}').rstrip(b"=")
_SIGNATURE = ec.ECDSA(hashes.SHA256())
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_PLACEHOLDER_DOMAINS = ("example.com", "example.net", "example.org")
_PLACEHOLDER_SUFFIXES = (
    ".invalid",
    ".test",
    ".example",
    ".example.com",
    ".example.net",
    ".example.org",
)


class VapidKeyError(RuntimeError):
    """The key file cannot be used; the message says which file and what to do."""


class VapidSubjectError(ValueError):
    """SUNBID_VAPID_SUBJECT is not something a push service will accept."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class VapidKey:
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    path: Path

    @property
    def public_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    @property
    def application_server_key(self) -> str:
        """What browsers pass to `pushManager.subscribe()` and VAPID's `k=`."""
        return b64url(self.public_bytes)


def load_or_create_key(data_dir: Path, *, subscriptions_exist: bool) -> VapidKey:
    path = data_dir / KEY_FILE
    try:
        path.lstat()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise VapidKeyError(
            f"cannot check VAPID key file {path}: {exc.strerror}. Make the data directory "
            "readable by the server's user; the key is never replaced automatically."
        ) from exc
    else:
        return VapidKey(_read_key(path), path)
    if subscriptions_exist:
        raise VapidKeyError(
            f"VAPID key file {path} is missing, but push subscriptions exist. They were "
            "made with that key, and push services refuse messages signed with any other, "
            "so a new key would silently stop every notification. Restore the file from a "
            "backup (or point SUNBID_DATA_DIR at the right directory). Only if the key is "
            "lost for good: delete all push subscriptions, start the server to create a "
            "new key, and let the app's users subscribe again."
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if create_exclusive(path, pem):
        log.info("created VAPID key %s", path)
        return VapidKey(key, path)
    # Another process created the key first: use theirs, never overwrite it.
    return VapidKey(_read_key(path), path)


def create_exclusive(path: Path, pem: bytes) -> bool:
    """Write `pem` to `path` with mode 0600 unless `path` exists; True if written
    (the VAPID key, and the key that encrypts channel addresses).

    The key is complete and synced in a temporary file before it gets its name,
    and `link` (unlike `rename`) refuses to replace a file that appeared meanwhile.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        _sync_directory(path.parent)
        return True
    finally:
        temporary.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be synced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_key(path: Path) -> ec.EllipticCurvePrivateKey:
    advice = (
        "It holds the server's VAPID private key, which every push subscription depends "
        "on, so it is never replaced automatically. Restore it from a backup, or fix it. "
        f"Only if it is lost for good: delete {path} and all push subscriptions, and let "
        "the app's users subscribe again."
    )
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise VapidKeyError(f"cannot read VAPID key file {path}: {exc.strerror}. {advice}") from exc
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise VapidKeyError(
            f"VAPID key file {path} is not an unencrypted PEM private key ({exc}). {advice}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise VapidKeyError(
            f"VAPID key file {path} does not hold a P-256 (prime256v1) key. {advice}"
        )
    _tighten_mode(path)
    return key


def _tighten_mode(path: Path) -> None:
    """A key readable by others is a leak, but refusing to start would not undo it."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("VAPID key file %s had mode %o; restricting it to 0600", path, mode)
        try:
            path.chmod(0o600)
        except OSError as exc:
            log.warning("could not restrict %s: %s", path, exc.strerror)


# --- the subject --------------------------------------------------------------------------


def validate_subject(subject: str) -> str:
    """A `mailto:` address or `https:` URL a push service accepts as contact.

    Apple answers 403 BadJwtToken to a `localhost` subject, so any address that
    only makes sense on this machine is refused here, at start-up.
    """
    value = subject.strip()
    where = f"SUNBID_VAPID_SUBJECT {subject!r}"
    if value[:7].lower() == "mailto:":
        address = value[7:]
        if not _EMAIL.fullmatch(address):
            raise VapidSubjectError(f"{where}: expected mailto:someone@your-domain")
        host = address.rpartition("@")[2]
        value = "mailto:" + address  # push services compare the scheme case-sensitively
    elif value[:8].lower() == "https://":
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            raise VapidSubjectError(f"{where}: the URL must not contain a user or password")
        host = parts.hostname or ""
        value = "https://" + value[8:]
    else:
        raise VapidSubjectError(
            f"{where}: push services require a mailto: address or an https:// URL where "
            "they can reach the operator, e.g. mailto:push-admin@your-domain"
        )
    reason = _local_host(host)
    if reason:
        raise VapidSubjectError(
            f"{where}: {reason}; push services (Apple in particular) reject such a "
            "subject. Use an address or site the push service can actually reach you at."
        )
    return value


def is_placeholder_subject(subject: str) -> bool:
    """True for reserved example domains: accepted, but worth a start-up warning."""
    host = subject.rpartition("@")[2] if "@" in subject else urlsplit(subject).hostname or ""
    host = host.lower().rstrip(".")
    return host in _PLACEHOLDER_DOMAINS or host.endswith(_PLACEHOLDER_SUFFIXES)


def _local_host(host: str) -> str:
    host = host.lower().rstrip(".")
    if "." not in host and ":" not in host:
        return f"{host or 'an empty host'} is not a public domain name"
    if host in _LOOPBACK_NAMES or host.endswith((".localhost", ".local", ".localdomain")):
        return f"{host} is a local name"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return ""
    if not address.is_global:
        return f"{host} is a loopback, private or otherwise non-public address"
    return ""


# --- signing ------------------------------------------------------------------------------


def audience(endpoint_url: str) -> str:
    """The endpoint's origin, RFC 6454 style: scheme://host[:port], default port omitted."""
    parts = urlsplit(endpoint_url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("https", "http") or not host:
        raise ValueError("a push endpoint must be an absolute http(s) URL")
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == {"https": 443, "http": 80}[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class VapidSigner:
    """`Authorization` headers, one signed token per audience, reused until near expiry.

    A fan-out to 10,000 subscribers of one push service signs once. Tokens are
    built from fresh claims each time; nothing mutable is shared between
    audiences. Safe to call from several threads: at worst a token is signed twice.
    """

    def __init__(self, key: VapidKey, subject: str, clock: Callable[[], float] = time.time) -> None:
        self._key = key.private_key
        self._subject = validate_subject(subject)
        self._k = key.application_server_key
        self._clock = clock
        self._cache: dict[str, tuple[str, int]] = {}

    def headers_for(self, endpoint_url: str) -> dict[str, str]:
        aud = audience(endpoint_url)
        now = self._clock()
        cached = self._cache.get(aud)
        if cached is None or cached[1] - now < RESIGN_BEFORE:
            cached = self._sign(aud, int(now) + TOKEN_LIFETIME)
            if len(self._cache) >= MAX_AUDIENCES:
                self._cache.clear()
            self._cache[aud] = cached
        # A fresh dict each time: callers may add their own headers to it.
        return {"Authorization": cached[0]}

    def _sign(self, aud: str, exp: int) -> tuple[str, int]:
        claims = orjson.dumps({"aud": aud, "exp": exp, "sub": self._subject})
        signing_input = _JWT_HEADER + b"." + base64.urlsafe_b64encode(claims).rstrip(b"=")
        r, s = decode_dss_signature(self._key.sign(signing_input, _SIGNATURE))
        # JWS wants the raw 64-byte r || s, not the DER that OpenSSL produces.
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        token = signing_input.decode("ascii") + "." + b64url(signature)
        return f"vapid t={token}, k={self._k}", exp
