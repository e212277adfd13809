"""The webhooks and what happened to their deliveries.

Each webhook row holds its filter, its sealed secret, and its place in the
log: `cursor` (the last seq delivered or skipped) and the attempt state of
the next matching event (`attempts`, `next_attempt_at`, `failing_since`).
Nothing is written per event before it is sent: the sender reads the next
matching event after the cursor from the log, sends it, and on a 2xx moves
the cursor and writes the delivery record in one transaction. A crash at
any moment loses nothing (the cursor has not passed an event until its 2xx
is stored) and repeats at most the one request in flight.

Every update of a webhook's place compares the cursor it read (a replay
moves the cursor meanwhile: the sender's outcome is then only recorded, the
place is the replay's).

PostgreSQL: several workers share the table. A worker sends for a webhook
only while it holds the webhook's claim (`claimed_by`, `claimed_until`,
taken with `FOR UPDATE SKIP LOCKED` and renewed by every outcome it
stores); another worker takes it over once a dead worker's claim has run
out (SUNBID_PUSH_CLAIM_SECONDS, at least 3 × the webhook timeout). So one
process at a time sends a webhook's events, in seq order.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from server.core import versions
from server.core.lease import node_name
from server.core.sidefile import SideFile

WEBHOOKS_FILE = "webhooks.db"  # in the data directory
SCHEMA = (Path(__file__).parent / "schema.sql").read_text("utf-8")
PG_SCHEMA = (Path(__file__).parent / "schema.pg.sql").read_text("utf-8")
COLUMNS = (
    "id, url, topics, stages, description, secret, created_at, cursor, attempts,"
    " next_attempt_at, failing_since, disabled_at"
)


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    topics: list[str]
    stages: list[str] | None
    description: str
    secret: bytes  # sealed
    created_at: str
    cursor: int
    attempts: int
    next_attempt_at: float
    failing_since: float | None
    disabled_at: str | None

    @property
    def filter(self) -> dict[str, frozenset[str] | None]:
        """The log query's topics, each with the stages wanted (store/queries.py)."""
        stages = None if self.stages is None else frozenset(self.stages)
        return dict.fromkeys(self.topics, stages)

    def to_json(self) -> dict[str, Any]:
        """As the API shows it: never the secret."""
        if self.disabled_at is not None:
            state = "disabled"
        elif self.failing_since is not None:
            state = "failing"
        else:
            state = "active"
        return {
            "id": self.id,
            "url": self.url,
            "topics": self.topics,
            "stages": self.stages,
            "description": self.description,
            "created_at": self.created_at,
            "state": state,
            "cursor": self.cursor,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at or None,
            "failing_since": self.failing_since,
            "disabled_at": self.disabled_at,
        }


@dataclass(frozen=True)
class Attempt:
    """One request to a receiver and what came of it."""

    seq: int
    status: int | None
    error: str | None  # None: a 2xx
    duration_ms: float
    at: str  # RFC 3339
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None


class WebhookStore(SideFile):
    def __init__(
        self,
        path: Path,
        *,
        database_url: str = "",
        database_schema: str = "public",
        lease: float = 60.0,
    ) -> None:
        super().__init__(
            path,
            SCHEMA,
            versions.WEBHOOKS,
            name="webhooks",
            postgres_schema=PG_SCHEMA,
            database_url=database_url,
            database_schema=database_schema,
        )
        self.lease = max(lease, 1.0)
        self.worker_id = f"{node_name()}:{secrets.token_hex(4)}"

    # --- the API's side ------------------------------------------------------------

    async def create(
        self,
        url: str,
        topics: list[str],
        stages: list[str] | None,
        description: str,
        sealed_secret: bytes,
        created_at: str,
        cursor: int,
    ) -> str:
        webhook_id = "wh_" + secrets.token_hex(8)
        async with self.transaction():
            await self.db.execute(
                "INSERT INTO webhooks (id, url, topics, stages, description, secret,"
                " created_at, cursor) VALUES (?,?,?,?,?,?,?,?)",
                (
                    webhook_id,
                    url,
                    orjson.dumps(topics).decode(),
                    None if stages is None else orjson.dumps(stages).decode(),
                    description,
                    sealed_secret,
                    created_at,
                    cursor,
                ),
            )
        return webhook_id

    async def get(self, webhook_id: str) -> Webhook | None:
        rows = await self.rows(f"SELECT {COLUMNS} FROM webhooks WHERE id = ?", (webhook_id,))
        return _webhook(rows[0]) if rows else None

    async def all(self) -> list[Webhook]:
        rows = await self.rows(f"SELECT {COLUMNS} FROM webhooks ORDER BY created_at, id")
        return [_webhook(row) for row in rows]

    async def delete(self, webhook_id: str, now: str) -> bool:
        async with self.transaction():
            deleted = await self.db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
            if deleted.rowcount != 1:
                return False
            await self.db.execute(
                "DELETE FROM webhook_deliveries WHERE webhook_id = ?", (webhook_id,)
            )
            await self._resolve(webhook_id, now)
        return True

    async def replay(self, webhook_id: str, since: int, now: str) -> bool:
        """Send again every matching event after `since`; enables a disabled
        webhook (and resolves its warning). False: no such webhook."""
        async with self.transaction():
            changed = await self.db.execute(
                "UPDATE webhooks SET cursor = ?, attempts = 0, next_attempt_at = 0,"
                " failing_since = NULL, disabled_at = NULL WHERE id = ?",
                (since, webhook_id),
            )
            if changed.rowcount != 1:
                return False
            await self._resolve(webhook_id, now)
        return True

    async def deliveries(self, webhook_id: str, limit: int) -> list[dict[str, Any]]:
        rows = await self.rows(
            "SELECT seq, attempt, status, error, duration_ms, at FROM webhook_deliveries"
            " WHERE webhook_id = ? ORDER BY n DESC LIMIT ?",
            (webhook_id, limit),
        )
        return [
            {
                "seq": int(seq),
                "attempt": int(attempt),
                "status": status,
                "error": error,
                "duration_ms": round(float(duration), 3),
                "at": at,
            }
            for seq, attempt, status, error, duration, at in rows
        ]

    # --- warnings ------------------------------------------------------------------

    async def warnings_changed_after(self, changed: int) -> list[tuple[int, bytes]]:
        rows = await self.rows(
            "SELECT changed, doc FROM webhook_warnings WHERE changed > ? ORDER BY changed",
            (changed,),
        )
        return [(int(n), bytes(doc)) for n, doc in rows]

    async def last_change(self) -> int:
        rows = await self.rows("SELECT COALESCE(MAX(changed), 0) FROM webhook_warnings")
        return int(rows[0][0])

    async def list_warnings(
        self, state: str | None, before: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str, bytes]]:
        """(created_at, id, doc), newest first, before `before` (created_at, id)."""
        where, params = [], []
        if state == "open":
            where.append("resolved_at IS NULL")
        elif state == "resolved":
            where.append("resolved_at IS NOT NULL")
        if before is not None:
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [before[0], before[0], before[1]]
        sql = "SELECT created_at, id, doc FROM webhook_warnings"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self.rows(sql + " ORDER BY created_at DESC, id DESC LIMIT ?", [*params, limit])
        return [(str(c), str(i), bytes(d)) for c, i, d in rows]

    async def _resolve(self, webhook_id: str, now: str) -> None:
        """In a transaction: the webhook's open warning (if any) is resolved."""
        rows = await self.db.execute_fetchall(
            "SELECT id, doc FROM webhook_warnings WHERE webhook_id = ? AND resolved_at IS NULL",
            (webhook_id,),
        )
        for warning_id, doc in rows:
            resolved = {**orjson.loads(doc), "resolved_at": now}
            await self.db.execute(
                "UPDATE webhook_warnings SET resolved_at = ?, doc = ?,"
                " changed = (SELECT COALESCE(MAX(changed), 0) + 1 FROM webhook_warnings)"
                " WHERE id = ?",
                (now, orjson.dumps(resolved), warning_id),
            )

    # --- the sender's side -----------------------------------------------------------

    async def ready(self, now: float) -> list[Webhook]:
        """Enabled webhooks whose next attempt is due (claimed or not)."""
        rows = await self.rows(
            f"SELECT {COLUMNS} FROM webhooks WHERE disabled_at IS NULL AND next_attempt_at <= ?",
            (now,),
        )
        return [_webhook(row) for row in rows]

    async def next_attempt_at(self) -> float | None:
        """When the next retry of an enabled webhook is due."""
        rows = await self.rows(
            "SELECT MIN(next_attempt_at) FROM webhooks"
            " WHERE disabled_at IS NULL AND next_attempt_at > 0"
        )
        return None if rows[0][0] is None else float(rows[0][0])

    async def claim(self, ids: Sequence[str], now: float) -> list[Webhook]:
        """The webhooks of `ids` this worker may send for now (on one machine,
        all; on PostgreSQL those no other worker holds), as they are now."""
        if not ids:
            return []
        if not self.postgres:
            rows = await self.rows(
                f"SELECT {COLUMNS} FROM webhooks WHERE id IN ({','.join('?' for _ in ids)})",
                list(ids),
            )
            return [_webhook(row) for row in rows]
        async with self.transaction():
            rows = await self.db.execute_fetchall(
                "UPDATE webhooks SET claimed_by = ?, claimed_until = ? WHERE id IN"
                " (SELECT id FROM webhooks WHERE id = ANY(CAST(? AS TEXT[]))"
                "  AND (claimed_until IS NULL OR claimed_until < ? OR claimed_by = ?)"
                "  FOR UPDATE SKIP LOCKED)"
                f" RETURNING {COLUMNS}",
                (self.worker_id, now + self.lease, list(ids), now, self.worker_id),
            )
        return [_webhook(row) for row in rows]

    async def release(self, webhook_id: str) -> None:
        if self.postgres:
            async with self.transaction():
                await self.db.execute(
                    "UPDATE webhooks SET claimed_by = NULL, claimed_until = NULL"
                    " WHERE id = ? AND claimed_by = ?",
                    (webhook_id, self.worker_id),
                )

    async def skip_to(self, hook: Webhook, seq: int) -> Webhook | None:
        """Move the cursor over events the webhook does not take."""
        return await self._move(hook, "cursor = ?", (seq,), seq)

    async def record(
        self, hook: Webhook, attempt: Attempt, *, next_attempt_at: float, disable: bool, now: float
    ) -> Webhook | None:
        """Store one attempt: its record, and the webhook's new place (a 2xx
        moves the cursor past the event; a failure schedules the next attempt,
        or disables the webhook). The webhook as it is now, or None if it
        changed meanwhile (replayed, deleted, or, on PostgreSQL, its claim
        lost): the caller reads it again."""
        number = hook.attempts + 1
        update: tuple[str, tuple[Any, ...]]
        if attempt.delivered:
            update = (
                "cursor = ?, attempts = 0, next_attempt_at = 0, failing_since = NULL",
                (attempt.seq,),
            )
            moved = replace_place(hook, cursor=attempt.seq)
        else:
            failing_since = hook.failing_since if hook.failing_since is not None else now
            disabled_at = attempt.at if disable else None
            update = (
                "attempts = ?, next_attempt_at = ?, failing_since = ?, disabled_at = ?",
                (number, next_attempt_at, failing_since, disabled_at),
            )
            moved = replace_place(
                hook,
                attempts=number,
                next_attempt_at=next_attempt_at,
                failing_since=failing_since,
                disabled_at=disabled_at,
            )
        async with self.transaction():
            still = await self._move_in_transaction(hook, *update)
            await self.db.execute(
                "INSERT INTO webhook_deliveries (webhook_id, seq, attempt, status, error,"
                " duration_ms, at) SELECT ?, ?, ?, ?, ?, ?, ?"
                " WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = ?)",
                (
                    hook.id,
                    attempt.seq,
                    number,
                    attempt.status,
                    attempt.error,
                    attempt.duration_ms,
                    attempt.at,
                    hook.id,
                ),
            )
            if still and disable:
                await self._warn(moved, attempt)
        return moved if still else None

    async def trim(self, webhook_id: str, keep: int) -> None:
        """Keep the newest `keep` delivery records of a webhook."""
        async with self.transaction():
            await self.db.execute(
                "DELETE FROM webhook_deliveries WHERE webhook_id = ? AND n <"
                " (SELECT MIN(n) FROM (SELECT n FROM webhook_deliveries WHERE webhook_id = ?"
                "  ORDER BY n DESC LIMIT ?) AS kept)",
                (webhook_id, webhook_id, keep),
            )

    async def _move(
        self, hook: Webhook, assignments: str, params: tuple[Any, ...], cursor: int
    ) -> Webhook | None:
        async with self.transaction():
            still = await self._move_in_transaction(hook, assignments, params)
        return replace_place(hook, cursor=cursor) if still else None

    async def _move_in_transaction(
        self, hook: Webhook, assignments: str, params: tuple[Any, ...]
    ) -> bool:
        """Change the webhook's place only where it is still where `hook` saw it
        (and, on PostgreSQL, still claimed by this worker: the claim is renewed)."""
        sql = f"UPDATE webhooks SET {assignments}"
        where = " WHERE id = ? AND cursor = ? AND attempts = ? AND disabled_at IS NULL"
        values: list[Any] = [*params]
        if self.postgres:
            sql += ", claimed_until = ?"
            values.append(_now_plus(self.lease))
            where += " AND claimed_by = ?"
        values += [hook.id, hook.cursor, hook.attempts]
        if self.postgres:
            values.append(self.worker_id)
        changed = await self.db.execute(sql + where, values)
        return bool(changed.rowcount == 1)

    async def _warn(self, hook: Webhook, attempt: Attempt) -> None:
        """In record()'s transaction: the warning that the webhook was disabled."""
        warning_id = f"webhook-{hook.id}-{attempt.at}"
        doc = disabled_warning(hook, warning_id, attempt)
        await self.db.execute(
            "INSERT INTO webhook_warnings (id, webhook_id, created_at, changed, doc)"
            " SELECT ?, ?, ?, COALESCE(MAX(changed), 0) + 1, ? FROM webhook_warnings",
            (warning_id, hook.id, attempt.at, orjson.dumps(doc)),
        )


def disabled_warning(hook: Webhook, warning_id: str, attempt: Attempt) -> dict[str, Any]:
    """The warning as supervisors get every other one (CONTRACT.md `supervision`):
    not a statutory rule, so `advisory` and no project, agency or due time.

    It names the receiver by its origin only: the path and query of many
    webhook URLs are the receiver's own credential (a robot's
    `?access_token=`), admin data that supervisors must not be handed and
    a warning must not keep. Admins find the whole URL by the id."""
    why = attempt.error if attempt.status is None else f"HTTP {attempt.status}"
    where = origin(hook.url)
    return {
        "id": warning_id,
        "rule": "webhook_disabled",
        "project": None,
        "agency": None,
        "category": None,
        "due": None,
        "basis": None,
        "advisory": True,
        "level": "breach",
        "state": "disabled",
        "message": (
            f"Webhook {hook.id} ({where}) was disabled: every delivery failed since"
            f" {_iso(hook.failing_since)}, the last with {why} at event {attempt.seq}."
            " POST /api/webhooks/{id}/replay enables it again."
        ),
        "created_at": attempt.at,
        "resolved_at": None,
        "webhook": {"id": hook.id, "origin": where},
    }


def origin(url: str) -> str:
    """`scheme://host[:port]` of a stored (validated, normalised) URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def replace_place(hook: Webhook, **changes: Any) -> Webhook:
    return replace(hook, **changes)


def _webhook(row: Sequence[Any]) -> Webhook:
    return Webhook(
        id=str(row[0]),
        url=str(row[1]),
        topics=orjson.loads(row[2]),
        stages=None if row[3] is None else orjson.loads(row[3]),
        description=str(row[4]),
        secret=bytes(row[5]),
        created_at=str(row[6]),
        cursor=int(row[7]),
        attempts=int(row[8]),
        next_attempt_at=float(row[9]),
        failing_since=None if row[10] is None else float(row[10]),
        disabled_at=row[11],
    )


def _now_plus(seconds: float) -> float:
    return time.time() + seconds


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return "?"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
