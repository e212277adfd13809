"""Token buckets per client address."""

from __future__ import annotations

import time

# Creating subscriptions: a burst of 20 per address, refilled at one per 6 s.
BURST, REFILL_SECONDS = 20, 6.0


class RateLimiter:
    """A token bucket per client address."""

    def __init__(self, burst: int = BURST, refill_seconds: float = REFILL_SECONDS) -> None:
        self.burst, self.refill_seconds = burst, refill_seconds
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, address: str) -> float:
        """0 if allowed, else the seconds to wait."""
        now = time.monotonic()
        tokens, stamp = self._buckets.get(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) / self.refill_seconds)
        if tokens < 1:
            self._buckets[address] = (tokens, now)
            return (1 - tokens) * self.refill_seconds
        if len(self._buckets) > 100_000:
            self._buckets.clear()
        self._buckets[address] = (tokens - 1, now)
        return 0.0
