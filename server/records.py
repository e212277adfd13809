"""Every record derived from the log, as `sunbid verify` and `sunbid rebuild` see them.

Wiring only, like app.py and cli.py (which is why it may import `push`):
each record opens its own storage and answers `check` and `rebuild`
(server/core/projection.py `DerivedRecord`). A new stored projection is
added to `open_records`, and verify and rebuild cover it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from push.queue import QUEUE_FILE, PushQueue
from push.record import PushRecord
from server.core.projection import DerivedRecord
from server.settings import Settings


@contextlib.asynccontextmanager
async def open_records(settings: Settings) -> AsyncIterator[list[DerivedRecord]]:
    """The derived records of the data directory, opened; closed on exit."""
    queue = PushQueue(settings.data_dir / QUEUE_FILE)
    await queue.open()
    try:
        # The projects record and the compliance record join this list as
        # DerivedRecords of their own, in the order verify should name them.
        yield [PushRecord(queue)]
    finally:
        await queue.close()
