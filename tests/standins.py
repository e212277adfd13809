"""Running an async stand-in (an SMS provider, WeChat, an SMTP server) on an
event loop of its own in a background thread, for tests that drive a real
server process synchronously."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar


class Startable(Protocol):
    async def start(self) -> Any: ...
    async def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


@contextmanager
def in_thread(service: S) -> Iterator[S]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="stand-in", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(service.start(), loop).result(10)
        yield service
    finally:
        asyncio.run_coroutine_threadsafe(service.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def until(condition: Callable[[], Any], seconds: float = 10.0) -> Any:
    """Wait (blocking) for `condition` to return something true; that value."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s")
        time.sleep(0.05)
