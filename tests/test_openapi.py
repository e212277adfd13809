"""The OpenAPI document: built from the route table and the types, and true to the server.

Two halves. Without I/O: the document is a valid OpenAPI 3.1 document, a route
without a description stops it from being built, and the facts it repeats
(event fields, limits, category and stage codes) follow their one definition.
Against a real `sunbid serve` (with a real push service on loopback): every
public and staff endpoint is called, and each answer, success and error, is
validated against what the document says for that path, method and status with
a real JSON Schema validator (`jsonschema`, 2020-12, the dialect of OpenAPI 3.1).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_openapi
from websockets.sync.client import connect

from server.api.openapi import RouteNotDescribed, build, served_routes
from server.api.route_docs import ROUTES
from server.app import create_app
from server.compliance.calendar import LEGAL_TZ, WorkCalendar
from server.core.events import EVENT_FIELDS
from server.domain import MAX_BODY, MAX_TITLE, RFC3339, Category, Domain, Stage
from server.respond import inputs
from server.respond.deadlines import CaseClock, alerts
from server.respond.rules import CaseKind, ResponseRules
from server.respond.service import STATUSES as CASE_STATUSES
from server.settings import Settings
from tests.conftest import ServerProcess, Staff
from tests.push_service import PushService
from tests.sms_service import SmsService
from tests.standins import in_thread, until
from tests.test_channels_e2e import WECHAT_TEMPLATE, wechat_env
from tests.webhook_receiver import WebhookReceiver
from tests.wechat_service import WeChatService

# --- the document without a server ------------------------------------------------------------


@pytest.fixture(scope="module")
def app_routes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    """(path, method) of the real app's route table."""
    data = tmp_path_factory.mktemp("routes")
    app = create_app(Settings.from_env({"SUNBID_DATA_DIR": str(data)}))
    return served_routes(app.http.routes)


@pytest.fixture(scope="module")
def document(app_routes: list[tuple[str, str]]) -> dict[str, Any]:
    return build(Domain.load(), app_routes)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate_openapi(document)
    assert document["openapi"] == "3.1.0"
    assert json.loads(json.dumps(document)) == document
    # No marker of how the document is built is left in it.
    assert "x-sunbid" not in json.dumps(document)


def test_a_served_route_without_a_description_stops_the_build(
    app_routes: list[tuple[str, str]],
) -> None:
    with pytest.raises(RouteNotDescribed, match=r"/api/undescribed"):
        build(Domain.load(), [*app_routes, ("/api/undescribed", "get")])
    with pytest.raises(RouteNotDescribed, match=r"/api/projects"):
        build(Domain.load(), [*app_routes, ("/api/projects", "put")])


def test_a_description_of_a_route_not_served_stops_the_build(
    app_routes: list[tuple[str, str]],
) -> None:
    without = [route for route in app_routes if route != ("/api/catalog", "get")]
    with pytest.raises(RouteNotDescribed, match=r"/api/catalog"):
        build(Domain.load(), without)


def test_every_route_is_described_and_every_description_served(
    app_routes: list[tuple[str, str]], document: dict[str, Any]
) -> None:
    assert set(app_routes) == set(ROUTES)
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == set(app_routes)
    # The contract's amendment.
    patch = document["paths"]["/api/projects/{project_id}"]["patch"]
    assert patch["security"] == [{"bearer": []}]
    body = patch["requestBody"]["content"]["application/json"]["schema"]
    amendment = resolve(document, body)
    assert amendment["required"] == ["reason"]
    assert amendment["additionalProperties"] is False
    assert set(amendment["properties"]) == {
        "reason",
        "title",
        "budget",
        "currency",
        "region",
        "must_tender",
    }


def test_facts_come_from_their_one_definition(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert list(schemas["Event"]["properties"]) == [*EVENT_FIELDS, "hash"]
    assert schemas["Event"]["required"] == [*EVENT_FIELDS, "hash"]
    domain = Domain.load()
    assert schemas["CategoryCode"]["enum"] == list(domain.categories)
    assert schemas["StageCode"]["enum"] == list(domain.stages)
    assert schemas["EventInput"]["properties"]["title"]["maxLength"] == MAX_TITLE
    assert schemas["EventInput"]["properties"]["body"]["maxLength"] == MAX_BODY
    assert schemas["ProjectInput"]["properties"]["title"]["maxLength"] == MAX_TITLE
    # The public's cases: the limits server/respond/inputs.py checks, the statuses it keeps.
    assert schemas["EnquiryInput"]["properties"]["question"]["maxLength"] == inputs.MAX_QUESTION
    assert schemas["DisclosureRequestInput"]["properties"]["description"]["maxLength"] == (
        inputs.MAX_DESCRIPTION
    )
    assert schemas["CaseReason"]["properties"]["reason"]["maxLength"] == inputs.MAX_REASON
    assert schemas["ReplyInput"]["properties"]["outcome"]["enum"] == list(inputs.OUTCOMES)
    assert schemas["Enquiry"]["properties"]["status"]["enum"] == list(
        CASE_STATUSES[CaseKind.ENQUIRY]
    )
    assert schemas["DisclosureRequest"]["properties"]["status"]["enum"] == list(
        CASE_STATUSES[CaseKind.DISCLOSURE_REQUEST]
    )


def test_the_enums_follow_the_vocabulary_the_server_loaded(
    app_routes: list[tuple[str, str]],
) -> None:
    stage = Stage("registered", "项目登记", "Registered", oversight=False)
    category = Category("land", "土地", "Land", "TDSY", ("registered",), frozenset({"registered"}))
    spec = build(Domain(stages={"registered": stage}, categories={"land": category}), app_routes)
    assert spec["components"]["schemas"]["CategoryCode"]["enum"] == ["land"]
    assert spec["components"]["schemas"]["StageCode"]["enum"] == ["registered"]


def test_case_warnings_match_the_document(document: dict[str, Any]) -> None:
    """The warnings of the public's cases, as the server builds them for supervisors
    (server/respond/deadlines.py), once the answer window has passed: a disclosure
    request names no project. (A server would take days to raise them.)"""
    rules, calendar = ResponseRules.load(), WorkCalendar.load()
    received = datetime(2026, 12, 1, 10, 0, tzinfo=LEGAL_TZ)
    cases = [
        (CaseKind.DISCLOSURE_REQUEST, "rabcdefghijkl", None, None),
        (CaseKind.ENQUIRY, "qabcdefghijkl", "OA-1", "construction"),
    ]
    for kind, case_id, project, category in cases:
        rule = rules.for_case(kind, category)
        due = calendar.due(received, rule.amount, rule.unit).at
        case = CaseClock(
            case_id, kind, "YW-GGZY", project, category, rule, received, due, due, None, None
        )
        found = alerts(case, calendar, 1, due + timedelta(days=30))
        assert [alert.level for alert in found] == ["approaching", "breach"]
        for alert in found:
            warning = json.loads(json.dumps(alert.to_json()))
            assert warning["case"] == {"kind": str(kind), "id": case_id}
            assert Answers(document).schema_errors("ComplianceWarning", warning) == []


# --- validating answers -----------------------------------------------------------------------


def resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node and len(node) == 1:
        found: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        node = found
    return node


# The server's own spelling of date-time (RFC 3339 with an offset, upper-case T and Z).
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return RFC3339.fullmatch(value) is not None and datetime.fromisoformat(value) is not None


def validator(spec: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for `schema`, whose `$ref`s resolve inside the document."""
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    root["components"] = spec["components"]
    return Draft202012Validator(root, format_checker=FORMATS)


class Answers:
    """Checks real answers against the document and keeps the operations it saw."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.seen: set[tuple[str, str]] = set()

    def operation(self, path: str, method: str) -> dict[str, Any]:
        item = self.spec["paths"][path]
        assert method in item, f"{method.upper()} {path} is not documented"
        operation: dict[str, Any] = item[method]
        return operation

    def check(self, response: httpx.Response, path: str, status: int | None = None) -> Any:
        """`response` is one the document describes for `path`; its JSON body, if any."""
        method = response.request.method.lower()
        where = f"{method.upper()} {path} → {response.status_code}"
        if status is not None:
            assert response.status_code == status, (where, response.text[:500])
        responses = self.operation(path, method)["responses"]
        assert str(response.status_code) in responses, f"{where}: status not documented"
        documented = resolve(self.spec, responses[str(response.status_code)])
        for header in documented.get("headers", {}):
            assert header in response.headers, f"{where}: no {header} header"
        self.seen.add((path, method))
        content = documented.get("content", {})
        if not content:
            return None
        media = response.headers["content-type"].split(";")[0].strip()
        kinds = {kind.split(";")[0].strip(): value for kind, value in content.items()}
        assert media in kinds, f"{where}: {media} is not documented ({list(kinds)})"
        if media != "application/json" or "schema" not in kinds[media]:
            return None
        body = response.json()
        errors = list(validator(self.spec, kinds[media]["schema"]).iter_errors(body))
        assert not errors, f"{where}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
        )
        return body

    def request_body(self, path: str, method: str, body: Any) -> list[str]:
        """What the document finds wrong with `body` as the request body (none: accepted)."""
        schema = self.operation(path, method)["requestBody"]["content"]["application/json"]
        return [e.message for e in validator(self.spec, schema["schema"]).iter_errors(body)]

    def schema_errors(self, name: str, value: Any) -> list[str]:
        found = validator(self.spec, {"$ref": f"#/components/schemas/{name}"})
        return [e.message for e in found.iter_errors(value)]


@pytest.fixture(scope="module")
def service() -> Iterator[PushService]:
    with PushService.in_thread() as running:
        yield running


@pytest.fixture(scope="module")
def sms() -> Iterator[SmsService]:
    with in_thread(SmsService()) as running:
        yield running


@pytest.fixture(scope="module")
def wechat() -> Iterator[WeChatService]:
    with in_thread(WeChatService()) as running:
        running.add_template(WECHAT_TEMPLATE, ["thing1", "thing2"])
        yield running


@pytest.fixture(scope="module")
def hooks() -> Iterator[WebhookReceiver]:
    with WebhookReceiver.in_thread() as running:
        yield running


@pytest.fixture(scope="module")
def running(
    service: PushService,
    sms: SmsService,
    wechat: WeChatService,
    hooks: WebhookReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Staff]:
    """A real server with push on (its push service on loopback), SMS and WeChat
    beside it (their stand-ins on loopback), and an admin."""
    data = tmp_path_factory.mktemp("openapi") / "data"
    server = ServerProcess(
        data,
        SUNBID_PUSH_ALLOWED_HOSTS=service.origin,
        SUNBID_VAPID_SUBJECT="mailto:ops@example.org",
        **sms.env(),
        **wechat_env(wechat),
        SUNBID_ASK_DEVICE_BURST="2",  # a device may file twice, then 429
        SUNBID_WEBHOOK_ALLOWED_HOSTS=f"http://127.0.0.1:{hooks.port}",
    ).start()
    staff = Staff(server, server.token("openapi-admin"))
    yield staff
    staff.client.close()
    server.stop()


@pytest.fixture(scope="module")
def answers(running: Staff) -> Answers:
    response = running.client.get("/api/openapi.json")
    assert response.status_code == 200
    return Answers(response.json())


def project_body(project_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": project_id,
        "title": f"项目 {project_id}",
        "category": "construction",
        "agency": "YW-GGZY",
        "region": "330782",
        **fields,
    }


def test_every_answer_matches_the_document(
    running: Staff,
    answers: Answers,
    service: PushService,
    sms: SmsService,
    wechat: WeChatService,
    hooks: WebhookReceiver,
) -> None:
    server, client = running.server, running.client
    anyone = httpx.Client(base_url=server.url, timeout=30, follow_redirects=False)
    publisher = httpx.Client(
        base_url=server.url,
        timeout=30,
        headers={
            "Authorization": "Bearer "
            + server.token("openapi-publisher", role="publisher", agency="YW-GGZY")
        },
    )
    check = answers.check

    # The document describes itself.
    check(anyone.get("/api/openapi.json"), "/api/openapi.json", 200)

    # Operations and reference data.
    check(anyone.get("/healthz"), "/healthz", 200)
    check(anyone.get("/readyz"), "/readyz", 200)
    check(anyone.get("/metrics"), "/metrics", 200)
    check(anyone.get("/api/categories"), "/api/categories", 200)
    first = anyone.get("/api/directory")
    check(first, "/api/directory", 200)
    again = anyone.get("/api/directory", headers={"If-None-Match": first.headers["ETag"]})
    check(again, "/api/directory", 304)

    # Projects: registering, listing, reading, and each way of being refused.
    body = project_body("OA-1", budget=10, must_tender=True)
    assert answers.request_body("/api/projects", "post", body) == []
    project = check(client.post("/api/projects", json=body), "/api/projects", 201)
    assert project["id"] == "OA-1"
    check(anyone.post("/api/projects", json=project_body("OA-2")), "/api/projects", 401)
    other = project_body("OA-3", agency="SOMEONE-ELSE")
    check(publisher.post("/api/projects", json=other), "/api/projects", 403)
    check(client.post("/api/projects", json=body), "/api/projects", 409)
    too_long = project_body("OA-4", title="长" * (MAX_TITLE + 1))
    assert answers.request_body("/api/projects", "post", too_long)
    check(client.post("/api/projects", json=too_long), "/api/projects", 422)
    negative = project_body("OA-4", budget=-1)
    assert answers.request_body("/api/projects", "post", negative)
    check(client.post("/api/projects", json=negative), "/api/projects", 422)
    check(
        client.post("/api/projects", content=b"{", headers={"Content-Type": "application/json"}),
        "/api/projects",
        400,
    )
    check(client.post("/api/projects", content=b"{}"), "/api/projects", 415)
    huge = b'{"id":"' + b"x" * (1024 * 1024) + b'"}'
    check(
        client.post("/api/projects", content=huge, headers={"Content-Type": "application/json"}),
        "/api/projects",
        413,
    )
    check(anyone.get("/api/projects"), "/api/projects", 200)
    check(anyone.get("/api/projects", params={"limit": "2", "q": "OA"}), "/api/projects", 200)
    closing = {"limit": "1", "q": "OA 项目", "status": "open", "sort": "closes"}
    check(anyone.get("/api/projects", params=closing), "/api/projects", 200)
    check(anyone.get("/api/projects", params={"sort": "soon"}), "/api/projects", 422)
    check(anyone.get("/api/projects", params={"limit": "0"}), "/api/projects", 422)
    check(anyone.get("/api/projects", params={"q": "x" * 101}), "/api/projects", 422)

    # Events: publishing (and its repeat), listing, and refusals.
    path = "/api/projects/{project_id}/events"
    notice = {
        "stage": "notice",
        "title": "招标公告",
        "data": {"deadline": "2026-12-30T09:30:00+08:00"},
    }
    assert answers.request_body(path, "post", notice) == []
    key = {"Idempotency-Key": "oa-notice-1"}
    published = client.post("/api/projects/OA-1/events", json=notice, headers=key)
    event = check(published, path, 201)
    check(client.post("/api/projects/OA-1/events", json=notice, headers=key), path, 200)
    changed = {**notice, "title": "另一个"}
    check(client.post("/api/projects/OA-1/events", json=changed, headers=key), path, 409)
    correction = {"stage": "correction", "title": "更正", "data": {"corrects": event["seq"]}}
    check(client.post("/api/projects/OA-1/events", json=correction), path, 201)
    check(client.post("/api/projects/NOPE/events", json=notice), path, 404)
    # Checks before publishing: a preview, a missing fact, a contradiction.
    preview = check(
        client.post("/api/projects/OA-1/events", params={"dry_run": "1"}, json=notice), path, 200
    )
    assert "seq" not in preview["event"] and isinstance(preview["warnings"], list)
    award = {"stage": "award", "title": "结果", "data": {"winner": "某公司"}}
    check(client.post("/api/projects/OA-1/events", json=award), path, 422)
    opening = {"stage": "bid_opening", "title": "开标", "occurred_at": "2026-12-01T09:30:00+08:00"}
    refused = check(client.post("/api/projects/OA-1/events", json=opening), path, 422)
    assert refused["error"]["details"]["rule"] == "opening_before_deadline"
    check(anyone.post("/api/projects/OA-1/events", json=notice), path, 401)
    check(
        client.post("/api/projects/OA-1/events", json={"stage": "auction", "title": "t"}), path, 422
    )
    long_body = {**notice, "body": "x" * (MAX_BODY + 1)}
    assert answers.request_body(path, "post", long_body)
    check(client.post("/api/projects/OA-1/events", json=long_body), path, 422)
    check(client.post("/api/projects/OA-1/events", content=b"[1,"), path, 415)
    check(anyone.get("/api/events"), "/api/events", 200)
    check(
        anyone.get("/api/events", params={"topics": "project:OA-1", "limit": "1"}),
        "/api/events",
        200,
    )
    check(anyone.get("/api/events", params={"since": "-1"}), "/api/events", 422)
    check(anyone.get("/api/events", params={"limit": "1001"}), "/api/events", 422)
    # Feeds and calendars.
    feed = anyone.get("/api/feed.atom", params={"topics": "project:OA-1"})
    check(feed, "/api/feed.atom", 200)
    cached = {"If-None-Match": feed.headers["ETag"]}
    again = anyone.get("/api/feed.atom", params={"topics": "project:OA-1"}, headers=cached)
    check(again, "/api/feed.atom", 304)
    check(anyone.get("/api/feed.atom", params={"topics": "supervision"}), "/api/feed.atom", 403)
    check(anyone.get("/api/feed.atom", params={"stages": "nope"}), "/api/feed.atom", 422)
    ics = "/api/projects/{project_id}/deadlines.ics"
    made = anyone.get("/api/projects/OA-1/deadlines.ics")
    check(made, ics, 200)
    cached = {"If-None-Match": made.headers["ETag"]}
    check(anyone.get("/api/projects/OA-1/deadlines.ics", headers=cached), ics, 304)
    check(anyone.get("/api/projects/NOPE/deadlines.ics"), ics, 404)
    every = anyone.get("/api/deadlines.ics", params={"agency": "YW-GGZY"})
    check(every, "/api/deadlines.ics", 200)
    cached = {"If-None-Match": every.headers["ETag"]}
    check(
        anyone.get("/api/deadlines.ics", params={"agency": "YW-GGZY"}, headers=cached),
        "/api/deadlines.ics",
        304,
    )
    check(anyone.get("/api/deadlines.ics", params={"category": "x"}), "/api/deadlines.ics", 422)
    detail = check(anyone.get("/api/projects/OA-1"), "/api/projects/{project_id}", 200)
    assert [e["seq"] for e in detail["timeline"]][-2:] == [event["seq"], event["seq"] + 1]
    check(anyone.get("/api/projects/NOPE"), "/api/projects/{project_id}", 404)

    # The amendment of the contract.
    amendment = {"title": "更名后的项目", "budget": 20, "reason": "预算调整"}
    assert answers.request_body("/api/projects/{project_id}", "patch", amendment) == []
    amended = client.patch("/api/projects/OA-1", json=amendment)
    assert check(amended, "/api/projects/{project_id}", 200)["title"] == "更名后的项目"
    no_reason = client.patch("/api/projects/OA-1", json={"title": "x"})
    check(no_reason, "/api/projects/{project_id}", 422)
    check(anyone.patch("/api/projects/OA-1", json=amendment), "/api/projects/{project_id}", 401)

    # Streams: the SSE stream opens, a bad topic is refused; the WebSocket upgrades.
    with anyone.stream("GET", "/api/stream", params={"topics": "all"}) as stream:
        check(stream, "/api/stream", 200)
    check(anyone.get("/api/stream", params={"topics": "nonsense"}), "/api/stream", 422)
    with connect(server.ws_url, open_timeout=10) as socket:
        assert socket.response is not None and socket.response.status_code == 101
        assert "101" in answers.operation("/ws", "get")["responses"]
        answers.seen.add(("/ws", "get"))

    # Compliance: the catalogue and scorecard for all, the warnings for supervisors.
    check(anyone.get("/api/catalog"), "/api/catalog", 200)
    check(anyone.get("/api/compliance"), "/api/compliance", 200)
    check(anyone.get("/api/compliance", params={"period": "2026-13"}), "/api/compliance", 422)
    check(anyone.get("/api/compliance", params={"month": "2026-1"}), "/api/compliance", 422)
    items = "/api/compliance/items"
    on_time = check(anyone.get(items, params={"project": "OA-1", "status": "on_time"}), items, 200)
    assert on_time["items"], "its notice left at least 20 days to the bid deadline"
    check(anyone.get(items, params={"month": "2026-11"}), items, 200)
    check(anyone.get(items, params={"status": "overdue"}), items, 422)
    warnings = "/api/supervision/warnings"
    check(client.get(warnings), warnings, 200)
    check(anyone.get(warnings), warnings, 401)
    check(publisher.get(warnings), warnings, 403)
    check(client.get(warnings, params={"limit": "501"}), warnings, 422)

    # OCDS 1.1: the release feed (a page with a next one, the last) and a record package.
    feed = "/api/ocds/releases"
    paged = check(anyone.get(feed, params={"limit": "1"}), feed, 200)
    assert paged["links"]["next"]
    check(anyone.get(feed), feed, 200)
    check(anyone.get(feed, params={"limit": "1001"}), feed, 422)
    check(anyone.get(feed, params={"since": "-1"}), feed, 422)
    record = "/api/ocds/records/{project_id}"
    check(anyone.get("/api/ocds/records/OA-1"), record, 200)
    check(anyone.get("/api/ocds/records/NOPE"), record, 404)

    # Push: the key, subscribing (new, then the same endpoint again), forgetting, counts.
    key_answer = check(anyone.get("/api/push/vapid-key"), "/api/push/vapid-key", 200)
    subscription = service.new_subscriber(application_server_key=key_answer["publicKey"])
    request = {"subscription": subscription, "topics": ["project:OA-1"]}
    assert answers.request_body("/api/push/subscriptions", "post", request) == []
    check(anyone.post("/api/push/subscriptions", json=request), "/api/push/subscriptions", 201)
    check(anyone.post("/api/push/subscriptions", json=request), "/api/push/subscriptions", 200)
    bad = {"subscription": {"endpoint": "http://example.org/x"}, "topics": ["all"]}
    check(anyone.post("/api/push/subscriptions", json=bad), "/api/push/subscriptions", 422)
    forget = {"endpoint": subscription["endpoint"]}
    check(
        anyone.request("DELETE", "/api/push/subscriptions", json=forget),
        "/api/push/subscriptions",
        204,
    )
    check(
        anyone.request("DELETE", "/api/push/subscriptions", json={"endpoint": ""}),
        "/api/push/subscriptions",
        422,
    )
    deliveries = "/api/events/{seq}/deliveries"
    check(client.get(f"/api/events/{event['seq']}/deliveries"), deliveries, 200)
    check(anyone.get(f"/api/events/{event['seq']}/deliveries"), deliveries, 401)
    check(client.get("/api/events/999999/deliveries"), deliveries, 404)
    check(client.get("/api/events/x/deliveries"), deliveries, 422)

    # Channels beside Web Push: adding, confirming, reading, cancelling, WeChat's way.
    check(anyone.get("/api/channels/available"), "/api/channels/available", 200)
    usage = "/api/channels/usage"
    check(client.get(usage), usage, 200)
    check(client.get(usage, params={"month": "2026-13x"}), usage, 422)
    check(anyone.get(usage), usage, 401)
    check(publisher.get(usage), usage, 403)
    ask = {"kind": "sms", "address": "13812345678", "topics": ["project:OA-1"]}
    assert answers.request_body("/api/channels", "post", ask) == []
    added = check(anyone.post("/api/channels", json=ask), "/api/channels", 202)
    check(anyone.post("/api/channels", json={**ask, "kind": "fax"}), "/api/channels", 422)
    confirm = "/api/channels/{channel_id}/confirm"
    wrong = anyone.post(f"/api/channels/{added['id']}/confirm", json={"code": "x"})
    check(wrong, confirm, 422)
    code = until(lambda: [m for m in sms.messages if "code" in m.params])[0].params["code"]
    check(anyone.post(f"/api/channels/{added['id']}/confirm", json={"code": code}), confirm, 200)
    one, manage = "/api/channels/{channel_id}", {"X-Manage-Token": added["manage_token"]}
    check(anyone.get(f"/api/channels/{added['id']}", headers=manage), one, 200)
    check(anyone.get(f"/api/channels/{added['id']}"), one, 404)
    leave = "/api/channels/{channel_id}/unsubscribe"
    check(anyone.get(f"/api/channels/{added['id']}/unsubscribe?token=x"), leave, 200)
    check(anyone.post(f"/api/channels/{added['id']}/unsubscribe?token=x"), leave, 404)
    check(anyone.delete(f"/api/channels/{added['id']}", headers=manage), one, 204)
    again = check(anyone.post("/api/channels", json=ask), "/api/channels", 202)
    token = hmac.new(  # what the worker puts in each message's 退订 link
        (server.data_dir / "contacts.key").read_bytes(),
        f"unsubscribe:{again['id']}".encode(),
        hashlib.sha256,
    ).hexdigest()[:32]
    check(anyone.post(f"/api/channels/{again['id']}/unsubscribe?token={token}"), leave, 200)
    consent = anyone.get("/api/channels/wechat/authorize", params={"topics": "project:OA-1"})
    check(consent, "/api/channels/wechat/authorize", 302)
    state = parse_qs(urlsplit(consent.headers["location"]).query)["state"][0]
    openid = wechat.new_follower()
    back = anyone.get(
        "/api/channels/wechat/callback", params={"code": wechat.issue_code(openid), "state": state}
    )
    check(back, "/api/channels/wechat/callback", 302)
    check(anyone.get("/api/channels/wechat/callback?state=x"), "/api/channels/wechat/callback", 422)

    # Respond (回应): the public files cases and reads them back with the ticket, staff
    # answer them, and the scorecard and warnings count them.
    supervisor = httpx.Client(
        base_url=server.url,
        timeout=30,
        headers={"Authorization": "Bearer " + server.token("openapi-supervisor", "supervisor")},
    )
    check_respond(answers, anyone, publisher, supervisor, client)

    # Webhooks (admin): register, list, read deliveries, replay, delete.
    check_webhooks(answers, anyone, publisher, client, hooks, event)

    # The app: the shell on every page, the worker, the manifest and a file.
    for page in ("/", "/p/OA-1", "/follows", "/mine", "/request", "/catalog", "/stats", "/staff"):
        template = "/p/{project_id}" if page.startswith("/p/") else page
        check(anyone.get(page), template, 200)
    check(anyone.get("/sw.js"), "/sw.js", 200)
    check(anyone.get("/manifest.webmanifest"), "/manifest.webmanifest", 200)
    check(anyone.get("/static/app.css"), "/static", 200)
    check(anyone.get("/static/nothing-here.css"), "/static", 404)

    # Every operation the document lists was answered (the pending one once it is served).
    documented = {
        (p, m) for p, item in answers.spec["paths"].items() for m in item if m != "parameters"
    }
    assert documented <= answers.seen, documented - answers.seen
    for client_ in (anyone, publisher, supervisor):
        client_.close()


def check_respond(
    answers: Answers,
    anyone: httpx.Client,
    publisher: httpx.Client,
    supervisor: httpx.Client,
    admin: httpx.Client,
) -> None:
    """Every endpoint of the public's cases, each way it answers, on project OA-1
    (agency YW-GGZY, the publisher's)."""
    check = answers.check
    json_type = {"Content-Type": "application/json"}

    # Asking: filed, and each way of being refused.
    asked = "/api/projects/{project_id}/enquiries"
    question = {"question": "开标时间会推迟吗？", "contact": "13812345678"}
    assert answers.request_body(asked, "post", question) == []
    assert answers.request_body(asked, "post", {"question": ""})
    assert answers.request_body(asked, "post", {**question, "colour": "red"})
    device = {"X-Device-Id": "openapi-device-1"}
    ask = "/api/projects/OA-1/enquiries"
    filed = check(anyone.post(ask, json=question, headers=device), asked, 201)
    second = check(anyone.post(ask, json=question, headers=device), asked, 201)
    check(anyone.post(ask, json=question, headers=device), asked, 429)  # the device's third
    third = check(anyone.post(ask, json={"question": "保证金何时退还？"}), asked, 201)
    check(anyone.post(ask, json=question, headers={"X-Device-Id": "short"}), asked, 422)
    check(anyone.post("/api/projects/NOPE/enquiries", json=question), asked, 404)
    check(anyone.post(ask, json={"question": ""}), asked, 422)
    check(anyone.post(ask, content=b"{", headers=json_type), asked, 400)
    check(anyone.post(ask, content=b"{}"), asked, 415)
    huge = b'{"question":"' + b"x" * (1024 * 1024) + b'"}'
    check(anyone.post(ask, content=huge, headers=json_type), asked, 413)

    # The asker's view: with the ticket only, never the contact.
    one = "/api/enquiries/{case_id}"
    mine, ticket = f"/api/enquiries/{filed['id']}", {"X-Ticket": filed["ticket"]}
    view = check(anyone.get(mine, headers=ticket), one, 200)
    assert view["question"] == question["question"] and "contact" not in view, view
    check(anyone.get(mine), one, 404)
    check(anyone.get(mine, headers={"X-Ticket": second["ticket"]}), one, 404)
    rating = "/api/enquiries/{case_id}/rating"
    check(anyone.post(mine + "/rating", json={"score": 5}, headers=ticket), rating, 409)

    # Staff: the inbox, oldest due first, a page at a time.
    inbox = "/api/enquiries"
    page = check(publisher.get(inbox, params={"project": "OA-1", "limit": "1"}), inbox, 200)
    assert page["next_cursor"], page
    rest = check(publisher.get(inbox, params={"cursor": page["next_cursor"]}), inbox, 200)
    items = page["items"] + rest["items"]
    assert {i["id"] for i in items} == {filed["id"], second["id"], third["id"]}
    assert items == sorted(items, key=lambda i: (i["due"], i["id"]))
    (first,) = [i for i in items if i["id"] == filed["id"]]
    assert first["contact"] == question["contact"] and first["question"] == question["question"]
    assert first["project_title"] == "更名后的项目", first  # OA-1 as amended above
    watched = check(supervisor.get(inbox, params={"status": "open"}), inbox, 200)
    assert watched["items"] and all(i["contact"] is None for i in watched["items"])
    check(anyone.get(inbox), inbox, 401)
    check(publisher.get(inbox, params={"agency": "SOMEONE-ELSE"}), inbox, 403)
    check(admin.get(inbox, params={"status": "closed"}), inbox, 422)
    check(admin.get(inbox, params={"cursor": "not-a-cursor"}), inbox, 422)
    check(admin.get(inbox, params={"limit": "501"}), inbox, 422)

    # Answering: published, linked, declined, and each way of being refused.
    answer = "/api/enquiries/{case_id}/answer"
    written = {"answer": "不会推迟。", "question": "开标时间会推迟吗？"}
    linked = {"same_as": filed["id"]}
    assert answers.request_body(answer, "post", written) == []
    assert answers.request_body(answer, "post", linked) == []
    assert answers.request_body(answer, "post", {**written, **linked})  # one or the other
    check(anyone.post(mine + "/answer", json=written), answer, 401)
    check(supervisor.post(mine + "/answer", json=written), answer, 403)
    check(publisher.post(mine + "/answer", json={}), answer, 422)
    personal = {"answer": "请致电 13900001111 询问。"}
    refused = check(publisher.post(mine + "/answer", json=personal), answer, 422)["error"]
    assert (refused["code"], refused["details"]["found"]) == ("personal_data", ["a mobile number"])
    check(publisher.post("/api/enquiries/qaaaaaaaaaaaa/answer", json=written), answer, 404)
    event = check(publisher.post(mine + "/answer", json=written), answer, 201)
    assert event["stage"] == "enquiry_answer" and event["data"]["enquiry"] == filed["id"]
    check(publisher.post(mine + "/answer", json=written), answer, 409)
    again = check(publisher.post(f"/api/enquiries/{second['id']}/answer", json=linked), answer, 200)
    assert again["seq"] == event["seq"], again
    view = check(anyone.get(mine, headers=ticket), one, 200)
    assert view["answer"]["seq"] == event["seq"], view
    check(anyone.post(mine + "/rating", json={"score": 6}, headers=ticket), rating, 422)
    rated = check(anyone.post(mine + "/rating", json={"score": 4}, headers=ticket), rating, 201)
    assert rated == {"score": 4, "comment": None}
    check(anyone.post(mine + "/rating", json={"score": 4}, headers=ticket), rating, 409)
    check(anyone.post(mine + "/rating", json={"score": 4}), rating, 404)
    decline = "/api/enquiries/{case_id}/decline"
    declining = f"/api/enquiries/{third['id']}/decline"
    check(publisher.post(declining, json={"reason": ""}), decline, 422)
    check(supervisor.post(declining, json={"reason": "非本项目事项"}), decline, 403)
    declined = check(publisher.post(declining, json={"reason": "非本项目事项"}), decline, 200)
    assert declined["status"] == "declined", declined
    check(publisher.post(declining, json={"reason": "非本项目事项"}), decline, 409)

    # Disclosure requests (依申请公开): filed, read back, extended once, replied to.
    requests_ = "/api/disclosure-requests"
    wanted = {
        "agency": "YW-GGZY",
        "subject": "2026年度采购合同",
        "description": "请公开2026年度全部采购合同的金额与供应商。",
        "contact": "zhang@example.org",
    }
    assert answers.request_body(requests_, "post", wanted) == []
    assert answers.request_body(requests_, "post", {**wanted, "subject": ""})
    made = check(anyone.post(requests_, json=wanted), requests_, 201)
    check(anyone.post(requests_, json={**wanted, "agency": "NOWHERE"}), requests_, 422)
    check(anyone.post(requests_, json={**wanted, "colour": "red"}), requests_, 422)
    check(anyone.post(requests_, content=b"[", headers=json_type), requests_, 400)
    theirs = "/api/disclosure-requests/{case_id}"
    made_path, made_ticket = f"{requests_}/{made['id']}", {"X-Ticket": made["ticket"]}
    check(anyone.get(made_path, headers=made_ticket), theirs, 200)
    check(anyone.get(made_path, headers=ticket), theirs, 404)  # an enquiry's ticket
    listed = check(publisher.get(requests_, params={"status": "open"}), requests_, 200)
    assert [i["id"] for i in listed["items"]] == [made["id"]], listed
    assert listed["items"][0]["contact"] == wanted["contact"]
    check(supervisor.get(requests_), requests_, 200)
    check(anyone.get(requests_), requests_, 401)
    check(admin.get(requests_, params={"status": "answered"}), requests_, 422)
    extend = "/api/disclosure-requests/{case_id}/extend"
    check(publisher.post(made_path + "/extend", json={}), extend, 422)
    check(supervisor.post(made_path + "/extend", json={"reason": "需要会商"}), extend, 403)
    extended = check(
        publisher.post(made_path + "/extend", json={"reason": "需要会商"}), extend, 200
    )
    assert extended["due"] > made["due"] and extended["extension"]["reason"] == "需要会商"
    check(publisher.post(made_path + "/extend", json={"reason": "需要会商"}), extend, 409)
    reply = "/api/disclosure-requests/{case_id}/reply"
    outcome = {"outcome": "partly_granted", "text": "部分合同涉及商业秘密。", "basis": "第三十七条"}
    assert answers.request_body(reply, "post", outcome) == []
    assert answers.request_body(reply, "post", {**outcome, "outcome": "maybe"})
    check(publisher.post(made_path + "/reply", json={**outcome, "outcome": "maybe"}), reply, 422)
    check(publisher.post(f"{requests_}/raaaaaaaaaaaa/reply", json=outcome), reply, 404)
    check(publisher.post(made_path + "/reply", json=outcome), reply, 200)
    check(publisher.post(made_path + "/reply", json=outcome), reply, 409)
    view = check(anyone.get(made_path, headers=made_ticket), theirs, 200)
    assert view["reply"]["outcome"] == "partly_granted", view

    # The scorecard counts the cases (their warnings: see test_case_warnings_…).
    card = check(
        anyone.get("/api/compliance", params={"agency": "YW-GGZY"}), "/api/compliance", 200
    )
    (yiwu,) = card["agencies"]
    assert yiwu["enquiries"]["received"] == 3 and yiwu["enquiries"]["satisfaction"]["count"] == 1
    assert yiwu["disclosure_requests"]["outcomes"] == {"partly_granted": 1}

    # The statistics count them too, and the rest of the log.
    figures = check(anyone.get("/api/stats"), "/api/stats", 200)
    assert figures["totals"]["enquiries"]["received"] >= 3, figures["totals"]
    check(anyone.get("/api/stats", params={"year": 2026, "agency": "YW-GGZY"}), "/api/stats", 200)
    check(anyone.get("/api/stats", params={"month": 3}), "/api/stats", 422)
    table = "/api/stats/{table}.csv"
    csv_answer = anyone.get("/api/stats/answers.csv")
    check(csv_answer, table, 200)
    assert csv_answer.text.startswith("\ufeffagency,kind,received")
    check(anyone.get("/api/stats/nothing.csv"), table, 404)
    check(anyone.get("/api/stats/amounts.csv", params={"year": 1999}), table, 422)


def test_the_validator_catches_answers_that_break_the_document(
    running: Staff, answers: Answers
) -> None:
    """The checks above can fail: real answers, each changed in one way, are refused."""
    running.project("OA-BAD")
    event = running.publish("OA-BAD")
    project = running.client.get("/api/projects/OA-BAD").json()
    assert answers.schema_errors("Event", event) == []
    assert answers.schema_errors("ProjectDetail", project) == []

    too_long_id = {**event, "project": "P" * 65}
    assert any("is too long" in e for e in answers.schema_errors("Event", too_long_id))
    assert answers.schema_errors("Event", {**event, "seq": 0})  # minimum 1
    assert answers.schema_errors("Event", {**event, "hash": "00"})  # pattern
    assert answers.schema_errors("Event", {**event, "stage": "teleport"})  # enum
    assert answers.schema_errors("Event", {**event, "category": "fishing"})  # enum
    assert answers.schema_errors("Event", {**event, "published_at": "2026-12-01 09:30"})
    without = {k: v for k, v in event.items() if k != "hash"}
    assert answers.schema_errors("Event", without)  # required
    assert answers.schema_errors("ProjectDetail", {**project, "last_seq": -1})  # minimum 0
    error = running.client.get("/api/projects/NOPE").json()
    assert answers.schema_errors("Error", error) == []
    assert answers.schema_errors("Error", {**error, "trace": "…"})  # no other properties
    health = running.client.get("/healthz").json()
    assert answers.schema_errors("Health", {**health, "head": -1})
    assert answers.schema_errors("Health", {**health, "status": "fine"})


def test_a_changed_answer_is_caught_by_the_answer_check(running: Staff, answers: Answers) -> None:
    """The same check as every answer above, on a real answer with one field too long."""
    real = running.client.get("/api/projects", params={"limit": "1"})
    answers.check(real, "/api/projects", 200)
    page = real.json()
    assert page["items"], page
    page["items"][0]["id"] = "x" * 65
    broken = httpx.Response(
        200,
        json=page,
        headers={"content-type": "application/json"},
        request=real.request,
    )
    with pytest.raises(AssertionError, match="too long"):
        answers.check(broken, "/api/projects", 200)


def check_webhooks(
    answers: Answers,
    anyone: httpx.Client,
    publisher: httpx.Client,
    admin: httpx.Client,
    hooks: WebhookReceiver,
    event: dict[str, Any],
) -> None:
    check, collection = answers.check, "/api/webhooks"
    ask = {"url": hooks.url("openapi"), "topics": ["project:OA-1"], "description": "测试"}
    assert answers.request_body(collection, "post", ask) == []
    created = check(admin.post(collection, json=ask), collection, 201)
    hooks.secret("openapi", created["secret"])
    check(admin.post(collection, json={**ask, "url": "https://10.0.0.1/x"}), collection, 422)
    check(anyone.post(collection, json=ask), collection, 401)
    check(publisher.post(collection, json=ask), collection, 403)
    check(admin.get(collection), collection, 200)
    check(anyone.get(collection), collection, 401)
    replay = f"{collection}/{{webhook_id}}/replay"
    since = {"since": event["seq"] - 1}
    assert answers.request_body(replay, "post", since) == []
    check(admin.post(f"{collection}/{created['id']}/replay", json=since), replay, 200)
    check(admin.post(f"{collection}/{created['id']}/replay", json={"since": -1}), replay, 422)
    check(admin.post(f"{collection}/wh_0000000000000000/replay", json=since), replay, 404)
    until(lambda: hooks.seqs("openapi"))
    deliveries = f"{collection}/{{webhook_id}}/deliveries"
    listed = until(
        lambda: check(admin.get(f"{collection}/{created['id']}/deliveries"), deliveries, 200)[
            "items"
        ]
    )
    assert listed[-1]["seq"] == event["seq"]
    check(admin.get(f"{collection}/{created['id']}/deliveries?limit=0"), deliveries, 422)
    check(admin.get(f"{collection}/wh_0000000000000000/deliveries"), deliveries, 404)
    check(publisher.get(f"{collection}/{created['id']}/deliveries"), deliveries, 403)
    one = f"{collection}/{{webhook_id}}"
    check(publisher.delete(f"{collection}/{created['id']}"), one, 403)
    check(admin.delete(f"{collection}/{created['id']}"), one, 204)
    check(admin.delete(f"{collection}/{created['id']}"), one, 404)
