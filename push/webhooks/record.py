"""The webhooks as a record derived from the log, for `sunbid verify` and
`sunbid rebuild`.

What the log decides of webhooks.db (or of the webhook tables in
PostgreSQL): a webhook's cursor is a place in the log (not past its head),
and every delivery record names an event the log holds and the webhook
follows (its topics and stages never change after it is made). Whether a
receiver answered 2xx is the receiver's business, not the log's: a rebuild
puts a cursor that is ahead of the log back at the head, removes the
records the log does not yield, and keeps the others.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from push.record import _in_log
from push.webhooks.store import Webhook, WebhookStore
from server.core.events import StoredEvent
from server.core.projection import LogReader
from server.core.topics import TopicFilter

PAGE = 1000
SELECT_RECORDS = "SELECT n, webhook_id, seq FROM webhook_deliveries ORDER BY seq, n"


class WebhookRecord:
    name = "webhooks"
    note: str | None = None

    def __init__(self, store: WebhookStore) -> None:
        self.store = store

    async def check(self, log_reader: LogReader) -> str | None:
        hooks = {hook.id: hook for hook in await self.store.all()}
        for hook in hooks.values():
            if not await _in_log(log_reader, hook.cursor):
                return (
                    f"webhooks.db webhook {hook.id}: cursor at seq {hook.cursor},"
                    f" ahead of the log's head {log_reader.head}"
                )
        async for n, why in self._scan(log_reader, hooks):
            return f"webhooks.db delivery record {n}: {why}"
        return None

    async def rebuild(self, log_reader: LogReader) -> None:
        hooks = {hook.id: hook for hook in await self.store.all()}
        ahead = [h.id for h in hooks.values() if not await _in_log(log_reader, h.cursor)]
        wrong = [(n,) async for n, _ in self._scan(log_reader, hooks)]
        async with self.store.transaction():
            await self.store.db.executemany(
                "UPDATE webhooks SET cursor = ?, attempts = 0, next_attempt_at = 0 WHERE id = ?",
                [(log_reader.head, hook_id) for hook_id in ahead],
            )
            await self.store.db.executemany("DELETE FROM webhook_deliveries WHERE n = ?", wrong)

    async def _scan(
        self, log_reader: LogReader, hooks: dict[str, Webhook]
    ) -> AsyncIterator[tuple[int, str]]:
        """Every delivery record the log does not yield, in seq order."""
        filters = {hook_id: TopicFilter(hook.filter) for hook_id, hook in hooks.items()}
        events: dict[int, StoredEvent] = {}
        for n, webhook_id, seq in await self.store.rows(SELECT_RECORDS):
            wanted = filters.get(webhook_id)
            if wanted is None:
                yield n, f"webhook {webhook_id} does not exist"
                continue
            if seq not in events:
                page = await log_reader.events_since(seq - 1, None, PAGE) if seq > 0 else []
                events = {e.seq: e for e in page}
            event = events.get(seq)
            if event is None:
                yield n, f"event {seq} is not in the log"
            elif not wanted.matches(event):
                yield (
                    n,
                    f"webhook {webhook_id} does not follow event {seq}"
                    f" ({event.stage} on project {event.project})",
                )
