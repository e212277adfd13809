"""Stream counts for `/metrics`, kept as plain integers.

The fan-out loop is measured against a bare `websockets.broadcast`, so it
makes no metrics-library call per delivery: each connection's feed adds one
to its own `delivered` (an attribute of a slotted object), and a scrape adds
up the open connections' counts and what closed ones left here.
"""

from __future__ import annotations

from collections.abc import Iterator


class TransportCounters:
    __slots__ = ("closed_deliveries", "lagging_closes", "transport")

    def __init__(self, transport: str) -> None:
        self.transport = transport  # the `transport` label: ws or sse
        self.closed_deliveries = 0  # events sent by connections no longer open
        self.lagging_closes = 0  # connections cut off for not keeping up


class StreamCounters:
    def __init__(self) -> None:
        self.ws = TransportCounters("ws")
        self.sse = TransportCounters("sse")

    def __iter__(self) -> Iterator[TransportCounters]:
        return iter((self.ws, self.sse))
