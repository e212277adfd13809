"""Moving a SQLite deployment's log to PostgreSQL with its chain intact (`sunbid copy-to`).

A direct copy from one database to the other, not an export file and an
import: no third form of the data to version, check and keep safe, and the
target is checked against the source itself, not against a file that might
already differ from it.

The events are copied in seq order with their documents byte for byte (the
BLOB as stored, so every hash still holds), the chain's tip (`log_head`) is
set to the last seq and hash, and the tokens and idempotency keys come along
as rows (tokens are not in the log; a key lets a retry of a publication
made before the move find its event). The records written with the log
(projects) are folded from the copied events by the same code an append
uses, in the same transaction, as each event row references its project's:
they are derived from the log on the target, never copied from the source.

All of it is one transaction holding the tip's row lock: a copy that fails
leaves the target as empty as it was, and a server started on the target
meanwhile waits for it. A target holding anything is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from server.core.events import GENESIS_HASH
from server.store import RecordWithLog, VerifyReport
from server.store.groupcommit import EVENT_COLUMNS
from server.store.postgres import PostgresStore
from server.store.sqlite import SQLiteStore

PAGE = 1000  # events per read and insert
TOKEN_COLUMNS = "name, role, agency, digest, created_at, revoked_at"
KEY_COLUMNS = "project, key, fingerprint, seq"
# What a target must not hold: each count must be 0.
HELD = ("events", "projects", "tokens", "idempotency")


class CopyRefused(Exception):
    """The copy was not made (a damaged source, a target not empty); nothing changed."""


@dataclass(frozen=True)
class Copied:
    events: int
    head: int
    last_hash: str
    tokens: int
    keys: int
    also: str = ""  # what else was copied, in words


async def copy_log(
    source: SQLiteStore,
    target: PostgresStore,
    records: Sequence[RecordWithLog],
    also: Callable[[Any], Awaitable[str]] | None = None,
) -> Copied:
    """Copy `source` (open, read-only) into the empty `target` (open, with `records`
    written with its log); raise CopyRefused, changing nothing, if it cannot be.
    `also` copies more (push subscriptions) in the same transaction; what it
    says it copied is in the result's `also`."""
    report = await source.verify()
    if report.first_bad_seq is not None:
        raise CopyRefused(
            f"the SQLite log is damaged at seq {report.first_bad_seq}: {report.reason};"
            " a broken chain is not carried over (see `sunbid verify`)"
        )
    tokens = await source.read(f"SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY name")
    keys = await source.read(f"SELECT {KEY_COLUMNS} FROM idempotency ORDER BY seq")
    async with target.exclusive() as conn:
        await _refuse_unless_empty(conn)
        seq, last_hash = 0, GENESIS_HASH
        while events := await source.events_since(seq, None, PAGE):
            for record in records:  # first: an event row references its project's
                await record.write(conn, events)
            await conn.executemany(
                f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                [
                    (e.seq, e.project, e.category, e.agency, e.region, e.stage, e.json)
                    for e in events
                ],
            )
            seq, last_hash = events[-1].seq, str(orjson.loads(events[-1].json)["hash"])
        if seq != report.head:  # the source changed under us: the data lock should prevent it
            raise CopyRefused(f"read {seq} events, the SQLite log verified {report.head}")
        await conn.executemany(f"INSERT INTO idempotency ({KEY_COLUMNS}) VALUES (?,?,?,?)", keys)
        await conn.executemany(f"INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?,?,?,?,?,?)", tokens)
        await conn.execute("UPDATE log_head SET seq = ?, hash = ? WHERE id = 1", (seq, last_hash))
        try:
            more = await also(conn) if also is not None else ""
        except ValueError as exc:
            raise CopyRefused(str(exc)) from None
    # Statistics for the planner now, not at autovacuum's next round: until
    # then it plans for the empty tables the copy began with, and a statement
    # a server prepares meanwhile would scan the log where it should look up.
    await target.write("ANALYZE events, projects", ())
    return Copied(seq, seq, last_hash, len(tokens), len(keys), more)


async def _refuse_unless_empty(conn: Any) -> None:
    held = []
    for table in HELD:
        rows = await conn.execute_fetchall(f"SELECT COUNT(*) FROM {table}")
        if rows[0][0]:
            held.append(f"{rows[0][0]} {table}")
    tip = await conn.execute_fetchall("SELECT seq FROM log_head WHERE id = 1")
    if tip and tip[0][0]:
        held.append(f"a log head at seq {tip[0][0]}")
    if held:
        raise CopyRefused(
            f"the target schema is not empty ({', '.join(held)}):"
            " copy into a new schema (--schema) or database"
        )


async def check_copy(target: PostgresStore, copied: Copied) -> str | None:
    """None if the target (opened afresh) holds the copied chain; else what differs."""
    report: VerifyReport = await target.verify()
    if report.first_bad_seq is not None:
        return f"BAD at seq {report.first_bad_seq}: {report.reason}"
    tip = await target.read("SELECT seq, hash FROM log_head WHERE id = 1")
    if report.head != copied.head or (int(tip[0][0]), str(tip[0][1])) != (
        copied.head,
        copied.last_hash,
    ):
        return (
            f"the target's head is {report.head} (tip {tuple(tip[0])}),"
            f" the source's {copied.head} ({copied.last_hash})"
        )
    return None
