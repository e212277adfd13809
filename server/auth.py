"""Bearer tokens for staff: issued once, stored only as SHA-256 digests.

Tokens are 256 random bits, so a fast digest is enough (no password hashing
needed), and looking a token up by its digest reveals nothing about any other
token. The final comparison is constant-time all the same.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict

from server.core.errors import ApiError
from server.core.topics import SUPERVISION, TOPIC_ROLES
from server.tokens import Token, Tokens

ROLES = ("publisher", "supervisor", "admin")
# Who reads compliance warnings: the people who may follow them live.
STAFF_VIEW_ROLES = TOPIC_ROLES[SUPERVISION]
# A revoked token stops working within this many seconds in a running server.
CACHE_SECONDS = 2.0
TOKEN_PREFIX = "sb_"
# Secrets remembered at most; beyond, the least recently used is forgotten (a
# flood of made-up tokens must not evict the real ones all at once).
CACHE_SIZE = 10_000


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Authenticator:
    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self._cache: OrderedDict[str, tuple[Token | None, float]] = OrderedDict()

    async def token(self, secret: str) -> Token | None:
        """The live token for this secret, or None."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 128:
            return None
        wanted = digest(secret)
        now = time.monotonic()
        cached = self._cache.get(wanted)
        if cached is not None and cached[1] > now:
            self._cache.move_to_end(wanted)
            return cached[0]
        found = await self.tokens.by_digest(wanted)
        if found is not None and (
            found.revoked_at is not None or not hmac.compare_digest(found.digest, wanted)
        ):
            found = None
        self._cache[wanted] = (found, now + CACHE_SECONDS)
        self._cache.move_to_end(wanted)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return found

    def forget(self, digest: str) -> None:
        """Drop a cached answer for this digest (its token was found revoked)."""
        self._cache.pop(digest, None)

    async def from_header(self, header: str | None) -> Token:
        """The token of an `Authorization: Bearer …` header; 401 if absent or bad."""
        scheme, _, secret = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise ApiError(
                401,
                "unauthorized",
                "a staff token is required: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        token = await self.token(secret.strip())
        if token is None:
            raise ApiError(
                401,
                "unauthorized",
                "the token is unknown or revoked",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return token


def require_role(token: Token, roles: frozenset[str]) -> None:
    if token.role not in roles:
        raise ApiError(403, "forbidden", f"this needs a {' or '.join(sorted(roles))} token")


def require_publisher_of(token: Token, agency: str) -> None:
    """Admins publish for anyone; a publisher only for its own agency."""
    if token.role == "admin" or (token.role == "publisher" and token.agency == agency):
        return
    raise ApiError(403, "forbidden", f"this token may not publish for agency {agency!r}")
