"""Web Push in the web server: the queue, the VAPID key, and the worker process.

The web server keeps what its API needs (subscriptions, the public key,
delivery counts); sending happens in the worker process (push/process.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from push.endpoints import AllowList
from push.process import PushProcess
from push.queue import QUEUE_FILE, PushQueue
from push.vapid import VapidKey, is_placeholder_subject, load_or_create_key
from server.bus import Bus
from server.settings import Settings

log = logging.getLogger("sunbid.push")


@dataclass
class PushService:
    queue: PushQueue
    key: VapidKey
    allow: AllowList
    worker: PushProcess

    @classmethod
    async def open(cls, settings: Settings, bus: Bus) -> PushService:
        """Open the queue and the key (loud errors, never a silent new key), start sending."""
        data_dir, subject = settings.data_dir, settings.vapid_subject
        allow = AllowList.from_entries(settings.push_allowed_hosts)
        queue = PushQueue(data_dir / QUEUE_FILE)
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
        worker = PushProcess(settings)
        try:
            await worker.start()
        except BaseException:
            await queue.close()
            raise
        bus.subscribe(worker.notify)
        return cls(queue, key, allow, worker)

    async def close(self) -> None:
        await self.worker.close()
        await self.queue.close()
