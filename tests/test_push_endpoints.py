"""Subscription endpoints and keys: only real push services, never the private network."""

from __future__ import annotations

import base64
import socket
from collections.abc import Sequence

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography.hazmat.primitives.asymmetric import ec

from push.crypto import public_bytes
from push.endpoints import (
    DEFAULT_ALLOWED_HOSTS,
    AllowList,
    AllowListError,
    EndpointRejected,
    EndpointUnresolvable,
    GuardedResolver,
    KeysRejected,
    is_public,
    validate_endpoint,
    validate_keys,
)

DEFAULT = AllowList.parse(DEFAULT_ALLOWED_HOSTS)
WITH_LOCAL = AllowList.parse(DEFAULT_ALLOWED_HOSTS + ",http://127.0.0.1:9999,https://[::1]:8443")
PUBLIC = "142.250.72.42"


class FakeDNS:
    """Answers from a table, and remembers what was asked (nothing, for refused URLs)."""

    def __init__(self, table: dict[str, Sequence[str]] | None = None) -> None:
        self.table = table or {}
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


def public_dns() -> FakeDNS:
    return FakeDNS(
        {
            "fcm.googleapis.com": [PUBLIC, "2607:f8b0:4005:80c::200a"],
            "updates.push.services.mozilla.com": ["34.107.221.82"],
            "web.push.apple.com": ["17.188.182.10"],
            "api.push.apple.com": ["17.188.182.11"],
            "wns2-par02p.notify.windows.com": ["20.42.65.92"],
        }
    )


# --- accepted -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://fcm.googleapis.com/fcm/send/dQw4w9WgXcQ:APA91bH", None),
        ("https://updates.push.services.mozilla.com/wpush/v2/gAAAAABh", None),
        ("https://web.push.apple.com/QGZxc2Vzc2lvbg", None),
        ("https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB%2f", None),
        ("https://FCM.GoogleAPIs.com:443/fcm/send/x", "https://fcm.googleapis.com/fcm/send/x"),
        ("HTTPS://fcm.googleapis.com/fcm/send/x", "https://fcm.googleapis.com/fcm/send/x"),
        ("https://ｆｃｍ.googleapis.com/fcm/send/x", "https://fcm.googleapis.com/fcm/send/x"),
    ],
)
async def test_real_push_service_endpoints_are_accepted(url: str, normal: str | None) -> None:
    assert await validate_endpoint(url, DEFAULT, public_dns()) == (normal or url)


async def test_explicit_entries_admit_exactly_that_origin_wherever_it_points() -> None:
    dns = FakeDNS()
    assert (
        await validate_endpoint("http://127.0.0.1:9999/push/abc", WITH_LOCAL, dns)
        == "http://127.0.0.1:9999/push/abc"
    )
    assert (
        await validate_endpoint("https://[::1]:8443/p", WITH_LOCAL, dns) == "https://[::1]:8443/p"
    )
    assert dns.asked == []
    for other in (
        "http://127.0.0.1:9998/push/abc",  # another port
        "https://127.0.0.1:9999/push/abc",  # another scheme
        "http://localhost:9999/push/abc",  # another name for the same place
        "http://127.0.0.2:9999/push/abc",
    ):
        with pytest.raises(EndpointRejected):
            await validate_endpoint(other, WITH_LOCAL, dns)


# --- refused before any DNS lookup --------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/x.apple.com/",
        "https://169.254.169.254/latest/meta-data/?fcm.googleapis.com",
        "https://fcm.googleapis.com.evil.com/",
        "https://evil.com/fcm.googleapis.com",
        "https://evil.com/?https://fcm.googleapis.com/",
        "https://user@fcm.googleapis.com/",
        "https://fcm.googleapis.com@evil.com/",
        "https://evil.com\\@fcm.googleapis.com/",
        "https://fcm.googleapis.com:8443/",
        "https://fcm.googleapis.com:443@evil.com/",
        "https://fcm.googleapis.com:99999/",
        "https://fcm.googleapis.com:abc/",
        "http://fcm.googleapis.com/",
        "ftp://fcm.googleapis.com/",
        "//fcm.googleapis.com/x",
        "fcm.googleapis.com/x",
        "https://[::1]/",
        "https://[::ffff:169.254.169.254]/",
        "https://0x7f.1/",
        "https://2130706433/",
        "https://127.1/",
        "https://10.0.0.1/",
        "https://push.apple.com/",  # the bare domain: only subdomains are allowed
        "https://evilpush.apple.com/",
        "https://notify.windows.com/",
        "https://fcm.googleapis.com./",
        "https://fcm.googleapis.com/#frag",
        "https://fcm.googleapis.com/send/\u0000",
        "https://fcm.googleapis.com\t.evil.com/",
        "https://fcm.googleapis.com /x",
        "https://fcm.googleapis.com/путь",
        "https://fcm．googleapis．com.evil.com/",
        "https://xn--fcm-googleapis-com.evil/",
        "https://фcm.googleapis.com/",
        "",
        "https://fcm.googleapis.com/" + "a" * 3000,
    ],
)
async def test_tricks_are_refused_without_resolving(url: str) -> None:
    dns = public_dns()
    with pytest.raises(EndpointRejected) as error:
        await validate_endpoint(url, DEFAULT, dns)
    assert error.value.reason
    assert dns.asked == []


async def test_refusals_say_what_is_wrong() -> None:
    cases = {
        "http://fcm.googleapis.com/": "https",
        "https://fcm.googleapis.com:8443/": "443",
        "https://user@fcm.googleapis.com/": "user",
        "https://169.254.169.254/x.apple.com/": "IP address",
        "https://evil.com/fcm.googleapis.com": "evil.com is not an accepted push service",
        "https://fcm.googleapis.com/#x": "fragment",
    }
    for url, words in cases.items():
        with pytest.raises(EndpointRejected, match=words):
            await validate_endpoint(url, DEFAULT, public_dns())


# --- refused after resolving --------------------------------------------------------------


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.1"],
        ["169.254.169.254"],
        [PUBLIC, "127.0.0.1"],  # one bad answer is enough
        ["100.64.0.1"],
        ["192.168.1.1"],
        ["172.16.0.1"],
        ["0.0.0.0"],
        ["224.0.0.1"],
        ["::1"],
        ["fe80::1%eth0"],
        ["fc00::1"],
        ["::ffff:10.0.0.1"],
        ["64:ff9b::a9fe:a9fe"],  # NAT64 of 169.254.169.254
        ["2002:a00:1::1"],  # 6to4 of 10.0.0.1
        ["ff02::1"],
        ["not-an-address"],
    ],
)
async def test_hosts_resolving_to_non_public_addresses_are_refused(addresses: list[str]) -> None:
    dns = FakeDNS({"fcm.googleapis.com": addresses})
    with pytest.raises(EndpointRejected, match="non-public"):
        await validate_endpoint("https://fcm.googleapis.com/fcm/send/x", DEFAULT, dns)
    assert dns.asked == [("fcm.googleapis.com", 443)]


async def test_a_host_that_does_not_resolve_is_reported_as_possibly_temporary() -> None:
    with pytest.raises(EndpointUnresolvable):
        await validate_endpoint("https://web.push.apple.com/x", DEFAULT, FakeDNS())
    with pytest.raises(EndpointUnresolvable):
        await validate_endpoint(
            "https://web.push.apple.com/x", DEFAULT, FakeDNS({"web.push.apple.com": []})
        )


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),  # NAT64 of a public address, as on IPv6-only hosts
        ("100.64.0.1", False),
        ("198.18.0.1", False),
        ("192.0.2.1", False),
        ("255.255.255.255", False),
        ("fec0::1", False),
        ("2001::1", False),
        ("ff0e::1", False),
    ],
)
def test_is_public(address: str, public: bool) -> None:
    import ipaddress

    assert is_public(ipaddress.ip_address(address)) is public


async def test_real_resolution_of_localhost_is_refused_by_the_default_resolver() -> None:
    allow = AllowList.parse("localhost")
    with pytest.raises(EndpointRejected, match="non-public"):
        await validate_endpoint("https://localhost/x", allow)


# --- the allow-list setting ---------------------------------------------------------------


def test_allow_list_parsing() -> None:
    allow = AllowList.parse(
        " fcm.googleapis.com , *.push.apple.com,,http://127.0.0.1:9999, HTTPS://Push.Example.org:8443"
    )
    assert allow.hosts == frozenset({"fcm.googleapis.com"})
    assert allow.suffixes == (".push.apple.com",)
    assert allow.origins == frozenset(
        {("http", "127.0.0.1", 9999), ("https", "push.example.org", 8443)}
    )
    assert allow.allows_host("web.push.apple.com")
    assert allow.allows_host("a.b.push.apple.com")
    assert not allow.allows_host("push.apple.com")
    assert not allow.allows_host("evilpush.apple.com")


@pytest.mark.parametrize(
    "entry",
    [
        "*",
        "*.com",
        "127.0.0.1",
        "*.0.0.1",
        "http://127.0.0.1",  # explicit entries need their port
        "http://127.0.0.1:9999/path",
        "http://user@127.0.0.1:9999",
        "ftp://host:21",
        "bad host",
        "host/path",
    ],
)
def test_unusable_allow_list_entries_are_errors(entry: str) -> None:
    with pytest.raises(AllowListError, match=entry.split("/")[0][:5].replace("*", r"\*")):
        AllowList.parse(entry)


# --- keys ---------------------------------------------------------------------------------


def b64(data: bytes, padded: bool = False) -> str:
    text = base64.urlsafe_b64encode(data).decode()
    return text if padded else text.rstrip("=")


def point() -> bytes:
    return public_bytes(ec.generate_private_key(ec.SECP256R1()).public_key())


def test_valid_keys_decode_with_or_without_padding() -> None:
    p256dh, auth = point(), bytes(range(16))
    assert validate_keys(b64(p256dh), b64(auth)) == (p256dh, auth)
    assert validate_keys(b64(p256dh, True), b64(auth, True)) == (p256dh, auth)


@pytest.mark.parametrize(
    ("p256dh", "auth", "words"),
    [
        (b64(b"\x04" + b"\x01" * 64), b64(bytes(16)), "not a point"),
        (b64(point()[:33]), b64(bytes(16)), "65-byte"),
        (b64(b"\x02" + point()[1:]), b64(bytes(16)), "65-byte"),
        (b64(point() + b"\x00"), b64(bytes(16)), "65-byte"),
        (b64(point()), b64(bytes(15)), "16 bytes"),
        (b64(point()), b64(bytes(17)), "16 bytes"),
        (base64.b64encode(b"\xfb\xff" + point()[2:]).decode(), b64(bytes(16)), "base64url"),
        (b64(point()), "AAAA AAAA", "base64url"),
        (None, b64(bytes(16)), "base64url"),
        (b64(point()), 16, "base64url"),
        ("", b64(bytes(16)), "base64url"),
    ],
    # Named, not shown: the keys are made afresh at each collection, and a
    # parallel run requires every worker to collect the same tests.
    ids=[
        "not-a-point",
        "compressed-length",
        "compressed-prefix",
        "too-long",
        "auth-15",
        "auth-17",
        "not-url-alphabet",
        "auth-space",
        "p256dh-none",
        "auth-int",
        "p256dh-empty",
    ],
)
def test_bad_keys_are_refused(p256dh: object, auth: object, words: str) -> None:
    with pytest.raises(KeysRejected, match=words):
        validate_keys(p256dh, auth)


# --- at send time -------------------------------------------------------------------------


class StaticResolver(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_guarded_resolver_refuses_a_push_host_re_pointed_at_a_private_address() -> None:
    with pytest.raises(OSError, match="non-public"):
        await GuardedResolver(DEFAULT, StaticResolver(PUBLIC, "10.0.0.1")).resolve(
            "fcm.googleapis.com", 443
        )
    fine = await GuardedResolver(DEFAULT, StaticResolver(PUBLIC)).resolve("fcm.googleapis.com", 443)
    assert [r["host"] for r in fine] == [PUBLIC]
    local = await GuardedResolver(WITH_LOCAL, StaticResolver("127.0.0.1")).resolve(
        "127.0.0.1", 9999
    )
    assert [r["host"] for r in local] == ["127.0.0.1"]
    with pytest.raises(OSError):
        await GuardedResolver(WITH_LOCAL, StaticResolver("127.0.0.1")).resolve("127.0.0.1", 9998)


async def test_guarded_resolver_in_a_real_client_connects_only_where_allowed() -> None:
    from tests.push_service import PushService

    async with PushService() as service:
        allow = AllowList.parse(f"localhost,{service.origin}")
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow))
        async with aiohttp.ClientSession(connector=connector) as session:
            # The explicit entry is reachable (the service answers: no such subscription).
            async with session.post(service.origin + "/push/x", data=b"") as response:
                assert response.status == 404
            # `localhost` is an allowed host name here, but it resolves to loopback.
            with pytest.raises(aiohttp.ClientConnectorError):
                await session.post(f"http://localhost:{service.port}/push/x", data=b"")
        assert len(service.attempts) == 1
