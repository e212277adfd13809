"""Token buckets per client address, for any per-address rate (push
subscriptions now; anything else the public may create in bulk later)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

# Addresses remembered at most: about 200 bytes each. When full, the address
# seen least recently is forgotten (its next request starts a full bucket),
# never everyone at once: a flood from many addresses cannot reset the
# buckets of the few that were being held back.
MAX_ADDRESSES = 100_000


class AddressRate(Protocol):
    """A rate per address: this process's buckets (below) or every process's
    (server/shared_limits.py). `check` is 0 if allowed (and counted), else
    the seconds to wait."""

    async def check(self, address: str) -> float: ...


class RateLimiter:
    """A token bucket per client address: `burst` at once, one more every `refill_seconds`."""

    def __init__(
        self,
        burst: int,
        refill_seconds: float,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst, self.refill_seconds = burst, refill_seconds
        self.max_addresses = max_addresses
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, address: str) -> float:
        """0 if allowed (and counted), else the seconds to wait."""
        now = self._clock()
        tokens, stamp = self._buckets.pop(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) / self.refill_seconds)
        allowed = tokens >= 1
        self._buckets[address] = (tokens - 1 if allowed else tokens, now)  # now the newest
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)
        return 0.0 if allowed else (1 - tokens) * self.refill_seconds

    async def check(self, address: str) -> float:
        return self.take(address)

    def __len__(self) -> int:
        return len(self._buckets)
