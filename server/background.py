"""`sunbid worker`: the background work of a deployment, without serving HTTP.

The push worker, the compliance watchdog's duty (its lease: warnings stored
and snapshots taken by one process), pruning, and later webhooks: the same
app as `sunbid serve`, its start-up and shutdown run without a listening
socket, until SIGTERM or SIGINT. Web processes then run `serve --no-worker`.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from server.settings import Settings

log = logging.getLogger("sunbid")


async def run_background(settings: Settings) -> int:
    from server.app import create_app

    app = create_app(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with app.http.router.lifespan_context(app.http):
        log.info("sunbid worker: running the background work (no HTTP)")
        await stop.wait()
        log.info("sunbid worker: stopping")
    return 0
