"""`GET /api/openapi.json`: the HTTP API described for clients and tools.

The document is built, not written: paths and methods from the app's route
table, what each one does from route_docs.py, and every schema from the types
in types.py (msgspec renders them as JSON Schema 2020-12, the dialect of
OpenAPI 3.1). The category and stage enums come from the vocabulary the
server loaded. It is built once per app, at the first request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from server import __version__
from server.api import state_of
from server.api.route_docs import JSON, PATH_PARAMS, ROUTES, Answer, Doc, Param
from server.api.types import COMPONENT, NAMED, VOCABULARY
from server.domain import Domain

# Served by the ASGI app before the router sees the request (app.py), so not
# in the route table.
OUTSIDE_ROUTER = (("/ws", "get"),)
METHODS = ("get", "post", "put", "patch", "delete")
SCHEMAS = "#/components/schemas/{name}"

ERROR_RESPONSES = {
    400: ("Malformed", "Malformed request, e.g. a body that is not valid JSON."),
    401: ("Unauthorized", "No token, or a token that is unknown or revoked."),
    403: ("Forbidden", "The token may not do this."),
    404: ("NotFound", "No such resource."),
    409: ("Conflict", "Conflicts with what exists."),
    413: ("TooLarge", "The body exceeds SUNBID_MAX_BODY_BYTES."),
    415: ("UnsupportedMediaType", "The body is not sent as application/json."),
    422: ("Invalid", "A field or parameter is invalid; `details.field` names it."),
    429: ("TooMany", "Too many requests or connections; see Retry-After."),
    503: ("Unavailable", "The event log cannot be written right now; nothing was published."),
}
HEADERS = {
    "Retry-After": {"schema": {"type": "integer", "minimum": 0}},
    "Location": {"schema": {"type": "string"}},
    "ETag": {"schema": {"type": "string"}},
    "Last-Modified": {"schema": {"type": "string"}},
    "Link": {
        "description": "What the page fetches first: its data (`rel=preload; as=fetch`) "
        "and its code (`rel=modulepreload`), so the browser fetches them with the app's code.",
        "schema": {"type": "string"},
    },
}
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "staff": [{"bearer": []}],
    # An empty requirement: without SUNBID_METRICS_TOKEN, no token is needed.
    "metrics": [{"metricsToken": []}, {}],
}


class RouteNotDescribed(LookupError):
    """A route is served without an entry in route_docs.ROUTES, or the reverse."""


def served_routes(routes: Iterable[BaseRoute]) -> list[tuple[str, str]]:
    """(path, method) of every route, in the route table's order; HEAD goes with GET."""
    found: list[tuple[str, str]] = []
    for route in routes:
        if isinstance(route, Route):
            methods = sorted(m.lower() for m in (route.methods or {"GET"}) if m != "HEAD")
            found += [(route.path, method) for method in methods]
        elif isinstance(route, Mount):
            found.append((route.path, "get"))
    found += OUTSIDE_ROUTER
    return found


def build(domain: Domain, served: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The OpenAPI document for the routes `served`."""
    routes = list(dict.fromkeys(served))
    missing = [route for route in routes if route not in ROUTES]
    if missing:
        raise RouteNotDescribed(f"no description in route_docs.ROUTES for {missing}")
    unserved = set(ROUTES) - set(routes)
    if unserved:
        raise RouteNotDescribed(f"described in route_docs.ROUTES but not served: {unserved}")
    schemas = _Schemas(domain, (ROUTES[route] for route in routes))
    paths: dict[str, dict[str, Any]] = {}
    for path, method in routes:
        paths.setdefault(path, {})[method] = _operation(path, ROUTES[(path, method)], schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sunbid",
            "version": __version__,
            "summary": "Realtime disclosure of public resource trading",
            "description": 'Errors always look like {"error": {"code": …, "message": …, '
            '"details"?: …}}. Times are RFC 3339 with the offset of SUNBID_TIMEZONE.',
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "public", "description": "No token needed."},
            {"name": "staff", "description": "Authorization: Bearer <token>."},
            {"name": "push", "description": "Web Push: no token needed."},
            {"name": "app", "description": "Pages for people."},
            {"name": "operations", "description": "For monitoring and load balancers."},
        ],
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "parameters": schemas.parameters,
            "responses": {
                name: _json(SCHEMAS.format(name="Error"), description, status)
                for status, (name, description) in ERROR_RESPONSES.items()
            },
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


def _operation(path: str, doc: Doc, schemas: _Schemas) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": doc.operation_id,
        "summary": doc.summary,
        "tags": [doc.tag],
    }
    if doc.description:
        operation["description"] = doc.description
    if doc.security in SECURITY:
        operation["security"] = SECURITY[doc.security]
    named = [PATH_PARAMS[name] for name in re.findall(r"{(\w+)}", path)]
    params = [schemas.parameter(param) for param in (*named, *doc.params)]
    if params:
        operation["parameters"] = params
    if doc.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": schemas.of(doc.body)}},
        }
    responses = {str(status): _answer(answer, schemas) for status, answer in doc.answers.items()}
    if doc.security == "staff":
        responses.setdefault("401", _ref("responses", ERROR_RESPONSES[401][0]))
    for status in doc.errors:
        responses[str(status)] = _ref("responses", ERROR_RESPONSES[status][0])
    operation["responses"] = responses
    return operation


def _answer(answer: Answer, schemas: _Schemas) -> dict[str, Any]:
    result: dict[str, Any] = {"description": answer.description}
    if answer.headers:
        result["headers"] = {name: HEADERS[name] for name in answer.headers}
    if answer.body is not None:
        content = {} if answer.body == {} else {"schema": schemas.of(answer.body)}
        result["content"] = {answer.media: content}
    return result


def _json(ref: str, description: str, status: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": {"$ref": ref}}},
    }
    if status in (429, 503):
        result["headers"] = {"Retry-After": HEADERS["Retry-After"]}
    return result


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


class _Schemas:
    """Every type the operations use, rendered at once so that each record is
    written once under components/schemas and referred to by `$ref`."""

    def __init__(self, domain: Domain, docs: Iterable[Doc]) -> None:
        self.vocabulary = {
            "categories": list(domain.categories),
            "stages": list(domain.stages),
        }
        # The named pieces (a code, a time) first, as they are defined, before
        # any use adds its own description to them.
        self.components: dict[str, Any] = {}
        for schema in msgspec.json.schema_components(NAMED, ref_template=SCHEMAS)[0]:
            self._named(schema)
        kinds = list(dict.fromkeys(_types(docs)))
        rendered, records = msgspec.json.schema_components(kinds, ref_template=SCHEMAS)
        for name, schema in records.items():
            schema.pop("title", None)  # the class's name, already the component's
            if "description" in schema:  # a docstring: its line breaks are the source's
                schema["description"] = " ".join(schema["description"].split())
            self.components[name] = self._named(schema)
        self.components = dict(sorted(self.components.items()))
        self._rendered = dict(zip(kinds, self._named(list(rendered)), strict=True))
        self.parameters: dict[str, Any] = {}

    def of(self, kind: Any) -> Any:
        """The schema of a type (a `$ref` for a record), or a literal schema as given."""
        if isinstance(kind, dict):  # a literal; `oneOf` may list types (one answer, two shapes)
            if "oneOf" in kind:
                return {**kind, "oneOf": [self.of(item) for item in kind["oneOf"]]}
            return kind
        return self._rendered[kind]

    def parameter(self, param: Param) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": param.name, "in": param.where}
        if param.description:
            spec["description"] = param.description
        if param.where == "path":
            spec["required"] = True
        spec["schema"] = self.of(param.type)
        if param.examples:
            spec["examples"] = param.examples
        if not param.component:
            return spec
        self.parameters[param.component] = spec
        return _ref("parameters", param.component)

    def _named(self, node: Any) -> Any:
        """`node` with each marked piece replaced by a `$ref` to its component
        (keeping what the use adds, e.g. its own description), and each
        vocabulary marker by the enum of the codes the server loaded."""
        if isinstance(node, list):
            return [self._named(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: self._named(value) for key, value in node.items()}
        if VOCABULARY in node:
            node["enum"] = self.vocabulary[node.pop(VOCABULARY)]
        name = node.pop(COMPONENT, None)
        if name is None:
            return node
        shared = self.components.setdefault(name, dict(node))
        extra = {key: value for key, value in node.items() if shared.get(key) != value}
        return {"$ref": SCHEMAS.format(name=name), **extra}


def _types(docs: Iterable[Doc]) -> Iterator[Any]:
    """Every type named by the operations (literal schemas are used as they are)."""
    yield from (param.type for param in PATH_PARAMS.values())
    for doc in docs:
        answers = (answer.body for answer in doc.answers.values())
        for item in (doc.body, *answers, *(param.type for param in doc.params)):
            if isinstance(item, dict):
                yield from (one for one in item.get("oneOf", ()) if not isinstance(one, dict))
            elif item is not None:
                yield item


async def openapi(request: Request) -> Response:
    # Kept as bytes beside the app: the route table and vocabulary do not change while it runs.
    app_state = request.app.state
    body = getattr(app_state, "openapi_document", None)
    if body is None:
        document = build(state_of(request).domain, served_routes(request.app.routes))
        body = app_state.openapi_document = orjson.dumps(document)
    return Response(body, media_type="application/json")
