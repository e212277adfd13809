"""The log's read queries, shared by the backends (SQL with `?` placeholders)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.core.events import StoredEvent
from server.store import TopicStages
from server.store.groupcommit import EVENT_COLUMNS

# Lookups in one events query; beyond, one query with OR (still indexed, sorted in full).
MAX_BRANCHES = 64
TOPIC_COLUMNS = {
    "project": "project",
    "category": "category",
    "agency": "agency",
    "region": "region",
}


def events_query(
    since: int, topics: TopicStages | None, limit: int, *, postgres: bool = False
) -> tuple[str, list[Any]]:
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
    branches = _branches(topics, postgres)
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
        " ORDER BY seq LIMIT ?) AS branch"
        for condition, _ in branches
    )
    # PostgreSQL: `= ANY (ARRAY(…))`, so the few seqs are gathered first and each
    # row read by the primary key (it may plan `IN (…)` as a scan of every event).
    among = f"= ANY (ARRAY({union}))" if postgres else f"IN ({union})"
    return (
        f"SELECT {EVENT_COLUMNS} FROM events WHERE seq {among} ORDER BY seq LIMIT ?",
        [*(p for _, params in branches for p in (since, *params, limit)), limit],
    )


def _branches(topics: TopicStages, postgres: bool) -> list[tuple[str, list[Any]]]:
    """One indexed lookup (condition, parameters) per topic and stage."""
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
                # `+stage` when a project is named: its few events beat all of a
                # stage's (SQLite's way to keep an index out; PostgreSQL's planner
                # weighs the two by its statistics).
                unindexed = kind == "project" and not postgres
                conditions.append("+stage = ?" if unindexed else "stage = ?")
                params.append(stage)
            branches.append((" AND ".join(conditions), params))
    return branches


def newest_query(
    topics: TopicStages | None, limit: int, *, postgres: bool = False
) -> tuple[str, list[Any]]:
    """SQL for the newest `limit` events on any of `topics`, newest first: each
    lookup reads its index backward and stops after `limit` rows, as in
    `events_query`."""
    if topics is None or topics.get("all", ()) is None:
        return f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq DESC LIMIT ?", [limit]
    branches = _branches(topics, postgres)
    if len(branches) == 1 or len(branches) > MAX_BRANCHES:
        where = " OR ".join(f"({condition})" for condition, _ in branches)
        return (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} ORDER BY seq DESC LIMIT ?",
            [*(p for _, params in branches for p in params), limit],
        )
    union = " UNION ".join(
        f"SELECT seq FROM (SELECT seq FROM events WHERE {condition}"
        " ORDER BY seq DESC LIMIT ?) AS branch"
        for condition, _ in branches
    )
    among = f"= ANY (ARRAY({union}))" if postgres else f"IN ({union})"
    return (
        f"SELECT {EVENT_COLUMNS} FROM events WHERE seq {among} ORDER BY seq DESC LIMIT ?",
        [*(p for _, params in branches for p in (*params, limit)), limit],
    )


def event_of(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(row[0], row[1], row[2], row[3], row[4], row[5], bytes(row[6]))
