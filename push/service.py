"""Web Push in the web server: the queue, the VAPID key, and the worker process.

The web server keeps what its API needs (subscriptions, the public key,
delivery counts); sending happens in the worker process (push/process.py).
The server's handlers (server/api/push.py) and /metrics reach this class
through a small Protocol (`server.state.Push`), so `server/` needs no import
of `push/` beyond the wiring in app.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from push.endpoints import (
    AllowList,
    EndpointRejected,
    EndpointUnresolvable,
    KeysRejected,
    validate_endpoint,
    validate_keys,
)
from push.process import PushProcess
from push.queue import QUEUE_FILE, PushQueue, State
from push.settings import PushSettings
from push.vapid import VapidKey, is_placeholder_subject, load_or_create_key
from server.core.errors import ApiError, invalid
from server.core.events import StoredEvent

log = logging.getLogger("sunbid.push")

# After a failed look-up of a push service's name: when the browser may ask again.
RESOLVE_RETRY_SECONDS = 30


class Bus(Protocol):
    """What push needs of the server's bus: to hear that events were committed."""

    def subscribe(self, deliver: Callable[[Sequence[StoredEvent]], None]) -> None: ...


@dataclass
class PushService:
    queue: PushQueue
    key: VapidKey
    allow: AllowList
    worker: PushProcess | None  # None: this process takes subscriptions, another sends
    channel_kinds: Sequence[str] = ()  # the channels beside Web Push configured here

    @classmethod
    async def open(cls, settings: PushSettings, bus: Bus, *, send: bool = True) -> PushService:
        """Open the queue and the key (loud errors, never a silent new key), start
        sending (unless `send` is False: another process of the deployment sends)."""
        data_dir, subject = settings.data_dir, settings.vapid_subject
        allow = AllowList.from_entries(settings.push_allowed_hosts)
        queue = PushQueue(
            data_dir / QUEUE_FILE,
            database_url=settings.database_url,
            database_schema=settings.database_schema,
        )
        await queue.open()
        try:
            key = load_or_create_key(data_dir, subscriptions_exist=await queue.count() > 0)
        except BaseException:
            await queue.close()
            raise
        if is_placeholder_subject(subject):
            log.warning(
                "SUNBID_VAPID_SUBJECT %r is a placeholder: push services may refuse "
                "it; set a real mailto: or https: contact",
                subject,
            )
        worker = PushProcess(settings) if send else None
        if worker is not None:
            try:
                await worker.start()
            except BaseException:
                await queue.close()
                raise
            bus.subscribe(worker.notify)
        return cls(queue, key, allow, worker)

    @property
    def public_key(self) -> str:
        """The applicationServerKey browsers subscribe with."""
        return self.key.application_server_key

    async def subscribe(
        self,
        subscription: object,
        topics: Sequence[str],
        stages: Sequence[str] | None,
        created_at: str,
    ) -> tuple[int, bool]:
        """Store a browser's PushSubscription (validated here: push knows which
        endpoints and keys it can send to); (its id, whether it is new)."""
        if not isinstance(subscription, dict):
            raise invalid("subscription", "a PushSubscription: {endpoint, keys: {p256dh, auth}}")
        keys = subscription.get("keys")
        try:
            p256dh, auth = validate_keys(
                keys.get("p256dh") if isinstance(keys, dict) else None,
                keys.get("auth") if isinstance(keys, dict) else None,
            )
            endpoint = await validate_endpoint(subscription.get("endpoint"), self.allow)
        except EndpointUnresolvable as exc:
            # The push service's name did not resolve: most likely our DNS, for a
            # moment. Nothing is wrong with the request, so the browser may retry.
            raise ApiError(
                503,
                "unavailable",
                f"subscription.endpoint: {exc}; try again later",
                {"field": "subscription.endpoint"},
                headers={"Retry-After": str(RESOLVE_RETRY_SECONDS)},
            ) from None
        except EndpointRejected as exc:
            raise invalid("subscription.endpoint", str(exc)) from None
        except KeysRejected as exc:
            raise invalid("subscription.keys", str(exc)) from None
        return await self.queue.upsert(
            endpoint,
            p256dh,
            auth,
            list(topics),
            None if stages is None else list(stages),
            created_at,
        )

    @property
    def sending(self) -> bool:
        """The worker process is running (false while it is being restarted);
        true where another process sends (`serve --no-worker`)."""
        return self.worker is None or self.worker.alive

    async def unsubscribe(self, endpoint: str) -> None:
        await self.queue.delete(endpoint)

    async def delivery_counts(self, seq: int) -> dict[str, Any]:
        """The Web Push deliveries of event `seq` by state, and beside them
        `channels`: each configured channel's (push/channels/), by state."""
        by_kind = await self.queue.counts_by_kind(seq)
        none = {state.name.lower(): 0 for state in State}
        kinds = sorted((set(by_kind) | set(self.channel_kinds)) - {"push"})
        return {
            **by_kind.get("push", none),
            "channels": {kind: by_kind.get(kind, none) for kind in kinds},
        }

    async def queue_depth(self) -> int:
        return await self.queue.depth()

    def attempts(self) -> dict[str, float]:
        """Attempts by outcome, counted by the worker process(es) this server ran."""
        return {} if self.worker is None else self.worker.metrics.deliveries()

    def webhook_attempts(self) -> dict[str, float]:
        """Webhook attempts by outcome: sent from the same worker process."""
        return {} if self.worker is None else self.worker.metrics.webhook_deliveries()

    def wake(self) -> None:
        """Tell the worker process to look at the log and the webhooks now."""
        if self.worker is not None:
            self.worker.notify()

    async def close(self) -> None:
        if self.worker is not None:
            await self.worker.close()
        await self.queue.close()
