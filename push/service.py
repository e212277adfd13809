"""Web Push assembled: the queue, the VAPID key and signer, and the worker."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from push.endpoints import AllowList
from push.policy import PushPolicy
from push.queue import PushQueue
from push.vapid import VapidKey, VapidSigner, is_placeholder_subject, load_or_create_key
from push.worker import PushWorker
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
    async def open(
        cls, data_dir: Path, subject: str, allowed_hosts: Iterable[str], store: EventStore
    ) -> PushService:
        """Open the queue and the key (loud errors, never a silent new key), start sending."""
        allow = AllowList.from_entries(allowed_hosts)
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
        worker = PushWorker(queue, store, signer, PushPolicy.load(), allow)
        store.on_commit(worker.notify)
        await worker.start()
        return cls(queue, key, allow, worker)

    async def close(self) -> None:
        await self.worker.close()
        await self.queue.close()
