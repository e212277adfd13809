"""Everything a request handler may need, built once per app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from push.service import PushService
from server.auth import Authenticator
from server.bus import Bus
from server.clock import Clock
from server.compliance.service import Compliance
from server.directory import Directory
from server.domain import Domain
from server.hub import Hub
from server.ratelimit import RateLimiter
from server.settings import Settings
from server.store import EventStore
from server.stream.limits import ConnectionLimiter


class Connection(Protocol):
    async def shutdown(self) -> None: ...


@dataclass
class AppState:
    settings: Settings
    domain: Domain
    directory: Directory
    clock: Clock
    store: EventStore
    bus: Bus
    hub: Hub
    auth: Authenticator
    limiter: ConnectionLimiter
    compliance: Compliance
    connections: set[Connection] = field(default_factory=set)
    push: PushService | None = None  # set once the app has started
    subscribe_limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.subscribe_limiter = RateLimiter(
            self.settings.subscribe_burst, self.settings.subscribe_refill_seconds
        )
