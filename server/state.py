"""Everything a request handler may need, built once per app."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.auth import Authenticator
from server.bus import Bus
from server.compliance.service import Compliance
from server.core.clock import Clock
from server.directory import Directory
from server.domain import Domain
from server.hub import Hub
from server.interop.cache import Renderings
from server.metrics import Metrics
from server.projects.table import ProjectTable
from server.ratelimit import AddressRate, RateLimiter
from server.respond.service import Respond
from server.settings import Settings
from server.stats.service import Statistics
from server.store import EventStore
from server.stream.counters import StreamCounters
from server.stream.feed import Feed
from server.stream.limits import StreamLimiter
from server.stream.revocation import RevocationWatch


class Push(Protocol):
    """Web Push as the web server's handlers and /metrics see it (push/service.py
    implements it; app.py wires it in, so nothing else here imports `push/`)."""

    @property
    def public_key(self) -> str: ...
    @property
    def sending(self) -> bool: ...

    async def subscribe(
        self,
        subscription: object,
        topics: Sequence[str],
        stages: Sequence[str] | None,
        created_at: str,
    ) -> tuple[int, bool]: ...
    async def unsubscribe(self, endpoint: str) -> None: ...
    async def delivery_counts(self, seq: int) -> dict[str, Any]: ...
    async def queue_depth(self) -> int: ...
    def attempts(self) -> dict[str, float]: ...
    def webhook_attempts(self) -> dict[str, float]: ...
    async def close(self) -> None: ...


class Channels(Protocol):
    """SMS, e-mail and WeChat beside Web Push (push/channels/service.py)."""

    @property
    def kinds(self) -> list[str]: ...

    async def add(
        self, kind: object, address: object, topics: list[str], stages: list[str] | None, now: str
    ) -> dict[str, Any]: ...
    async def confirm(self, channel_id: str, code: object, now: str) -> dict[str, Any]: ...
    async def usage(self, month: str | None) -> dict[str, Any]: ...
    async def describe(self, channel_id: str, token: str | None) -> dict[str, Any]: ...
    async def cancel(self, channel_id: str, token: str | None) -> None: ...
    async def unsubscribe(self, channel_id: str, token: str | None) -> None: ...
    async def wechat_authorize_url(
        self, topics: list[str], stages: list[str] | None, now: str
    ) -> tuple[str, str]: ...
    async def wechat_complete(
        self, code: object, state: object, browser: object, now: str
    ) -> tuple[str, str]: ...
    async def close(self) -> None: ...


class Webhooks(Protocol):
    """Signed webhooks as the API sees them (push/webhooks/service.py)."""

    async def create(
        self,
        url: object,
        topics: list[str],
        stages: list[str] | None,
        description: object,
        now: str,
        head: int,
    ) -> dict[str, Any]: ...
    async def all(self) -> list[dict[str, Any]]: ...
    async def delete(self, webhook_id: str, now: str) -> None: ...
    async def deliveries(self, webhook_id: str, limit: int) -> dict[str, Any]: ...
    async def replay(self, webhook_id: str, since: int, now: str) -> dict[str, Any]: ...
    async def list_warnings(
        self, state: str | None, before: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str, bytes]]: ...
    async def close(self) -> None: ...


class Connection(Protocol):
    feed: Feed

    async def shutdown(self) -> None: ...


@dataclass
class AppState:
    settings: Settings
    domain: Domain
    directory: Directory
    clock: Clock
    store: EventStore
    projects: ProjectTable
    bus: Bus
    hub: Hub
    auth: Authenticator
    limiter: StreamLimiter
    compliance: Compliance
    revocations: RevocationWatch
    connections: set[Connection] = field(default_factory=set)
    push: Push | None = None  # set once the app has started
    channels: Channels | None = None  # likewise
    respond: Respond | None = None  # the public's cases: likewise
    stats: Statistics | None = None  # the statistics (统计分析), with the store
    webhooks: Webhooks | None = None  # likewise
    subscribe_limiter: AddressRate = field(init=False)  # app.py may replace it
    ask_limiter: AddressRate = field(init=False)  # filing cases, per address; likewise
    ask_device_limiter: AddressRate = field(init=False)  # and per device
    stream_counters: StreamCounters = field(default_factory=StreamCounters)
    metrics: Metrics = field(default_factory=Metrics)
    renderings: Renderings = field(default_factory=Renderings)  # feeds and calendars
    started: bool = False  # the lifespan's start-up work is done
    shutting_down: bool = False  # /readyz answers 503 from the start of a shutdown

    def __post_init__(self) -> None:
        self.subscribe_limiter = RateLimiter(
            self.settings.subscribe_burst, self.settings.subscribe_refill_seconds
        )
        self.ask_limiter = RateLimiter(self.settings.ask_burst, self.settings.ask_refill_seconds)
        self.ask_device_limiter = RateLimiter(
            self.settings.ask_device_burst, self.settings.ask_device_refill_seconds
        )
