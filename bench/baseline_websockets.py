"""Bare `websockets` fan-out server, the floor the others are compared against.

- `/ws`: a subscriber. It gets `{"op":"subscribed",...}` on accept, then every
  broadcast frame.
- `/publish`: a publisher. Bare websockets has no HTTP routes, so publishing
  goes over a dedicated WebSocket: each text message it sends is passed as
  bytes (no decode) to `websockets.asyncio.server.broadcast()` for all `/ws`
  connections, verbatim, in one call.

No topics, no storage, no sequence numbers: the publisher puts the whole frame
(`{"op":"event","event":{...}}`) on the wire itself.

    .venv/bin/python bench/baseline_websockets.py --port 8001
"""

from __future__ import annotations

import argparse
import contextlib

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

SUBSCRIBED = b'{"op":"subscribed","topics":["project:BENCH-1"],"head":0}'
subscribers: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    if ws.request is not None and ws.request.path.startswith("/publish"):
        try:
            while True:
                broadcast(subscribers, await ws.recv(decode=False), text=True)
        except ConnectionClosed:
            return
    subscribers.add(ws)
    try:
        await ws.send(SUBSCRIBED, text=True)
        async for _ in ws:  # subscribers have nothing to say; drain anyway
            pass
    except ConnectionClosed:
        pass
    finally:
        subscribers.discard(ws)


async def main(host: str, port: int) -> None:
    async with serve(
        handler,
        host,
        port,
        compression=None,  # per-message deflate off, as for the others
        max_size=64 * 1024,
        backlog=4096,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(main(args.host, args.port))
