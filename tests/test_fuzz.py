"""Property tests: garbage thrown at one real server never breaks it.

After every example: the server still answers `/healthz`; every HTTP answer
of 400 or more is exactly the contract's error shape with a status from the
contract's list (never a 500, never a stack trace); every WebSocket answer
to garbage is an `error` op and the connection stays usable; and the event
log changes only by the publications the server accepted (201) — checked
again at the end with `sunbid verify`. The public's cases (enquiries and
disclosure requests) are read with any id and any ticket: anything but the
case's own ticket gets the very answer an id never given out gets, and what a
person wrote to reach them is never in a public answer.
"""

from __future__ import annotations

import asyncio
import json
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode
from xml.etree import ElementTree

import httpx
import icalendar
import pytest
import websockets
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams
from websockets.exceptions import ConnectionClosed

from server.core.numbers import MAX_SEQ, whole_number
from server.core.text import line_problem, text_problem
from server.core.topics import CODE
from server.respond import inputs
from tests.conftest import ROOT, ServerProcess, with_facts
from tests.sms_service import SmsService
from tests.test_push_endpoints import b64

CONTRACT_STATUSES = {400, 401, 403, 404, 405, 409, 413, 415, 422, 429}
WEBHOOK_ORIGIN = "http://127.0.0.1:9"
LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|sqlite|SELECT |INSERT |Error:|/work/|/tmp/|"
    r"site-packages|" + re.escape(str(ROOT))
)


def leaked(answer: str, sent: str) -> list[str]:
    """Internal details in `answer` that the client did not send itself.

    An error may quote what the client sent (an unknown field called `sqlite`
    is named back), so only text that is not an echo counts as a leak.
    """
    return [m.group() for m in LEAKS.finditer(answer) if m.group() not in sent]


SERVER_OPS = {"subscribed", "unsubscribed", "pong", "authed", "error", "event", "warning"}
CLIENT_OPS = {"subscribe", "unsubscribe", "ping", "auth"}
CATEGORIES = [
    "construction",
    "gov_procurement",
    "state_assets",
    "land",
    "mining",
    "soe_procurement",
    "rural_property",
    "emission_rights",
]
STAGES = [
    "plan",
    "prequalification",
    "notice",
    "clarification",
    "bid_opening",
    "auction",
    "evaluation",
    "candidates",
    "award",
    "contract",
    "performance",
    "failed",
    "objection",
    "objection_reply",
    "complaint",
    "complaint_decision",
    "penalty",
    "correction",
]
MAX_FRAME = 16 * 1024  # the server's default SUNBID_MAX_FRAME_BYTES

UVICORN_UTF8_TRACEBACK = re.compile(
    r"ERROR:\s+Invalid UTF-8 sequence received from client\.\nTraceback.*?\n"
    r"UnicodeDecodeError: [^\n]*\n",
    re.DOTALL,
)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


class Target:
    """The server under test and what it has legitimately accepted so far."""

    def __init__(
        self, server: ServerProcess, admin: str, client: httpx.Client, initial_head: int
    ) -> None:
        self.server = server
        self.admin = admin
        self.client = client
        self.initial_head = initial_head
        self.accepted: dict[int, dict[str, Any]] = {}
        # The public's cases (set up by the fixture, see the section on them below).
        self.staff: dict[str, dict[str, str]] = {}  # role → its Authorization header
        self.cases: dict[str, Case] = {}  # kept as they are: to read and to rate
        self.working: dict[str, Case] = {}  # kind → the case staff act on now
        self.answered: dict[str, int] = {}  # enquiries of FZ-1 → the seq of their answer
        # (kind, method) → the answer about a case never given out
        self.not_found: dict[tuple[str, str], httpx.Response] = {}
        self.agencies: set[str] = set()  # the directory's

    def __repr__(self) -> str:
        return f"<server {self.server.url}, {len(self.accepted)} accepted>"

    def log_size(self) -> int:
        return len(self.server.log.read_text("utf-8", "replace"))

    def no_traceback(self, since: int = 0) -> None:
        """Nothing the clients sent made the server log a traceback (an unhandled error),
        in all its log or after the first `since` characters of it.

        uvicorn itself logs one for a WebSocket text frame that is not UTF-8, after
        closing the connection with 1007 as it should: that one is not ours.
        """
        log = self.server.log.read_text("utf-8", "replace")[since:]
        log = UVICORN_UTF8_TRACEBACK.sub("", log)
        assert "Traceback" not in log, log[log.index("Traceback") - 300 :][:3000]

    def alive(self) -> None:
        response = self.client.get("/healthz")
        assert response.status_code == 200, response.text
        assert response.json()["head"] == self.initial_head + len(self.accepted), (
            "the log changed without an accepted publication"
        )


# The public's cases: kinds, where they live, and who may act on them.
ENQUIRY, REQUEST = "enquiry", "disclosure_request"
CASE_PATHS = {ENQUIRY: "/api/enquiries", REQUEST: "/api/disclosure-requests"}
PREFIX = {ENQUIRY: "q", REQUEST: "r"}
# The fuzz projects are agency FZ's; a disclosure request goes to an agency of the directory.
CASE_AGENCY = {ENQUIRY: "FZ", REQUEST: "YW-GGZY"}
STAFF_GRANTS = {
    "publisher-fz": ("publisher", "FZ"),
    "publisher-yw": ("publisher", "YW-GGZY"),
    "supervisor": ("supervisor",),
}
# The contact every case here is filed with: no public answer may ever carry it.
MARK = "联系人-fz-7Q2WX9"
ASKED = "投标保证金何时退还？"


@dataclass
class Case:
    kind: str
    id: str
    ticket: str
    status: str
    due: str
    extended: bool = False
    rated: bool = False

    @property
    def open(self) -> bool:
        return self.status in ("open", "received", "extended")


def file_case(client: httpx.Client, kind: str) -> Case:
    if kind == ENQUIRY:
        body = {"question": ASKED, "contact": MARK}
        response = client.post("/api/projects/FZ-1/enquiries", json=body)
    else:
        body = {
            "agency": "YW-GGZY",
            "subject": "采购合同",
            "description": "请公开。",
            "contact": MARK,
        }
        response = client.post("/api/disclosure-requests", json=body)
    assert response.status_code == 201, response.text
    filed = response.json()
    return Case(kind, filed["id"], filed["ticket"], filed["status"], filed["due"])


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    # SMS configured (so every channel endpoint is live) with a provider that is
    # not there: confirmation codes fail to send, which only logs a warning.
    server = ServerProcess(
        Path(tmp_path_factory.mktemp("fuzz")) / "data",
        **SmsService(port=9).env(),
        SUNBID_SUBSCRIBE_BURST="100000",
        SUNBID_ASK_BURST="100000",
        SUNBID_ASK_DEVICE_BURST="100000",
        # Webhooks may point at a port where nothing listens: attempts fail and retry.
        SUNBID_WEBHOOK_ALLOWED_HOSTS=WEBHOOK_ORIGIN,
    ).start()
    admin = server.token("fuzz-admin")
    # `Connection: close`: a failed example must not poison the next one's connection.
    client = httpx.Client(base_url=server.url, timeout=30, headers={"Connection": "close"})
    auth = {"Authorization": f"Bearer {admin}"}
    for project_id, category in (("FZ-1", "construction"), ("FZ-2", "land")):
        created = client.post(
            "/api/projects",
            headers=auth,
            json={
                "id": project_id,
                "title": "模糊测试",
                "category": category,
                "agency": "FZ",
                "region": "330782",
            },
        )
        assert created.status_code == 201, created.text
    first = client.post(
        "/api/projects/FZ-1/events", headers=auth, json=with_facts("notice", title="招标公告")
    )
    assert first.status_code == 201, first.text
    cases = {"open": file_case(client, ENQUIRY), "answered": file_case(client, ENQUIRY)}
    cases["request"] = file_case(client, REQUEST)
    answered = client.post(
        f"/api/enquiries/{cases['answered'].id}/answer", headers=auth, json={"answer": "已退还。"}
    )
    assert answered.status_code == 201, answered.text
    cases["answered"].status = "answered"
    target = Target(server, admin, client, initial_head=server.head())
    target.cases, target.answered = cases, {cases["answered"].id: answered.json()["seq"]}
    target.staff = {
        "admin": auth,
        **{
            role: {"Authorization": "Bearer " + server.token(role, *grant)}
            for role, grant in STAFF_GRANTS.items()
        },
    }
    for kind, path in CASE_PATHS.items():
        target.not_found[kind, "GET"] = client.get(f"{path}/{PREFIX[kind]}{'z' * 12}")
    unknown = client.post(f"/api/enquiries/q{'z' * 12}/rating", json={"score": 5})
    target.not_found[ENQUIRY, "POST"] = unknown
    assert all(r.status_code == 404 for r in target.not_found.values()), target.not_found
    target.agencies = {a["code"] for a in client.get("/api/directory").json()["agencies"]}
    yield target
    client.close()
    if server.process is not None:
        server.stop()


def check_http(target: Target, response: httpx.Response, ok: set[int]) -> None:
    status = response.status_code
    assert status != 500, f"500 for {response.request.method} {response.request.url}"
    if status < 400:
        assert status in ok, (status, response.text[:300])
        return
    assert status in CONTRACT_STATUSES, (status, response.text[:300])
    assert response.headers.get("content-type", "").startswith("application/json")
    body = response.json()
    assert isinstance(body, dict) and list(body) == ["error"], body
    error = body["error"]
    assert isinstance(error, dict), body
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    assert set(error) <= {"code", "message", "details"}, body
    request = response.request
    sent = str(request.url) + request.content.decode("utf-8", "replace")
    assert not leaked(response.text, sent), response.text[:300]
    if status == 429:
        assert response.headers.get("retry-after"), response.headers


# --- strategies -----------------------------------------------------------------------

leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
codes = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True) | st.sampled_from(
    ["FZ-1", "FZ-2", "", " ", "a" * 65, "中文", "a/b", "..", "-"]
)
texts = st.text(max_size=50) | st.sampled_from(["", "  ", "x" * 201, "招标公告", "\x00", "\ud7ff"])
offsets = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
).map(timezone)
times = (
    st.datetimes(timezones=offsets | st.none()).map(lambda d: d.isoformat())
    | st.sampled_from(
        [
            "9999-12-31T23:59:59-12:00",
            "0001-01-01T00:00:00+14:00",
            "2026-12-01T09:30:00",
            "2026-12-01T09:30:00Z",
            "2026-02-30T00:00:00Z",
            "2026-12-01T24:00:00+08:00",
            "20261201T093000+0800",
        ]
    )
    | st.text(max_size=45)
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible value most of the time, anything at all otherwise."""
    return st.one_of(strategy, strategy, json_values)


def with_junk(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
    objects = st.fixed_dictionaries(required, optional=optional)
    junk = st.dictionaries(st.text(max_size=10), json_values, max_size=2)
    return st.one_of(
        objects,
        objects,
        st.tuples(objects, junk).map(lambda pair: {**pair[0], **pair[1]}),
        json_values,
    )


project_bodies = with_junk(
    {},
    {
        "id": maybe(codes),
        "title": maybe(texts),
        "category": maybe(st.sampled_from(CATEGORIES) | st.text(max_size=20)),
        "agency": maybe(codes),
        "region": maybe(st.none() | codes),
        "budget": maybe(
            st.none() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
        ),
        "currency": maybe(st.sampled_from(["CNY", "USD", "cny", "RMB1", ""])),
    },
)

event_data = st.dictionaries(st.text(max_size=10), json_values, max_size=3) | st.fixed_dictionaries(
    {"corrects": maybe(st.integers())}
)
event_bodies = with_junk(
    {},
    {
        "stage": maybe(st.sampled_from(STAGES) | st.text(max_size=20)),
        "title": maybe(texts),
        "body": maybe(st.text(max_size=200) | st.just("x" * 20_001)),
        "data": maybe(event_data),
        "occurred_at": maybe(times),
    },
)

literal = st.sampled_from(
    [
        b"NaN",
        b"-NaN",
        b"Infinity",
        b"-Infinity",
        b"1e999",
        b"-1e999",
        b"9" * 40,
        b"-" + b"9" * 40,
        b"18446744073709551616",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"0x10",
        b"01",
        b"1.",
        b".5",
        b"+1",
        b"true",
        b"undefined",
        b"'x'",
    ]
)
raw_bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    # a well-formed object with one value replaced by a non-JSON or extreme literal
    st.tuples(
        st.sampled_from(["id", "title", "budget", "stage", "data", "occurred_at"]), literal
    ).map(
        lambda kv: (
            b'{"id":"FZ-9","title":"t","category":"land",'
            b'"agency":"FZ","stage":"notice","' + kv[0].encode() + b'":' + kv[1] + b"}"
        )
    ),
    st.tuples(st.sampled_from([b"corrects", b"x"]), literal).map(
        lambda kv: b'{"stage":"correction","title":"t","data":{"' + kv[0] + b'":' + kv[1] + b"}}"
    ),
    # deep nesting, up to and beyond the body limit
    st.integers(1, 40_000).map(
        lambda n: b'{"stage":"notice","title":"t","data":' + b'{"a":' * n + b"1" + b"}" * n + b"}"
    ),
    st.integers(1, 40_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 40_000).map(lambda n: b"[" * n),
    # huge strings
    st.integers(0, 100_000).map(lambda n: b'{"stage":"notice","title":"' + b"x" * n + b'"}'),
    # invalid UTF-8 and lone surrogates inside otherwise valid JSON
    st.binary(min_size=1, max_size=8).map(lambda b: b'{"stage":"notice","title":"' + b + b'"}'),
    st.sampled_from(
        [
            b'{"stage":"notice","title":"\\ud800"}',
            b'{"title":"\xed\xa0\x80"}',
            b'\xef\xbb\xbf{"stage":"notice","title":"t"}',
            b"{}" * 3,
            b" ",
            b"",
            b'{"a":1,"a":2}',
        ]
    ),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/json; charset=latin-1",
        "text/plain",
        "",
        "application/jsonx",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        ";",
        "json",
    ]
)

QUERY_KEYS = [
    "category",
    "agency",
    "region",
    "stage",
    "q",
    "cursor",
    "limit",
    "since",
    "topics",
    "stages",
]
query_values = st.one_of(
    st.text(max_size=40),
    st.integers().map(str),
    st.sampled_from(
        [
            "all",
            "supervision",
            "project:FZ-1",
            "category:land",
            "agency:FZ",
            "region:330782",
            "category:nope",
            "enquiry:qzzzzzzzzzzzz",
            "project:",
            "notice",
            "notice,award",
            "bogus",
            "0",
            "-1",
            "1000",
            "1001",
            "99999999999999999999",
            "1e3",
            "٣",
            "MTox",
            "%",
            "_",
            "\x00",
            ",",
            ",,,",
            "all,all",
            "a:b:c",
        ]
    ),
    st.lists(
        st.sampled_from(["all", "project:FZ-1", "category:land", "x", "supervision"]), max_size=70
    ).map(",".join),
)
queries = st.one_of(
    st.lists(
        st.tuples(st.sampled_from(QUERY_KEYS) | st.text(max_size=8), query_values), max_size=5
    ).map(lambda pairs: urlencode(pairs)),
    # arbitrary bytes, percent-encoded: invalid UTF-8 once decoded
    st.binary(max_size=60).map(lambda b: "".join(f"%{c:02X}" for c in b)),
    st.text(alphabet=string.printable, max_size=60).map(lambda t: quote(t, safe="=&,:%")),
)


# --- HTTP ---------------------------------------------------------------------------------


def publish(target: Target, response: httpx.Response) -> None:
    """Account for a publication the server accepted."""
    if response.status_code == 201:
        event = response.json()
        assert event["seq"] == target.initial_head + len(target.accepted) + 1, event
        target.accepted[event["seq"]] = event


@FUZZ
@given(body=project_bodies)
def test_create_project_with_any_json(target: Target, body: Any) -> None:
    response = target.client.post(
        "/api/projects", json=body, headers={"Authorization": f"Bearer {target.admin}"}
    )
    check_http(target, response, {201})
    if response.status_code == 201:
        assert response.json()["id"] == body["id"]
    target.alive()


@FUZZ
@given(body=event_bodies, project=st.sampled_from(["FZ-1", "FZ-2"]))
@example(body={"sqlite": None}, project="FZ-1")  # an echoed field name is not a leak
def test_publish_with_any_json(target: Target, body: Any, project: str) -> None:
    response = target.client.post(
        f"/api/projects/{project}/events",
        json=body,
        headers={"Authorization": f"Bearer {target.admin}"},
    )
    check_http(target, response, {201})
    publish(target, response)
    target.alive()


@FUZZ
@given(
    content=raw_bodies,
    content_type=content_types,
    path=st.sampled_from(
        [
            "/api/projects",
            "/api/projects/FZ-1/events",
            "/api/projects/FZ-1/enquiries",
            "/api/disclosure-requests",
            "/api/webhooks",
            "/api/webhooks/wh_0000000000000000/replay",
        ]
    ),
)
def test_post_any_bytes(target: Target, content: bytes, content_type: str, path: str) -> None:
    response = target.client.post(
        path,
        content=content,
        headers={"Authorization": f"Bearer {target.admin}", "Content-Type": content_type},
    )
    check_http(target, response, {201})
    if path.endswith("/events"):
        publish(target, response)
    target.alive()


@FUZZ
@given(
    authorization=st.one_of(
        st.none(),
        st.text(alphabet=string.printable.strip() + " ", max_size=80),
        st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=60).map(
            lambda t: "Bearer sb_" + t
        ),
    ),
    idempotency_key=st.none() | st.text(alphabet=string.printable.strip() + " ", max_size=210),
    path=st.sampled_from(["/api/projects", "/api/projects/FZ-1/events"]),
)
def test_post_with_any_credentials(
    target: Target, authorization: str | None, idempotency_key: str | None, path: str
) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization.strip()
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key.strip()
    body = (
        with_facts("notice", title="t")
        if path.endswith("events")
        else {"id": "FZ-AUTH", "title": "t", "category": "land", "agency": "FZ"}
    )
    response = target.client.post(path, json=body, headers=headers)
    check_http(target, response, set())  # no valid token, no success
    assert response.status_code in {401, 422}, response.text
    target.alive()


@FUZZ
@given(
    query=queries,
    path=st.sampled_from(
        [
            "/api/projects",
            "/api/events",
            "/api/categories",
            "/healthz",
            "/",
            "/api/feed.atom",
            "/api/deadlines.ics",
            "/api/projects/FZ-1/deadlines.ics",
            "/api/ocds/releases",
            "/api/stats",
        ]
    ),
)
def test_get_with_any_query(target: Target, query: str, path: str) -> None:
    response = target.client.get(f"{path}?{query}")
    check_http(target, response, {200})
    if response.status_code == 200 and path == "/api/events":
        body = response.json()
        seqs = [e["seq"] for e in body["items"]]
        assert seqs == sorted(set(seqs)) and len(seqs) <= 1000
    if response.status_code == 200 and path.endswith(".atom"):
        feed = ElementTree.fromstring(response.content)
        assert len(feed.findall("{http://www.w3.org/2005/Atom}entry")) <= 50
    if response.status_code == 200 and path.endswith(".ics"):
        assert icalendar.Calendar.from_ical(response.content).get("PRODID")
    if response.status_code == 200 and path == "/api/ocds/releases":
        seqs = [int(r["id"].rsplit("-", 1)[1]) for r in response.json()["releases"]]
        assert seqs == sorted(set(seqs)) and len(seqs) <= 1000
    target.alive()


@FUZZ
@given(project=st.text(min_size=1, max_size=80) | st.sampled_from(["FZ-1", "FZ-1.", "."]))
def test_any_projects_calendar(target: Target, project: str) -> None:
    response = target.client.get("/api/projects/" + quote(project, safe="") + "/deadlines.ics")
    check_http(target, response, {200, 307})  # 307: an empty segment, e.g. "/"
    if response.status_code == 200:
        assert icalendar.Calendar.from_ical(response.content).get("X-WR-CALNAME")
    target.alive()


@FUZZ
@given(project=st.text(min_size=1, max_size=80) | codes)
def test_any_ocds_record_path(target: Target, project: str) -> None:
    """Any project id: its record package, or the contract's 404."""
    response = target.client.get("/api/ocds/records/" + quote(project, safe=""))
    check_http(target, response, {200, 307})  # 307: an empty segment, e.g. "/"
    if response.status_code == 200:
        record = response.json()["records"][0]
        assert record["ocid"] == f"ocds-sunbid-{project}"
        assert record["compiledRelease"]["tag"] == ["compiled"]
    target.alive()


@FUZZ
@given(
    project=st.text(min_size=1, max_size=80) | st.binary(min_size=1, max_size=40).map(bytes.hex),
    method=st.sampled_from(["GET", "POST"]),
)
def test_any_project_path(target: Target, project: str, method: str) -> None:
    path = "/api/projects/" + quote(project, safe="")
    if method == "POST":
        path += "/events"
    response = target.client.request(
        method,
        path,
        json=with_facts("notice", title="t"),
        headers={"Authorization": f"Bearer {target.admin}"},
    )
    check_http(target, response, {200, 201, 307})  # 307: an empty segment, e.g. "/"
    publish(target, response)
    target.alive()


@FUZZ
@given(
    query=queries, last_event_id=st.none() | st.text(alphabet=string.printable.strip(), max_size=25)
)
def test_stream_with_any_query(target: Target, query: str, last_event_id: str | None) -> None:
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    with target.client.stream("GET", f"/api/stream?{query}", headers=headers) as response:
        if response.status_code == 200:  # a live stream: leave it at that
            assert response.headers["content-type"].startswith("text/event-stream")
        else:
            response.read()
            check_http(target, response, set())
    target.alive()


# --- numbers and cursors out of range -----------------------------------------------------

UNICODE_DIGITS = "٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹०१२३४५६७८९０１２３４５６７８９"
number_texts = st.one_of(
    st.integers(4_290, 6_000).map(lambda n: "9" * n),  # int() refuses more than 4,300 digits
    st.integers(4_290, 6_000).map(lambda n: "-" + "1" * n),
    st.integers(2**63, 2**80).map(str),  # past SQLite's integers
    st.integers(max_value=-1).map(str),
    st.integers(0, 2**63 - 1).map(str),
    st.floats().map(repr),
    st.text(alphabet=UNICODE_DIGITS, min_size=1, max_size=25),
    st.sampled_from(
        [
            "9223372036854775807",
            "9223372036854775808",
            "0" * 5_000 + "1",
            "1_000",
            " 1",
            "+1",
            "0x10",
            "1e3",
            "١٢٣",
            "-0",
            "∞",
            "²",
        ]
    ),
)


# /api/projects' cursors are base64 of "<activity>:<id>"; warnings' of a JSON pair.
project_cursors = st.one_of(
    st.tuples(number_texts, codes).map(lambda p: b64(f"{p[0]}:{p[1]}".encode())),
    st.binary(max_size=60).map(b64),
    st.text(max_size=60),
    st.sampled_from(["", "=", "====", "%", b64(b":"), b64(b"1:"), b64(b"1:FZ-1\x00")]),
)
warning_cursors = st.one_of(
    st.tuples(number_texts | json_values, number_texts | json_values).map(
        lambda p: b64(json.dumps(list(p)).encode(), padded=True)
    ),
    json_values.map(lambda v: b64(json.dumps(v).encode(), padded=True)),
    st.binary(max_size=60).map(lambda b: b64(b, padded=True)),
    st.text(max_size=60),
)


def past_63_bits(value: Any) -> bool:
    """A cursor's due time that JSON reads as a whole number no 64-bit column holds:
    a 500 today, so the fuzzing below leaves it to test_case_cursors_past_63_bits_…"""
    if not isinstance(value, list) or len(value) != 2:
        return False
    return type(value[0]) is int and 2**63 <= value[0] < 2**64


# The cases' cursors are base64url (padded) of a JSON pair [due time in µs, id].
case_cursors = st.one_of(
    st.tuples(st.integers() | json_values, codes | json_values)
    .map(list)
    .filter(lambda pair: not past_63_bits(pair))
    .map(lambda pair: b64(json.dumps(pair).encode(), padded=True)),
    json_values.filter(lambda v: not past_63_bits(v)).map(
        lambda v: b64(json.dumps(v).encode(), padded=True)
    ),
    st.binary(max_size=60).map(lambda b: b64(b, padded=True)),
    st.text(max_size=60),
)

# Where the API reads a number or a cursor: (path template, how it is sent, the field an
# error must name, whether the staff token goes along).
NUMBER_PLACES = [
    ("/api/events", "limit", "limit", False),
    ("/api/events", "since", "since", False),
    ("/api/ocds/releases", "limit", "limit", False),
    ("/api/ocds/releases", "since", "since", False),
    ("/api/projects", "limit", "limit", False),
    ("/api/supervision/warnings", "limit", "limit", True),
    ("/api/enquiries", "limit", "limit", True),
    ("/api/disclosure-requests", "limit", "limit", True),
    ("/api/events/{}/deliveries", "path", "seq", True),
    ("/api/stream", "since", "since", False),
    ("/api/stream", "header", "Last-Event-ID", False),
]
CURSOR_PLACES = [
    ("/api/projects", project_cursors),
    ("/api/supervision/warnings", warning_cursors),
    ("/api/enquiries", case_cursors),
    ("/api/disclosure-requests", case_cursors),
]


def ask(target: Target, path: str, how: str, value: str, staff: bool) -> httpx.Response:
    headers: dict[str, str | bytes] = {"Authorization": f"Bearer {target.admin}"} if staff else {}
    params = {}
    if how == "path":
        path = path.format(quote(value, safe=""))
    elif how == "header":
        headers["Last-Event-ID"] = value.strip().encode()  # a header value has no outer spaces
    else:
        params[how] = value
    with target.client.stream("GET", path, params=params, headers=headers) as response:
        if response.status_code != 200 or not path.endswith("/stream"):
            response.read()  # a live stream that was accepted is left at its first bytes
        return response


def check_number_answer(target: Target, response: httpx.Response, field: str) -> None:
    check_http(target, response, {200})
    if response.status_code >= 400:
        allowed = {404} if field == "seq" else set()  # a seq that is no event
        assert response.status_code in {422} | allowed, response.text[:300]
    if response.status_code == 422:
        assert response.json()["error"].get("details", {}).get("field") == field, response.text


@pytest.mark.parametrize(("path", "how", "field", "staff"), NUMBER_PLACES)
@pytest.mark.parametrize(
    "value", ["9" * 4_301, "-" + "9" * 4_301, str(2**63), str(2**64), "1.5", "-1", "١٢٣"]
)
def test_numbers_out_of_range_are_422_naming_the_field(
    target: Target, path: str, how: str, field: str, staff: bool, value: str
) -> None:
    response = ask(target, path, how, value, staff)
    check_number_answer(target, response, field)
    assert response.status_code == 422, (response.status_code, response.text[:300])
    target.no_traceback()


@pytest.mark.parametrize("path", ["/api/projects", "/api/supervision/warnings"])
@pytest.mark.parametrize(
    "cursor",
    [
        b64(f"{2**63}:FZ-1".encode()),
        b64(f"{'9' * 4_301}:FZ-1".encode()),
        b64(b"-1:FZ-1"),
        b64(b64(json.dumps([2**64, "x"]).encode()).encode()),
        b64(json.dumps(["2026-12-01T00:00:00+08:00", 2**70]).encode(), padded=True),
        b64(json.dumps([10**400, "x"]).encode(), padded=True),
        "not a cursor",
    ],
)
def test_forged_cursors_are_422_naming_the_cursor(target: Target, path: str, cursor: str) -> None:
    response = ask(target, path, "cursor", cursor, staff=True)
    check_number_answer(target, response, "cursor")
    assert response.status_code == 422, (response.status_code, response.text[:300])
    target.no_traceback()


@pytest.mark.parametrize("path", ["/api/enquiries", "/api/disclosure-requests"])
@pytest.mark.parametrize(
    "cursor",
    [
        b64(json.dumps([2**64, "x"]).encode(), padded=True),  # JSON reads it as a float
        b64(json.dumps([-(2**63) - 1, "x"]).encode(), padded=True),
        b64(json.dumps([1.5, "x"]).encode(), padded=True),
        b64(json.dumps([True, "x"]).encode(), padded=True),
        b64(json.dumps([1, "x", 2]).encode(), padded=True),
        b64(json.dumps({"due": 1, "id": "x"}).encode(), padded=True),
        b64(b'[1,"x"'),  # not padded, and not JSON
        b64(b"\xff\xfe", padded=True),
        "not a cursor",
    ],
)
def test_forged_case_cursors_are_422_naming_the_cursor(
    target: Target, path: str, cursor: str
) -> None:
    response = ask(target, path, "cursor", cursor, staff=True)
    check_number_answer(target, response, "cursor")
    assert response.status_code == 422, (response.status_code, response.text[:300])
    target.no_traceback()


@pytest.fixture(scope="module")
def apart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A server of its own, for answers that are a 500 today: its traceback stays
    out of the shared server's log, which the other tests read."""
    server = ServerProcess(Path(tmp_path_factory.mktemp("fuzz-apart")) / "data").start()
    client = httpx.Client(base_url=server.url, timeout=30, headers={"Connection": "close"})
    yield Target(server, server.token("apart-admin"), client, initial_head=server.head())
    client.close()
    server.stop()


PAST_63_BITS = (
    "a cursor's due time from 2**63 to 2**64-1 is read by JSON as an int and goes to the "
    "database as is (SQLite: OverflowError; PostgreSQL: DataError, value out of int64 "
    "range), a 500: server/respond/cases.py _decode_cursor checks only that it is an int"
)


@pytest.mark.parametrize("path", ["/api/enquiries", "/api/disclosure-requests"])
@pytest.mark.parametrize("due_us", [2**63, 2**64 - 1])
def test_case_cursors_past_63_bits_are_422_naming_the_cursor(
    apart: Target, path: str, due_us: int
) -> None:
    since = apart.log_size()
    cursor = b64(json.dumps([due_us, "q" + "a" * 12]).encode(), padded=True)
    response = ask(apart, path, "cursor", cursor, staff=True)
    check_number_answer(apart, response, "cursor")
    assert response.status_code == 422, (response.status_code, response.text[:300])
    apart.no_traceback(since)


@pytest.mark.parametrize("name", ["month", "period"])
@pytest.mark.parametrize(
    ("month", "status"),
    [("0001-01", 200), ("9999-11", 200), ("2026-13", 422), ("2026-1", 422), ("2026-00", 422)],
)
def test_scorecard_months(target: Target, name: str, month: str, status: int) -> None:
    """The scorecard's month (counting the public's cases too), at the calendar's ends."""
    response = target.client.get("/api/compliance", params={name: month})
    check_number_answer(target, response, name)
    assert response.status_code == status, response.text[:300]
    target.no_traceback()


STATS_CATEGORIES = ("construction", "land", "nothing", "bad code", "")
STATS_TABLES = ("amounts", "answers", "on-time", "events_by_month", "nothing", "a%2Fb", "")
filter_numbers = number_texts | st.sampled_from(["", "2000", "2100", "1", "12", "13", "0"])


@FUZZ
@given(
    year=st.none() | filter_numbers,
    month=st.none() | filter_numbers,
    category=st.none() | st.sampled_from(STATS_CATEGORIES) | st.text(max_size=8),
    agency=st.none() | st.text(max_size=70),
    table=st.none() | st.sampled_from(STATS_TABLES),
)
def test_stats_with_any_filters(
    target: Target,
    year: str | None,
    month: str | None,
    category: str | None,
    agency: str | None,
    table: str | None,
) -> None:
    """The statistics and their CSV: 200 exactly when every filter is one the
    contract takes (server/numbers.py and the code pattern are the oracle)."""
    given_ = {"year": year, "month": month, "category": category, "agency": agency}
    params = {k: v for k, v in given_.items() if v is not None}
    path = "/api/stats" if table is None else f"/api/stats/{table}.csv"
    response = target.client.get(path, params=params)
    check_http(target, response, {200})
    year_ok = not year or whole_number(year, 2000, 2100) is not None
    month_ok = not month or (whole_number(month, 1, 12) is not None and bool(year))
    category_ok = not category or category in ("construction", "land")
    agency_ok = not agency or CODE.fullmatch(agency) is not None
    table_ok = table is None or table.replace("-", "_") in (
        "amounts",
        "answers",
        "on_time",
        "events_by_month",
    )
    if not table_ok:
        assert response.status_code == 404, response.text[:300]
    elif year_ok and month_ok and category_ok and agency_ok:
        assert response.status_code == 200, (params, response.text[:300])
    else:
        assert response.status_code == 422, (params, response.text[:300])
    target.alive()


SCORECARD_MONTH = (
    "a month the scorecard takes (four digits, 01-12) whose range leaves the years 1-9999 "
    "datetime holds, 0000-MM or 9999-12: server/respond/service.py _month_range raises "
    "ValueError, a 500"
)


@pytest.mark.parametrize(
    ("name", "month"), [("month", "9999-12"), ("month", "0000-01"), ("period", "9999-12")]
)
def test_scorecard_months_past_the_calendars_ends(apart: Target, name: str, month: str) -> None:
    since = apart.log_size()
    response = apart.client.get("/api/compliance", params={name: month})
    check_http(apart, response, {200})
    apart.no_traceback(since)


# The whole numbers each place takes (server/numbers.py is the oracle: the same
# rule for every place, so an answer can be predicted for any text).
RANGES = {
    "limit": {
        "/api/events": 1000,
        "/api/ocds/releases": 1000,
        "/api/projects": 100,
        "/api/supervision/warnings": 500,
        "/api/enquiries": 500,
        "/api/disclosure-requests": 500,
    }
}


@FUZZ
@given(place=st.sampled_from(NUMBER_PLACES), value=number_texts)
def test_any_number_anywhere(target: Target, place: tuple[str, str, str, bool], value: str) -> None:
    path, how, field, staff = place
    response = ask(target, path, how, value, staff)
    check_number_answer(target, response, field)
    low, high = (1, RANGES["limit"][path]) if field == "limit" else (0, MAX_SEQ)
    sent = value.strip() if how == "header" else value  # HTTP trims a header's value
    if whole_number(sent, low, high) is None:
        assert response.status_code == 422, (value[:40], response.status_code)
    else:
        assert response.status_code in ({200, 404} if field == "seq" else {200}), value[:40]
    target.alive()
    target.no_traceback()


@FUZZ
@given(data=st.data(), place=st.sampled_from(CURSOR_PLACES))
def test_any_cursor(target: Target, data: st.DataObject, place: tuple[str, Any]) -> None:
    path, cursors = place
    cursor = data.draw(cursors)
    check_number_answer(target, ask(target, path, "cursor", cursor, staff=True), "cursor")
    target.alive()
    target.no_traceback()


# --- WebSocket ----------------------------------------------------------------------------

op_objects = st.fixed_dictionaries(
    {"op": st.sampled_from(sorted(CLIENT_OPS)) | st.text(max_size=12) | json_values},
    optional={
        "topics": maybe(
            st.lists(
                st.sampled_from(
                    ["all", "project:FZ-1", "category:land", "supervision", "agency:", "x:y"]
                )
                | st.text(max_size=20),
                max_size=70,
            )
        ),
        "stages": maybe(st.lists(st.sampled_from(STAGES) | st.text(max_size=10), max_size=5)),
        "since": maybe(st.integers() | st.floats()),
        "token": maybe(st.text(max_size=60)),
    },
)
text_frames = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    op_objects.map(json.dumps),
    st.tuples(op_objects, st.dictionaries(st.text(max_size=8), json_values, max_size=3)).map(
        lambda pair: json.dumps({**pair[1], **pair[0]})
    ),
    literal.map(lambda lit: '{"op":"subscribe","topics":["all"],"since":' + lit.decode() + "}"),
    st.integers(1, 3000).map(lambda n: '{"op":' + "[" * n + "]" * n + "}"),
    st.integers(0, MAX_FRAME - 100).map(lambda n: json.dumps({"op": "x" * n})),
)


def is_client_op(frame: str) -> bool:
    try:
        message = json.loads(frame)
    except (ValueError, RecursionError):
        return False
    return (
        isinstance(message, dict)
        and isinstance(message.get("op"), str)
        and message["op"] in CLIENT_OPS
    )


async def until_pong(ws: Any, sent: str = "") -> list[dict[str, Any]]:
    """Every message up to the next pong (which is left out), each checked.

    `sent` is what the client sent, which an error may quote back.
    """
    answers = []
    while True:
        raw = await asyncio.wait_for(ws.recv(), 10)
        assert isinstance(raw, str), raw
        message = json.loads(raw)
        assert isinstance(message, dict) and message.get("op") in SERVER_OPS, message
        if message["op"] == "error":
            assert isinstance(message.get("code"), str) and message["code"], message
            assert isinstance(message.get("message"), str) and message["message"], message
            assert not leaked(raw, sent), raw
        if message["op"] == "pong":
            assert isinstance(message.get("head"), int), message
            return answers
        answers.append(message)


async def exchange(target: Target, frame: str | bytes, query: str) -> list[dict[str, Any]]:
    """Connect (with `query`), send one frame, then a ping; return what came before the pong."""
    url = target.server.ws_url + (f"?{query}" if query else "")
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send('{"op":"ping"}')
        opening = await until_pong(ws, query)
        if "topics" in parse_qs(query):  # the URL acted as a first subscribe
            assert opening and opening[0]["op"] in {"subscribed", "error"}, opening
            assert all(m["op"] == "event" for m in opening[1:]), opening
        else:
            assert opening == [], opening
        await ws.send(frame)
        await ws.send('{"op":"ping"}')
        sent = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
        return await until_pong(ws, query + sent)


ws_queries = st.one_of(
    st.just(""),
    queries,
    st.sampled_from(
        [
            "topics=all&since=0",
            "topics=supervision",
            "topics=project:FZ-1&stages=notice&since=0",
            "topics=nope",
            "since=-1&topics=all",
            "topics=all&since=" + "9" * 4_301,
            f"topics=all&since={2**63}",
            "topics=all&since=١٢٣",
        ]
    ),
)


@FUZZ
@given(frame=text_frames, query=ws_queries)
def test_ws_any_text_frame(target: Target, frame: str, query: str) -> None:
    answers = asyncio.run(exchange(target, frame, query))
    if not is_client_op(frame):
        assert [a["op"] for a in answers] == ["error"], (frame[:200], answers)
    elif answers:  # a ping's own pong ends the list at once
        assert answers[0]["op"] in {"subscribed", "unsubscribed", "authed", "error"}, answers
        assert all(a["op"] == "event" for a in answers[1:]), answers
    target.alive()


@FUZZ
@given(frame=st.binary(max_size=500) | text_frames.map(str.encode))
def test_ws_any_binary_frame(target: Target, frame: bytes) -> None:
    answers = asyncio.run(exchange(target, frame, ""))
    assert [a["op"] for a in answers] == ["error"], answers
    target.alive()


async def send_invalid_utf8(target: Target, frame: bytes) -> int | None:
    async with websockets.connect(target.server.ws_url) as ws:
        await ws.send(frame, text=True)
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed:
            return ws.close_code


@settings(FUZZ, max_examples=30)
@given(
    prefix=st.binary(max_size=20),
    bad=st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]),
)
def test_ws_text_frame_with_invalid_utf8_is_closed_1007(
    target: Target, prefix: bytes, bad: bytes
) -> None:
    # RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection with 1007.
    assert asyncio.run(send_invalid_utf8(target, prefix + bad)) == 1007
    target.alive()


async def send_oversized(target: Target, size: int) -> tuple[int | None, list[str]]:
    async with websockets.connect(target.server.ws_url, max_size=None) as ws:
        await ws.send(json.dumps({"op": "ping", "pad": "x" * size}))
        received = []
        try:
            while True:
                received.append(await asyncio.wait_for(ws.recv(), 10))
        except ConnectionClosed:
            return ws.close_code, received


@settings(FUZZ, max_examples=20)
@given(size=st.integers(MAX_FRAME, 4 * MAX_FRAME))
def test_ws_oversized_frame_is_closed_1009(target: Target, size: int) -> None:
    code, received = asyncio.run(send_oversized(target, size))
    assert (code, received) == (1009, [])
    target.alive()


# --- the log, at the end ------------------------------------------------------------------


channel_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(["sms", "email", "wechat", "push"]) | texts,
            "address": st.sampled_from(["13812345678", "+86 139 0000 0000"]) | texts | json_values,
            "topics": st.sampled_from([["all"], ["project:FZ-1"], []]) | json_values,
        },
        optional={"stages": st.sampled_from([["notice"], ["evaluation"], None]) | json_values},
    ),
)
channel_ids = st.sampled_from(["0" * 16, "../x", "%2e%2e", "a" * 300]) | st.text(
    alphabet=string.ascii_letters + string.digits + "-_.~%", min_size=1, max_size=40
)


@FUZZ
@given(body=channel_bodies)
def test_add_a_channel_with_any_json(target: Target, body: Any) -> None:
    response = target.client.post("/api/channels", json=body)
    check_http(target, response, {202})
    if response.status_code == 202:
        assert set(response.json()) == {"id", "status", "manage_token"}
    target.alive()


@FUZZ
@given(
    channel=channel_ids,
    body=json_values,
    token=st.none() | st.text(alphabet=string.printable.strip(), max_size=60),
    action=st.sampled_from(["confirm", "get", "delete", "unsubscribe"]),
)
def test_any_channel_path_and_token(
    target: Target, channel: str, body: Any, token: str | None, action: str
) -> None:
    headers = {} if token is None else {"X-Manage-Token": token}
    path = f"/api/channels/{channel}"
    if action == "confirm":
        response = target.client.post(path + "/confirm", json=body)
    elif action == "unsubscribe":
        response = target.client.post(path + "/unsubscribe", params={"token": token or ""})
    elif action == "get":
        response = target.client.get(path, headers=headers)
    else:
        response = target.client.delete(path, headers=headers)
    check_http(target, response, set())  # no channel is anyone's here
    target.alive()


@FUZZ
@given(query=queries, path=st.sampled_from(["authorize", "callback"]))
def test_wechat_steps_with_any_query(target: Target, query: str, path: str) -> None:
    response = target.client.get(f"/api/channels/wechat/{path}?{query}")
    check_http(target, response, set())  # WeChat is not configured here
    target.alive()


# --- the public's cases (回应) ------------------------------------------------------------


def text_ok(value: object, limit: int, problem: Any = text_problem) -> bool:
    """What server/respond/inputs.py takes: 1..limit characters once trimmed, and
    nothing a reader could be fooled by (the shared check in server/core/text.py)."""
    if not isinstance(value, str) or not value.strip():
        return False
    return len(value.strip()) <= limit and problem(value.strip()) is None


def line_ok(value: object, limit: int) -> bool:
    return text_ok(value, limit, line_problem)


def fields_ok(body: object, allowed: set[str]) -> bool:
    return isinstance(body, dict) and set(body) <= allowed


def question_ok(body: object) -> bool:
    if not fields_ok(body, {"question", "contact"}):
        return False
    assert isinstance(body, dict)
    contact = body.get("contact")
    return text_ok(body.get("question"), inputs.MAX_QUESTION) and (
        not contact or line_ok(contact, inputs.MAX_CONTACT)
    )


def request_ok(body: object, agencies: set[str]) -> bool:
    if not fields_ok(body, {"agency", "subject", "description", "contact"}):
        return False
    assert isinstance(body, dict)
    agency = body.get("agency")
    return (
        isinstance(agency, str)
        and agency in agencies
        and line_ok(body.get("subject"), inputs.MAX_SUBJECT)
        and text_ok(body.get("description"), inputs.MAX_DESCRIPTION)
        and line_ok(body.get("contact"), inputs.MAX_CONTACT)
    )


def rating_ok(body: object) -> bool:
    if not fields_ok(body, {"score", "comment"}):
        return False
    assert isinstance(body, dict)
    score, comment = body.get("score"), body.get("comment")
    return (
        type(score) is int
        and 1 <= score <= 5
        and (not comment or text_ok(comment, inputs.MAX_COMMENT))
    )


def answer_ok(body: object) -> bool:
    if not fields_ok(body, {"answer", "question"}):
        return False
    assert isinstance(body, dict)
    question = body.get("question")
    return text_ok(body.get("answer"), inputs.MAX_ANSWER) and (
        question is None or text_ok(question, inputs.MAX_QUESTION)
    )


def personal(body: dict[str, Any]) -> bool:
    """Whether an answer would publish personal data (server/respond/inputs.py's
    patterns) or the asker's contact: refused, 422 `personal_data`."""
    published = [body["answer"], body.get("question") or ASKED]
    return any(
        MARK in text or any(pattern.search(text) for pattern, _ in inputs.PERSONAL_DATA)
        for text in published
    )


def reason_ok(body: object) -> bool:
    if not fields_ok(body, {"reason"}):
        return False
    assert isinstance(body, dict)
    return text_ok(body.get("reason"), inputs.MAX_REASON)


def reply_ok(body: object) -> bool:
    if not fields_ok(body, {"outcome", "text", "basis"}):
        return False
    assert isinstance(body, dict)
    basis = body.get("basis")
    return (
        body.get("outcome") in inputs.OUTCOMES
        and text_ok(body.get("text"), inputs.MAX_DESCRIPTION)
        and (not basis or line_ok(basis, inputs.MAX_BASIS))
    )


def device_ok(device: str | bytes | None) -> bool:
    """X-Device-Id as the server takes it (a header reaches it as latin-1)."""
    if device is None:
        return True
    text = device.decode("latin-1") if isinstance(device, bytes) else device
    return 8 <= len(text) <= 64 and CODE.fullmatch(text) is not None


def may_act(role: str, kind: str) -> bool:
    """A publisher of the case's agency, or an admin."""
    return role == "admin" or STAFF_GRANTS[role] == ("publisher", CASE_AGENCY[kind])


def working_case(target: Target, kind: str) -> Case:
    """The open case staff act on, filed anew once the last one was closed."""
    case = target.working.get(kind)
    if case is None or not case.open:
        case = target.working[kind] = file_case(target.client, kind)
    return case


def answered_case(target: Target) -> Case:
    """An answered enquiry not rated yet, answered anew once the last one was rated."""
    case = target.cases["answered"]
    if case.rated:
        case = target.cases["answered"] = file_case(target.client, ENQUIRY)
        answer = {"answer": "已退还。"}
        response = target.client.post(
            f"/api/enquiries/{case.id}/answer", json=answer, headers=target.staff["admin"]
        )
        assert response.status_code == 201, response.text
        publish(target, response)
        case.status, target.answered[case.id] = "answered", response.json()["seq"]
    return case


def routes_to_a_case(case_id: str) -> bool:
    """Whether a path segment reaches the case handler (a `/` or a dot segment leads
    elsewhere: another route, or none)."""
    return "/" not in case_id and case_id not in ("", ".", "..")


def assert_no_such_case(target: Target, kind: str, response: httpx.Response) -> None:
    """The same answer, byte for byte and header for header, as for an id never given out."""
    reference = target.not_found[kind, response.request.method]
    assert response.status_code == 404, (response.status_code, response.text[:300])
    assert response.content == reference.content, response.text[:300]
    same = {k: v for k, v in reference.headers.items() if k != "date"}
    assert {k: v for k, v in response.headers.items() if k != "date"} == same


def assert_private(response: httpx.Response) -> None:
    """A person's case, or staff data: never kept by a cache on the way."""
    assert response.headers.get("cache-control") == "no-store", response.headers


def reached(response: httpx.Response) -> None:
    """Count the answer in Hypothesis's statistics (`--hypothesis-show-statistics`):
    how often the examples got past the checks, not only how often they were refused."""
    event(f"answered {response.status_code}")


def post_json(target: Target, path: str, body: Any, headers: dict[str, Any]) -> httpx.Response:
    """`body` as JSON, whatever it is (httpx would send no body at all for None)."""
    sent = {**headers, "Content-Type": "application/json"}
    return target.client.post(path, content=json.dumps(body).encode(), headers=sent)


HEADER_TEXT = string.ascii_letters + string.digits + string.punctuation + " "


def header_bytes(raw: bytes) -> bytes:
    """Any bytes a header value may carry (no control characters, no outer spaces)."""
    return bytes(b if 0x21 <= b <= 0x7E or b >= 0x80 else 0x5F for b in raw)


header_values = st.one_of(
    st.text(alphabet=HEADER_TEXT, max_size=70).map(str.strip),
    st.binary(min_size=1, max_size=70).map(header_bytes),
)
# A ticket: the case's own, another case's, the case's changed by one character,
# none, an empty one, or anything at all.
tickets = st.sampled_from(["<own>", "<other>", "<changed>", "<none>", "<empty>"]) | header_values
device_ids = st.one_of(
    st.none(),
    st.from_regex(r"[A-Za-z0-9._-]{8,64}", fullmatch=True),
    st.sampled_from(["short", "a" * 65, "abc def gh", "设备-1234567".encode(), "........"]),
    header_values,
)
# A path segment: the case's own id, the other kind's case's, one never given out,
# one of the right form, or anything at all.
case_ids = st.one_of(
    st.sampled_from(["<own>", "<other>", "<unknown>"]),
    st.from_regex(r"[qr][a-z2-7]{12}", fullmatch=True),
    st.text(min_size=1, max_size=80),
)


def pick_ticket(choice: str | bytes, own: Case, other: Case) -> str | bytes | None:
    if choice == "<own>":
        return own.ticket
    if choice == "<other>":
        return other.ticket
    if choice == "<changed>":
        return own.ticket[:-1] + ("A" if own.ticket[-1] != "A" else "B")
    if choice == "<none>":
        return None
    return "" if choice == "<empty>" else choice


def pick_id(choice: str, own: Case, other: Case) -> str:
    if choice == "<own>":
        return own.id
    if choice == "<other>":
        return other.id
    return PREFIX[own.kind] + "z" * 12 if choice == "<unknown>" else choice


def with_ticket(ticket: str | bytes | None, device: str | bytes | None = None) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if ticket is not None:
        headers["X-Ticket"] = ticket
    if device is not None:
        headers["X-Device-Id"] = device
    return headers


# Text a person would write (letters, digits, punctuation, spaces): mostly accepted,
# so that the bodies below reach what happens after the checks as often as the checks.
plain = st.text(alphabet=st.characters(categories=("L", "N", "P", "Zs")), min_size=1, max_size=60)
question_bodies = st.one_of(
    st.fixed_dictionaries({"question": plain}, optional={"contact": st.none() | plain}),
    with_junk(
        {"question": maybe(texts | st.sampled_from(["问" * inputs.MAX_QUESTION, "问" * 2001]))},
        {"contact": maybe(st.none() | texts | st.just("x" * (inputs.MAX_CONTACT + 1)))},
    ),
)


@FUZZ
@given(body=question_bodies, project=st.sampled_from(["FZ-1", "FZ-2", "NOPE"]), device=device_ids)
@example(body={"question": "何时开标？"}, project="FZ-1", device="a.b.c.d.e")
def test_ask_with_any_json_and_device(
    target: Target, body: Any, project: str, device: str | bytes | None
) -> None:
    response = post_json(
        target, f"/api/projects/{project}/enquiries", body, with_ticket(None, device)
    )
    check_http(target, response, {201})
    reached(response)
    if project == "NOPE":
        assert response.status_code == 404, response.text
    elif not question_ok(body):
        assert response.status_code == 422, response.text
    elif not device_ok(device):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"]["field"] == "x-device-id", response.text
    else:
        assert response.status_code == 201, response.text
        filed = response.json()
        assert set(filed) == {"id", "ticket", "status", "due", "asked_at", "project", "topic"}
        assert re.fullmatch(r"q[a-z2-7]{12}", filed["id"]), filed
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", filed["ticket"]), filed
        assert (filed["status"], filed["project"]) == ("open", project), filed
        assert filed["topic"] == "enquiry:" + filed["id"], filed
        assert_private(response)
        view = target.client.get(
            f"/api/enquiries/{filed['id']}", headers={"X-Ticket": filed["ticket"]}
        )
        assert view.status_code == 200, view.text
        assert view.json()["question"] == body["question"].strip()
        assert "contact" not in view.json(), view.text
    target.alive()


request_bodies = st.one_of(
    st.fixed_dictionaries(
        {
            "agency": st.sampled_from(["YW-GGZY", "YW-ZFCG"]),
            "subject": plain,
            "description": plain,
            "contact": plain,
        }
    ),
    with_junk(
        {
            "agency": maybe(st.sampled_from(["YW-GGZY", "YW-ZFCG", "FZ", "NOWHERE"]) | codes),
            "subject": maybe(texts),
            "description": maybe(texts | st.just("x" * (inputs.MAX_DESCRIPTION + 1))),
            "contact": maybe(texts),
        },
        {},
    ),
)


@FUZZ
@given(body=request_bodies, device=device_ids)
def test_request_disclosure_with_any_json(
    target: Target, body: Any, device: str | bytes | None
) -> None:
    response = post_json(target, "/api/disclosure-requests", body, with_ticket(None, device))
    check_http(target, response, {201})
    reached(response)
    if not request_ok(body, target.agencies) or not device_ok(device):
        assert response.status_code == 422, response.text
    else:
        assert response.status_code == 201, response.text
        filed = response.json()
        assert set(filed) == {"id", "ticket", "status", "due", "received_at", "agency"}
        assert re.fullmatch(r"r[a-z2-7]{12}", filed["id"]), filed
        assert (filed["status"], filed["agency"]) == ("received", body["agency"]), filed
        view = target.client.get(
            f"/api/disclosure-requests/{filed['id']}", headers={"X-Ticket": filed["ticket"]}
        )
        assert view.status_code == 200, view.text
        shown = view.json()
        assert (shown["subject"], shown["description"]) == (
            body["subject"].strip(),
            body["description"].strip(),
        )
        assert "contact" not in shown, view.text
    target.alive()


@FUZZ
@given(
    kind=st.sampled_from([ENQUIRY, REQUEST]),
    right=st.booleans(),
    case_id=case_ids,
    ticket=tickets,
)
def test_read_a_case_with_any_id_and_ticket(
    target: Target, kind: str, right: bool, case_id: str, ticket: str | bytes
) -> None:
    own, other = target.cases["open"], target.cases["request"]
    if kind == REQUEST:
        own, other = other, own
    wanted = own.id if right else pick_id(case_id, own, other)
    sent = own.ticket if right else pick_ticket(ticket, own, other)
    response = target.client.get(
        f"{CASE_PATHS[kind]}/{quote(wanted, safe='')}", headers=with_ticket(sent)
    )
    check_http(target, response, {200, 307})  # 307: an empty segment, e.g. "/"
    reached(response)
    if (wanted, sent) == (own.id, own.ticket):
        assert response.status_code == 200, response.text
        assert response.json()["id"] == own.id
        assert "contact" not in response.json() and MARK not in response.text
        assert_private(response)
    elif routes_to_a_case(wanted):
        assert_no_such_case(target, kind, response)
    target.alive()


rating_bodies = st.one_of(
    st.fixed_dictionaries({"score": st.integers(1, 5)}, optional={"comment": st.none() | plain}),
    with_junk(
        {"score": maybe(st.integers(-1, 7) | st.sampled_from([True, 1.0, "5", 2**64]))},
        {"comment": maybe(st.none() | texts | st.just("好" * (inputs.MAX_COMMENT + 1)))},
    ),
)


@FUZZ
@given(
    body=rating_bodies,
    which=st.sampled_from(["open", "answered"]),
    right=st.booleans(),
    case_id=case_ids,
    ticket=tickets,
    device=device_ids,
)
def test_rate_with_any_json_id_and_ticket(
    target: Target,
    body: Any,
    which: str,
    right: bool,
    case_id: str,
    ticket: str | bytes,
    device: str | bytes | None,
) -> None:
    own = target.cases["open"] if which == "open" else answered_case(target)
    other = target.cases["request"]
    wanted = own.id if right else pick_id(case_id, own, other)
    sent = own.ticket if right else pick_ticket(ticket, own, other)
    path = f"/api/enquiries/{quote(wanted, safe='')}/rating"
    response = post_json(target, path, body, with_ticket(sent, device))
    check_http(target, response, {201, 307})
    reached(response)
    rated_before, own.rated = own.rated, own.rated or response.status_code == 201
    if (wanted, sent) != (own.id, own.ticket):
        if routes_to_a_case(wanted):
            assert_no_such_case(target, ENQUIRY, response)
    elif not rating_ok(body):
        assert response.status_code == 422, response.text
    elif not device_ok(device):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"]["field"] == "x-device-id", response.text
    elif own.status != "answered" or rated_before:
        code = "already_rated" if rated_before else "not_answered"
        assert (response.status_code, response.json()["error"]["code"]) == (409, code)
    else:
        assert response.status_code == 201, response.text
        comment = body.get("comment")
        assert response.json() == {
            "score": body["score"],
            "comment": comment.strip() if comment else None,
        }
    target.alive()


roles = st.sampled_from(["admin", "admin", "admin", "publisher-fz", "publisher-yw", "supervisor"])
answer_bodies = st.one_of(
    st.fixed_dictionaries({"answer": plain}, optional={"question": st.none() | plain}),
    st.fixed_dictionaries(
        {
            "answer": st.sampled_from(
                ["请致电 13900001111。", "写信至 a@b.cn", MARK, "电话13800138000"]
            )
        },
        optional={"question": st.sampled_from(["身份证 110101199003071234 的问题", ASKED])},
    ),
    st.just({"same_as": "<answered>"}),
    with_junk(
        {"answer": maybe(texts | st.just("答" * (inputs.MAX_ANSWER + 1)))},
        {"question": maybe(st.none() | texts)},
    ),
    with_junk(
        {"same_as": maybe(st.sampled_from(["<answered>", "<self>", "<request>"]) | codes)}, {}
    ),
)


def linked_to(body: Any, case: Case, target: Target) -> Any:
    """`body` with a placeholder of `same_as` made the id it names."""
    if not isinstance(body, dict) or not isinstance(body.get("same_as"), str):
        return body
    names = {
        "<answered>": min(target.answered),
        "<self>": case.id,
        "<request>": target.cases["request"].id,
    }
    return {**body, "same_as": names.get(body["same_as"], body["same_as"])}


@FUZZ
@given(body=answer_bodies, role=roles)
def test_answer_with_any_json(target: Target, body: Any, role: str) -> None:
    case = working_case(target, ENQUIRY)
    body = linked_to(body, case, target)
    response = post_json(target, f"/api/enquiries/{case.id}/answer", body, target.staff[role])
    check_http(target, response, {200, 201})
    reached(response)
    if response.status_code in (200, 201):  # answered, whatever else is checked below
        case.status, target.answered[case.id] = "answered", response.json()["seq"]
    linking = isinstance(body, dict) and set(body) == {"same_as"}
    linking = linking and isinstance(body["same_as"], str)
    if not may_act(role, ENQUIRY):
        assert response.status_code == 403, response.text
    elif linking and body["same_as"] in target.answered:
        assert response.status_code == 200, response.text
        assert response.json()["seq"] == target.answered[body["same_as"]], response.text
    elif answer_ok(body) and personal(body):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "personal_data", response.text
    elif answer_ok(body):
        assert response.status_code == 201, response.text
        publish(target, response)
        data = response.json()["data"]
        published = body.get("question")
        assert data["enquiry"] == case.id and data["answer"] == body["answer"].strip()
        assert data["question"] == (published.strip() if published is not None else ASKED)
    else:
        assert response.status_code == 422, response.text
    assert MARK not in response.text
    target.alive()


reasons = st.one_of(
    st.fixed_dictionaries({"reason": plain}),
    with_junk({"reason": maybe(texts | st.just("因" * (inputs.MAX_REASON + 1)))}, {}),
)
replies = st.one_of(
    st.fixed_dictionaries(
        {"outcome": st.sampled_from(inputs.OUTCOMES), "text": plain},
        optional={"basis": st.none() | plain},
    ),
    with_junk(
        {
            "outcome": maybe(st.sampled_from([*inputs.OUTCOMES, "maybe", ""])),
            "text": maybe(texts),
        },
        {"basis": maybe(st.none() | texts)},
    ),
)
ACTIONS = {"decline": (ENQUIRY, reasons), "extend": (REQUEST, reasons), "reply": (REQUEST, replies)}


@FUZZ
@given(action=st.sampled_from(sorted(ACTIONS)), role=roles, data=st.data())
def test_decline_extend_or_reply_with_any_json(
    target: Target, action: str, role: str, data: st.DataObject
) -> None:
    kind, bodies = ACTIONS[action]
    body = data.draw(bodies)
    case = working_case(target, kind)
    response = post_json(target, f"{CASE_PATHS[kind]}/{case.id}/{action}", body, target.staff[role])
    check_http(target, response, {200})
    reached(response)
    extended_before, due_before = case.extended, case.due
    if response.status_code == 200:  # done, whatever else is checked below
        item = response.json()
        case.status, case.due = item["status"], item["due"]
        case.extended = case.extended or action == "extend"
    if not may_act(role, kind):
        assert response.status_code == 403, response.text
    elif not (reply_ok(body) if action == "reply" else reason_ok(body)):
        assert response.status_code == 422, response.text
    elif action == "extend" and extended_before:
        assert (response.status_code, response.json()["error"]["code"]) == (
            409,
            "already_extended",
        )
    else:
        assert response.status_code == 200, response.text
        assert_private(response)
        assert item["id"] == case.id and item["contact"] == MARK, item
        if action == "extend":
            assert item["extension"]["reason"] == body["reason"].strip(), item
            assert item["due"] > due_before and item["status"] == "extended", item
        elif action == "reply":
            assert item["reply"]["outcome"] == body["outcome"], item
            assert item["reply"]["text"] == body["text"].strip(), item
            assert item["status"] == "replied", item
        else:
            assert item["reason"] == body["reason"].strip(), item
            assert item["status"] == "declined", item
    target.alive()


CASE_QUERY_KEYS = ["status", "agency", "project", "cursor", "limit"]
case_query_values = query_values | st.sampled_from(
    ["open", "answered", "declined", "received", "extended", "replied", "FZ", "YW-GGZY", "FZ-1"]
)
case_queries = queries | st.lists(
    st.tuples(st.sampled_from(CASE_QUERY_KEYS) | st.text(max_size=8), case_query_values),
    max_size=5,
).map(urlencode)
OPEN_STATUSES = {ENQUIRY: {"open"}, REQUEST: {"received", "extended"}}


@FUZZ
@given(query=case_queries, kind=st.sampled_from([ENQUIRY, REQUEST]), role=roles)
def test_list_cases_with_any_query(target: Target, query: str, kind: str, role: str) -> None:
    path = CASE_PATHS[kind]
    response = target.client.get(f"{path}?{query}", headers=target.staff[role])
    check_http(target, response, {200})
    reached(response)
    params = QueryParams(query)  # as the server reads the query string
    own = STAFF_GRANTS[role][1] if role.startswith("publisher") else None
    if response.status_code == 403:
        assert own is not None and params.get("agency") not in (None, "", own), query
    if response.status_code != 200:
        assert response.status_code in {403, 422}, response.text
        target.alive()
        return
    assert_private(response)
    page = response.json()
    items = page["items"]
    assert items == sorted(items, key=lambda i: (i["due"], i["id"])), "oldest due first"
    limit = whole_number(params.get("limit") or "50", 1, 500)
    assert limit is not None and len(items) <= limit, query
    status = params.get("status")
    wanted = OPEN_STATUSES[kind] if status == "open" else {status} if status else None
    for item in items:
        assert wanted is None or item["status"] in wanted, (query, item)
        assert item["agency"] == (own or params.get("agency") or item["agency"]), (query, item)
        assert params.get("project") in (None, "", item.get("project")), (query, item)
        if role == "supervisor":
            assert item["contact"] is None, item
    if page["next_cursor"] is not None:
        assert len(items) == limit, page
        after = target.client.get(
            path, params={**params, "cursor": page["next_cursor"]}, headers=target.staff[role]
        )
        assert after.status_code == 200, after.text
        following = after.json()["items"]
        last = (items[-1]["due"], items[-1]["id"])
        assert all((i["due"], i["id"]) > last for i in following), "each case once, in order"
    target.alive()


# What each staff action is sent when the token is what is wrong.
STAFF_ACTS = {
    "answer": (ENQUIRY, {"answer": "x"}),
    "decline": (ENQUIRY, {"reason": "x"}),
    "extend": (REQUEST, {"reason": "x"}),
    "reply": (REQUEST, {"outcome": "granted", "text": "x"}),
}


@FUZZ
@given(
    authorization=st.none()
    | st.text(alphabet=string.printable.strip() + " ", max_size=80).map(str.strip)
    | st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=60).map(
        lambda t: "Bearer sb_" + t
    ),
    action=st.sampled_from(["list", *STAFF_ACTS]),
    kind=st.sampled_from([ENQUIRY, REQUEST]),
)
def test_staff_case_endpoints_with_any_credentials(
    target: Target, authorization: str | None, action: str, kind: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    if action == "list":
        response = target.client.get(CASE_PATHS[kind], headers=headers)
    else:
        kind, body = STAFF_ACTS[action]
        case = target.cases["open" if kind == ENQUIRY else "request"]
        path = f"{CASE_PATHS[kind]}/{case.id}/{action}"
        response = post_json(target, path, body, headers)
    check_http(target, response, set())  # no valid token, no success
    assert response.status_code == 401, response.text
    target.alive()


def test_log_is_intact_after_fuzzing(target: Target) -> None:
    """Runs last in this module: only accepted publications are in the log, unaltered."""
    target.alive()
    response = target.client.get(
        "/api/events", params={"since": str(target.initial_head), "limit": "1000"}
    )
    items = response.json()["items"]
    assert {e["seq"]: e for e in items} == target.accepted
    # Whoever filed a case, their contact reached nothing public.
    for public in ("/api/events?limit=1000", "/api/projects/FZ-1", "/api/compliance"):
        answer = target.client.get(public)
        assert answer.status_code == 200 and MARK not in answer.text, public
    target.no_traceback()
    verify = target.server.cli("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


# --- webhooks (admin) -------------------------------------------------------------------

webhook_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "url": st.sampled_from(
                [
                    WEBHOOK_ORIGIN + "/hook",
                    WEBHOOK_ORIGIN + "/a?b=c",
                    "https://10.0.0.1/x",
                    "http://127.0.0.1:8/x",
                    "https://[::1]/x",
                    "https://0x7f.1/x",
                ]
            )
            | texts
            | json_values,
            "topics": st.sampled_from([["all"], ["project:FZ-1"], ["supervision"], []])
            | json_values,
        },
        optional={
            "stages": st.sampled_from([["notice"], ["evaluation"], None]) | json_values,
            "description": texts | json_values,
        },
    ),
)
webhook_ids = st.sampled_from(["wh_0000000000000000", "../x", "%2e%2e", "a" * 300]) | st.text(
    alphabet=string.ascii_letters + string.digits + "-_.~%", min_size=1, max_size=40
)


@FUZZ
@given(body=webhook_bodies)
def test_add_a_webhook_with_any_json(target: Target, body: Any) -> None:
    response = target.client.post("/api/webhooks", json=body, headers=target.staff["admin"])
    check_http(target, response, {201})
    if response.status_code == 201:
        created = response.json()
        assert set(created) == {"id", "secret"} and created["secret"].startswith("whsec_")
        listed = target.client.get("/api/webhooks", headers=target.staff["admin"]).text
        assert created["secret"] not in listed
    target.alive()


@FUZZ
@given(
    webhook=webhook_ids,
    body=json_values | st.fixed_dictionaries({"since": number_texts | json_values}),
    limit=st.none() | number_texts,
    action=st.sampled_from(["delete", "deliveries", "replay"]),
    role=st.sampled_from(["admin", "publisher-fz", None]),
)
def test_any_webhook_path_body_and_token(
    target: Target, webhook: str, body: Any, limit: str | None, action: str, role: str | None
) -> None:
    headers = target.staff.get(role, {}) if role else {}
    path = "/api/webhooks/" + quote(webhook, safe="")
    if action == "delete":
        response = target.client.delete(path, headers=headers)
    elif action == "deliveries":
        params = {} if limit is None else {"limit": limit}
        response = target.client.get(path + "/deliveries", params=params, headers=headers)
    else:
        response = target.client.post(path + "/replay", json=body, headers=headers)
    check_http(target, response, set())  # no such webhook, or no admin
    target.alive()
