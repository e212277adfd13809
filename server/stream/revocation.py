"""A revoked token stops working on open WebSocket connections within seconds.

`sunbid token revoke` runs in another process and only writes the tokens
table, so the server has to notice by itself: one task re-checks, every
`CHECK_SECONDS`, the tokens that open connections signed in with, all in one
query (connections that never sent `auth` are not looked at, so thousands of
anonymous ones cost nothing). It reads the store, not the authenticator's
cache, so the cache cannot delay it; a token found revoked is dropped from
that cache too, and a connection signed in with it is told and signed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from server.auth import Authenticator
from server.tokens import Tokens

# Revocation reaches open connections within this plus one query: well
# inside the contract's 5 s.
CHECK_SECONDS = 2.0
log = logging.getLogger("sunbid.auth")


class SignedIn(Protocol):
    def token_revoked(self) -> None: ...


class RevocationWatch:
    def __init__(
        self, tokens: Tokens, auth: Authenticator, interval: float = CHECK_SECONDS
    ) -> None:
        self.tokens = tokens
        self.auth = auth
        self.interval = interval
        self._digests: dict[SignedIn, str] = {}  # connection → its token's digest
        self._task: asyncio.Task[None] | None = None

    def watch(self, connection: SignedIn, digest: str) -> None:
        self._digests[connection] = digest

    def forget(self, connection: SignedIn) -> None:
        self._digests.pop(connection, None)

    async def check(self) -> None:
        if not self._digests:
            return
        asked = set(self._digests.values())
        live = await self.tokens.live_digests(asked)
        # A connection may have signed in again during the query: only the
        # digests that were asked about can be judged.
        revoked = [
            connection
            for connection, digest in self._digests.items()
            if digest in asked and digest not in live
        ]
        for digest in asked - live:
            self.auth.forget(digest)
        for connection in revoked:
            self.forget(connection)
            connection.token_revoked()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # a store hiccup: try again next time, never stop watching
                log.exception("checking open connections' tokens failed")
