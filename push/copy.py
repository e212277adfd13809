"""push.db's rows into PostgreSQL beside the log, for `sunbid copy-to`.

Subscriptions are not derived from the log: they are what people asked for
on their phones, and a move that dropped them would silently end every
notification. They come along with their ids (deliveries name them), the
queue's cursor and its deliveries, pending and finished, so nothing already
derived is derived or sent again. Run inside the copy's transaction: a copy
that fails leaves no push row behind either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite

from push.queue import PG_SCHEMA
from server.core import pg, versions

SUBSCRIPTION_COLUMNS = "id, endpoint, p256dh, auth, topics, stages, created_at, updated_at"
DELIVERY_COLUMNS = "seq, subscription_id, state, attempts, next_at, expires_at, last_status"
PAGE = 5000


async def copy_push_rows(source: Path, conn: Any) -> str:
    """Copy push.db at `source` (if there is one) through `conn`, a PgConnection in a
    transaction on the target schema; say what was copied."""
    await pg.create_schema(conn, "push", PG_SCHEMA, versions.PUSH)
    held = await conn.execute_fetchall("SELECT COUNT(*) FROM subscriptions")
    if held[0][0]:
        raise ValueError(f"the target schema holds {held[0][0]} push subscriptions already")
    if not source.exists():
        return "no push subscriptions (there was no push.db)"
    async with aiosqlite.connect(f"file:{source}?mode=ro", uri=True) as db:
        subscriptions = list(
            await db.execute_fetchall(
                f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions ORDER BY id"
            )
        )
        topics = list(
            await db.execute_fetchall("SELECT topic, subscription_id FROM subscription_topics")
        )
        cursor = list(await db.execute_fetchall("SELECT seq FROM cursor WHERE id = 1"))
        await conn.executemany(
            f"INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
            [(*row[:2], bytes(row[2]), bytes(row[3]), *row[4:]) for row in subscriptions],
        )
        await conn.executemany(
            "INSERT INTO subscription_topics (topic, subscription_id) VALUES (?, ?)",
            [tuple(row) for row in topics],
        )
        # Ids given from here on continue after the copied ones.
        await conn.execute(
            "SELECT setval(pg_get_serial_sequence('subscriptions', 'id'),"
            " GREATEST((SELECT MAX(id) FROM subscriptions), 1))"
        )
        await conn.execute(
            "UPDATE cursor SET seq = ? WHERE id = 1", (int(cursor[0][0]) if cursor else 0,)
        )
        deliveries = 0
        async with db.execute(f"SELECT {DELIVERY_COLUMNS} FROM deliveries") as rows:
            while page := [tuple(row) for row in await rows.fetchmany(PAGE)]:
                await conn.executemany(
                    f"INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES (?,?,?,?,?,?,?)", page
                )
                deliveries += len(page)
    return f"{len(subscriptions)} push subscriptions ({deliveries} deliveries)"
