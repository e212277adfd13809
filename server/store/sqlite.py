"""The event log on one SQLite file.

Settings, and why:
- `journal_mode=WAL`: replays and API reads run beside the writer and never
  block it (nor it them). WAL persists in the file.
- `synchronous=FULL` (default, `SUNBID_SQLITE_SYNCHRONOUS`): the WAL is
  fsynced at every commit, so a 201 means the event survives a power cut,
  not only a process crash (NORMAL would lose the last commits on power
  loss). Group commit below pays that fsync once per batch, not per event.
- `busy_timeout=5000`: the CLI (`sunbid token …`, `sunbid verify`) may use
  the file while the server runs; it waits instead of failing.
- One writer connection fed by one task: `seq` and the hash chain are assigned
  in memory without races, and every publisher waiting at the same moment
  shares one transaction (group commit). Reads use their own connections
  (store/readers.py), so long reads cannot starve short ones.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from server.core import versions
from server.core.clock import Clock
from server.core.events import GENESIS_HASH, StoredEvent, chain_hash
from server.core.numbers import MAX_SEQ, whole_number
from server.core.topics import CODE
from server.domain import format_time
from server.store import (
    AlreadyExists,
    AppendRequest,
    AppendResult,
    CommitListener,
    IdempotencyConflict,
    StoreUnavailable,
    Token,
    TopicStages,
    VerifyReport,
)
from server.store.readers import Readers
from server.store.verify import verify_rows

log = logging.getLogger("sunbid.store")
SCHEMA = (Path(__file__).parent / "schema.sql").read_text("utf-8")
MAX_BATCH = 256
PROJECT_COLUMNS = (
    "id, title, category, agency, region, budget, currency, stage, created_at, updated_at, last_seq"
)
EVENT_COLUMNS = "seq, project, category, agency, region, stage, doc"
# Lookups in one events query; beyond, one query with OR (still indexed, sorted in full).
MAX_BRANCHES = 64
TOPIC_COLUMNS = {
    "project": "project",
    "category": "category",
    "agency": "agency",
    "region": "region",
}


@dataclass
class _Pending:
    request: AppendRequest
    future: asyncio.Future[AppendResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class SQLiteStore:
    def __init__(
        self, url: str, clock: Clock, *, synchronous: str = "FULL", readonly: bool = False
    ) -> None:
        # sqlite:///relative/file.db or sqlite:////absolute/file.db
        self.path = Path(url.removeprefix("sqlite:///"))
        self.clock = clock
        self.synchronous = synchronous
        self.readonly = readonly  # a reader beside the process that writes (the push worker)
        self.head = 0  # the last event handed to listeners: what clients can see
        self._written = 0  # the last event committed: where the writer continues
        self.commits = 0  # transactions that appended events: shows group commit at work
        self._last_hash: str | None = GENESIS_HASH  # None: the chain's tip is damaged
        self._listeners: list[CommitListener] = []
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        # The writer connection runs one transaction at a time: a project or
        # token written in the middle of a batch would share its fate.
        self._write_lock = asyncio.Lock()
        self._writer_task: asyncio.Task[None] | None = None
        self._w: aiosqlite.Connection | None = None
        self._readers: Readers | None = None

    # --- life cycle -------------------------------------------------------

    async def open(self) -> None:
        if self.readonly:
            # Only readers: no schema script, no writer task, no write lock taken.
            self._readers = await Readers.open(self.path, count=1)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._w = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in (
            "journal_mode=WAL",
            f"synchronous={self.synchronous}",
            "busy_timeout=5000",
            "foreign_keys=ON",
        ):
            await self._w.execute(f"PRAGMA {pragma}")
        await versions.create_schema(self._w, SCHEMA, versions.EVENTS)
        self._readers = await Readers.open(self.path)
        await self._reload_head()
        self._writer_task = asyncio.create_task(self._write_loop(), name="sunbid-log-writer")

    async def close(self) -> None:
        if self._writer_task is not None:
            self._writer_task.cancel()
            await asyncio.gather(self._writer_task, return_exceptions=True)
            self._writer_task = None
        if self._readers is not None:
            await self._readers.close()
        if self._w is not None:
            await self._w.close()
        self._readers, self._w = None, None

    def on_commit(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    async def _read(self, sql: str, params: Sequence[Any] = (), *, long: bool = False) -> list[Any]:
        """Rows of one query on a reader connection; `long` for the reads that
        may take a while (scans of many events), which never hold up short ones."""
        assert self._readers is not None, "store is not open"
        if not long:
            return await _fetch(self._readers.short, sql, params)
        async with self._readers.long() as conn:
            return await _fetch(conn, sql, params)

    @property
    def writer(self) -> aiosqlite.Connection:
        assert self._w is not None, "store is not open"
        return self._w

    # --- the log ------------------------------------------------------------

    async def append(self, request: AppendRequest) -> AppendResult:
        if self.readonly:
            raise StoreUnavailable("this store was opened read-only")
        pending = _Pending(request)
        self._queue.put_nowait(pending)
        return await pending.future

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                async with self._write_lock:
                    await self._commit(batch)
            except Exception:  # the one writer must never die
                log.exception("appending a batch of %d events failed", len(batch))
                await self._reload_head()
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(StoreUnavailable("internal error"))

    async def _reload_head(self) -> None:
        """Take `head` and the last hash from the file (at open, after a failed commit).

        If the last stored event is unreadable the chain cannot be extended:
        reads and `verify` still work, appends answer "unavailable".
        """
        rows = await _fetch(self.writer, "SELECT seq, doc FROM events ORDER BY seq DESC LIMIT 1")
        self.head = self._written = 0
        self._last_hash = GENESIS_HASH
        for seq, doc in rows:
            self.head = self._written = seq
            try:
                self._last_hash = str(orjson.loads(doc)["hash"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.error("the last event (seq %d) is unreadable: run `sunbid verify`", seq)
                self._last_hash = None

    async def _commit(self, batch: list[_Pending]) -> None:
        head, last_hash = self._written, self._last_hash
        if last_hash is None:
            for pending in batch:
                pending.future.set_exception(
                    StoreUnavailable("the log's last event is damaged: run `sunbid verify`")
                )
            return
        outcomes: list[AppendResult | Exception] = []
        created: list[StoredEvent] = []
        try:
            await self.writer.execute("BEGIN IMMEDIATE")
            earlier = await self._earlier_keys(batch)
            event_rows, project_rows, key_rows = [], [], []
            now = self.clock.now()
            published_at = now.isoformat(timespec="milliseconds")
            for pending in batch:
                req = pending.request
                key = (req.project["id"], req.idempotency_key)
                if req.idempotency_key is not None and key in earlier:
                    fingerprint, previous = earlier[key]
                    if fingerprint != req.fingerprint:
                        outcomes.append(IdempotencyConflict())
                    else:
                        outcomes.append(AppendResult(previous, created=False))
                    continue
                head += 1
                published, activity_us = published_at, int(now.timestamp() * 1e6)
                if req.published_at is not None:  # the demo's history
                    published = req.published_at.isoformat(timespec="milliseconds")
                    activity_us = int(req.published_at.timestamp() * 1e6)
                event = _new_event(head, req, published)
                event["hash"] = last_hash = chain_hash(last_hash, event)
                stored = StoredEvent.from_dict(event)
                created.append(stored)
                outcomes.append(AppendResult(stored, created=True))
                event_rows.append(
                    (
                        head,
                        stored.project,
                        stored.category,
                        stored.agency,
                        stored.region,
                        stored.stage,
                        stored.json,
                    )
                )
                project_rows.append(
                    (
                        published,
                        activity_us,
                        head,
                        req.lifecycle,
                        stored.stage,
                        stored.project,
                    )
                )
                if req.idempotency_key is not None:
                    key_rows.append((*key, req.fingerprint, head))
                    earlier[key] = (req.fingerprint, stored)
            await self.writer.executemany(
                f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?)", event_rows
            )
            await self.writer.executemany(
                "UPDATE projects SET updated_at=?, activity_us=?, last_seq=?,"
                " stage=CASE WHEN ? THEN ? ELSE stage END WHERE id=?",
                project_rows,
            )
            await self.writer.executemany("INSERT INTO idempotency VALUES (?,?,?,?)", key_rows)
            await self.writer.execute("COMMIT")
        except (sqlite3.Error, ValueError) as exc:
            log.error("appending a batch of %d events failed: %s", len(batch), exc)
            await self._rollback()
            await self._reload_head()
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(StoreUnavailable(str(exc)))
            return
        self._written, self._last_hash = head, last_hash
        self.commits += 1
        # Durable now: answer the publishers first, then hand the events to
        # the listeners in a callback of their own, so a fan-out to thousands
        # does not hold back the 201s. Callbacks run in order, so batches
        # reach listeners in seq order.
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future.done():  # the publisher went away
                continue
            if isinstance(outcome, Exception):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)
        if created:  # after the publishers' wake-ups, which are queued first
            asyncio.get_running_loop().call_soon(self._announce, created)

    def _announce(self, created: list[StoredEvent]) -> None:
        # `head` moves with no await before the listeners run: a client that
        # reads `head` and then joins the hub misses nothing and gets nothing twice.
        self.head = created[-1].seq
        for listener in self._listeners:
            try:
                listener(created)
            except Exception:
                log.exception("a commit listener failed")

    async def _earlier_keys(
        self, batch: list[_Pending]
    ) -> dict[tuple[str, str | None], tuple[str, StoredEvent]]:
        keys = [
            (p.request.project["id"], p.request.idempotency_key)
            for p in batch
            if p.request.idempotency_key is not None
        ]
        if not keys:
            return {}
        values = ",".join("(?,?)" for _ in keys)
        rows = await _fetch(
            self.writer,
            f"SELECT i.project, i.key, i.fingerprint, {_prefixed('e')} FROM idempotency i"
            f" JOIN events e ON e.seq = i.seq WHERE (i.project, i.key) IN (VALUES {values})",
            [part for key in keys for part in key],
        )
        return {(r[0], r[1]): (r[2], _event(r[3:])) for r in rows}

    async def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # no transaction was open
            await self.writer.execute("ROLLBACK")

    async def _write(self, sql: str, params: Sequence[Any]) -> aiosqlite.Cursor:
        """One statement outside the log, never inside a batch's transaction."""
        async with self._write_lock:
            return await self.writer.execute(sql, params)

    async def get_event(self, seq: int) -> StoredEvent | None:
        rows = await self._read(f"SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?", (seq,))
        return _event(rows[0]) if rows else None

    async def events_since(
        self, since: int, topics: TopicStages | None, limit: int
    ) -> list[StoredEvent]:
        sql, params = _events_query(since, topics, limit)
        rows = await self._read(sql, params, long=True)
        return [_event(row) for row in rows]

    async def verify(self) -> VerifyReport:
        # Its own connection: a full scan must not hold up the API's reads.
        async with aiosqlite.connect(self.path) as conn:
            cursor = await conn.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq")
            report = await verify_rows(_batches(cursor))
            rows = await _fetch(conn, "SELECT MAX(last_seq) FROM projects")
        referenced = rows[0][0] or 0
        if report.first_bad_seq is None and referenced > report.head:
            return VerifyReport(
                report.checked,
                report.head,
                report.head + 1,
                f"seq {report.head + 1}..{referenced} are missing from the end",
            )
        return report

    # --- projects -------------------------------------------------------------

    async def create_project(self, project: Mapping[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        stamp = format_time(now)
        try:
            await self._write(
                f"INSERT INTO projects ({PROJECT_COLUMNS}, activity_us) VALUES"
                " (?,?,?,?,?,?,?,?,?,?,0,?)",
                (
                    project["id"],
                    project["title"],
                    project["category"],
                    project["agency"],
                    project["region"],
                    project["budget"],
                    project["currency"],
                    None,
                    stamp,
                    stamp,
                    int(now.timestamp() * 1e6),
                ),
            )
        except sqlite3.IntegrityError:
            raise AlreadyExists(project["id"]) from None
        created = await self.get_project(project["id"])
        assert created is not None
        return created

    async def get_project(self, project_id: str) -> dict[str, Any] | None:
        rows = await self._read(
            f"SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?", (project_id,)
        )
        return _project(rows[0]) if rows else None

    async def list_projects(
        self, filters: Mapping[str, str], query: str | None, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("category", "agency", "region", "stage"):
            if column in filters:
                clauses.append(f"{column} = ?")
                params.append(filters[column])
        if query:
            like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append("(title LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\')")
            params += [like, like]
        if cursor is not None:
            activity, project_id = _decode_cursor(cursor)
            clauses.append("(activity_us, id) < (?, ?)")
            params += [activity, project_id]
        where = " AND ".join(clauses) or "1"
        rows = await self._read(
            f"SELECT {PROJECT_COLUMNS}, activity_us FROM projects WHERE {where}"
            " ORDER BY activity_us DESC, id DESC LIMIT ?",
            (*params, limit + 1),
            long=query is not None,  # a search reads every project
        )
        items = [_project(row[:-1]) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = _encode_cursor(last[-1], last[0])
        return items, next_cursor

    async def timeline(self, project_id: str) -> list[StoredEvent]:
        rows = await self._read(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE project = ? ORDER BY seq",
            (project_id,),
        )
        return [_event(row) for row in rows]

    async def count_projects(self) -> int:
        rows = await self._read("SELECT COUNT(*) FROM projects")
        return int(rows[0][0])

    # --- tokens ------------------------------------------------------------

    async def add_token(self, name: str, role: str, agency: str | None, digest: str) -> None:
        try:
            await self._write(
                "INSERT INTO tokens (name, role, agency, digest, created_at) VALUES (?,?,?,?,?)",
                (name, role, agency, digest, format_time(self.clock.now())),
            )
        except sqlite3.IntegrityError:
            raise AlreadyExists(name) from None

    async def list_tokens(self) -> list[Token]:
        rows = await self._read(
            "SELECT name, role, agency, created_at, revoked_at FROM tokens ORDER BY name",
        )
        return [Token(*row) for row in rows]

    async def revoke_token(self, name: str) -> bool:
        cursor = await self._write(
            "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (format_time(self.clock.now()), name),
        )
        return cursor.rowcount > 0

    async def token_by_digest(self, digest: str) -> Token | None:
        rows = await self._read(
            "SELECT name, role, agency, created_at, revoked_at, digest FROM tokens"
            " WHERE digest = ?",
            (digest,),
        )
        return Token(*rows[0]) if rows else None

    async def live_digests(self, digests: Collection[str]) -> set[str]:
        """Those of `digests` that belong to tokens not revoked: one query per
        few hundred, however many connections share them."""
        wanted, live = list(digests), set[str]()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = await self._read(
                "SELECT digest FROM tokens WHERE revoked_at IS NULL"
                f" AND digest IN ({','.join('?' for _ in chunk)})",
                chunk,
            )
            live.update(row[0] for row in rows)
        return live


def _new_event(seq: int, req: AppendRequest, published_at: str) -> dict[str, Any]:
    project, draft = req.project, req.draft
    return {
        "seq": seq,
        "project": project["id"],
        "category": project["category"],
        "agency": project["agency"],
        "region": project["region"],
        "stage": draft["stage"],
        "title": draft["title"],
        "body": draft["body"],
        "data": draft["data"],
        "occurred_at": draft["occurred_at"] or published_at,
        "published_at": published_at,
    }


def _events_query(since: int, topics: TopicStages | None, limit: int) -> tuple[str, list[Any]]:
    """SQL for the first `limit` events after `since` on any of `topics`.

    Every filter is answered by an index (schema.sql), never by a scan of the
    log: a topic by its column's index, a stage by events_by_stage. Several
    topics or stages are several lookups, each stopping after `limit` rows;
    the first `limit` of their union is the answer. (One query with `OR` or
    `stage IN` would read *every* match after `since` to sort them.)
    """
    if topics is None or topics.get("all", ()) is None:  # everything: the seq range alone
        return f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", [
            since,
            limit,
        ]
    branches: list[tuple[str, list[Any]]] = []
    for topic, stages in topics.items():
        kind, _, value = topic.partition(":")
        column = None if topic == "all" else TOPIC_COLUMNS[kind]
        for stage in sorted(stages) if stages is not None else [None]:
            conditions, params = [], []
            if column is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
            if stage is not None:
                # `+stage` when a project is named: its few events beat all of a stage's.
                conditions.append("+stage = ?" if kind == "project" else "stage = ?")
                params.append(stage)
            branches.append((" AND ".join(conditions), params))
    if len(branches) == 1:  # one lookup: no union to gather
        condition, params = branches[0]
        return (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? AND {condition}"
            " ORDER BY seq LIMIT ?",
            [since, *params, limit],
        )
    if len(branches) > MAX_BRANCHES:  # SQLite allows 500 per compound query
        where = " OR ".join(f"({condition})" for condition, _ in branches)
        return (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? AND ({where}) ORDER BY seq LIMIT ?",
            [since, *(p for _, params in branches for p in params), limit],
        )
    union = " UNION ".join(
        f"SELECT seq FROM (SELECT seq FROM events WHERE seq > ? AND {condition}"
        " ORDER BY seq LIMIT ?)"
        for condition, _ in branches
    )
    return (
        f"SELECT {EVENT_COLUMNS} FROM events WHERE seq IN ({union}) ORDER BY seq LIMIT ?",
        [*(p for _, params in branches for p in (since, *params, limit)), limit],
    )


def _event(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(row[0], row[1], row[2], row[3], row[4], row[5], bytes(row[6]))


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in EVENT_COLUMNS.split(","))


def _project(row: Sequence[Any]) -> dict[str, Any]:
    keys = [c.strip() for c in PROJECT_COLUMNS.split(",")]
    return dict(zip(keys, row, strict=True))


def _encode_cursor(activity_us: int, project_id: str) -> str:
    return base64.urlsafe_b64encode(f"{activity_us}:{project_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    """ValueError unless `cursor` is one `_encode_cursor` could have written: a
    forged one must not reach SQLite with a number it cannot bind (≥ 2^63)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid cursor") from None
    text, _, project_id = raw.partition(":")
    activity = whole_number(text, 0, MAX_SEQ)
    if activity is None or not CODE.fullmatch(project_id):
        raise ValueError("invalid cursor")
    return activity, project_id


async def _fetch(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    return list(await conn.execute_fetchall(sql, params))


async def _batches(cursor: aiosqlite.Cursor) -> Any:
    """Raw rows: verify judges a document stored as TEXT rather than choke on it."""
    while rows := await cursor.fetchmany(2000):
        for row in rows:
            yield row
