"""Signing an Alibaba Cloud API request: signature method V3 (ACS3-HMAC-SHA256).

Alibaba Cloud's current request signature, replacing the discontinued V2
(HMAC-SHA1 over the query). The request is reduced to a canonical text

    METHOD \\n CanonicalURI \\n CanonicalQueryString \\n CanonicalHeaders \\n
    SignedHeaders \\n hex(sha256(body))

where the query is sorted by name and RFC 3986 percent-encoded (space as
%20, `*` as %2A, `~` left alone), and the headers signed are `host`,
`content-type` and every `x-acs-*` header, lower-cased, sorted, values
trimmed, one `name:value\\n` line each. The string to sign is
`ACS3-HMAC-SHA256\\n` + hex(sha256(canonical request)); the signature is
hex(HMAC-SHA256(AccessKey secret, string to sign)), sent as

    Authorization: ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<names>,Signature=<hex>

`x-acs-date` (UTC, to the second) must be within 15 minutes of the
provider's clock and `x-acs-signature-nonce` must never repeat, so both are
made afresh for every attempt, retries included.

Pure functions, no I/O: tests check them against the worked example of the
documentation, byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

ALGORITHM = "ACS3-HMAC-SHA256"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str = field(repr=False)  # never in a repr, hence never in a log


def percent_encode(text: str) -> str:
    """RFC 3986, as the signature wants it: only `A-Za-z0-9-_.~` stay as they are."""
    return quote(text, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    """Also the query string actually sent, so what is signed is what arrives."""
    return "&".join(
        f"{percent_encode(name)}={percent_encode(params[name])}" for name in sorted(params)
    )


def acs_date(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _signed(name: str) -> bool:
    return name in ("host", "content-type") or name.startswith("x-acs-")


def signed_headers(
    credentials: Credentials,
    *,
    method: str,
    host: str,
    action: str,
    version: str,
    date: str,
    nonce: str,
    query: Mapping[str, str],
    body: bytes = b"",
    path: str = "/",
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every header the request needs, `authorization` included (names in lower case).

    `path` is "/" for an RPC-style API such as SendSms; `headers` adds others
    (`content-type` for a body), which are signed when the method says so.
    """
    out = {name.lower(): value for name, value in (headers or {}).items()}
    out.update(
        {
            "host": host,
            "x-acs-action": action,
            "x-acs-version": version,
            "x-acs-date": date,
            "x-acs-signature-nonce": nonce,
            "x-acs-content-sha256": sha256_hex(body),
        }
    )
    names = sorted(name for name in out if _signed(name))
    canonical_headers = "".join(f"{name}:{out[name].strip()}\n" for name in names)
    signed_names = ";".join(names)
    canonical_request = "\n".join(
        (
            method.upper(),
            path,
            canonical_query(query),
            canonical_headers,
            signed_names,
            out["x-acs-content-sha256"],
        )
    )
    string_to_sign = f"{ALGORITHM}\n{sha256_hex(canonical_request.encode())}"
    signature = hmac.new(
        credentials.access_key_secret.encode(), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    out["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id},"
        f"SignedHeaders={signed_names},Signature={signature}"
    )
    return out
