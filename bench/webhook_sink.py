"""A webhook receiver for bench/webhooks.py, in a process of its own (pinned
by the caller): answers every POST /r/<name> with 204 at once, without
verifying (the sender still signs each one), and counts them; GET /count
answers the total so far.

    python bench/webhook_sink.py --port 9999
"""

from __future__ import annotations

import argparse

from aiohttp import web

received = 0


async def hook(request: web.Request) -> web.Response:
    global received
    await request.read()
    received += 1
    return web.Response(status=204)


async def count(_: web.Request) -> web.Response:
    return web.json_response({"total": received})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    app = web.Application()
    app.router.add_post("/r/{name}", hook)
    app.router.add_get("/count", count)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
