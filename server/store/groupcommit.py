"""Group commit, shared by the log's backends (sqlite.py, postgres.py).

Every publisher waiting at the same moment shares one transaction: a task
takes what is queued (up to MAX_BATCH), decides each request inside the
transaction (its idempotency key, a registration's uniqueness, the checks
before publishing, against the log as it is there), assigns seq and hash,
writes the events, the records written with the log and the keys, commits,
and only then answers. A backend supplies the transaction and where the
chain's tip is read (`_commit`); the rest is here, once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from server.core.clock import Clock
from server.core.events import StoredEvent, chain_hash
from server.store import (
    AlreadyExists,
    AppendRequest,
    AppendResult,
    CommitListener,
    IdempotencyConflict,
    RecordWithLog,
    StoreUnavailable,
    as_published,
    idempotency,
)

log = logging.getLogger("sunbid.store")
MAX_BATCH = 256
EVENT_COLUMNS = "seq, project, category, agency, region, stage, doc"
# Each request's outcome (None: to be decided in the next batch), the new
# events, the idempotency keys to record.
Outcome = AppendResult | Exception | None
Outcomes = tuple[list[Outcome], list[StoredEvent], list[tuple[str, str, str, int]]]


@dataclass(frozen=True)
class CheckedRecord:
    """What an append reads of its project's record in the writer's transaction."""

    key_dates: list[dict[str, Any]]  # each key date's latest value and the seq stating it
    region: str | None  # where the project's events are routed now


@dataclass
class Pending:
    request: AppendRequest
    future: asyncio.Future[AppendResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


# A checked event's data and occurred_at, from its stored document.
# CAST: a BLOB is JSONB to SQLite 3.45 and later; the log holds JSON text.
DATA_AND_TIME = (
    "SELECT seq, stage, json_extract(d, '$.data'), json_extract(d, '$.occurred_at')"
    " FROM (SELECT seq, stage, CAST(doc AS TEXT) AS d FROM events"
    " WHERE seq IN ({union})) ORDER BY seq"
)


class GroupCommitLog:
    """The queue of appends and the one task that commits them, a batch at a time."""

    readonly = False
    postgres = False  # which SQL the records beside the log speak (server/core/pg.py)
    # The latest event's seq where `where` holds (an index lookup, backwards).
    LATEST = "SELECT MAX(seq) FROM events WHERE {where}"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.head = 0  # the last event handed to listeners: what clients can see
        self.commits = 0  # transactions that appended events: shows group commit at work
        self._listeners: list[CommitListener] = []
        self._with_log: list[RecordWithLog] = []
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        # One transaction at a time on the writer: a token or a rebuild written
        # in the middle of a batch would share its fate.
        self._write_lock = asyncio.Lock()
        self._writer_task: asyncio.Task[None] | None = None

    def on_commit(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    def write_with_log(self, record: RecordWithLog) -> None:
        """Have `record` written in every append's transaction (call before `open`)."""
        self._with_log.append(record)

    async def append(self, request: AppendRequest) -> AppendResult:
        if self.readonly:
            raise StoreUnavailable("this store was opened read-only")
        pending = Pending(request)
        self._queue.put_nowait(pending)
        return await pending.future

    def _start_writer(self) -> None:
        self._writer_task = asyncio.create_task(self._write_loop(), name="sunbid-log-writer")

    async def _stop_writer(self) -> None:
        if self._writer_task is not None:
            self._writer_task.cancel()
            await asyncio.gather(self._writer_task, return_exceptions=True)
            self._writer_task = None

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            self._gather(batch)
            try:
                async with self._write_lock:
                    await self._commit(batch)
            except Exception:  # the one writer must never die
                log.exception("appending a batch of %d events failed", len(batch))
                await self._after_failure()
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(StoreUnavailable("internal error"))

    def _gather(self, batch: list[Pending]) -> None:
        """Add what was queued meanwhile to `batch` (in place), up to MAX_BATCH."""
        while len(batch) < MAX_BATCH and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    async def _commit(self, batch: list[Pending]) -> None:
        raise NotImplementedError

    async def _after_failure(self) -> None:
        """Re-read what a failed commit may have left unknown (the tip of the chain)."""

    async def _assign(self, conn: Any, batch: list[Pending], head: int, last_hash: str) -> Outcomes:
        """Inside the transaction: each request's outcome (a new event with its
        seq and hash, the event an earlier use of its key made, or an error),
        the new events, and the idempotency keys to record."""
        earlier = await idempotency.earlier_keys(
            conn,
            [(p.request.project["id"], k) for p in batch if (k := p.request.idempotency_key)],
        )
        registered = await self._registered(conn, batch)
        logs, regions = await self._project_logs(conn, batch)
        outcomes: list[Outcome] = []
        rerouted: set[str] = set()  # projects whose record an unchecked request changes
        created: list[StoredEvent] = []
        keys: list[tuple[str, str, str, int]] = []
        now = self.clock.now()
        for pending in batch:
            req = pending.request
            project_id = req.project["id"]
            if req.idempotency_key is not None and (project_id, req.idempotency_key) in earlier:
                fingerprint, previous = earlier[(project_id, req.idempotency_key)]
                if fingerprint != req.fingerprint:
                    outcomes.append(IdempotencyConflict())
                else:
                    outcomes.append(AppendResult(previous, created=False))
                continue
            if req.once:
                if project_id in registered:
                    outcomes.append(AlreadyExists(project_id))
                    continue
                registered.add(project_id)
            if req.check is not None and project_id in rerouted:
                # An earlier request of this batch changes the project's record
                # (an amendment may move its region): decided in the next
                # batch, against the record as that one writes it.
                outcomes.append(None)
                continue
            published = (req.published_at or now).isoformat(timespec="milliseconds")
            project = req.project
            if project_id in regions:  # routed as the record is now, not as the request read it
                project = {**project, "region": regions[project_id]}
            event = {"seq": head + 1, **as_published(project, req.draft, published)}
            if req.check is not None:
                candidate = {k: v for k, v in event.items() if k != "seq"}
                try:
                    refused = req.check(logs[project_id], candidate)
                except Exception as exc:  # a faulty check fails its request, not the batch
                    log.exception("checking an event of %s failed", project_id)
                    refused = exc
                if refused is not None:
                    outcomes.append(refused)
                    continue
            head += 1
            event["hash"] = last_hash = chain_hash(last_hash, event)
            stored = StoredEvent.from_dict(event)
            if project_id in logs:  # a later check in this batch sees it
                logs[project_id].append(event)
            created.append(stored)
            outcomes.append(AppendResult(stored, created=True))
            if req.check is None:
                rerouted.add(project_id)
            if req.idempotency_key is not None:
                keys.append((project_id, req.idempotency_key, req.fingerprint, head))
                earlier[(project_id, req.idempotency_key)] = (req.fingerprint, stored)
        return outcomes, created, keys

    async def _registered(self, conn: Any, batch: list[Pending]) -> set[str]:
        """The projects of `once` requests whose stage the log already holds:
        decided in the writer's transaction, so of two racing creates one wins."""
        asked = [
            (p.request.project["id"], p.request.draft["stage"]) for p in batch if p.request.once
        ]
        if not asked:
            return set()
        values = ",".join("(?,?)" for _ in asked)
        rows = await conn.execute_fetchall(
            f"SELECT DISTINCT project FROM events WHERE (project, stage) IN (VALUES {values})",
            [part for pair in asked for part in pair],
        )
        return {row[0] for row in rows}

    async def _project_logs(
        self, conn: Any, batch: list[Pending]
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str | None]]:
        """What the checks read of each project a checked request publishes to,
        read in the writer's transaction: the log as the batch is decided; and
        each such project's region as its record holds it there (the request
        was made from what may be an older read of it, server/api/staff.py).

        Not every event: a document is parsed whole, bodies included, and a
        project of many long notices would cost each publisher all of them.
        The project's latest event; of each stage in `check_reads` every event
        ("all") or the latest; the events a draft names by seq; and each key
        date's latest value, from the projects record written with the log,
        added to the event that stated it. Each is an index lookup
        (events_by_project_stage), whatever the project's length."""
        wanted: dict[str, tuple[dict[str, str], set[int]]] = {}
        for pending in batch:
            req = pending.request
            if req.check is None:
                continue
            reads, refs = wanted.setdefault(req.project["id"], ({}, set()))
            for stage, how in (req.check_reads or {}).items():
                reads[stage] = "all" if "all" in (how, reads.get(stage)) else how
            refs.update(_seqs_named(req.draft.get("data")))
        logs: dict[str, list[dict[str, Any]]] = {}
        regions: dict[str, str | None] = {}
        for project_id, (reads, refs) in wanted.items():
            parts = [self.LATEST.format(where="project = ?")]
            params: list[Any] = [project_id]
            for stage, how in sorted(reads.items()):
                if how == "all":
                    parts.append("SELECT seq FROM events WHERE project = ? AND stage = ?")
                else:
                    parts.append(self.LATEST.format(where="project = ? AND stage = ?"))
                params += [project_id, stage]
            if refs:
                marks = ",".join("?" for _ in refs)
                parts.append(f"SELECT seq FROM events WHERE project = ? AND seq IN ({marks})")
                params += [project_id, *sorted(refs)]
            rows, record = await self._checked_rows(conn, project_id, parts, params)
            key_dates: list[dict[str, Any]] = []
            if record is not None:
                key_dates, regions[project_id] = record.key_dates, record.region
            events = {
                seq: {
                    "seq": seq,
                    "stage": stage,
                    "data": orjson.loads(data or "{}"),
                    "occurred_at": occurred,
                }
                for seq, stage, data, occurred in rows
            }
            for date in key_dates:  # a correction states it as `field` and `now`
                stated = events.get(date["seq"])
                if stated is not None and date["stage"] != "correction":
                    stated["data"] = {**stated["data"], date["field"]: date["at"]}
            logs[project_id] = list(events.values())
        return logs, regions

    async def _checked_rows(
        self, conn: Any, project_id: str, parts: list[str], params: list[Any]
    ) -> tuple[list[Any], CheckedRecord | None]:
        """(seq, stage, data, occurred_at) of the events `parts` select and of
        those stating the project's key dates; and what the checks and the
        event read of the project's record (None if it has none)."""
        found = await conn.execute_fetchall(
            "SELECT key_dates, region FROM projects WHERE id = ?", (project_id,)
        )
        record = CheckedRecord(orjson.loads(found[0][0]), found[0][1]) if found else None
        key_dates = record.key_dates if record is not None else []
        if key_dates:
            marks = ",".join("?" for _ in key_dates)
            parts = [*parts, f"SELECT seq FROM events WHERE project = ? AND seq IN ({marks})"]
            params = [*params, project_id, *(date["seq"] for date in key_dates)]
        rows = await conn.execute_fetchall(
            DATA_AND_TIME.format(union=" UNION ".join(parts)), params
        )
        return rows, record

    async def _write_batch(
        self, conn: Any, created: list[StoredEvent], keys: list[tuple[str, str, str, int]]
    ) -> None:
        """The new events, the records written with the log, the keys: one transaction."""
        if not created:
            return
        for record in self._with_log:  # first: an event row references its project's
            await record.write(conn, created)
        await conn.executemany(
            f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
            [(e.seq, e.project, e.category, e.agency, e.region, e.stage, e.json) for e in created],
        )
        await idempotency.record_keys(conn, keys)

    def _answer(
        self,
        batch: list[Pending],
        outcomes: list[Outcome],
        created: list[StoredEvent],
    ) -> None:
        # Durable now: answer the publishers first, then hand the events to
        # the listeners in a callback of their own, so a fan-out to thousands
        # does not hold back the 201s. Callbacks run in order, so batches
        # reach listeners in seq order.
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future.done():  # the publisher went away
                continue
            if outcome is None:
                self._queue.put_nowait(pending)
            elif isinstance(outcome, Exception):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)
        if created:  # after the publishers' wake-ups, which are queued first
            asyncio.get_running_loop().call_soon(self._announce, created)

    def _announce(self, created: list[StoredEvent]) -> None:
        # `head` moves with no await before the listeners run: a client that
        # reads `head` and then joins the hub misses nothing and gets nothing twice.
        # With several processes on one log a batch may come after events
        # another process committed and this one has not handed on yet: then
        # the bus moves `head`, once it has read those from the log (server/bus/).
        if created[0].seq == self.head + 1:
            self.head = created[-1].seq
        for listener in self._listeners:
            try:
                listener(created)
            except Exception:
                log.exception("a commit listener failed")


def hash_of(event: StoredEvent) -> str:
    return str(orjson.loads(event.json)["hash"])


def _seqs_named(data: object) -> set[int]:
    """The whole numbers among a draft's data values: the seqs it may name."""
    if not isinstance(data, dict):
        return set()
    return {
        value
        for value in data.values()
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63
    }
