"""Web Push assembled: the queue, the VAPID key and signer, and the worker."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from push.endpoints import AllowList
from push.policy import PushPolicy
from push.queue import PushQueue
from push.vapid import VapidKey, VapidSigner, is_placeholder_subject, load_or_create_key
from push.worker import PushWorker, RetryPolicy
from server.settings import Settings
from server.store import EventStore

log = logging.getLogger("sunbid.push")
QUEUE_FILE = "push.db"


@dataclass
class PushService:
    queue: PushQueue
    key: VapidKey
    allow: AllowList
    worker: PushWorker

    @classmethod
    async def open(cls, settings: Settings, store: EventStore) -> PushService:
        """Open the queue and the key (loud errors, never a silent new key), start sending."""
        data_dir, subject = settings.data_dir, settings.vapid_subject
        allow = AllowList.from_entries(settings.push_allowed_hosts)
        queue = PushQueue(data_dir / QUEUE_FILE)
        await queue.open()
        try:
            key = load_or_create_key(data_dir, subscriptions_exist=await queue.count() > 0)
            signer = VapidSigner(key, subject)
        except BaseException:
            await queue.close()
            raise
        if is_placeholder_subject(subject):
            log.warning(
                "SUNBID_VAPID_SUBJECT %r is a placeholder: push services may refuse "
                "it; set a real mailto: or https: contact",
                subject,
            )
        worker = PushWorker(
            queue,
            store,
            signer,
            PushPolicy.load(),
            allow,
            concurrency=settings.push_concurrency,
            per_host=max(1, settings.push_concurrency // 2),
            timeout=settings.push_timeout,
            retry=RetryPolicy(settings.push_max_attempts, settings.push_retry_base),
        )
        store.on_commit(worker.notify)
        await worker.start()
        return cls(queue, key, allow, worker)

    async def close(self) -> None:
        await self.worker.close()
        await self.queue.close()
