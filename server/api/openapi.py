"""`GET /api/openapi.json`: the HTTP API described for clients and tools.

An OpenAPI 3.1 document (schemas are JSON Schema 2020-12, so "nullable" is
written `"type": [..., "null"]`). Shared pieces live under `components` and
are referred to with `$ref`; the helpers below only keep the literal short.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server import __version__
from server.api import JSONResponse

JSON = "application/json"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> dict[str, str]:
    return _ref("schemas", name)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _ref("responses", ERROR_RESPONSES[status]) for status in statuses}


ERROR_RESPONSES = {
    400: "Malformed",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "TooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooMany",
    503: "Unavailable",
}

TIME = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339 with the offset of SUNBID_TIMEZONE (default +08:00). Sent "
    "times must be YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM): upper-case T and Z, no week "
    "or ordinal dates.",
    "examples": ["2026-12-01T09:30:00+08:00"],
}

SCHEMAS: dict[str, Any] = {
    "PushSubscriptionResult": {
        "type": "object",
        "required": ["id", "topics"],
        "properties": {
            "id": {"type": "integer"},
            "topics": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Error": {
        "type": "object",
        "description": "Every answer with a status of 400 or more.",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "Stable, machine-readable.",
                        "examples": ["invalid_field"],
                    },
                    "message": {"type": "string", "description": "For people."},
                    "details": {
                        "description": "Where useful: `field` names the offending field, "
                        "`allowed` lists the accepted values.",
                        "type": "object",
                        "properties": {
                            "field": {"type": "string"},
                            "allowed": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
            },
        },
    },
    "Code": {
        "type": "string",
        "pattern": "^[A-Za-z0-9._-]{1,64}$",
        "description": "An identifier: 1-64 characters of A-Z a-z 0-9 . _ -",
    },
    "CategoryCode": {
        "type": "string",
        "enum": [
            "construction",
            "gov_procurement",
            "state_assets",
            "land",
            "mining",
            "soe_procurement",
            "rural_property",
            "emission_rights",
        ],
    },
    "StageCode": {
        "type": "string",
        "description": "A stage of GET /api/categories; which ones a project may use "
        "depends on its category.",
        "examples": ["notice", "bid_opening", "award", "objection", "correction"],
    },
    "Time": TIME,
    "Name": {
        "type": "object",
        "required": ["zh", "en"],
        "properties": {"zh": {"type": "string"}, "en": {"type": "string"}},
    },
    "Health": {
        "type": "object",
        "required": ["status", "head"],
        "properties": {
            "status": {"const": "ok"},
            "head": {"type": "integer", "minimum": 0, "description": "The latest seq."},
        },
    },
    "Ready": {
        "type": "object",
        "required": ["status", "head"],
        "properties": {
            "status": {"const": "ready"},
            "head": {"type": "integer", "minimum": 0, "description": "The latest seq."},
            "degraded": {
                "type": "array",
                "items": {"enum": ["push_worker_down"]},
                "description": "What does not work now, though the process serves.",
            },
        },
    },
    "Category": {
        "type": "object",
        "required": ["code", "name", "stages"],
        "properties": {
            "code": _schema("CategoryCode"),
            "name": _schema("Name"),
            "board": {
                "type": "string",
                "description": "Board prefix of the national data spec, e.g. GCJS.",
            },
            "stages": {
                "type": "array",
                "description": "Lifecycle stages in their usual order, then the oversight "
                "stages every category may use at any time, then `registered` and "
                "`amended`, which record the project itself (appended only by POST and "
                "PATCH /api/projects; never the project's stage).",
                "items": {
                    "type": "object",
                    "required": ["code", "name"],
                    "properties": {
                        "code": _schema("StageCode"),
                        "name": _schema("Name"),
                        "oversight": {"type": "boolean"},
                    },
                },
            },
        },
    },
    "Categories": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": _schema("Category")}},
    },
    "Directory": {
        "type": "object",
        "required": ["agencies", "regions"],
        "properties": {
            "agencies": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "zh", "en", "region"],
                    "properties": {
                        "code": _schema("Code"),
                        "zh": {"type": "string"},
                        "en": {"type": "string"},
                        "region": {
                            "oneOf": [_schema("Code"), {"type": "null"}],
                            "description": "The region the agency serves, one of `regions`.",
                        },
                    },
                },
            },
            "regions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "zh", "en", "parent"],
                    "properties": {
                        "code": _schema("Code"),
                        "zh": {"type": "string"},
                        "en": {"type": "string"},
                        "parent": {
                            "oneOf": [_schema("Code"), {"type": "null"}],
                            "description": "The enclosing region, one of `regions`.",
                        },
                    },
                },
            },
        },
    },
    "ProjectInput": {
        "type": "object",
        "required": ["id", "title", "category", "agency"],
        "additionalProperties": False,
        "properties": {
            "id": _schema("Code"),
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "category": _schema("CategoryCode"),
            "agency": _schema("Code"),
            "region": {"oneOf": [_schema("Code"), {"type": "null"}]},
            "budget": {"type": ["number", "null"], "minimum": 0},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "default": "CNY"},
            "must_tender": {
                "type": ["boolean", "null"],
                "description": "依法必须招标: tendering is required by law.",
            },
        },
    },
    "ProjectAmendment": {
        "type": "object",
        "description": "The fields to change (at least one, and one of them to a new "
        "value) and why.",
        "required": ["reason"],
        "minProperties": 2,
        "additionalProperties": False,
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "region": {"oneOf": [_schema("Code"), {"type": "null"}]},
            "budget": {"type": ["number", "null"], "minimum": 0},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "must_tender": {"type": ["boolean", "null"]},
            "reason": {"type": "string", "minLength": 1, "maxLength": 500},
        },
    },
    "Project": {
        "type": "object",
        "required": [
            "id",
            "title",
            "category",
            "agency",
            "region",
            "budget",
            "currency",
            "stage",
            "created_at",
            "updated_at",
        ],
        "properties": {
            "id": _schema("Code"),
            "title": {"type": "string"},
            "category": _schema("CategoryCode"),
            "agency": _schema("Code"),
            "region": {"type": ["string", "null"]},
            "budget": {"type": ["number", "null"]},
            "currency": {"type": "string"},
            "must_tender": {"type": ["boolean", "null"]},
            "stage": {
                "type": ["string", "null"],
                "description": "The latest lifecycle stage reached (oversight stages "
                "such as objection do not move it); null before the "
                "first publication.",
            },
            "created_at": _schema("Time"),
            "updated_at": {**TIME, "description": "The latest activity."},
            "last_seq": {
                "type": "integer",
                "minimum": 0,
                "description": "The seq of its latest event (its registration at first).",
            },
        },
    },
    "Deadline": {
        "type": "object",
        "description": "An open statutory deadline: a stage awaited by `due` (due_within), "
        "or a stage that may not come before `not_before` (at_least). Times are Beijing "
        "time, as statutory days are.",
        "required": ["rule", "name", "kind", "target", "trigger", "due", "not_before", "basis"],
        "properties": {
            "rule": {"type": "string", "examples": ["construction.award-contract"]},
            "name": {"type": "string"},
            "kind": {"enum": ["due_within", "at_least"]},
            "target": {"type": "string", "description": "The stage (or stage.data.field)."},
            "trigger": {"type": "integer", "description": "The seq that started it."},
            "due": {"oneOf": [_schema("Time"), {"type": "null"}]},
            "not_before": {"oneOf": [_schema("Time"), {"type": "null"}]},
            "basis": {"type": "string"},
            "confidence": {"enum": ["statute", "secondary", "memory"]},
            "estimated": {
                "type": "boolean",
                "description": "Counted Monday–Friday for days no holiday calendar covers yet.",
            },
            "status": {"enum": ["open", "approaching", "overdue"]},
        },
    },
    "Warning": {
        "type": "object",
        "description": "A compliance warning; `due` is null for a rule broken by a "
        "publication itself. Streamed on the `supervision` topic as "
        '`{"op":"warning","warning":…}`, again when resolved.',
        "required": [
            "id",
            "rule",
            "project",
            "agency",
            "due",
            "basis",
            "level",
            "message",
            "created_at",
            "resolved_at",
        ],
        "properties": {
            "id": {"type": "string"},
            "rule": {"type": "string"},
            "project": {"type": "string"},
            "agency": {"type": "string"},
            "category": {"type": "string"},
            "due": {"oneOf": [_schema("Time"), {"type": "null"}]},
            "basis": {"type": "string"},
            "level": {"enum": ["approaching", "breach", "data_incomplete"]},
            "message": {"type": "string"},
            "created_at": _schema("Time"),
            "resolved_at": {"oneOf": [_schema("Time"), {"type": "null"}]},
        },
    },
    "Score": {
        "type": "object",
        "required": ["due", "on_time", "late", "open_breaches", "on_time_rate"],
        "properties": {
            "due": {"type": "integer", "description": "Disclosures whose time limit has come."},
            "on_time": {"type": "integer"},
            "late": {"type": "integer", "description": "Made late, or too early for a minimum."},
            "open_breaches": {"type": "integer", "description": "Overdue and still not made."},
            "on_time_rate": {"type": ["number", "null"]},
            "completed": {"type": "integer"},
        },
    },
    "ProjectDetail": {
        "allOf": [
            _schema("Project"),
            {
                "type": "object",
                "required": ["timeline", "deadlines"],
                "properties": {
                    "timeline": {
                        "type": "array",
                        "items": _schema("Event"),
                        "description": "Its events in seq order.",
                    },
                    "deadlines": {"type": "array", "items": _schema("Deadline")},
                },
            },
        ],
    },
    "ProjectPage": {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": _schema("Project")},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
        },
    },
    "EventInput": {
        "type": "object",
        "required": ["stage", "title"],
        "additionalProperties": False,
        "properties": {
            "stage": _schema("StageCode"),
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "body": {"type": "string", "maxLength": 20000, "default": ""},
            "data": {
                "type": "object",
                "default": {},
                "description": "Stage-specific facts, e.g. notice: deadline; award: "
                "winner, amount. A correction needs `corrects`: the seq "
                "of an earlier event of the same project.",
            },
            "occurred_at": {
                **TIME,
                "description": "When it happened, with a UTC offset; "
                "defaults to the publication time.",
            },
        },
    },
    "Event": {
        "type": "object",
        "description": "Immutable once published; the same JSON on HTTP, WebSocket and SSE.",
        "required": [
            "seq",
            "project",
            "category",
            "agency",
            "region",
            "stage",
            "title",
            "body",
            "data",
            "occurred_at",
            "published_at",
            "hash",
        ],
        "properties": {
            "seq": {
                "type": "integer",
                "minimum": 1,
                "description": "Global, gapless, strictly increasing by 1.",
            },
            "project": _schema("Code"),
            "category": _schema("CategoryCode"),
            "agency": _schema("Code"),
            "region": {"type": ["string", "null"]},
            "stage": _schema("StageCode"),
            "title": {"type": "string"},
            "body": {"type": "string"},
            "data": {"type": "object"},
            "occurred_at": _schema("Time"),
            "published_at": _schema("Time"),
            "hash": {
                "type": "string",
                "pattern": "^[0-9a-f]{64}$",
                "description": "SHA-256 (hex) of the previous event's hash (64 zeros before "
                "seq 1) followed by this event without `hash` as "
                "json.dumps(sort_keys=True, separators=(',', ':'), "
                "ensure_ascii=False), UTF-8.",
            },
        },
    },
    "EventPage": {
        "type": "object",
        "required": ["items", "head"],
        "properties": {
            "items": {"type": "array", "items": _schema("Event")},
            "head": {"type": "integer", "minimum": 0, "description": "The latest seq."},
        },
    },
}

PARAMETERS: dict[str, Any] = {
    "ProjectId": {
        "name": "project_id",
        "in": "path",
        "required": True,
        "schema": _schema("Code"),
    },
    "Since": {
        "name": "since",
        "in": "query",
        "description": "Only events with a seq greater than this.",
        "schema": {"type": "integer", "minimum": 0, "default": 0},
    },
    "Topics": {
        "name": "topics",
        "in": "query",
        "description": "Comma-separated: all, project:<id>, category:<code>, agency:<code>, "
        "region:<code>.",
        "schema": {"type": "string"},
        "examples": {"one category": {"value": "category:construction"}},
    },
    "Stages": {
        "name": "stages",
        "in": "query",
        "description": "Comma-separated stage codes: only events of these stages.",
        "schema": {"type": "string"},
        "examples": {"new tenders": {"value": "notice"}},
    },
}

RESPONSES: dict[str, Any] = {
    name: _json(_schema("Error"), description)
    for name, description in {
        "Malformed": "Malformed request, e.g. a body that is not valid JSON.",
        "Unauthorized": "No token, or a token that is unknown or revoked.",
        "Forbidden": "The token may not do this.",
        "NotFound": "No such resource.",
        "Conflict": "Conflicts with what exists.",
        "TooLarge": "The body exceeds SUNBID_MAX_BODY_BYTES.",
        "UnsupportedMediaType": "The body is not sent as application/json.",
        "Invalid": "A field or parameter is invalid; `details.field` names it.",
        "TooMany": "Too many requests or connections; see Retry-After.",
        "Unavailable": "The event log cannot be written right now; nothing was published.",
    }.items()
}
RESPONSES["TooMany"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
RESPONSES["Unavailable"]["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}

STAFF: list[dict[str, list[str]]] = [{"bearer": []}]

PATHS: dict[str, Any] = {
    **{
        path: {
            "get": {
                "operationId": operation,
                "summary": summary,
                "description": "The app's shell (the same HTML for every page; the app "
                "routes on the client), with a Content-Security-Policy.",
                "tags": ["app"],
                **({"parameters": [_ref("parameters", "ProjectId")]} if "{" in path else {}),
                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
            },
        }
        for path, operation, summary in (
            ("/", "appHome", "Projects, newest activity first; filters and search"),
            ("/p/{project_id}", "appProject", "One transaction's whole process, live"),
            ("/follows", "appFollows", "What this device follows; notification settings"),
            ("/catalog", "appCatalog", "The disclosure catalogue and the agencies' scorecards"),
            ("/staff", "appStaff", "Staff console: create projects, publish, warnings"),
        )
    },
    "/sw.js": {
        "get": {
            "operationId": "appServiceWorker",
            "summary": "The app's service worker (scope /): offline shell, cached data, push",
            "tags": ["app"],
            "responses": {"200": {"description": "JavaScript", "content": {"text/javascript": {}}}},
        },
    },
    "/manifest.webmanifest": {
        "get": {
            "operationId": "appManifest",
            "summary": "The web app manifest (installing to the Home Screen)",
            "tags": ["app"],
            "responses": {
                "200": {
                    "description": "The manifest.",
                    "content": {"application/manifest+json": {"schema": {"type": "object"}}},
                }
            },
        },
    },
    "/static": {
        "get": {
            "operationId": "appStatic",
            "summary": "The app's files: GET /static/<path> (scripts, styles, icons)",
            "description": "Served as they are (no build step), with ETag and "
            "Last-Modified; `Cache-Control: no-cache`, so browsers revalidate. "
            "No directory listings.",
            "tags": ["app"],
            "responses": {
                "200": {"description": "The file."},
                "304": {"description": "Not modified."},
                **_errors(404),
            },
        },
    },
    "/healthz": {
        "get": {
            "operationId": "health",
            "summary": "Liveness and the latest seq",
            "tags": ["public"],
            "responses": {"200": _json(_schema("Health"), "Up.")},
        },
    },
    "/readyz": {
        "get": {
            "operationId": "ready",
            "summary": "Readiness: whether this process can serve now",
            "description": "200 when the log is open and answers a read within 2 s, the "
            "compliance watchdog has rebuilt and runs, and no shutdown has begun; "
            "`degraded` lists what does not work meanwhile without stopping service "
            "(`push_worker_down`: it is being restarted). Otherwise 503 `not_ready` with "
            "`Retry-After` and `details.reasons`, a list of `store_unreadable`, "
            "`compliance_not_running`, `shutting_down`. `/healthz` is liveness only.",
            "tags": ["operations"],
            "responses": {
                "200": _json(_schema("Ready"), "Ready."),
                "503": {
                    "description": "Not ready; `details.reasons` says why.",
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    "content": {JSON: {"schema": _schema("Error")}},
                },
            },
        },
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics (text exposition format 0.0.4)",
            "description": "The metrics of this process and of its push worker "
            "(docs/operations.md lists them). With SUNBID_METRICS_TOKEN set, "
            "`Authorization: Bearer <that token>` is required.",
            "tags": ["operations"],
            "security": [{"metricsToken": []}, {}],
            "responses": {
                "200": {
                    "description": "The metrics.",
                    "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
                },
                "401": {
                    "description": "SUNBID_METRICS_TOKEN is set and was not sent.",
                    "content": {JSON: {"schema": _schema("Error")}},
                },
            },
        },
    },
    "/api/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "tags": ["public"],
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
        },
    },
    "/api/categories": {
        "get": {
            "operationId": "listCategories",
            "summary": "The eight trading categories and their stage vocabularies",
            "tags": ["public"],
            "responses": {"200": _json(_schema("Categories"), "The vocabulary.")},
        },
    },
    "/api/directory": {
        "get": {
            "operationId": "getDirectory",
            "summary": "Agencies and regions by code, with their names (zh and en)",
            "description": "Reference data (server/data/directory.toml). Projects may "
            "carry codes not listed here: show the code then. With an `ETag` and "
            "`Cache-Control: public, max-age=300`; `If-None-Match` answers 304.",
            "tags": ["public"],
            "responses": {
                "200": _json(_schema("Directory"), "The directory."),
                "304": {"description": "Not modified."},
            },
        },
    },
    "/api/projects": {
        "get": {
            "operationId": "listProjects",
            "summary": "Projects, latest activity first",
            "tags": ["public"],
            "parameters": [
                {"name": "category", "in": "query", "schema": _schema("CategoryCode")},
                {"name": "agency", "in": "query", "schema": _schema("Code")},
                {"name": "region", "in": "query", "schema": _schema("Code")},
                {
                    "name": "stage",
                    "in": "query",
                    "schema": _schema("StageCode"),
                    "description": "The project's current (lifecycle) stage.",
                },
                {
                    "name": "q",
                    "in": "query",
                    "description": "Substring of the title or id.",
                    "schema": {"type": "string", "maxLength": 100},
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "description": "`next_cursor` of the previous page.",
                    "schema": {"type": "string"},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                },
            ],
            "responses": {"200": _json(_schema("ProjectPage"), "One page."), **_errors(422)},
        },
        "post": {
            "operationId": "createProject",
            "summary": "Register a project",
            "description": "Appends the project's `registered` event (its fields in "
            "`data`) and answers with the project. A publisher creates projects of its "
            "own agency only; an admin for any agency.",
            "tags": ["staff"],
            "security": STAFF,
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": _schema("ProjectInput")}},
            },
            "responses": {
                "201": {
                    **_json(_schema("Project"), "Created."),
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                **_errors(400, 401, 403, 409, 413, 415, 422),
            },
        },
    },
    "/api/projects/{project_id}": {
        "parameters": [_ref("parameters", "ProjectId")],
        "get": {
            "operationId": "getProject",
            "summary": "One project with its timeline and open deadlines",
            "tags": ["public"],
            "responses": {"200": _json(_schema("ProjectDetail"), "The project."), **_errors(404)},
        },
        "patch": {
            "operationId": "amendProject",
            "summary": "Amend a project's details",
            "description": "Appends an `amended` event (`data`: `changes` and `reason`) "
            "and answers with the project. Events after it carry the new region. A "
            "publisher of the project's agency or an admin.",
            "tags": ["staff"],
            "security": STAFF,
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": _schema("ProjectAmendment")}},
            },
            "responses": {
                "200": _json(_schema("Project"), "Amended."),
                **_errors(400, 401, 403, 404, 413, 415, 422, 503),
            },
        },
    },
    "/api/projects/{project_id}/events": {
        "parameters": [_ref("parameters", "ProjectId")],
        "post": {
            "operationId": "publishEvent",
            "summary": "Publish a disclosure / stage change",
            "description": "The event is durable before the answer is sent, and streamed to "
            "subscribers only then. A stage outside the project's category "
            "vocabulary is a 422 whose `details.allowed` lists the stages.",
            "tags": ["staff"],
            "security": STAFF,
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "description": "Repeating a key returns the first event (200), never a "
                    "second one; reusing it for a different event is a 409.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                }
            ],
            "requestBody": {"required": True, "content": {JSON: {"schema": _schema("EventInput")}}},
            "responses": {
                "201": _json(_schema("Event"), "Published."),
                "200": _json(
                    _schema("Event"),
                    "A repeat of an Idempotency-Key: the event published the first time.",
                ),
                **_errors(400, 401, 403, 404, 409, 413, 415, 422, 503),
            },
        },
    },
    "/api/events": {
        "get": {
            "operationId": "listEvents",
            "summary": "Events after `since` matching topics and stages, ascending",
            "tags": ["public"],
            "parameters": [
                _ref("parameters", "Since"),
                _ref("parameters", "Topics"),
                _ref("parameters", "Stages"),
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                },
            ],
            "responses": {
                "200": _json(_schema("EventPage"), "Events in seq order."),
                **_errors(422),
            },
        },
    },
    "/api/push/vapid-key": {
        "get": {
            "operationId": "vapidKey",
            "summary": "The VAPID applicationServerKey for PushManager.subscribe()",
            "tags": ["push"],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["publicKey"],
                        "properties": {
                            "publicKey": {
                                "type": "string",
                                "description": "base64url uncompressed P-256 point",
                            }
                        },
                    },
                    "The public key.",
                ),
                **_errors(503),
            },
        },
    },
    "/api/push/subscriptions": {
        "post": {
            "operationId": "subscribePush",
            "summary": "Subscribe a browser to push notifications (upsert by endpoint)",
            "description": "Only https endpoints on port 443 of the allowed push services "
            "(SUNBID_PUSH_ALLOWED_HOSTS) that resolve to public addresses are accepted. "
            "Rate-limited per client address.",
            "tags": ["push"],
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "required": ["subscription", "topics"],
                            "properties": {
                                "subscription": {
                                    "type": "object",
                                    "required": ["endpoint", "keys"],
                                    "properties": {
                                        "endpoint": {"type": "string", "format": "uri"},
                                        "expirationTime": {"type": ["number", "null"]},
                                        "keys": {
                                            "type": "object",
                                            "required": ["p256dh", "auth"],
                                            "properties": {
                                                "p256dh": {"type": "string"},
                                                "auth": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                                "topics": {"type": "array", "items": {"type": "string"}},
                                "stages": {"type": "array", "items": {"type": "string"}},
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": _json(_schema("PushSubscriptionResult"), "Subscribed."),
                "200": _json(_schema("PushSubscriptionResult"), "Updated (same endpoint)."),
                **_errors(400, 413, 415, 422, 429, 503),
            },
        },
        "delete": {
            "operationId": "unsubscribePush",
            "summary": "Forget a push subscription (204 also when already gone)",
            "tags": ["push"],
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "required": ["endpoint"],
                            "properties": {"endpoint": {"type": "string"}},
                        }
                    }
                },
            },
            "responses": {"204": {"description": "Gone."}, **_errors(400, 415, 422, 503)},
        },
    },
    "/api/catalog": {
        "get": {
            "operationId": "catalog",
            "summary": "The disclosure catalogue and the statutory time-limit rules",
            "tags": ["public"],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["items", "rules"],
                        "properties": {
                            "items": {"type": "array", "items": {"type": "object"}},
                            "rules": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                    "Catalogue items (code, name, content, basis, time_limit, body, channel, "
                    "audience, mode, level, stages) and rules (id, category, trigger, target, "
                    "kind, amount, unit, basis, confidence).",
                )
            },
        },
    },
    "/api/compliance": {
        "get": {
            "operationId": "complianceScorecard",
            "summary": "Each agency's disclosure record: due, on time, late, open breaches",
            "tags": ["public"],
            "parameters": [
                {"name": name, "in": "query", "schema": {"type": "string"}}
                for name in ("agency", "category")
            ]
            + [
                {
                    "name": "period",
                    "in": "query",
                    "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                    "description": "A month, by the deadline's day.",
                }
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["as_of", "agencies"],
                        "properties": {
                            "as_of": _schema("Time"),
                            "agencies": {
                                "type": "array",
                                "items": {
                                    "allOf": [
                                        _schema("Score"),
                                        {
                                            "type": "object",
                                            "required": ["agency", "by_category", "by_period"],
                                        },
                                    ]
                                },
                            },
                        },
                    },
                    "The scorecard.",
                ),
                **_errors(422),
            },
        },
    },
    "/api/supervision/warnings": {
        "get": {
            "operationId": "supervisionWarnings",
            "summary": "Compliance warnings, newest first",
            "tags": ["staff"],
            "security": STAFF,
            "parameters": [
                {"name": name, "in": "query", "schema": {"type": "string"}}
                for name in ("agency", "category", "project")
            ]
            + [
                {
                    "name": "level",
                    "in": "query",
                    "schema": {"enum": ["approaching", "breach", "data_incomplete"]},
                },
                {"name": "state", "in": "query", "schema": {"enum": ["open", "resolved"]}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                },
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["items", "next_cursor"],
                        "properties": {
                            "items": {"type": "array", "items": _schema("Warning")},
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    },
                    "A page of warnings (supervisor or admin token).",
                ),
                **_errors(401, 403, 422),
            },
        },
    },
    "/api/events/{seq}/deliveries": {
        "get": {
            "operationId": "eventDeliveries",
            "summary": "Push delivery counts for one event",
            "tags": ["staff"],
            "security": STAFF,
            "parameters": [
                {
                    "name": "seq",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1},
                }
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["seq", "queued", "delivered", "failed", "gone"],
                        "properties": {
                            name: {"type": "integer", "minimum": 0}
                            for name in ("seq", "queued", "delivered", "failed", "gone")
                        },
                    },
                    "Counts by outcome.",
                ),
                **_errors(401, 404, 422, 503),
            },
        },
    },
    "/api/stream": {
        "get": {
            "operationId": "streamEvents",
            "summary": "Server-Sent Events",
            "description": 'First `event: subscribed` with `{"topics":[…],"head":H}`, then '
            "per event `id:` its seq, `event:` its stage, `data:` the Event "
            "JSON. `Last-Event-ID` (or `since`) resumes: every matching event "
            "after it, exactly once, in order. A client too slow to keep up "
            "gets `event: error` (`lagging`) and should reconnect.",
            "tags": ["public"],
            "parameters": [
                _ref("parameters", "Topics"),
                _ref("parameters", "Stages"),
                _ref("parameters", "Since"),
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "schema": {"type": "integer", "minimum": 0},
                },
            ],
            "responses": {
                "200": {
                    "description": "The stream.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **_errors(403, 422, 429),
            },
        },
    },
    "/ws": {
        "get": {
            "operationId": "websocket",
            "summary": "WebSocket (upgrade): subscribe, unsubscribe, ping, auth",
            "description": "Text frames of JSON. Client ops: "
            '`{"op":"subscribe","topics":[…],"stages":[…]?,'
            '"since":S?}`, `{"op":"unsubscribe","topics":[…]}`, '
            '`{"op":"ping"}`, `{"op":"auth","token":"…"}`. Server '
            "ops: subscribed, unsubscribed, pong, authed, event, warning, and "
            '`{"op":"error","code":…,"message":…}` (the connection '
            "stays open). The query parameters act as a first subscribe. "
            "Close codes: 1001 server going away, 1009 frame too large, "
            "4008 lagging (reconnect with since), 4029 too many connections "
            "from this address.",
            "tags": ["public"],
            "parameters": [
                _ref("parameters", "Topics"),
                _ref("parameters", "Stages"),
                _ref("parameters", "Since"),
            ],
            "responses": {"101": {"description": "Switching to the WebSocket protocol."}},
        },
    },
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Sunbid",
        "version": __version__,
        "summary": "Realtime disclosure of public resource trading",
        "description": 'Errors always look like {"error": {"code": …, "message": …, '
        '"details"?: …}}. Times are RFC 3339 with the offset of '
        "SUNBID_TIMEZONE.",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    },
    "tags": [
        {"name": "public", "description": "No token needed."},
        {"name": "staff", "description": "Authorization: Bearer <token>."},
        {"name": "app", "description": "Pages for people."},
        {"name": "operations", "description": "For monitoring and load balancers."},
    ],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "parameters": PARAMETERS,
        "responses": RESPONSES,
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A staff token from `sunbid token create`.",
            },
            "metricsToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "SUNBID_METRICS_TOKEN, when it is set.",
            },
        },
    },
}


async def openapi(_: Request) -> Response:
    return JSONResponse(SPEC)
