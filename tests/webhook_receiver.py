"""A real webhook receiver on loopback, for the webhook tests and bench/webhooks.py.

Each receiver is a path (`/r/<name>`) with the secret its webhook was given;
every request is checked with the reference `standardwebhooks` verifier, as a
platform receiving our webhooks would check it: one that fails is refused
(401) and kept in `bad`, so a test can assert that nothing unsigned or
wrongly signed ever arrived. A receiver can be told to answer 500, to hang
(never answer), to redirect, or to take 50 ms per request.

    with WebhookReceiver.in_thread() as receiver:
        url = receiver.url("a")          # give it to POST /api/webhooks
        receiver.secret("a", secret)     # the secret the API answered
        until(lambda: len(receiver.got("a")) == 3)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.standins import in_thread

MODES = ("ok", "fail", "hang", "redirect", "slow")
SLOW_SECONDS = 0.05


@dataclass(frozen=True)
class Received:
    receiver: str
    msg_id: str
    seq: int
    at: float  # time.monotonic()
    payload: dict[str, Any]
    timestamp: int = 0  # its webhook-timestamp
    wall: float = 0.0  # time.time() when it arrived


@dataclass
class WebhookReceiver:
    fast: bool = False  # bench: answer 204 without verifying (the sender still signs)
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)  # requests per receiver, whatever answered
    _secrets: dict[str, Webhook] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _release: asyncio.Event | None = None

    @classmethod
    @contextmanager
    def in_thread(cls, fast: bool = False) -> Iterator[WebhookReceiver]:
        with in_thread(cls(fast=fast)) as receiver:
            yield receiver

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/r/{name}"

    def secret(self, name: str, secret: str) -> None:
        self._secrets[name] = Webhook(secret)

    def set_mode(self, name: str, mode: str) -> None:
        assert mode in MODES
        self.modes[name] = mode

    def got(self, name: str) -> list[Received]:
        return [r for r in list(self.requests) if r.receiver == name]

    def seqs(self, name: str) -> list[int]:
        return [r.seq for r in self.got(name)]

    async def start(self) -> None:
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/r/{name}", self._handle)
        app.router.add_get("/private", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if not self.port:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        assert self._release is not None and self._runner is not None
        self._release.set()
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name", "")
        body = await request.read()
        self.hits[name] = self.hits.get(name, 0) + 1
        mode = self.modes.get(name, "ok")
        if mode == "hang":
            assert self._release is not None
            await self._release.wait()
        if mode == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        if mode == "redirect":
            raise web.HTTPFound(f"http://127.0.0.1:{self.port}/private")
        if self.fast:
            self.requests.append(Received(name, request.headers["webhook-id"], 0, 0.0, {}))
            return web.Response(status=204)
        verifier = self._secrets.get(name)
        try:
            if verifier is None:
                raise WebhookVerificationError(f"no secret for receiver {name!r}")
            payload = verifier.verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            self.bad.append(f"{name}: {exc}")
            return web.Response(status=401)
        if mode == "fail":
            return web.Response(status=500)
        seq = int(payload["event"]["seq"])
        received = Received(
            name,
            request.headers["webhook-id"],
            seq,
            time.monotonic(),
            payload,
            int(request.headers["webhook-timestamp"]),
            time.time(),
        )
        self.requests.append(received)
        return web.Response(body=orjson.dumps({"ok": True}), content_type="application/json")
