"""When a failed delivery is tried again, and when a webhook is given up on.

A webhook receives its events one at a time in seq order, so a failure holds
up only that webhook: its head event is tried again after `delay(n)` seconds
(n failed attempts so far): base × 2^(n-1), at most `cap`, each multiplied
by a random 0.75–1.25 so that many webhooks failing together (a receiver
down) do not come back in step; at least `Retry-After` when the receiver
sent one (capped likewise). With the default base of 5 s: 5 s, 10 s, 20 s,
40 s, … 1 h, then hourly.

A webhook failing without a single success for `disable_after` seconds (3
days by default) is disabled and a warning goes to supervisors and admins.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

CAP_FACTOR = 720  # cap = 720 × base: 1 h with the default 5 s
# 2.0 ** n overflows a float past n = 1023, and a webhook failing for weeks
# (a long disable period, a short base) gets there; any base reaches its cap
# long before 2 ** 60.
MAX_DOUBLINGS = 60


@dataclass(frozen=True)
class RetrySchedule:
    base: float = 5.0
    disable_after: float = 3 * 86_400.0

    @property
    def cap(self) -> float:
        return self.base * CAP_FACTOR

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `failures`-th failed attempt (1, 2, …)."""
        doublings = min(max(failures - 1, 0), MAX_DOUBLINGS)
        backoff = min(self.cap, self.base * 2.0**doublings)
        backoff *= random.uniform(0.75, 1.25)
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, self.cap))
        return backoff

    def gives_up(self, failing_since: float, now: float) -> bool:
        """Whether a webhook failing since `failing_since` is disabled at `now`."""
        return now - failing_since >= self.disable_after
