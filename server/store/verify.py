"""Re-computing the hash chain over stored rows, for `sunbid verify`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from server.core.events import GENESIS_HASH, StoredEvent, chain_hash
from server.store import VerifyReport


async def verify_rows(rows: AsyncIterator[Sequence[Any]]) -> VerifyReport:
    """Check rows (seq, project, category, agency, region, stage, doc) in seq
    order; report the first seq that is missing or altered.

    An edited row breaks its own hash (or, if the editor re-hashed it, the
    next row's link); a deleted row leaves a gap in `seq`; a document written
    back as TEXT (an edit by hand, with the sqlite3 shell, say) is not what
    the store wrote (a BLOB) and is reported, not read.
    """
    expected, previous = 1, GENESIS_HASH
    async for raw in rows:
        seq = raw[0]
        if seq != expected:
            return VerifyReport(expected - 1, seq, expected, f"seq {expected} is missing")
        if not isinstance(raw[6], bytes):
            kind = type(raw[6]).__name__
            return VerifyReport(
                expected - 1, seq, seq, f"the stored event is {kind}, not the bytes written"
            )
        row = StoredEvent(seq, raw[1], raw[2], raw[3], raw[4], raw[5], raw[6])
        problem = _check(row, previous)
        if problem is not None:
            return VerifyReport(expected - 1, row.seq, row.seq, problem)
        previous = orjson.loads(row.json)["hash"]
        expected += 1
    return VerifyReport(expected - 1, expected - 1, None, None)


def _check(row: StoredEvent, previous: str) -> str | None:
    try:
        event = orjson.loads(row.json)
    except orjson.JSONDecodeError:
        return "the stored event is not valid JSON"
    if not isinstance(event, dict) or not isinstance(event.get("hash"), str):
        return "the stored event has no hash"
    routing = (
        event.get("seq"),
        event.get("project"),
        event.get("category"),
        event.get("agency"),
        event.get("region"),
        event.get("stage"),
    )
    if routing != (row.seq, row.project, row.category, row.agency, row.region, row.stage):
        return "the indexed columns do not match the stored event"
    if chain_hash(previous, event) != event["hash"]:
        return "the hash does not match the event and the previous hash"
    return None


def with_missing_tail(report: VerifyReport, referenced: int) -> VerifyReport:
    """`report`, unless a record beside the log has seen seqs past its end
    (`referenced`, the records' highest cursor): then those are missing."""
    if report.first_bad_seq is None and referenced > report.head:
        return VerifyReport(
            report.checked,
            report.head,
            report.head + 1,
            f"seq {report.head + 1}..{referenced} are missing from the end",
        )
    return report
