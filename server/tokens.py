"""Staff tokens: who may publish, supervise or administer.

Not derived from the log (a token is a secret, which the public log must
never carry): a table of its own beside the log (its SQLite file, or its
PostgreSQL schema), written outside the append transactions. Only a
token's SHA-256 digest is stored. On PostgreSQL every process reads the
same table, so a token revoked through any of them (or `sunbid token
revoke`) is refused by all (stream/revocation.py re-reads it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass

import asyncpg

from server.core.clock import Clock
from server.domain import format_time
from server.store import AlreadyExists
from server.store.postgres import PostgresStore
from server.store.sqlite import SQLiteStore

# A second token of the same name or digest, as each engine says it.
DUPLICATE = (sqlite3.IntegrityError, asyncpg.UniqueViolationError)

CHUNK = 500  # digests per query: SQLite binds at most 32,766 parameters, keep well below


@dataclass(frozen=True)
class Token:
    name: str
    role: str
    agency: str | None
    created_at: str
    revoked_at: str | None
    digest: str = ""  # filled only where a token is checked, never listed


class Tokens:
    def __init__(self, store: SQLiteStore | PostgresStore) -> None:
        self.store = store
        self.clock: Clock = store.clock

    async def add(self, name: str, role: str, agency: str | None, digest: str) -> None:
        try:
            await self.store.write(
                "INSERT INTO tokens (name, role, agency, digest, created_at) VALUES (?,?,?,?,?)",
                (name, role, agency, digest, format_time(self.clock.now())),
            )
        except DUPLICATE:
            raise AlreadyExists(name) from None

    async def list(self) -> list[Token]:
        rows = await self.store.read(
            "SELECT name, role, agency, created_at, revoked_at FROM tokens ORDER BY name",
        )
        return [Token(*row) for row in rows]

    async def revoke(self, name: str) -> bool:
        cursor = await self.store.write(
            "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (format_time(self.clock.now()), name),
        )
        return cursor.rowcount > 0

    async def by_digest(self, digest: str) -> Token | None:
        rows = await self.store.read(
            "SELECT name, role, agency, created_at, revoked_at, digest FROM tokens"
            " WHERE digest = ?",
            (digest,),
        )
        return Token(*rows[0]) if rows else None

    async def live_digests(self, digests: Collection[str]) -> set[str]:
        """Those of `digests` that belong to tokens not revoked: one query per
        few hundred, however many connections share them."""
        wanted, live = list(digests), set[str]()
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            rows = await self.store.read(
                "SELECT digest FROM tokens WHERE revoked_at IS NULL"
                f" AND digest IN ({','.join('?' for _ in chunk)})",
                chunk,
            )
            live.update(row[0] for row in rows)
        return live


def tokens_of(store: object) -> Tokens:
    """The tokens kept beside `store`'s log."""
    if not isinstance(store, (SQLiteStore, PostgresStore)):
        raise TypeError(f"no token table for {type(store).__name__}")
    return Tokens(store)
