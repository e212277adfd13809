"""The local push service of tests/push_service.py in `fast` mode, as a process.

It answers every `POST /push/{id}` with 201 without verifying or decrypting,
and records each request (subscriber id, time answered, status, client
port). The benchmarks start it with `common.PushSink`, pinned to the load
generator's core, and talk to it over stdin/stdout, one JSON line each way:

    count             -> {"n": requests so far}
    dump K PATH       -> writes [[id, at, status, client port], ...] for requests K.. to PATH;
                         answers {"n": requests so far}
    quit              -> exits

Its first line on stdout is {"port": P, "origin": "http://127.0.0.1:P"}.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.push_service import PushService  # noqa: E402


def reply(obj: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.buffer.flush()


async def main() -> None:
    service = PushService()
    service.fast = True
    await service.start()
    reply({"port": service.port, "origin": service.origin})
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while True:
            line = (await reader.readline()).decode().split()
            if not line or line[0] == "quit":
                break
            if line[0] == "count":
                reply({"n": len(service.attempts)})
            elif line[0] == "dump":
                start, path = int(line[1]), line[2]
                attempts = service.attempts[start:]
                rows = [
                    [a.subscriber, a.at, a.status, a.peer[1] if a.peer else 0] for a in attempts
                ]
                Path(path).write_bytes(orjson.dumps(rows))
                reply({"n": start + len(rows)})
            else:
                reply({"error": f"unknown command {line[0]!r}"})
    finally:
        await service.stop()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
