"""The project record as a fold of the log, without I/O: lists of events in, records out."""

from __future__ import annotations

from typing import Any

import orjson

from server.core.events import StoredEvent
from server.domain import Domain
from server.projects.fold import FoldRules, ProjectFold

DOMAIN = Domain.load()
FIELDS = {"title": "某道路工程", "budget": 100.0, "currency": "CNY", "region": "330782"}


def event(
    seq: int,
    stage: str,
    published_at: str,
    *,
    project: str = "P-1",
    region: str | None = "330782",
    data: dict[str, Any] | None = None,
    occurred_at: str | None = None,
) -> StoredEvent:
    return StoredEvent.from_dict(
        {
            "seq": seq,
            "project": project,
            "category": "construction",
            "agency": "YW-GGZY",
            "region": region,
            "stage": stage,
            "title": stage,
            "body": "",
            "data": data or {},
            "occurred_at": occurred_at or published_at,
            "published_at": published_at,
        }
    )


def registered(seq: int, at: str, published_at: str | None = None, **fields: Any) -> StoredEvent:
    data = {**FIELDS, "must_tender": None, **fields}
    return event(seq, "registered", published_at or at, data=data, occurred_at=at)


def fold(events: list[StoredEvent]) -> dict[str, dict[str, Any]]:
    projection = ProjectFold(FoldRules.of(DOMAIN))
    projection.apply(events)
    assert projection.cursor == (events[-1].seq if events else 0)
    return {r.id: r.public() | {"activity_us": r.activity_us} for r in projection.registered()}


def test_registration_gives_the_record() -> None:
    [project] = fold([registered(1, "2026-12-01T09:00:00.000+08:00", must_tender=True)]).values()
    assert project == {
        "id": "P-1",
        "title": "某道路工程",
        "category": "construction",
        "agency": "YW-GGZY",
        "region": "330782",
        "budget": 100.0,
        "currency": "CNY",
        "must_tender": True,
        "stage": None,
        "created_at": "2026-12-01T09:00:00.000+08:00",
        "updated_at": "2026-12-01T09:00:00.000+08:00",
        "last_seq": 1,
        "key_dates": [],
        "closes_at": None,
        "activity_us": project["activity_us"],
    }


def test_only_lifecycle_stages_move_the_stage_and_every_event_is_activity() -> None:
    [project] = fold(
        [
            registered(1, "2026-12-01T09:00:00.000+08:00"),
            event(2, "notice", "2026-12-02T09:00:00.000+08:00"),
            event(3, "objection", "2026-12-03T09:00:00.000+08:00"),
            event(4, "correction", "2026-12-04T09:00:00.000+08:00", data={"corrects": 2}),
            event(5, "amended", "2026-12-05T09:00:00.000+08:00", data={"changes": {}}),
        ]
    ).values()
    assert project["stage"] == "notice"
    assert project["updated_at"] == "2026-12-05T09:00:00.000+08:00" and project["last_seq"] == 5
    assert project["created_at"] == "2026-12-01T09:00:00.000+08:00"


def test_amendments_change_only_the_fields_they_name_and_later_events_route_by_them() -> None:
    [project] = fold(
        [
            registered(1, "2026-12-01T09:00:00.000+08:00"),
            event(
                2,
                "amended",
                "2026-12-02T09:00:00.000+08:00",
                data={"changes": {"budget": 90.5, "region": "330783"}, "reason": "预算调整"},
            ),
            event(
                3,
                "amended",
                "2026-12-03T09:00:00.000+08:00",
                region="330783",
                data={"changes": {"title": "新名称", "must_tender": False}, "reason": "更名"},
            ),
        ]
    ).values()
    assert project["title"] == "新名称" and project["budget"] == 90.5
    assert project["region"] == "330783" and project["must_tender"] is False
    assert project["currency"] == "CNY" and project["stage"] is None


def test_a_registration_appended_after_the_events_gives_the_same_record() -> None:
    """A project created before registration was an event: the migration
    appends its `registered` event last, occurred at its old created_at."""
    created = "2026-11-01T10:00:00+08:00"
    early = fold(
        [
            registered(1, created),
            event(2, "notice", "2026-11-02T09:00:00.000+08:00"),
            event(3, "penalty", "2026-11-05T09:00:00.000+08:00"),
            event(4, "award", "2026-11-03T09:00:00.000+08:00"),  # published out of order
        ]
    )
    late = fold(
        [
            event(1, "notice", "2026-11-02T09:00:00.000+08:00"),
            event(2, "penalty", "2026-11-05T09:00:00.000+08:00"),
            event(3, "award", "2026-11-03T09:00:00.000+08:00"),
            registered(4, created, published_at="2026-12-06T12:00:00.000+08:00"),
        ]
    )
    assert early.keys() == late.keys() == {"P-1"}
    assert {k: v for k, v in late["P-1"].items() if k != "last_seq"} == {
        k: v for k, v in early["P-1"].items() if k != "last_seq"
    }
    assert late["P-1"]["stage"] == "award" and late["P-1"]["created_at"] == created
    assert late["P-1"]["updated_at"] == "2026-11-05T09:00:00.000+08:00"


def test_a_project_is_a_record_only_once_registered() -> None:
    assert fold([event(1, "notice", "2026-12-02T09:00:00.000+08:00")]) == {}
    projects = fold(
        [
            registered(1, "2026-12-01T09:00:00.000+08:00"),
            event(2, "notice", "2026-12-02T09:00:00.000+08:00", project="OTHER"),
        ]
    )
    assert list(projects) == ["P-1"]


def test_folding_in_pieces_is_folding_at_once() -> None:
    events = [
        registered(1, "2026-12-01T09:00:00.000+08:00"),
        event(2, "notice", "2026-12-02T09:00:00.000+08:00"),
        event(3, "amended", "2026-12-03T09:00:00.000+08:00", data={"changes": {"budget": 1.0}}),
        event(4, "award", "2026-12-04T09:00:00.000+08:00"),
    ]
    pieces = ProjectFold(FoldRules.of(DOMAIN))
    for one in events:
        pieces.apply([one])
    at_once = ProjectFold(FoldRules.of(DOMAIN))
    at_once.apply(events)
    assert pieces.registered() == at_once.registered() and pieces.cursor == 4


def test_the_record_stages_are_neither_publishable_nor_lifecycle() -> None:
    records = ("registered", "amended", "enquiry_answer")
    for category in DOMAIN.categories.values():
        assert not set(records) & category.stages
    assert not any(DOMAIN.is_lifecycle(stage) for stage in records)
    listed = DOMAIN.as_json()["items"][0]["stages"]
    assert [s["code"] for s in listed][-3:] == list(records)
    assert (
        orjson.dumps(listed[-3]["name"]).decode() == '{"zh":"项目登记","en":"Project registered"}'
    )


def records(events: list[StoredEvent]) -> dict[str, Any]:
    projection = ProjectFold(FoldRules.of(DOMAIN))
    projection.apply(events)
    return {r.id: r for r in projection.registered()}


def test_key_dates_are_the_latest_values_ascending_and_closes_at_the_latest_closing_one() -> None:
    events = [
        registered(1, "2026-12-01T09:00:00.000+08:00"),
        event(
            2,
            "notice",
            "2026-12-01T10:00:00.000+08:00",
            data={"deadline": "2026-12-25T09:30:00+08:00", "bid_bond": 1000},
        ),
        event(
            3,
            "clarification",
            "2026-12-05T10:00:00.000+08:00",
            data={"deadline": "2026-12-28T09:30:00+08:00"},
        ),
        event(
            4,
            "candidates",
            "2026-12-29T10:00:00.000+08:00",
            data={"publicity_ends": "2026-12-20T00:00:00+08:00"},
        ),
    ]
    record = records(events)["P-1"]
    assert record.key_dates == [
        {
            "field": "publicity_ends",
            "at": "2026-12-20T00:00:00+08:00",
            "stage": "candidates",
            "seq": 4,
        },
        {
            "field": "deadline",
            "at": "2026-12-28T09:30:00+08:00",
            "stage": "clarification",
            "seq": 3,
        },
    ]
    assert record.closes_at == "2026-12-28T09:30:00+08:00", "the clarification's replaces"
    assert not record.concluded


def test_a_correction_of_a_key_date_replaces_it_and_junk_is_not_a_date() -> None:
    events = [
        registered(1, "2026-12-01T09:00:00.000+08:00"),
        event(
            2,
            "notice",
            "2026-12-01T10:00:00.000+08:00",
            data={"listing_ends": "2026-12-20T17:00:00+08:00"},
        ),
        event(
            3,
            "notice",
            "2026-12-01T11:00:00.000+08:00",
            data={"auction_starts": "明天", "deadline": 5},
        ),
        event(
            4,
            "correction",
            "2026-12-02T10:00:00.000+08:00",
            data={
                "corrects": 2,
                "field": "listing_ends",
                "was": "x",
                "now": "2026-12-22T17:00:00+08:00",
            },
        ),
    ]
    record = records(events)["P-1"]
    assert [(d["field"], d["at"], d["seq"]) for d in record.key_dates] == [
        ("listing_ends", "2026-12-22T17:00:00+08:00", 4)
    ]
    assert record.closes_at == "2026-12-22T17:00:00+08:00"


def test_open_until_it_closes_or_concludes() -> None:
    notice = event(
        2, "notice", "2026-12-01T10:00:00.000+08:00", data={"deadline": "2026-12-25T09:30:00+08:00"}
    )
    record = records([registered(1, "2026-12-01T09:00:00.000+08:00"), notice])["P-1"]
    closes = record.closes_us
    assert record.is_open(closes - 1) and not record.is_open(closes)
    record = records(
        [
            registered(1, "2026-12-01T09:00:00.000+08:00"),
            notice,
            event(3, "failed", "2026-12-02T09:00:00.000+08:00"),
        ]
    )["P-1"]
    assert record.concluded and not record.is_open(closes - 1)
    assert not records([registered(1, "2026-12-01T09:00:00.000+08:00")])["P-1"].is_open(0), (
        "no closes_at"
    )
