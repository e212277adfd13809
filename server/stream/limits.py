"""Connections per client address, shared by WebSocket and SSE."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol


class StreamLimiter(Protocol):
    """Open streams per address: this process's (below), or every process's
    (server/shared_limits.py). `acquire` may ask Redis, so it is awaited;
    `release` never waits (it runs in `finally`)."""

    async def acquire(self, address: str) -> bool: ...
    def release(self, address: str) -> None: ...


class ConnectionLimiter:
    def __init__(self, per_address: int) -> None:
        self.per_address = per_address
        self._open: Counter[str] = Counter()

    async def acquire(self, address: str) -> bool:
        if self._open[address] >= self.per_address:
            return False
        self._open[address] += 1
        return True

    def release(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]


def client_address(scope: Mapping[str, Any]) -> str:
    """The address per-address limits count: the peer's, or X-Forwarded-For's
    when the peer is a trusted proxy (uvicorn puts that in `client`, see
    SUNBID_FORWARDED_ALLOW_IPS). An IPv6 client counts by its /64: one
    subscriber (a phone, a home) is given a whole /64, so counting single
    addresses would give one device 2^64 allowances."""
    client = scope.get("client")
    if not client:
        return "unknown"
    host = str(client[0])
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is an IPv4 client
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))
