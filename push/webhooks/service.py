"""Webhooks in the web server: what the API does with them, and their warnings.

Sending happens in the push worker process (sender.py); the web server only
stores what admins ask for and wakes the worker. The handlers
(server/api/webhooks.py) reach this class through a small Protocol
(`server.state.Webhooks`), so `server/` imports nothing of `push/` beyond the
wiring in app.py.

Every web process tails the warnings table (a disabled webhook) and hands
each new or resolved warning to its own supervisors on `supervision`,
within about a second, as server/respond/ does for its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from push.channels.contacts import ContactCipher
from push.endpoints import AllowList, EndpointRejected, EndpointUnresolvable, validate_endpoint
from push.settings import PushSettings
from push.webhooks.signing import new_secret
from push.webhooks.store import WEBHOOKS_FILE, WebhookStore
from server.core.errors import ApiError, invalid

log = logging.getLogger("sunbid.webhooks")

TAIL_SECONDS = 1.0
MAX_DESCRIPTION = 500
RETRY_RESOLVE_SECONDS = 30


@dataclass
class WebhookService:
    store: WebhookStore
    allow: AllowList
    data_dir: Path
    wake: Callable[[], None]  # the worker: something to send
    warn: Callable[[dict[str, Any]], None]  # to this process's supervisors
    _tail: asyncio.Task[None] | None = field(default=None, init=False)
    _last_change: int = field(default=0, init=False)

    @classmethod
    async def open(
        cls,
        settings: PushSettings,
        wake: Callable[[], None],
        warn: Callable[[dict[str, Any]], None],
    ) -> WebhookService:
        store = WebhookStore(
            settings.data_dir / WEBHOOKS_FILE,
            database_url=settings.database_url,
            database_schema=settings.database_schema,
        )
        await store.open()
        service = cls(
            store,
            AllowList.from_entries(settings.webhook_allowed_hosts),
            settings.data_dir,
            wake,
            warn,
        )
        service._last_change = await store.last_change()  # only what happens from now on
        service._tail = asyncio.create_task(service._follow_warnings(), name="webhook-warnings")
        return service

    async def close(self) -> None:
        if self._tail is not None:
            self._tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tail
        await self.store.close()

    async def create(
        self,
        url: object,
        topics: list[str],
        stages: list[str] | None,
        description: object,
        now: str,
        head: int,
    ) -> dict[str, Any]:
        """Store a webhook that gets the events published from now on (after
        `head`); its id and secret (the only time the secret is shown)."""
        if description is None:
            description = ""
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise invalid("description", f"text of at most {MAX_DESCRIPTION} characters")
        try:
            checked = await validate_endpoint(url, self.allow, service="webhook receiver")
        except EndpointUnresolvable as exc:
            raise ApiError(
                503,
                "unavailable",
                f"url: {exc}; try again later",
                {"field": "url"},
                headers={"Retry-After": str(RETRY_RESOLVE_SECONDS)},
            ) from None
        except EndpointRejected as exc:
            raise invalid("url", exc.reason.replace("endpoint", "the URL")) from None
        secret = new_secret()
        sealed = ContactCipher.load_or_create(self.data_dir).seal(secret)
        webhook_id = await self.store.create(
            checked, topics, stages, description, sealed, now, head
        )
        self.wake()
        return {"id": webhook_id, "secret": secret}

    async def all(self) -> list[dict[str, Any]]:
        return [hook.to_json() for hook in await self.store.all()]

    async def delete(self, webhook_id: str, now: str) -> None:
        if not await self.store.delete(webhook_id, now):
            raise _not_found(webhook_id)

    async def deliveries(self, webhook_id: str, limit: int) -> dict[str, Any]:
        if await self.store.get(webhook_id) is None:
            raise _not_found(webhook_id)
        return {"id": webhook_id, "items": await self.store.deliveries(webhook_id, limit)}

    async def replay(self, webhook_id: str, since: int, now: str) -> dict[str, Any]:
        if not await self.store.replay(webhook_id, since, now):
            raise _not_found(webhook_id)
        self.wake()
        hook = await self.store.get(webhook_id)
        if hook is None:  # deleted meanwhile
            raise _not_found(webhook_id)
        return hook.to_json()

    async def list_warnings(
        self, state: str | None, before: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str, bytes]]:
        return await self.store.list_warnings(state, before, limit)

    async def _follow_warnings(self) -> None:
        while True:
            await asyncio.sleep(TAIL_SECONDS)
            try:
                for changed, doc in await self.store.warnings_changed_after(self._last_change):
                    self._last_change = changed
                    self.warn(orjson.loads(doc))
            except Exception:
                log.exception("reading webhook warnings failed; again in a second")


def _not_found(webhook_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no webhook {webhook_id[:80]!r}")
