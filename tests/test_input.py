"""What the API refuses in what staff and browsers send, against a real server:
text that would display as something else (bidi overrides, control characters),
times that are not RFC 3339 (ISO 8601 week dates, basic format …), and push
endpoints whose host cannot be resolved right now (503, try again) as opposed
to hosts that resolve to private addresses (422, never).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, with_facts
from tests.test_api import assert_error
from tests.test_push_endpoints import b64, point

# `.invalid` never resolves (RFC 2606); `localhost` resolves to a loopback address.
UNRESOLVABLE = "push.sunbid-test.invalid"
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        Path(tmp_path_factory.mktemp("input")) / "data",
        SUNBID_PUSH_ALLOWED_HOSTS=f"{UNRESOLVABLE},localhost",
    ).start()
    yield proc
    if proc.process is not None:
        proc.stop()


@pytest.fixture(scope="module")
def client(shared: ServerProcess) -> Iterator[httpx.Client]:
    token = shared.token("input-admin")
    with httpx.Client(
        base_url=shared.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as session:
        yield session


@pytest.fixture(scope="module")
def project(client: httpx.Client) -> str:
    created = client.post(
        "/api/projects",
        json={"id": "IN-1", "title": "输入检查", "category": "construction", "agency": "IN"},
    )
    assert created.status_code == 201, created.text
    return "IN-1"


def new_project(client: httpx.Client, title: str) -> httpx.Response:
    return client.post(
        "/api/projects",
        json={"id": f"IN-P{next(_ids)}", "title": title, "category": "land", "agency": "IN"},
    )


def publish(client: httpx.Client, project: str, **fields: Any) -> httpx.Response:
    return client.post(
        f"/api/projects/{project}/events", json=with_facts("notice", **{"title": "公告", **fields})
    )


# --- (a) text that displays as something else ---------------------------------------------

SPOOFS = [
    "\u202a",  # left-to-right embedding
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",  # right-to-left override: "YW-\u202e1000" shows as "YW-0001"
    "\u2066",  # isolates
    "\u2067",
    "\u2068",
    "\u2069",
]
CONTROLS = ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9b"]
MARKS = ["\u200e", "\u200f", "\u061c"]


@pytest.mark.parametrize("char", SPOOFS + CONTROLS + MARKS + ["\n", "\t", "\r"])
def test_titles_refuse_bidi_and_control_characters(
    client: httpx.Client, project: str, char: str
) -> None:
    title = f"义乌市某道路工程{char}中标公告"
    assert_error(new_project(client, title), 422, field="title")
    assert_error(publish(client, project, title=title), 422, field="title")


@pytest.mark.parametrize("char", SPOOFS + CONTROLS)
def test_bodies_and_data_refuse_bidi_overrides_and_controls(
    client: httpx.Client, project: str, char: str
) -> None:
    text = f"开标时间 2026-12-01 09:30{char}，地点 …"
    assert_error(publish(client, project, body=text), 422, field="body")
    assert_error(publish(client, project, data={"winner": text}), 422, field="data.winner")
    nested = {"bidders": [{"name": "甲公司"}, {"name": text}]}
    assert_error(publish(client, project, data=nested), 422, field="data.bidders[1].name")
    assert_error(publish(client, project, data={f"win{char}ner": "甲公司"}), 422, field="data")


def test_multi_line_text_keeps_its_lines_tabs_and_marks(client: httpx.Client, project: str) -> None:
    body = "第一行\n第二行\r\n\t缩进 \u200fمرحبا\u200e 123"
    published = publish(client, project, body=body, data={"note": "甲\n乙", "amount": 5})
    assert published.status_code == 201, published.text
    assert published.json()["body"] == body
    titled = new_project(client, "  مرحبا 义乌 Yiwu  ")
    assert titled.status_code == 201, titled.text
    assert titled.json()["title"] == "مرحبا 义乌 Yiwu"


# --- (b) RFC 3339 times only ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "served"),
    [
        ("2026-12-01T09:30:00+08:00", "2026-12-01T09:30:00+08:00"),
        ("2026-12-01T01:30:00Z", "2026-12-01T09:30:00+08:00"),
        ("2026-12-01T01:30:00-00:00", "2026-12-01T09:30:00+08:00"),
        ("2026-12-01T09:30:00.5+08:00", "2026-12-01T09:30:00.500+08:00"),
        ("2026-12-01T09:30:00.123456789+08:00", "2026-12-01T09:30:00.123+08:00"),
        ("2026-11-30T20:30:00-05:00", "2026-12-01T09:30:00+08:00"),
    ],
)
def test_rfc3339_times_are_accepted(
    client: httpx.Client, project: str, sent: str, served: str
) -> None:
    published = publish(client, project, occurred_at=sent, data={"deadline": sent})
    assert published.status_code == 201, published.text
    assert published.json()["occurred_at"] == served
    assert published.json()["data"]["deadline"] == sent  # data is kept as sent


NOT_RFC3339 = [
    "2026-W49-2T09:30:00+08:00",  # ISO week date
    "2026-W49-2",
    "2026-335T09:30:00+08:00",  # ordinal date
    "20261201T093000+0800",  # basic format
    "20261201T0930",
    "2026-12-01T0930+08:00",
    "2026-12-01T09:30+08:00",  # no seconds
    "2026-12-01T09+08:00",
    "2026-12-01 09:30:00+08:00",  # space for T
    "2026-12-01t09:30:00z",  # lower case (RFC 3339 allows it; documented as refused)
    "2026-12-01T09:30:00,5+08:00",  # decimal comma
    "2026-12-01T09:30:00+0800",
    "2026-12-01T09:30:00+08",
    "2026-12-01T09:30:00",  # no offset
    "2026-12-01",
    "٢٠٢٦-١٢-٠١T09:30:00+08:00",  # other scripts' digits
    "2026-12-01T09:30:60+08:00",  # a leap second Python cannot hold
    "2026-02-30T09:30:00+08:00",
    "2026-12-01T24:00:00+08:00",
    "2026-12-01T09:30:00+24:00",
    "+2026-12-01T09:30:00+08:00",
]


@pytest.mark.parametrize("sent", NOT_RFC3339)
def test_other_time_spellings_are_refused_naming_the_field(
    client: httpx.Client, project: str, sent: str
) -> None:
    assert_error(publish(client, project, occurred_at=sent), 422, field="occurred_at")
    assert_error(publish(client, project, data={"deadline": sent}), 422, field="data.deadline")


def test_data_times_are_checked_where_the_rules_read_them(
    client: httpx.Client, project: str
) -> None:
    signed = {"signed_at": "2026-W49-2T09:30:00+08:00"}
    assert_error(
        client.post(
            f"/api/projects/{project}/events",
            json={"stage": "contract", "title": "合同", "data": signed},
        ),
        422,
        field="data.signed_at",
    )
    # A time the vocabulary knows is checked in any stage (here a notice);
    assert_error(publish(client, project, data={"signed_at": 7}), 422, field="data.signed_at")
    # a key it does not know is the publisher's own text; null is "not known yet".
    free = publish(client, project, data={"opening": "2026-W49-2"})
    assert free.status_code == 201, free.text
    # (Not a notice's deadline, which a notice must state: a clarification's.)
    unknown = client.post(
        f"/api/projects/{project}/events",
        json={"stage": "clarification", "title": "澄清", "data": {"deadline": None}},
    )
    assert unknown.status_code == 201, unknown.text


# --- (c) push endpoints: a failed look-up is temporary --------------------------------------


def subscription(endpoint: str) -> dict[str, Any]:
    return {
        "subscription": {
            "endpoint": endpoint,
            "keys": {"p256dh": b64(point()), "auth": b64(os.urandom(16))},
        },
        "topics": ["all"],
    }


def test_an_endpoint_whose_host_does_not_resolve_is_a_503_with_retry_after(
    shared: ServerProcess,
) -> None:
    response = httpx.post(
        shared.url + "/api/push/subscriptions",
        json=subscription(f"https://{UNRESOLVABLE}/push/abc"),
        timeout=30,
    )
    error = assert_error(response, 503)
    assert error["code"] == "unavailable", error
    assert int(response.headers["retry-after"]) > 0
    assert UNRESOLVABLE in error["message"]


def test_an_endpoint_resolving_to_a_private_address_stays_a_422(shared: ServerProcess) -> None:
    response = httpx.post(
        shared.url + "/api/push/subscriptions",
        json=subscription("https://localhost/push/abc"),
        timeout=30,
    )
    error = assert_error(response, 422, field="subscription.endpoint")
    assert "non-public" in error["message"]
