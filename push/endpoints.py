"""Which push endpoints the server will ever send to, and subscription keys.

An endpoint is a URL chosen by whoever calls the API, and the server later
POSTs to it: unchecked, that is a request forgery tool aimed at the cloud
metadata service or the private network. So an endpoint is parsed (never
matched as a string), must be `https` on port 443 on a host the allow-list
names, and must resolve only to public addresses. Explicit `scheme://host:port`
entries exist for tests and local development and admit exactly that origin,
wherever it points.

The check at subscription time cannot stop a host that later re-points its
DNS at a private address; `GuardedResolver` repeats the address check on every
connection the sender makes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from cryptography.hazmat.primitives.asymmetric import ec

DEFAULT_ALLOWED_HOSTS = (
    "fcm.googleapis.com,updates.push.services.mozilla.com,*.push.apple.com,*.notify.windows.com"
)
MAX_ENDPOINT = 2048
RESOLVE_TIMEOUT = 5.0
DEFAULT_PORTS = {"https": 443, "http": 80}

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
_SAFE_PATH = re.compile(r"[!-~]*")  # printable ASCII, no spaces
_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CURVE = ec.SECP256R1()


class EndpointRejected(ValueError):
    """The endpoint may not be used; `reason` is fit for a 422 message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EndpointUnresolvable(EndpointRejected):
    """DNS gave no answer: possibly temporary, so a 503 may suit better than a 422."""


class AllowListError(ValueError):
    """SUNBID_PUSH_ALLOWED_HOSTS has an entry that cannot be used."""


class KeysRejected(ValueError):
    """The subscription's `p256dh` or `auth` is not usable."""


@dataclass(frozen=True)
class AllowList:
    hosts: frozenset[str]  # exact host names
    suffixes: tuple[str, ...]  # ".push.apple.com" for "*.push.apple.com": subdomains only
    origins: frozenset[tuple[str, str, int]]  # explicit (scheme, host, port)

    @classmethod
    def parse(cls, setting: str) -> AllowList:
        return cls.from_entries(setting.split(","))

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> AllowList:
        hosts: set[str] = set()
        suffixes: list[str] = []
        origins: set[tuple[str, str, int]] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if "://" in entry:
                origins.add(_origin_entry(entry))
            elif entry.startswith("*."):
                domain = _entry_host(entry[2:], entry)
                if domain.count(".") < 1:
                    raise AllowListError(
                        f"{entry!r}: a pattern must name a domain like *.push.apple.com"
                    )
                suffixes.append("." + domain)
            else:
                hosts.add(_entry_host(entry, entry))
        return cls(frozenset(hosts), tuple(suffixes), frozenset(origins))

    def allows_host(self, host: str) -> bool:
        return host in self.hosts or host.endswith(self.suffixes)

    def names_origin(self, scheme: str, host: str, port: int) -> bool:
        return (scheme, host, port) in self.origins


def _origin_entry(entry: str) -> tuple[str, str, int]:
    try:
        parts = urlsplit(entry)
        port = parts.port
    except ValueError:
        raise AllowListError(f"{entry!r}: not a valid scheme://host:port") from None
    if (
        parts.scheme not in DEFAULT_PORTS
        or not parts.hostname
        or port is None
        or "@" in parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise AllowListError(
            f"{entry!r}: an explicit entry is exactly http(s)://host:port, e.g. "
            "http://127.0.0.1:9999"
        )
    host = parts.hostname
    if _ip_literal(host) is None:
        host = _entry_host(host, entry)
    return parts.scheme, host, port


def _entry_host(host: str, entry: str) -> str:
    if _ip_literal(host) is not None or _looks_numeric(host):
        raise AllowListError(
            f"{entry!r}: IP addresses are admitted only as explicit entries such as "
            "https://192.0.2.1:443"
        )
    try:
        return _normalize_host(host)
    except EndpointRejected as exc:
        raise AllowListError(f"{entry!r}: {exc.reason}") from None


# --- endpoints ----------------------------------------------------------------------------


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def validate_endpoint(
    url: object,
    allow: AllowList,
    resolver: Resolver = system_resolver,
    *,
    service: str = "push service",
) -> str:
    """The endpoint, normalised (lower-case ASCII host, no default port), or
    EndpointRejected. `service` names what the URL must lead to, in messages
    (webhooks pass theirs: the same rules hold for them)."""
    if not isinstance(url, str) or not url or len(url) > MAX_ENDPOINT:
        raise EndpointRejected(f"endpoint must be a URL of at most {MAX_ENDPOINT} characters")
    if any(char <= " " or char == "\x7f" for char in url):
        raise EndpointRejected("endpoint must not contain spaces or control characters")
    if "#" in url:
        raise EndpointRejected("endpoint must not have a fragment")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EndpointRejected("endpoint is not a valid URL") from None
    scheme = parts.scheme
    if "@" in parts.netloc:
        raise EndpointRejected("endpoint must not contain a user name or password")
    if not _SAFE_PATH.fullmatch(parts.path + parts.query) or "\\" in url:
        raise EndpointRejected("endpoint path must be printable ASCII")
    if not parts.hostname or scheme not in DEFAULT_PORTS:
        raise EndpointRejected("endpoint must be an https:// URL")
    port = DEFAULT_PORTS[scheme] if port is None else port
    literal = _ip_literal(parts.hostname)
    host = str(literal) if literal is not None else _normalize_host(parts.hostname)
    if allow.names_origin(scheme, host, port):
        # Named by the operator for tests or local development: admitted as is.
        return _rebuild(scheme, host, port, parts.path, parts.query)
    if literal is not None or _looks_numeric(host):
        raise EndpointRejected(f"endpoint host must be a {service}'s name, not an IP address")
    if scheme != "https":
        raise EndpointRejected("endpoint must use https")
    if port != 443:
        raise EndpointRejected("endpoint must use the standard https port 443")
    if not allow.allows_host(host):
        raise EndpointRejected(f"{host} is not an accepted {service}")
    try:
        addresses = await asyncio.wait_for(resolver(host, port), RESOLVE_TIMEOUT)
    except (OSError, TimeoutError):
        raise EndpointUnresolvable(f"{host} cannot be resolved right now") from None
    if not addresses:
        raise EndpointUnresolvable(f"{host} has no addresses")
    for address in addresses:
        if not is_public(_parse_address(address)):
            raise EndpointRejected(f"{host} resolves to a non-public address")
    return _rebuild(scheme, host, port, parts.path, parts.query)


def is_public(ip: IPAddress | None) -> bool:
    """Reachable on the public Internet, looking through IPv6 forms that embed IPv4."""
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
        if ip.is_site_local or ip.teredo is not None:
            return False
    # is_global alone lets multicast and some reserved ranges through.
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_reserved
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_unspecified
    )


def _parse_address(address: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _looks_numeric(host: str) -> bool:
    """Browsers and getaddrinfo read `0x7f.1` or `2130706433` as IPv4 addresses."""
    return bool(_NUMERIC_LABEL.fullmatch(host.rstrip(".").rpartition(".")[2]))


def _normalize_host(host: str) -> str:
    host = host.lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise EndpointRejected("endpoint host is not a valid domain name") from None
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise EndpointRejected("endpoint host is not a valid domain name")
    return host


def _rebuild(scheme: str, host: str, port: int, path: str, query: str) -> str:
    netloc = f"[{host}]" if ":" in host else host
    if port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{path or '/'}" + (f"?{query}" if query else "")


# --- keys ---------------------------------------------------------------------------------


def validate_keys(p256dh_b64: object, auth_b64: object) -> tuple[bytes, bytes]:
    """`keys.p256dh` (a point on P-256) and `keys.auth` (16 bytes), decoded."""
    p256dh = _b64url(p256dh_b64, "p256dh")
    auth = _b64url(auth_b64, "auth")
    if len(p256dh) != 65 or p256dh[0] != 4:
        raise KeysRejected("keys.p256dh must be a 65-byte uncompressed P-256 public key")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, p256dh)
    except ValueError:
        raise KeysRejected("keys.p256dh is not a point on the P-256 curve") from None
    if len(auth) != 16:
        raise KeysRejected("keys.auth must be 16 bytes")
    return p256dh, auth


def _b64url(value: object, name: str) -> bytes:
    if not isinstance(value, str) or len(value) > 200 or not _B64URL.fullmatch(value):
        raise KeysRejected(f"keys.{name} must be base64url text")
    try:
        return base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise KeysRejected(f"keys.{name} must be base64url text") from None


# --- at send time -------------------------------------------------------------------------


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses non-public addresses, so a push-service name
    re-pointed at the private network after validation is never connected to.

    Hosts of explicit allow-list entries resolve unchecked, as at validation.
    """

    def __init__(self, allow: AllowList, inner: AbstractResolver | None = None) -> None:
        self._explicit = {(host, port) for _, host, port in allow.origins}
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if (host.lower(), port) in self._explicit:
            return results
        for result in results:
            if not is_public(_parse_address(result["host"])):
                raise OSError(f"{host} resolves to a non-public address; not connecting")
        return results

    async def close(self) -> None:
        await self._inner.close()
