"""Fast in-process tests of the pure parts: topics, the hub, the vocabulary and
input validation, settings, and the per-connection sender. No server, no sockets.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from push.settings import PushSettings
from server.core.datafile import DataFileError
from server.core.errors import ApiError
from server.core.events import StoredEvent
from server.core.frames import Frames
from server.core.numbers import whole_number
from server.core.text import line_problem, text_problem
from server.core.topics import (
    TopicFilter,
    parse_topic,
    refuse_unless_allowed,
    required_roles,
    topics_of,
)
from server.directory import DIRECTORY_FILE, Directory, DirectoryFileError
from server.domain import CATEGORIES_FILE, Domain, DomainFileError
from server.hub import Hub
from server.settings import Settings, SettingsError
from server.stream.peer import Peer
from server.stream.sender import Sender

SHANGHAI = ZoneInfo("Asia/Shanghai")
DOMAIN = Domain.load()


def event(
    seq: int,
    project: str = "P-1",
    category: str = "construction",
    agency: str = "AG-1",
    region: str | None = "330782",
    stage: str = "notice",
) -> StoredEvent:
    return StoredEvent.from_dict(
        {
            "seq": seq,
            "project": project,
            "category": category,
            "agency": agency,
            "region": region,
            "stage": stage,
            "title": "t",
            "body": "",
            "data": {},
            "occurred_at": "2026-12-01T09:30:00+08:00",
            "published_at": "2026-12-01T09:30:00+08:00",
            "hash": "0" * 64,
        }
    )


# --- topics --------------------------------------------------------------------------


def test_topics_of_an_event() -> None:
    assert topics_of(event(1)) == (
        "all",
        "project:P-1",
        "category:construction",
        "agency:AG-1",
        "region:330782",
    )
    assert topics_of(event(1, region=None)) == (
        "all",
        "project:P-1",
        "category:construction",
        "agency:AG-1",
    )
    assert "region:" not in topics_of(event(1, region=""))


def test_topic_filter_matches_topics_and_stages() -> None:
    follow = TopicFilter()
    assert not follow.matches(event(1))
    follow.stages_by_topic["category:construction"] = frozenset({"notice"})
    assert follow.matches(event(1, stage="notice"))
    assert not follow.matches(event(2, stage="award"))
    assert not follow.matches(event(3, category="land", stage="notice"))
    # Another topic with no stage filter widens the match for its events only.
    follow.stages_by_topic["project:P-9"] = None
    assert follow.matches(event(4, project="P-9", stage="award"))
    assert not follow.matches(event(5, project="P-8", stage="award"))
    follow.stages_by_topic["region:330782"] = frozenset({"award", "objection"})
    assert follow.matches(event(6, project="P-8", stage="award"))
    assert not follow.matches(event(7, project="P-8", stage="bid_opening"))
    assert not follow.matches(event(8, project="P-8", region=None, stage="award"))
    # Replacing a topic's stages widens it; removing the topic stops the match.
    follow.stages_by_topic["category:construction"] = None
    assert follow.matches(event(9, stage="bid_opening"))
    for topic in ("category:construction", "region:330782"):
        del follow.stages_by_topic[topic]
    assert not follow.matches(event(10, stage="bid_opening"))
    assert list(follow.stages_by_topic) == ["project:P-9"]


def test_topic_filter_all_and_staff_topics() -> None:
    follow = TopicFilter()
    follow.stages_by_topic["all"] = frozenset({"award"})
    follow.stages_by_topic["supervision"] = None
    assert follow.matches(event(1, category="land", stage="award"))
    assert not follow.matches(event(2, stage="notice"))
    assert dict(follow.public()) == {"all": frozenset({"award"})}


@pytest.mark.parametrize("role", [None, "publisher", "supervisor", "admin", "nobody"])
def test_one_rule_decides_who_follows_a_topic(role: str | None) -> None:
    assert required_roles("supervision") == {"supervisor", "admin"}
    assert required_roles("all") is None and required_roles("project:P-1") is None
    refuse_unless_allowed(["all", "project:P-1", "region:330782"], role)  # public: anyone
    if role in {"supervisor", "admin"}:
        refuse_unless_allowed(["all", "supervision"], role)
    else:
        with pytest.raises(ApiError) as refused:
            refuse_unless_allowed(["all", "supervision"], role)
        assert (refused.value.status, refused.value.code) == (403, "forbidden")
        assert "supervision" in refused.value.message and "/ws" in refused.value.message


@pytest.mark.parametrize(
    "topic",
    ["all", "supervision", "project:YW-2026.1_a", "category:land", "agency:X", "region:330782"],
)
def test_parse_topic_accepts(topic: str) -> None:
    assert parse_topic(topic, DOMAIN.categories) == topic


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "ALL",
        "project:",
        "project",
        "category:roads",
        "kind:x",
        "project:a b",
        "project:" + "x" * 65,
        5,
        None,
        ["all"],
        "region:中文",
    ],
)
def test_parse_topic_rejects(topic: object) -> None:
    with pytest.raises(ApiError) as caught:
        parse_topic(topic, DOMAIN.categories)
    assert caught.value.status == 422 and caught.value.code == "invalid_topic"


# --- the hub ---------------------------------------------------------------------------


class Recorder:
    """A subscriber that records the seqs it is handed."""

    def __init__(self) -> None:
        self.seen = 0
        self.got: list[int] = []
        self.frames: list[Frames] = []
        self.notices: list[Any] = []

    def deliver(self, frames: Frames) -> None:
        self.got.append(frames.event.seq)
        self.frames.append(frames)

    def notice(self, message: Any) -> None:
        self.notices.append(message)


def test_hub_sends_warnings_only_to_supervision_followers() -> None:
    hub = Hub()
    supervisor, bidder = Recorder(), Recorder()
    hub.add(supervisor, {"supervision": None, "all": None})
    hub.add(bidder, {"all": None})
    message = {"type": "websocket.send", "text": '{"op":"warning"}'}
    hub.warn(message)
    assert supervisor.notices == [message] and bidder.notices == []
    assert supervisor.got == [] and supervisor.seen == 0  # not an event: no seq moves


def test_hub_delivers_once_across_matching_topics() -> None:
    hub = Hub()
    both, project_only, other = Recorder(), Recorder(), Recorder()
    hub.add(both, {"all": None, "project:P-1": None, "agency:AG-1": None})
    hub.add(project_only, {"project:P-1": None})
    hub.add(other, {"project:P-2": None})
    hub.dispatch([event(1), event(2, project="P-2"), event(3)])
    assert both.got == [1, 2, 3]
    assert project_only.got == [1, 3]
    assert other.got == [2]
    # Every recipient shares the one frame built for the event.
    assert both.frames[0] is project_only.frames[0]
    assert both.frames[0].websocket["text"].startswith('{"op":"event","event":{"seq":1,')


def test_hub_never_delivers_a_seq_twice_or_backwards() -> None:
    hub = Hub()
    subscriber = Recorder()
    hub.add(subscriber, {"all": None})
    hub.dispatch([event(1), event(2)])
    hub.dispatch([event(2), event(1)])  # already seen
    subscriber.seen = 5  # e.g. a replay got that far
    hub.dispatch([event(4), event(5), event(6)])
    assert subscriber.got == [1, 2, 6]


def test_hub_stage_filters_per_topic() -> None:
    hub = Hub()
    tenders, follower = Recorder(), Recorder()
    hub.add(tenders, {"category:construction": frozenset({"notice"})})
    hub.add(follower, {"category:construction": frozenset({"notice"}), "project:P-7": None})
    hub.dispatch(
        [
            event(1, stage="notice"),
            event(2, stage="award"),
            event(3, project="P-7", stage="award"),
            event(4, category="land", stage="notice"),
            event(5, project="P-7", stage="notice"),
        ]
    )
    assert tenders.got == [1, 5]
    assert follower.got == [1, 3, 5]


def test_hub_unsubscribe() -> None:
    hub = Hub()
    subscriber, stays = Recorder(), Recorder()
    hub.add(subscriber, {"project:P-1": None, "agency:AG-1": None})
    hub.add(stays, {"project:P-1": None})
    assert hub.subscriber_count("project:P-1") == 2
    hub.dispatch([event(1)])
    hub.remove(subscriber, ["project:P-1"])
    hub.dispatch([event(2)])  # still on agency:AG-1
    hub.remove(subscriber, ["agency:AG-1", "never-followed"])
    hub.dispatch([event(3)])
    assert subscriber.got == [1, 2]
    assert stays.got == [1, 2, 3]
    assert hub.subscriber_count("agency:AG-1") == 0
    assert hub.subscriber_count("project:P-1") == 1
    hub.remove(stays, ["project:P-1"])
    assert hub.subscriber_count("project:P-1") == 0
    hub.dispatch([event(4)])
    assert stays.got == [1, 2, 3]


def test_hub_resubscribe_changes_stages() -> None:
    hub = Hub()
    subscriber = Recorder()
    hub.add(subscriber, {"all": frozenset({"award"})})
    hub.dispatch([event(1, stage="notice"), event(2, stage="award")])
    hub.add(subscriber, {"all": None})
    hub.dispatch([event(3, stage="notice")])
    assert subscriber.got == [2, 3]


# --- the vocabulary file ------------------------------------------------------------------


def test_the_shipped_vocabulary() -> None:
    assert list(DOMAIN.categories) == [
        "construction",
        "gov_procurement",
        "state_assets",
        "land",
        "mining",
        "soe_procurement",
        "rural_property",
        "emission_rights",
    ]
    oversight = {
        "objection",
        "objection_reply",
        "complaint",
        "complaint_decision",
        "penalty",
        "penalty_withdrawn",
        "correction",
    }
    assert {s.code for s in DOMAIN.stages.values() if s.oversight} == oversight
    for category in DOMAIN.categories.values():
        assert oversight <= category.stages
        assert {"notice", "clarification", "award", "contract", "performance", "failed"} <= set(
            category.lifecycle
        )
    assert "bid_opening" in DOMAIN.categories["construction"].lifecycle
    assert "auction" not in DOMAIN.categories["construction"].stages
    assert "auction" in DOMAIN.categories["land"].lifecycle
    assert DOMAIN.categories["gov_procurement"].lifecycle[0] == "plan"
    assert DOMAIN.is_lifecycle("award") and not DOMAIN.is_lifecycle("objection")


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = CATEGORIES_FILE.read_text("utf-8")
    assert old in text, old
    path = tmp_path / "categories.toml"
    path.write_text(text.replace(old, new, 1), "utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ('zh = "招标/采购/出让/挂牌公告"\n', "", ["stages.notice.zh"]),
        ('en = "Bid opening"', 'en = ""', ["stages.bid_opening.en"]),
        (
            'en = "Objection / challenge"\noversight = true',
            'en = "Objection / challenge"\noversight = "yes"',
            ["stages.objection.oversight"],
        ),
        (
            'stages = ["notice", "clarification", "auction", "award", "contract", "performance",'
            ' "failed"]\n\n[categories.mining]',
            'stages = ["notice", "bogus"]\n\n[categories.mining]',
            ["categories.land.stages", "bogus"],
        ),
        (
            'stages = ["notice", "clarification", "auction", "award", "contract", "performance",'
            ' "failed"]\n\n[categories.mining]',
            'stages = ["notice", "objection"]\n\n[categories.mining]',
            ["categories.land.stages", "objection"],
        ),
        (
            'stages = ["notice", "clarification", "auction", "award", "contract", "performance",'
            ' "failed"]\n\n[categories.mining]',
            "stages = []\n\n[categories.mining]",
            ["categories.land.stages"],
        ),
        ('board = "KYQ"\n', "", ["categories.mining.board"]),
        ('board = "KYQ"', "board = 7", ["categories.mining.board"]),
        ("[stages.plan]", '[stages."no spaces allowed"]', ["stages.no spaces allowed"]),
    ],
)
def test_a_broken_vocabulary_names_file_entry_and_field(
    tmp_path: Path, old: str, new: str, names: list[str]
) -> None:
    path = broken_copy(tmp_path, old, new)
    with pytest.raises(DomainFileError) as caught:
        Domain.load(path)
    message = str(caught.value)
    assert str(path) in message
    for name in names:
        assert name in message, message


def test_a_vocabulary_without_categories(tmp_path: Path) -> None:
    path = tmp_path / "categories.toml"
    path.write_text(
        CATEGORIES_FILE.read_text("utf-8").replace("[categories.", "[category."), "utf-8"
    )
    with pytest.raises(DomainFileError) as caught:
        Domain.load(path)
    assert str(path) in str(caught.value) and "categories" in str(caught.value)


def test_a_misspelled_table_is_not_silently_ignored(tmp_path: Path) -> None:
    """A typo in one table header must not make a category (or stage) vanish."""
    path = broken_copy(tmp_path, "[categories.mining]", "[categoris.mining]")
    with pytest.raises(DomainFileError) as caught:
        Domain.load(path)
    assert str(path) in str(caught.value) and "categoris" in str(caught.value)


def test_a_vocabulary_that_is_not_toml_or_missing(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, "[stages.plan]", "[stages.plan")
    with pytest.raises(DomainFileError) as caught:
        Domain.load(path)
    assert str(path) in str(caught.value) and "line" in str(caught.value)
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(DomainFileError) as caught:
        Domain.load(missing)
    assert str(missing) in str(caught.value)


def test_a_changed_vocabulary_is_used(tmp_path: Path) -> None:
    path = broken_copy(tmp_path, 'en = "Land use rights"', 'en = "Land use rights (edited)"')
    assert Domain.load(path).categories["land"].en == "Land use rights (edited)"


# --- the directory of agencies and regions ---------------------------------------------------


def test_the_shipped_directory() -> None:
    directory = Directory.load()
    assert directory.agencies["YW-GGZY"].zh == "义乌市公共资源交易中心"
    assert directory.agencies["YW-GGZY"].link == "330782"
    assert directory.regions["330782001"].en == "Choucheng Subdistrict"
    assert directory.regions["330782001"].link == "330782"
    assert directory.regions["330782"].link is None
    body = orjson.loads(directory.body)
    assert [a["code"] for a in body["agencies"]] == list(directory.agencies)
    yiwu = {"code": "330782", "zh": "义乌市", "en": "Yiwu City", "parent": None}
    assert body["regions"][0] == yiwu
    assert directory.etag.startswith('"') and directory.etag.endswith('"')


def directory_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = DIRECTORY_FILE.read_text("utf-8")
    assert old in text, old
    path = tmp_path / "directory.toml"
    path.write_text(text.replace(old, new, 1), "utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ('zh = "义乌市政府采购中心"\n', "", "agencies.YW-ZFCG.zh"),
        ('en = "Yiwu Government Procurement Center"', 'en = "  "', "agencies.YW-ZFCG.en"),
        ('zh = "义乌产权交易所"', "zh = 7", "agencies.YW-CQJYS.zh"),
        ('en = "Yiwu City"\n', 'en = "Yiwu City"\nname = "义乌"\n', "regions.330782.name"),
        (
            'en = "Yiwu Property Rights Exchange"\nregion = "330782"',
            'en = "Yiwu Property Rights Exchange"\nregion = "330799"',
            "agencies.YW-CQJYS.region",
        ),
        (
            'en = "Yiwu Property Rights Exchange"\nregion = "330782"',
            'en = "Yiwu Property Rights Exchange"\nregion = "no spaces"',
            "agencies.YW-CQJYS.region",
        ),
        (
            'en = "Yiwu Property Rights Exchange"\nregion = "330782"',
            'en = "Yiwu Property Rights Exchange"\nregion = 330782',
            "agencies.YW-CQJYS.region",
        ),
        (
            'en = "Choujiang Subdistrict"\nparent = "330782"',
            'en = "Choujiang Subdistrict"\nparent = "123"',
            "regions.330782003.parent",
        ),
        (
            'en = "Choujiang Subdistrict"\nparent = "330782"',
            'en = "Choujiang Subdistrict"\nparent = "330782003"',
            "regions.330782003.parent",
        ),
        ('en = "Yiwu City"\n', 'en = "Yiwu City"\nparent = "330782001"\n', "regions.330782"),
        ("[agencies.YW-PWQ]", '[agencies."YW PWQ"]', "agencies.YW PWQ"),
        ("[regions.330782106]", '[regions."330782/106"]', "regions.330782/106"),
        ("[agencies.YW-PWQ]", "[agency.YW-PWQ]", "agency"),
        ("[agencies.YW-PWQ]\n", "agencies = 3\n[agencie.YW-PWQ]\n", "agencies"),
        ("[regions.330782106]", "[regions.330782106", "line"),
        # Names that would display as something else (bidi override, control character).
        ('en = "Yiwu City"', 'en = "Yiwu \\u202eytiC"', "regions.330782.en"),
        ('zh = "义乌产权交易所"', 'zh = "义乌\\u0000产权交易所"', "agencies.YW-CQJYS.zh"),
        ('zh = "义乌产权交易所"', 'zh = "义乌\\u2067产权交易所"', "agencies.YW-CQJYS.zh"),
    ],
)
def test_a_broken_directory_names_file_entry_and_field(
    tmp_path: Path, old: str, new: str, named: str
) -> None:
    path = directory_copy(tmp_path, old, new)
    with pytest.raises(DirectoryFileError) as caught:
        Directory.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert named in message, message
    assert isinstance(caught.value, DataFileError)  # `sunbid serve` stops with the message


def test_a_missing_directory_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(DirectoryFileError) as caught:
        Directory.load(missing)
    assert str(missing) in str(caught.value)


def test_an_empty_directory_is_allowed(tmp_path: Path) -> None:
    """A centre may start without names: every code is then shown as it is."""
    path = tmp_path / "directory.toml"
    path.write_text("# nothing named yet\n", "utf-8")
    directory = Directory.load(path)
    assert directory.agencies == {} and directory.regions == {}
    assert orjson.loads(directory.body) == {"agencies": [], "regions": []}


def test_an_edited_directory_is_used(tmp_path: Path) -> None:
    path = directory_copy(tmp_path, 'zh = "稠城街道"', 'zh = "稠城街道（改）"')
    assert Directory.load(path).regions["330782001"].zh == "稠城街道（改）"
    assert Directory.load(path).etag != Directory.load().etag


# --- validation of what staff post ----------------------------------------------------------


def project(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "YW-1",
        "title": " 某道路工程 ",
        "category": "construction",
        "agency": "YW-GGZY",
    }
    body.update(fields)
    return body


def test_project_input_normalises() -> None:
    assert DOMAIN.project_input(project()) == {
        "id": "YW-1",
        "title": "某道路工程",
        "category": "construction",
        "agency": "YW-GGZY",
        "region": None,
        "budget": None,
        "currency": "CNY",
        "must_tender": None,
    }
    full = DOMAIN.project_input(project(region="330782", budget=12.5, currency="USD"))
    assert (full["region"], full["budget"], full["currency"]) == ("330782", 12.5, "USD")
    assert DOMAIN.project_input(project(budget=0))["budget"] == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", None),
        ("id", ""),
        ("id", "a b"),
        ("id", "x" * 65),
        ("id", 1),
        ("title", None),
        ("title", " "),
        ("title", "x" * 201),
        ("title", ["t"]),
        ("category", None),
        ("category", "roads"),
        ("category", "Construction"),
        ("category", ["land"]),
        ("category", {"code": "land"}),
        ("agency", None),
        ("agency", "中"),
        ("region", ""),
        ("region", 1),
        ("budget", -0.01),
        ("budget", "1"),
        ("budget", True),
        ("budget", float("nan")),
        ("budget", float("inf")),
        ("currency", "cny"),
        ("currency", "CN"),
        ("currency", None),
        ("currency", "ÄÖÜ"),
    ],
)
def test_project_input_rejects_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ApiError) as caught:
        DOMAIN.project_input(project(**{field: value}))
    assert caught.value.status == 422
    assert caught.value.details == {"field": field}
    assert caught.value.message.startswith(field)


@pytest.mark.parametrize("body", [None, [], "x", 1, True])
def test_project_input_needs_an_object(body: Any) -> None:
    with pytest.raises(ApiError) as caught:
        DOMAIN.project_input(body)
    assert caught.value.status == 422


def test_project_input_names_unknown_fields() -> None:
    with pytest.raises(ApiError) as caught:
        DOMAIN.project_input(project(colour="red", size=1))
    assert caught.value.status == 422 and caught.value.code == "unknown_field"
    assert "colour" in caught.value.message and "size" in caught.value.message
    assert "title" in caught.value.details["allowed"]


def test_event_input_normalises() -> None:
    draft = DOMAIN.event_input(
        {
            "stage": "bid_opening",
            "title": " 开标 ",
            "body": "正文",
            "data": {"bidders": 7},
            "occurred_at": "2026-12-01T01:30:00Z",
        },
        "construction",
        SHANGHAI,
    )
    assert draft == {
        "stage": "bid_opening",
        "title": "开标",
        "body": "正文",
        "data": {"bidders": 7},
        "occurred_at": "2026-12-01T09:30:00+08:00",
    }
    minimal = DOMAIN.event_input({"stage": "objection", "title": "异议"}, "land", SHANGHAI)
    assert minimal == {
        "stage": "objection",
        "title": "异议",
        "body": "",
        "data": {},
        "occurred_at": None,
    }
    # (A clarification: a land notice must also state when its listing ends.)
    fraction = DOMAIN.event_input(
        {"stage": "clarification", "title": "t", "occurred_at": "2026-12-01T09:30:00.250+08:00"},
        "land",
        SHANGHAI,
    )
    assert fraction["occurred_at"] == "2026-12-01T09:30:00.250+08:00"
    utc = DOMAIN.event_input(
        {"stage": "clarification", "title": "t", "occurred_at": "2026-12-01T09:30:00+08:00"},
        "land",
        ZoneInfo("UTC"),
    )
    assert utc["occurred_at"] == "2026-12-01T01:30:00+00:00"


def test_event_input_stage_must_be_in_the_category() -> None:
    for stage in ("auction", "plan", "nope", None, 1):
        with pytest.raises(ApiError) as caught:
            DOMAIN.event_input({"stage": stage, "title": "t"}, "construction", SHANGHAI)
        assert caught.value.status == 422 and caught.value.details["field"] == "stage"
        assert set(caught.value.details["allowed"]) == DOMAIN.categories["construction"].stages
    # Oversight stages are allowed in every category.
    for category in DOMAIN.categories:
        assert (
            DOMAIN.event_input({"stage": "complaint", "title": "t"}, category, SHANGHAI)["stage"]
            == "complaint"
        )


@pytest.mark.parametrize("stage", [["notice"], {"notice": 1}])
def test_event_input_unhashable_stage_is_an_invalid_field(stage: Any) -> None:
    with pytest.raises(ApiError) as caught:
        DOMAIN.event_input({"stage": stage, "title": "t"}, "construction", SHANGHAI)
    assert caught.value.status == 422 and caught.value.details["field"] == "stage"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"stage": "notice"}, "title"),
        ({"stage": "notice", "title": "t", "body": None}, "body"),
        ({"stage": "notice", "title": "t", "body": "x" * 20_001}, "body"),
        ({"stage": "notice", "title": "t", "data": None}, "data"),
        ({"stage": "notice", "title": "t", "data": []}, "data"),
        ({"stage": "correction", "title": "t", "data": {"corrects": True}}, "data.corrects"),
        ({"stage": "correction", "title": "t", "data": {"corrects": 1.0}}, "data.corrects"),
        ({"stage": "correction", "title": "t", "data": {"corrects": -3}}, "data.corrects"),
        ({"stage": "notice", "title": "t", "occurred_at": "2026-12-01T09:30:00"}, "occurred_at"),
        ({"stage": "notice", "title": "t", "occurred_at": "2026-12-01"}, "occurred_at"),
        ({"stage": "notice", "title": "t", "occurred_at": "soon"}, "occurred_at"),
        ({"stage": "notice", "title": "t", "occurred_at": 0}, "occurred_at"),
        (
            {
                "stage": "notice",
                "title": "t",
                "occurred_at": "2026-12-01T09:30:00+08:00" + " " * 30,
            },
            "occurred_at",
        ),
        (
            {"stage": "notice", "title": "t", "occurred_at": "9999-12-31T23:59:59-12:00"},
            "occurred_at",
        ),
        (
            {"stage": "notice", "title": "t", "occurred_at": "0001-01-01T00:00:00+14:00"},
            "occurred_at",
        ),
    ],
)
def test_event_input_rejects_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiError) as caught:
        DOMAIN.event_input(body, "construction", SHANGHAI)
    assert caught.value.status == 422
    assert caught.value.details == {"field": field}


def test_event_input_correction_carries_its_target() -> None:
    draft = DOMAIN.event_input(
        {"stage": "correction", "title": "更正", "data": {"corrects": 12, "reason": "错字"}},
        "mining",
        SHANGHAI,
    )
    assert draft["data"] == {"corrects": 12, "reason": "错字"}


# --- settings ---------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.data_dir == Path("./data")
    assert settings.database_url == f"sqlite:///{Path('./data') / 'sunbid.db'}"
    assert settings.bus_url == "memory://"
    assert settings.timezone == SHANGHAI
    assert settings.demo is True
    assert settings.max_body_bytes == 65536 and settings.max_frame_bytes == 16384
    assert settings.max_topics_per_connection == 64
    assert settings.max_connections_per_address == 256
    assert settings.sqlite_synchronous == "FULL"
    push = PushSettings.from_env({})
    assert "fcm.googleapis.com" in push.push_allowed_hosts
    assert push.public_url is None
    assert (push.data_dir, push.database_url) == (settings.data_dir, settings.database_url)
    assert settings.directory_file is None  # the shipped server/data/directory.toml
    assert settings.forwarded_allow_ips == "127.0.0.1"
    assert (settings.subscribe_burst, settings.subscribe_refill_seconds) == (60, 2.0)
    assert settings.http_keepalive_seconds == 20 and settings.http_header_timeout == 10
    assert settings.max_connections == 12_000


def test_settings_from_values() -> None:
    values = {
        "SUNBID_DATA_DIR": "/srv/sunbid",
        "SUNBID_TIMEZONE": "UTC",
        "SUNBID_DEMO": "off",
        "SUNBID_MAX_BODY_BYTES": "2048",
        "SUNBID_MAX_TOPICS": "3",
        "SUNBID_SQLITE_SYNCHRONOUS": "normal",
        "SUNBID_PUSH_ALLOWED_HOSTS": " a.example , *.b.example ,,",
        "SUNBID_PUBLIC_URL": "https://JY.Example.gov.cn/",
        "SUNBID_DIRECTORY_FILE": "/etc/sunbid/directory.toml",
    }
    settings, push = Settings.from_env(values), PushSettings.from_env(values)
    assert settings.directory_file == Path("/etc/sunbid/directory.toml")
    assert push.public_url == "https://jy.example.gov.cn"
    assert settings.database_url == "sqlite:////srv/sunbid/sunbid.db"
    assert settings.timezone == ZoneInfo("UTC") and settings.demo is False
    assert settings.max_body_bytes == 2048 and settings.max_topics_per_connection == 3
    assert settings.sqlite_synchronous == "NORMAL"
    assert push.push_allowed_hosts == ("a.example", "*.b.example")
    assert push.timezone == settings.timezone and push.environ == settings.environ
    for on in ("1", "true", "YES", "On"):
        assert Settings.from_env({"SUNBID_DEMO": on}).demo is True
    assert Settings.from_env({"SUNBID_MAX_BODY_BYTES": ""}).max_body_bytes == 65536
    proxies = Settings.from_env({"SUNBID_FORWARDED_ALLOW_IPS": " 10.0.0.0/8, ::1 ,192.0.2.7,"})
    assert proxies.forwarded_allow_ips == "10.0.0.0/8,::1,192.0.2.7"
    assert Settings.from_env({"SUNBID_FORWARDED_ALLOW_IPS": "*"}).forwarded_allow_ips == "*"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SUNBID_TIMEZONE", "Mars/Olympus"),
        ("SUNBID_TIMEZONE", "../../etc/passwd"),
        ("SUNBID_TIMEZONE", "+08:00"),
        ("SUNBID_SQLITE_SYNCHRONOUS", "OFF"),
        ("SUNBID_PUBLIC_URL", "jy.example.gov.cn"),
        ("SUNBID_PUBLIC_URL", "https://jy.example.gov.cn/app"),
        ("SUNBID_SQLITE_SYNCHRONOUS", "sometimes"),
        ("SUNBID_DEMO", "maybe"),
        ("SUNBID_DEMO", "2"),
        ("SUNBID_MAX_BODY_BYTES", "lots"),
        ("SUNBID_MAX_BODY_BYTES", "1023"),
        ("SUNBID_MAX_BODY_BYTES", "64k"),
        ("SUNBID_MAX_FRAME_BYTES", "1.5"),
        ("SUNBID_MAX_FRAME_BYTES", "100"),
        ("SUNBID_MAX_TOPICS", "0"),
        ("SUNBID_MAX_CONNECTIONS_PER_ADDRESS", "-3"),
        ("SUNBID_MAX_PENDING_BYTES", "x"),
        ("SUNBID_MAX_PENDING_BYTES", "65536"),  # less than two bodies of 64 KiB
        ("SUNBID_SEND_TIMEOUT_SECONDS", "0"),
        ("SUNBID_WS_PING_SECONDS", "0"),
        ("SUNBID_WS_PING_SECONDS", "soon"),
        ("SUNBID_FORWARDED_ALLOW_IPS", "proxy.example"),
        ("SUNBID_FORWARDED_ALLOW_IPS", "10.0.0.1/8"),  # uvicorn would never match it
        ("SUNBID_FORWARDED_ALLOW_IPS", "127.0.0.1,*"),
        ("SUNBID_SUBSCRIBE_BURST", "0"),
        ("SUNBID_SUBSCRIBE_REFILL_SECONDS", "0"),
        ("SUNBID_HTTP_KEEPALIVE_SECONDS", "0"),
        ("SUNBID_HTTP_HEADER_TIMEOUT_SECONDS", "1.5"),
        ("SUNBID_MAX_CONNECTIONS", "15"),
        ("SUNBID_PUSH_MAX_ATTEMPTS", "0"),
        ("SUNBID_PUSH_RETRY_BASE_SECONDS", "0"),
        ("SUNBID_PUSH_ALLOWED_HOSTS", "ftp://x.example"),
    ],
)
def test_bad_setting_names_the_variable(name: str, value: str) -> None:
    """Each variable is refused by the settings that read it: the server's or push's."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
        PushSettings.from_env({name: value})
    assert name in str(caught.value)


# --- the sender -------------------------------------------------------------------------------


def message(n: int) -> dict[str, Any]:
    return {"type": "websocket.send", "text": f"{n:<{MESSAGE_BYTES}}"}


MESSAGE_BYTES = 10


def sender_for(socket: Socket, frames: int, overflow: Overflow, timeout: float = 30.0) -> Sender:
    """A sender whose byte limit holds one frame in flight and `frames` queued."""
    return Sender(socket.send, Peer(None, timeout), (frames + 1) * MESSAGE_BYTES, overflow)


class Socket:
    """A fake ASGI `send`: completes at once while open, waits while `blocked`."""

    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    def block(self) -> None:
        self.gate.clear()

    def unblock(self) -> None:
        self.gate.set()

    async def send(self, msg: dict[str, Any]) -> None:
        if self.fail:
            raise OSError("peer gone")
        if not self.gate.is_set():
            await self.gate.wait()
        self.written.append(msg)

    def texts(self) -> list[str]:
        return [m.get("text", m.get("type", "")).strip() for m in self.written]


class Overflow:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_sender_writes_synchronously_while_the_socket_keeps_up() -> None:
    socket, overflow = Socket(), Overflow()
    sender = sender_for(socket, 4, overflow)
    tasks_before = len(asyncio.all_tasks())
    for n in range(100):
        sender.offer(message(n))
        assert len(socket.written) == n + 1  # written before offer returns
    assert socket.texts() == [str(n) for n in range(100)]
    assert sender.backlog == 0 and not sender.failed and overflow.calls == 0
    assert len(asyncio.all_tasks()) == tasks_before  # no task was needed


async def test_sender_keeps_order_under_back_pressure() -> None:
    socket, overflow = Socket(), Overflow()
    sender = sender_for(socket, 8, overflow)
    sender.offer(message(0))
    socket.block()
    sender.offer(message(1))  # suspends: moves to a task
    for n in range(2, 9):
        sender.offer(message(n))
    assert sender.backlog == 7
    assert socket.texts() == ["0"]
    socket.unblock()
    await sender.drained()
    assert socket.texts() == [str(n) for n in range(9)]
    assert sender.backlog == 0 and not sender.failed and overflow.calls == 0
    # Back to writing synchronously.
    sender.offer(message(9))
    assert socket.texts()[-1] == "9"


async def test_sender_overflow_cuts_off_exactly_once() -> None:
    socket, overflow = Socket(), Overflow()
    limit = 5
    sender = sender_for(socket, limit, overflow)
    socket.block()
    sender.offer(message(0))  # in flight
    for n in range(1, limit + 1):
        sender.offer(message(n))  # fills the backlog to its bound
    assert sender.backlog == limit and overflow.calls == 0 and not sender.failed
    sender.offer(message(limit + 1))  # one too many
    assert overflow.calls == 1 and sender.failed
    for n in range(limit + 2, limit + 50):
        sender.offer(message(n))
    assert overflow.calls == 1
    socket.unblock()
    await settle()
    # Only what was already on its way went out; nothing after the cut-off.
    assert socket.texts() == ["0"]
    await sender.close({"type": "websocket.close", "code": 4008})
    assert socket.texts() == ["0", "websocket.close"]
    sender.offer(message(999))
    assert socket.texts() == ["0", "websocket.close"]
    assert overflow.calls == 1


async def test_sender_counts_the_bytes_that_wait_and_drained_waits_for_them() -> None:
    socket, overflow = Socket(), Overflow()
    sender = sender_for(socket, 4, overflow)
    sender.offer(message(0))  # written at once
    assert sender.pending == 0
    socket.block()
    sender.offer(message(1))  # in flight
    sender.offer(message(2))
    sender.offer(message(3))
    assert sender.pending == 3 * MESSAGE_BYTES
    assert socket.texts() == ["0"]
    socket.unblock()
    await asyncio.wait_for(sender.drained(), 1)
    assert sender.pending == 0
    assert socket.texts() == ["0", "1", "2", "3"]
    assert overflow.calls == 0 and not sender.failed


async def test_drained_looks_again_at_a_transport_buffer_with_nothing_suspended() -> None:
    """Bytes in the transport's buffer with no send suspended: nothing signals
    their going, so `drained` returns after a short look instead of hanging."""

    class Transport:
        def __init__(self) -> None:
            self.buffer = 5000

        def abort(self) -> None: ...

        def get_extra_info(self, name: str) -> Any:
            return None

        def get_write_buffer_size(self) -> int:
            return self.buffer

    transport, socket = Transport(), Socket()
    sender = Sender(socket.send, Peer(transport, 30.0), 64 * 1024, Overflow())
    assert sender.pending == 5000
    await asyncio.wait_for(sender.drained(), 1)
    transport.buffer = 0
    assert sender.pending == 0


async def test_sender_paced_as_a_replay_never_overflows_a_slow_but_live_client() -> None:
    socket, overflow = Socket(), Overflow()
    sender = sender_for(socket, 4, overflow)
    limit = 5 * MESSAGE_BYTES

    async def reader() -> None:  # drains a little at a time
        for _ in range(200):
            socket.block()
            await asyncio.sleep(0)
            socket.unblock()
            await asyncio.sleep(0)

    draining = asyncio.create_task(reader())
    for n in range(100):  # as a replay does: send only while half the limit stays free
        while sender.pending and sender.pending + MESSAGE_BYTES > limit // 2:
            await asyncio.wait_for(sender.drained(), 5)
        sender.offer(message(n))
        sender.offer(message(-1))  # and a reply or live event in the other half
    socket.unblock()
    await sender.drained()
    await draining
    assert [t for t in socket.texts() if t != "-1"] == [str(n) for n in range(100)]
    assert overflow.calls == 0 and not sender.failed


async def test_sender_stops_quietly_when_the_peer_is_gone() -> None:
    socket, overflow = Socket(), Overflow()
    sender = sender_for(socket, 4, overflow)
    socket.fail = True
    sender.offer(message(0))  # raises inside send: no exception escapes
    assert sender.failed
    socket.fail = False
    sender.offer(message(1))
    assert socket.written == [] and overflow.calls == 0


async def test_sender_peer_gone_while_draining() -> None:
    socket, overflow = Socket(), Overflow()
    sender = sender_for(socket, 4, overflow)
    socket.block()
    sender.offer(message(0))
    sender.offer(message(1))
    socket.fail = True  # the queued frame will fail
    socket.unblock()
    await asyncio.wait_for(sender.drained(), 1)
    assert sender.failed
    assert socket.texts() == ["0"]
    socket.fail = False
    sender.offer(message(2))
    assert socket.texts() == ["0"] and overflow.calls == 0


async def test_sender_close_sends_last_after_the_backlog() -> None:
    socket, overflow = Socket(), Overflow()
    sender = sender_for(socket, 8, overflow)
    socket.block()
    for n in range(4):
        sender.offer(message(n))
    closing = asyncio.create_task(sender.close({"type": "websocket.close", "code": 1001}))
    await settle()
    sender.offer(message(99))  # after close: never written
    assert not closing.done()
    socket.unblock()
    await asyncio.wait_for(closing, 1)
    assert socket.texts() == ["0", "1", "2", "3", "websocket.close"]


async def test_sender_close_gives_up_on_a_stalled_client() -> None:
    socket, overflow = Socket(), Overflow()
    sender = sender_for(socket, 8, overflow)
    socket.block()
    sender.offer(message(0))
    started = asyncio.get_running_loop().time()
    await sender.close({"type": "websocket.close", "code": 1001}, timeout=0.05)
    assert asyncio.get_running_loop().time() - started < 1
    assert socket.written == []
    socket.unblock()
    await settle()


async def test_sender_aborts_a_socket_that_takes_nothing_for_the_send_timeout() -> None:
    socket, overflow = Socket(), Overflow()
    sender = sender_for(socket, 8, overflow, timeout=0.2)
    socket.block()
    sender.offer(message(0))
    sender.offer(message(1))
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(sender.drained(), 2)
    waited = asyncio.get_running_loop().time() - started
    assert 0.2 <= waited < 0.2 * 1.5, waited  # between 1 and 1 + 1/WATCHES timeouts
    assert sender.failed and sender.backlog == 0 and overflow.calls == 0
    socket.unblock()
    sender.offer(message(2))
    await settle()
    assert socket.written == []


async def test_sender_keeps_a_slow_socket_that_still_takes_data() -> None:
    socket, overflow = Socket(), Overflow()
    sender = sender_for(socket, 40, overflow, timeout=0.3)
    socket.block()
    for n in range(8):
        sender.offer(message(n))

    async def trickle() -> None:  # one frame every 0.1 s: slower than nothing, yet alive
        while sender.backlog or not socket.written or len(socket.written) < 8:
            socket.unblock()
            await asyncio.sleep(0)
            socket.block()
            await asyncio.sleep(0.1)
        socket.unblock()

    await asyncio.wait_for(trickle(), 5)
    await asyncio.wait_for(sender.drained(), 1)
    assert socket.texts() == [str(n) for n in range(8)]
    assert not sender.failed


# --- numbers and display-safe text ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", 0),
        ("7", 7),
        ("007", 7),
        ("0" * 5_000 + "1", 1),
        ("9223372036854775807", 2**63 - 1),
        ("9223372036854775808", None),
        ("9" * 4_301, None),
        ("", None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1_000", None),
        ("1e3", None),
        ("١٢٣", None),
        ("²", None),
    ],
)
def test_whole_number(raw: str, expected: int | None) -> None:
    assert whole_number(raw, 0, 2**63 - 1) == expected


@pytest.mark.parametrize(
    ("value", "line_ok", "text_ok"),
    [
        ("义乌市某道路工程 Yiwu road", True, True),
        ("مرحبا 123", True, True),
        ("a\nb\tc\r", False, True),
        ("a\u200fb", False, True),
        ("a\u202eb", False, False),
        ("a\u2066b\u2069", False, False),
        ("a\x00b", False, False),
        ("a\x1bb", False, False),
        ("a\x85b", False, False),
    ],
)
def test_display_safe_text(value: str, line_ok: bool, text_ok: bool) -> None:
    assert (line_problem(value) is None) is line_ok
    assert (text_problem(value) is None) is text_ok
