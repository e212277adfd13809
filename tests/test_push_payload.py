"""Push payloads: the shape browsers read, and trimming that always fits one record."""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from push.crypto import MAX_PLAINTEXT
from push.payload import (
    MOZILLA_PLAINTEXT,
    build_payload,
    default_stage_names,
    plaintext_limit,
)
from server.core.env import check_origin
from server.domain import Domain

ORIGIN = "https://sunbid.example.org"


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seq": 1042,
        "project": "YW-2026-0001",
        "category": "construction",
        "agency": "YW-PRTC",
        "region": "330782",
        "stage": "bid_opening",
        "title": "义乌市某道路工程开标",
        "body": "开标时间 2026-12-01 09:30，地点 义乌市公共资源交易中心",
        "data": {"bidders": 7},
        "occurred_at": "2026-12-01T09:30:00+08:00",
        "published_at": "2026-12-01T09:31:12.345+08:00",
        "hash": "9f2c" * 16,
    }
    base.update(changes)
    return base


def parse(payload: bytes) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(payload)
    return result


def test_shape_for_service_workers_and_declarative_web_push() -> None:
    original = event()
    message = parse(build_payload(original, origin=ORIGIN))
    assert message["title"] == "【开标】义乌市某道路工程开标"
    assert message["body"] == "开标时间 2026-12-01 09:30，地点 义乌市公共资源交易中心"
    assert message["url"] == "/p/YW-2026-0001"
    assert message["tag"] == "YW-2026-0001"
    assert message["event"] == original  # untrimmed when it fits: exactly the event
    assert message["web_push"] == 8030
    assert message["notification"] == {
        "title": message["title"],
        "body": message["body"],
        "navigate": "https://sunbid.example.org/p/YW-2026-0001",
        "tag": "YW-2026-0001",
        "lang": "zh-CN",
    }


def test_without_a_public_origin_no_declarative_members_are_sent() -> None:
    # WebKit reads `navigate` as an absolute URL; a relative one would make the
    # declarative message invalid, so the plain message is sent instead.
    message = parse(build_payload(event()))
    assert "web_push" not in message and "notification" not in message
    assert message["url"] == "/p/YW-2026-0001"


def test_stage_names_come_from_the_vocabulary() -> None:
    domain = Domain.load()
    assert default_stage_names() == {code: s.zh for code, s in domain.stages.items()}
    award = parse(build_payload(event(stage="award", title="结果")))
    assert award["title"] == f"【{domain.stages['award'].zh}】结果"
    named = parse(build_payload(event(stage="award"), stage_names={"award": "中标"}))
    assert named["title"].startswith("【中标】")
    unknown = parse(build_payload(event(stage="brand_new"), stage_names={}))
    assert unknown["title"].startswith("【brand_new】")


def test_notification_body_is_one_short_line_and_never_empty() -> None:
    long = parse(build_payload(event(body="第一行\n\n  第二行 " + "内容" * 200)))
    assert long["body"].startswith("第一行 第二行 内容")
    assert len(long["body"]) == 120 and long["body"].endswith("…")
    assert long["event"]["body"].startswith("第一行\n\n  第二行")  # the event is untouched
    empty = parse(build_payload(event(body="")))
    assert empty["body"] == "项目编号 YW-2026-0001"


def test_input_event_is_not_modified() -> None:
    original = event(body="正文" * 5000, data={"rows": ["数据" * 100] * 50})
    snapshot = copy.deepcopy(original)
    build_payload(original, origin=ORIGIN)
    assert original == snapshot


def test_a_huge_chinese_body_is_shortened_first_and_data_kept() -> None:
    message_bytes = build_payload(event(body="公告正文" * 5000), origin=ORIGIN)
    message = parse(message_bytes)
    assert len(message_bytes) <= MAX_PLAINTEXT
    assert len(message_bytes) > MAX_PLAINTEXT - 4  # filled: cut by the character, not more
    shown = message["event"]
    assert shown["body"].startswith("公告正文公告正文") and shown["body"].endswith("…")
    assert shown["data"] == {"bidders": 7}
    assert shown["truncated"] is True
    assert shown["seq"] == 1042 and shown["hash"] == "9f2c" * 16


def test_huge_data_is_replaced_and_the_body_kept() -> None:
    body = "开标时间 2026-12-01 09:30"
    message_bytes = build_payload(event(body=body, data={"bidders": ["某某建设有限公司"] * 1000}))
    message = parse(message_bytes)
    assert len(message_bytes) <= MAX_PLAINTEXT
    assert message["event"]["data"] == {}
    assert message["event"]["body"] == body
    assert message["event"]["truncated"] is True


def test_huge_body_and_data_keep_as_much_body_as_fits_without_the_data() -> None:
    message_bytes = build_payload(event(body="正" * 20_000, data={"x": "据" * 20_000}))
    message = parse(message_bytes)
    assert message["event"]["data"] == {}
    assert len(message["event"]["body"]) > 500
    assert len(message_bytes) <= MAX_PLAINTEXT


def test_huge_titles_are_shortened_last() -> None:
    message_bytes = build_payload(
        event(title="标题" * 2000, body="正文" * 2000, data={"x": "y" * 5000}), origin=ORIGIN
    )
    message = parse(message_bytes)
    assert len(message_bytes) <= MAX_PLAINTEXT
    assert message["event"]["body"] == "" and message["event"]["data"] == {}
    assert message["title"].startswith("【开标】标题标题") and message["title"].endswith("…")
    assert message["notification"]["title"] == message["title"]
    assert message["notification"]["navigate"] == ORIGIN + "/p/YW-2026-0001"


def test_unexpected_large_fields_still_fit() -> None:
    message_bytes = build_payload(event(extra="x" * 10_000), origin=ORIGIN)
    message = parse(message_bytes)
    assert len(message_bytes) <= MAX_PLAINTEXT
    assert message["event"] == {
        "seq": 1042,
        "project": "YW-2026-0001",
        "stage": "bid_opening",
        "truncated": True,
    }
    assert message["notification"]["title"]  # Safari needs a non-empty title


@pytest.mark.parametrize("limit", [3993, 2744, 1500])
def test_smaller_limits_are_honoured(limit: int) -> None:
    payload = build_payload(event(body="正文😀" * 3000), origin=ORIGIN, max_bytes=limit)
    assert len(payload) <= limit
    parse(payload)


@pytest.mark.parametrize(
    ("endpoint", "limit"),
    [
        ("https://updates.push.services.mozilla.com/wpush/v2/gAAA", MOZILLA_PLAINTEXT),
        ("https://eu.push.services.mozilla.com/wpush/v2/gAAA", MOZILLA_PLAINTEXT),
        ("https://fcm.googleapis.com/fcm/send/abc", MAX_PLAINTEXT),
        ("https://web.push.apple.com/QGx", MAX_PLAINTEXT),
        ("https://push.services.mozilla.com.evil.example/x", MAX_PLAINTEXT),
    ],
)
def test_mozilla_endpoints_get_the_size_its_android_bridge_takes(endpoint: str, limit: int) -> None:
    assert plaintext_limit(endpoint) == limit


def test_emoji_sequences_are_never_cut_in_half() -> None:
    family = "👨\u200d👩\u200d👧\u200d👦"
    flag = "🇨🇳"
    thumbs = "👍🏽"
    accented = "e\u0301"
    text = (family + flag + thumbs + accented) * 3000
    for limit in range(900, 3993, 37):
        message = parse(build_payload(event(body=text), max_bytes=limit))
        kept = message["event"]["body"].removesuffix("…")
        assert text.startswith(kept)
        rest = text[len(kept) :]
        # The cut falls where one of the four clusters begins.
        assert rest.startswith((family, flag, thumbs, accented)), repr(kept[-6:])


def test_random_events_always_parse_and_fit() -> None:
    rng = random.Random(8291)
    alphabet = '公告开标中标a1 \n"\\/😀🇨🇳é\u0301\u200d\x01'
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6000)))
        changes = {
            "title": text[: rng.randint(0, 3000)],
            "body": text,
            "data": {"k": text[: rng.randint(0, 6000)], "n": list(range(rng.randint(0, 500)))},
        }
        limit = rng.choice([MAX_PLAINTEXT, 2744, 1200])
        payload = build_payload(event(**changes), origin=ORIGIN, max_bytes=limit)
        assert len(payload) <= limit
        message = parse(payload)
        assert message["web_push"] == 8030 and message["notification"]["title"]
        assert message["event"]["seq"] == 1042


def test_building_is_deterministic_for_one_event() -> None:
    huge = event(body="正文" * 9000)
    assert build_payload(huge, origin=ORIGIN) == build_payload(huge, origin=ORIGIN)


@pytest.mark.parametrize(
    ("origin", "normal"),
    [
        ("https://Sunbid.example.org/", "https://sunbid.example.org"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_origin_is_normalised(origin: str, normal: str) -> None:
    assert check_origin(origin) == normal


@pytest.mark.parametrize(
    "origin",
    ["sunbid.example.org", "https://sunbid.example.org/app", "ftp://x.org", "https://u@x.org"],
)
def test_a_non_origin_is_refused(origin: str) -> None:
    with pytest.raises(ValueError):
        build_payload(event(), origin=origin)
