"""What each route does, for the OpenAPI document: one entry per (path, method).

The paths and methods themselves come from the app's route table; this table
only describes them, with the request and response types of server/api/types.py.
A route served but missing here, or described here but not served, stops the
document from being built (openapi.py), so neither can drift from the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from msgspec import Meta

from server.api import types as t
from server.api.compliance import STATES
from server.api.ocds import MAX_PAGE as OCDS_MAX_PAGE
from server.api.pages import SHELL_PATHS
from server.api.public import MAX_QUERY, MAX_WORDS, SORTS
from server.api.public import STATUSES as PROJECT_STATUSES
from server.api.respond import DEVICE, TICKET
from server.api.staff import MAX_IDEMPOTENCY_KEY
from server.compliance.items import STATUSES as ITEM_STATUSES
from server.compliance.watchdog import Level
from server.core.numbers import MAX_SEQ
from server.respond.rules import CaseKind
from server.respond.service import STATUSES as CASE_STATUSES
from server.stats.figures import TABLES as STATS_TABLES

JSON = "application/json"
Where = Literal["path", "query", "header"]
Security = Literal["none", "staff", "metrics"]


@dataclass(frozen=True)
class Param:
    name: str
    where: Where
    type: Any
    description: str = ""
    examples: dict[str, Any] = field(default_factory=dict)
    # Named parameters are written once under components/parameters.
    component: str = ""


@dataclass(frozen=True)
class Answer:
    description: str
    # A type from types.py, a JSON Schema literal ({} for a media type with no
    # schema, such as HTML), or None for an answer without a body.
    body: Any = None
    media: str = JSON
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Doc:
    operation_id: str
    summary: str
    tag: str
    answers: dict[int, Answer]
    description: str = ""
    params: tuple[Param, ...] = ()
    body: Any = None
    errors: tuple[int, ...] = ()
    security: Security = "none"


# --- parameters --------------------------------------------------------------------------------

MONTH = Annotated[str, Meta(pattern="^[0-9]{4}-[0-9]{2}$")]
PROJECT_ID = Param("project_id", "path", t.Code, component="ProjectId")
SINCE = Param(
    "since",
    "query",
    Annotated[int, Meta(ge=0, le=MAX_SEQ, extra_json_schema={"default": 0})],
    "Only events with a seq greater than this.",
    component="Since",
)
TOPICS = Param(
    "topics",
    "query",
    str,
    "Comma-separated: all, project:<id>, category:<code>, agency:<code>, region:<code>.",
    {"one category": {"value": "category:construction"}},
    component="Topics",
)
STAGES = Param(
    "stages",
    "query",
    str,
    "Comma-separated stage codes: only events of these stages.",
    {"new tenders": {"value": "notice"}},
    component="Stages",
)
# The parameter named in a path's `{…}`: the same wherever it appears.
PATH_PARAMS = {
    "project_id": PROJECT_ID,
    "channel_id": Param("channel_id", "path", t.ChannelId),
    "seq": Param("seq", "path", Annotated[int, Meta(ge=1, le=MAX_SEQ)]),
    "table": Param(
        "table",
        "path",
        Annotated[str, Meta(extra_json_schema={"enum": list(STATS_TABLES)})],
        "A table of GET /api/stats.",
    ),
    "webhook_id": Param("webhook_id", "path", str, "A webhook's id (wh_…)."),
    "case_id": Param(
        "case_id",
        "path",
        Annotated[str, Meta(pattern="^[qr][a-z2-7]{12}$")],
        "An enquiry's id (q…) under /api/enquiries, a disclosure request's (r…) under "
        "/api/disclosure-requests.",
    ),
}


STATS_FILTERS = (
    Param("year", "query", Annotated[int, Meta(ge=2000, le=2100)], "Only this year."),
    Param("month", "query", Annotated[int, Meta(ge=1, le=12)], "Only this month (with `year`)."),
    Param("category", "query", t.CategoryCode),
    Param("agency", "query", t.Code),
)


def limit(default: int, high: int) -> Param:
    page = Annotated[int, Meta(ge=1, le=high, extra_json_schema={"default": default})]
    return Param("limit", "query", page)


def codes(*names: str) -> tuple[Param, ...]:
    return tuple(Param(name, "query", t.Code) for name in names)


def case_status(kind: CaseKind) -> Param:
    """The statuses of a kind of case, and `open`: those not yet answered."""
    choices = list(dict.fromkeys((*CASE_STATUSES[kind], "open")))
    return Param(
        "status",
        "query",
        Annotated[str, Meta(extra_json_schema={"enum": choices})],
        "Only cases in this status; `open`: not answered yet (every status if absent).",
    )


def case_inbox(kind: CaseKind, *filters: str) -> tuple[Param, ...]:
    return (
        *codes(*filters),
        case_status(kind),
        Param("cursor", "query", str, "`next_cursor` of the previous page."),
        limit(50, 500),
    )


# --- answers shared by several operations ------------------------------------------------------

HTML = Answer("HTML", {}, "text/html", headers=("Link",))
# The public's cases: read back with the ticket; filed with an optional device id.
X_TICKET = Param(
    TICKET.title(),
    "header",
    str,
    "The ticket the case was filed with. Without it, or with another, the answer is the "
    "same 404 as for an id that does not exist.",
    component="Ticket",
)
X_DEVICE = Param(
    DEVICE.title(),
    "header",
    Annotated[str, Meta(pattern="^[A-Za-z0-9._-]{8,64}$")],
    "The app's random id for this device: filing is limited per device "
    "(SUNBID_ASK_DEVICE_BURST) as well as per client address (SUNBID_ASK_BURST).",
    component="DeviceId",
)
MANAGE_TOKEN = Param("X-Manage-Token", "header", str, "The token the channel was added with.")
NOT_MODIFIED = Answer("Not modified.")

SHELL_SUMMARIES = {
    "/": ("appHome", "Projects, newest activity first; filters and search"),
    "/p/{project_id}": ("appProject", "One transaction's whole process, live"),
    "/follows": ("appFollows", "What this device follows; notification settings"),
    "/mine": ("appMine", "This device's enquiries and disclosure requests, with their answers"),
    "/request": ("appRequest", "File a disclosure request (依申请公开) with an agency"),
    "/catalog": ("appCatalog", "The disclosure catalogue and the agencies' scorecards"),
    "/stats": ("appStats", "Statistics (统计分析): charts, their tables and CSV"),
    "/staff": ("appStaff", "Staff console: create projects, publish, amend, warnings"),
}

ROUTES: dict[tuple[str, str], Doc] = {
    **{
        (path, "get"): Doc(
            SHELL_SUMMARIES[path][0],
            SHELL_SUMMARIES[path][1],
            "app",
            {200: HTML},
            description="The app's shell (the same HTML for every page; the app routes on "
            "the client), with a Content-Security-Policy and a `Link` header naming what "
            "the page fetches first.",
        )
        for path in SHELL_PATHS
    },
    ("/sw.js", "get"): Doc(
        "appServiceWorker",
        "The app's service worker (scope /): offline shell, cached data, push",
        "app",
        {200: Answer("JavaScript", {}, "text/javascript")},
    ),
    ("/manifest.webmanifest", "get"): Doc(
        "appManifest",
        "The web app manifest (installing to the Home Screen)",
        "app",
        {200: Answer("The manifest.", {"type": "object"}, "application/manifest+json")},
    ),
    ("/static", "get"): Doc(
        "appStatic",
        "The app's files: GET /static/<path> (scripts, styles, icons)",
        "app",
        {200: Answer("The file."), 304: NOT_MODIFIED},
        description="Served as they are (no build step), with ETag and Last-Modified; "
        "`Cache-Control: no-cache`, so browsers revalidate. No directory listings.",
        errors=(404,),
    ),
    ("/healthz", "get"): Doc(
        "health", "Liveness and the latest seq", "public", {200: Answer("Up.", t.Health)}
    ),
    ("/readyz", "get"): Doc(
        "ready",
        "Readiness: whether this process can serve now",
        "operations",
        {
            200: Answer("Ready.", t.Ready),
            503: Answer(
                "Not ready; `details.reasons` says why.", t.Error, headers=("Retry-After",)
            ),
        },
        description="200 when the log is open and answers a read within 2 s, the "
        "compliance watchdog has rebuilt and runs, and no shutdown has begun; `degraded` "
        "lists what does not work meanwhile without stopping service (`push_worker_down`: "
        "it is being restarted; `bus_unreachable`: Redis is down and events from other "
        "processes come by polling the database, at most a second later). Otherwise 503 "
        "`not_ready` with `Retry-After` and `details.reasons`, a list of "
        "`store_unreadable`, `compliance_not_running`, `shutting_down`. "
        "`/healthz` is liveness only.",
    ),
    ("/metrics", "get"): Doc(
        "metrics",
        "Prometheus metrics (text exposition format 0.0.4)",
        "operations",
        {
            200: Answer("The metrics.", {"type": "string"}, "text/plain; version=0.0.4"),
            401: Answer("SUNBID_METRICS_TOKEN is set and was not sent.", t.Error),
        },
        description="The metrics of this process and of its push worker "
        "(docs/operations.md lists them). With SUNBID_METRICS_TOKEN set, "
        "`Authorization: Bearer <that token>` is required.",
        security="metrics",
    ),
    ("/api/openapi.json", "get"): Doc(
        "openapi",
        "This document",
        "public",
        {
            200: Answer(
                "OpenAPI 3.1, generated from the route table and the API's types.",
                {"type": "object"},
            )
        },
    ),
    ("/api/categories", "get"): Doc(
        "listCategories",
        "The eight trading categories and their stage vocabularies",
        "public",
        {200: Answer("The vocabulary.", t.Categories)},
    ),
    ("/api/directory", "get"): Doc(
        "getDirectory",
        "Agencies and regions by code, with their names (zh and en)",
        "public",
        {200: Answer("The directory.", t.Directory, headers=("ETag",)), 304: NOT_MODIFIED},
        description="Reference data (server/data/directory.toml). Projects may carry codes "
        "not listed here: show the code then. With an `ETag` and `Cache-Control: public, "
        "max-age=300`; `If-None-Match` answers 304.",
    ),
    ("/api/projects", "get"): Doc(
        "listProjects",
        "Projects, latest activity first (or soonest closing)",
        "public",
        {200: Answer("One page.", t.ProjectPage)},
        params=(
            Param("category", "query", t.CategoryCode),
            *codes("agency", "region"),
            Param("stage", "query", t.StageCode, "The project's current (lifecycle) stage."),
            Param(
                "q",
                "query",
                Annotated[str, Meta(max_length=MAX_QUERY)],
                f"Up to {MAX_WORDS} words separated by spaces; each must appear "
                "(case-insensitive) in the id, the title, or an event's title or body.",
            ),
            Param(
                "status",
                "query",
                Annotated[str, Meta(extra_json_schema={"enum": list(PROJECT_STATUSES)})],
                "open: closes_at in the future and no award, contract or failed event; "
                "closing: open and closing within 72 hours.",
            ),
            Param(
                "sort",
                "query",
                Annotated[str, Meta(extra_json_schema={"enum": list(SORTS)})],
                "activity (default): latest activity first; closes: soonest closes_at "
                "first, projects without one last. A cursor continues the order it came from.",
            ),
            Param("cursor", "query", str, "`next_cursor` of the previous page."),
            limit(20, 100),
        ),
        errors=(422,),
    ),
    ("/api/projects", "post"): Doc(
        "createProject",
        "Register a project (appends its `registered` event)",
        "staff",
        {201: Answer("Created.", t.Project, headers=("Location",))},
        description="A publisher creates projects of its own agency only; an admin for any agency.",
        body=t.ProjectInput,
        errors=(400, 401, 403, 409, 413, 415, 422),
        security="staff",
    ),
    ("/api/projects/{project_id}", "get"): Doc(
        "getProject",
        "One project with its timeline and open deadlines",
        "public",
        {200: Answer("The project.", t.ProjectDetail)},
        errors=(404,),
    ),
    ("/api/projects/{project_id}", "patch"): Doc(
        "amendProject",
        "Amend a project's facts (appends an `amended` event with the reason)",
        "staff",
        {200: Answer("The project as amended.", t.Project)},
        description="A publisher of the project's agency, or an admin. Does not move the "
        "project's `stage`.",
        body=t.ProjectAmendment,
        errors=(400, 401, 403, 404, 413, 415, 422, 503),
        security="staff",
    ),
    ("/api/projects/{project_id}/events", "post"): Doc(
        "publishEvent",
        "Publish a disclosure / stage change",
        "staff",
        {
            201: Answer("Published.", t.Event, headers=("Location",)),
            200: Answer(
                "A repeat of an Idempotency-Key: the event published the first time; with "
                "`dry_run=1`, a `DryRun` (the event as it would be published, no seq or hash, "
                "and the statutory warnings it would raise) and nothing appended.",
                {"oneOf": [t.Event, t.DryRun]},
            ),
        },
        description="The event is durable before the answer is sent, and streamed to "
        "subscribers only then. A stage outside the project's category vocabulary is a "
        "422 whose `details.allowed` lists the stages. Checks before publishing: a stage's "
        "required facts (GET /api/categories, `required`) and each known fact's kind are "
        "checked (422 `invalid_field`, `details.field` = `data.<key>`); a publication that "
        "contradicts the project's log is a 422 `contradicts` whose `details.event` is the "
        "earlier event and `details.rule` one of opening_before_deadline, "
        "auction_before_listing_end, auction_before_start, second_award, award_before_notice, "
        "contract_before_award, after_failed.",
        params=(
            Param(
                "dry_run",
                "query",
                Literal["0", "1", "true", "false"],
                "1: check and preview only, append nothing (the Idempotency-Key is ignored).",
            ),
            Param(
                "Idempotency-Key",
                "header",
                Annotated[str, Meta(min_length=1, max_length=MAX_IDEMPOTENCY_KEY)],
                "Repeating a key returns the first event (200), never a second one; reusing "
                "it for a different event is a 409.",
            ),
        ),
        body=t.EventInput,
        errors=(400, 401, 403, 404, 409, 413, 415, 422, 503),
        security="staff",
    ),
    ("/api/events", "get"): Doc(
        "listEvents",
        "Events after `since` matching topics and stages, ascending",
        "public",
        {200: Answer("Events in seq order.", t.EventPage)},
        description="A staff-only topic (`supervision`) is a 403: follow it on `/ws`.",
        params=(SINCE, TOPICS, STAGES, limit(100, 1000)),
        errors=(403, 422),
    ),
    ("/api/feed.atom", "get"): Doc(
        "atomFeed",
        "The newest 50 events on topics and stages, as an Atom 1.0 feed",
        "public",
        {
            200: Answer(
                "Atom 1.0 (RFC 4287), newest first.",
                {"type": "string"},
                "application/atom+xml; charset=utf-8",
                headers=("ETag", "Last-Modified"),
            ),
            304: NOT_MODIFIED,
        },
        description="Without `topics`, every event (`all`). The feed's id is a tag URI of the "
        "host and the topics and stages in sorted order; each entry's id a tag URI of the "
        "event's seq; `updated` is its `published_at`; category terms are the topics it was "
        "published on. A staff-only topic is a 403. `ETag` and `Last-Modified` (the newest "
        "event's publication) with `Cache-Control: public, max-age=60`; `If-None-Match` "
        "(or `If-Modified-Since`) answers 304. docs/feeds.md.",
        params=(TOPICS, STAGES),
        errors=(403, 422),
    ),
    ("/api/projects/{project_id}/deadlines.ics", "get"): Doc(
        "projectCalendar",
        "A project's key dates, open statutory deadlines and cut-offs, as iCalendar",
        "public",
        {
            200: Answer(
                "iCalendar (RFC 5545): one VEVENT per date, with a stable UID.",
                {"type": "string"},
                "text/calendar; charset=utf-8",
                headers=("ETag", "Last-Modified"),
            ),
            304: NOT_MODIFIED,
        },
        description="Key dates (投标截止, 开标时间 …) as timed events in SUNBID_TIMEZONE; "
        "open statutory deadlines (the `deadlines` of GET /api/projects/{id}) and the last "
        "day for a clarification before the bid deadline as all-day events, each with the "
        "rule's name and legal basis in its DESCRIPTION. Subscribe with the webcal:// form "
        "of this URL. `Cache-Control: public, max-age=300`; `If-None-Match` answers 304.",
        errors=(404,),
    ),
    ("/api/deadlines.ics", "get"): Doc(
        "deadlinesCalendar",
        "Every open statutory deadline and key date of an agency's or category's projects",
        "public",
        {
            200: Answer(
                "iCalendar (RFC 5545).",
                {"type": "string"},
                "text/calendar; charset=utf-8",
                headers=("ETag",),
            ),
            304: NOT_MODIFIED,
        },
        description="The dates of GET /api/projects/{id}/deadlines.ics for every project of "
        "the agency and category given (both, either, or neither: all) that has an open "
        "statutory deadline (at most 500, soonest due first) or is open for bids (at most "
        "500, soonest closing first). Made again at least every hour, at most every minute. "
        "`Cache-Control: public, max-age=300`; `If-None-Match` answers 304.",
        params=(Param("agency", "query", t.Code), Param("category", "query", t.CategoryCode)),
        errors=(422,),
    ),
    ("/api/ocds/releases", "get"): Doc(
        "ocdsReleases",
        "OCDS 1.1 release package: one release per event after `since`, ascending",
        "public",
        {200: Answer("A page of the release feed.", t.OcdsReleasePackage)},
        description="Open Contracting Data Standard 1.1 (docs/ocds.md has the mapping). "
        "`links.next` (absolute) continues the feed while more events exist; the last "
        "page has none, and a page after the newest event has no releases. Pages before "
        "the last never change: `Cache-Control: public, max-age=3600` (the last: 5 s).",
        params=(
            SINCE,
            Param(
                "limit",
                "query",
                Annotated[int, Meta(ge=1, le=OCDS_MAX_PAGE, extra_json_schema={"default": 100})],
                "Releases per page.",
            ),
        ),
        errors=(422,),
    ),
    ("/api/ocds/records/{project_id}", "get"): Doc(
        "ocdsRecord",
        "OCDS 1.1 record package of a project: its releases and the compiled release",
        "public",
        {200: Answer("The project's record.", t.OcdsRecordPackage)},
        description="`ocid` is SUNBID_OCID_PREFIX, a dash and the project id; the compiled "
        "release is the releases merged in seq order by ocdsmerge.",
        errors=(404,),
    ),
    ("/api/stream", "get"): Doc(
        "streamEvents",
        "Server-Sent Events",
        "public",
        {200: Answer("The stream.", {"type": "string"}, "text/event-stream")},
        description='First `event: subscribed` with `{"topics":[…],"head":H}`, then per '
        "event `id:` its seq, `event:` its stage, `data:` the Event JSON. `Last-Event-ID` "
        "(or `since`) resumes: every matching event after it, exactly once, in order. A "
        "client too slow to keep up gets `event: error` (`lagging`) and should reconnect.",
        params=(
            TOPICS,
            STAGES,
            SINCE,
            Param("Last-Event-ID", "header", Annotated[int, Meta(ge=0, le=MAX_SEQ)]),
        ),
        errors=(403, 422, 429),
    ),
    ("/ws", "get"): Doc(
        "websocket",
        "WebSocket (upgrade): subscribe, unsubscribe, ping, auth",
        "public",
        {101: Answer("Switching to the WebSocket protocol.")},
        description="Text frames of JSON. Client ops: "
        '`{"op":"subscribe","topics":[…],"stages":[…]?,"since":S?}`, '
        '`{"op":"unsubscribe","topics":[…]}`, `{"op":"ping"}`, `{"op":"auth","token":"…"}`. '
        "Server ops: subscribed, unsubscribed, pong, authed, event, warning, and "
        '`{"op":"error","code":…,"message":…}` (the connection stays open). The query '
        "parameters act as a first subscribe. Close codes: 1001 server going away, 1009 "
        "frame too large, 4008 lagging (reconnect with since), 4029 too many connections "
        "from this address.",
        params=(TOPICS, STAGES, SINCE),
    ),
    ("/api/push/vapid-key", "get"): Doc(
        "vapidKey",
        "The VAPID applicationServerKey for PushManager.subscribe()",
        "push",
        {200: Answer("The public key.", t.VapidKey)},
        errors=(503,),
    ),
    ("/api/push/subscriptions", "post"): Doc(
        "subscribePush",
        "Subscribe a browser to push notifications (upsert by endpoint)",
        "push",
        {
            201: Answer("Subscribed.", t.PushSubscriptionResult),
            200: Answer("Updated (same endpoint).", t.PushSubscriptionResult),
        },
        description="Only https endpoints on port 443 of the allowed push services "
        "(SUNBID_PUSH_ALLOWED_HOSTS) that resolve to public addresses are accepted. "
        "Rate-limited per client address. A staff-only topic (`supervision`) is a 403.",
        body=t.PushSubscribe,
        errors=(400, 403, 413, 415, 422, 429, 503),
    ),
    ("/api/push/subscriptions", "delete"): Doc(
        "unsubscribePush",
        "Forget a push subscription (204 also when already gone)",
        "push",
        {204: Answer("Gone.")},
        body=t.PushUnsubscribe,
        errors=(400, 413, 415, 422, 503),
    ),
    ("/api/events/{seq}/deliveries", "get"): Doc(
        "eventDeliveries",
        "Push delivery counts for one event",
        "staff",
        {200: Answer("Counts by outcome.", t.Deliveries)},
        errors=(401, 404, 422, 503),
        security="staff",
    ),
    ("/api/channels/available", "get"): Doc(
        "channelKinds",
        "The notification channels beside Web Push configured here",
        "push",
        {200: Answer("The kinds offered.", t.ChannelKinds)},
    ),
    ("/api/channels/usage", "get"): Doc(
        "channelUsage",
        "What the channels beside Web Push cost: messages sent per kind",
        "staff",
        {200: Answer("Channels, messages sent today and in the month, cost.", t.ChannelUsage)},
        params=(Param("month", "query", MONTH, "A month (local time); this month if absent."),),
        errors=(401, 403, 422, 503),
        security="staff",
    ),
    ("/api/channels", "post"): Doc(
        "addChannel",
        "Be told by SMS or e-mail: a code is sent to the address to confirm it",
        "push",
        {202: Answer("Pending until confirmed.", t.ChannelAdded)},
        description="Nothing is sent to the channel but the code until it is confirmed. SMS "
        "carries only the stages of push/channels/policy.toml. Rate-limited per client "
        "address and per address (a few channels each).",
        body=t.ChannelAdd,
        errors=(400, 413, 415, 422, 429, 503),
    ),
    ("/api/channels/wechat/authorize", "get"): Doc(
        "authorizeWechat",
        "Be told by WeChat: on to WeChat's web authorization",
        "push",
        {302: Answer("To WeChat, which comes back to the callback.", None, headers=("Location",))},
        params=(
            Param("topics", "query", str, "Comma-separated topics to follow."),
            Param("stages", "query", str, "Comma-separated stages (every stage if absent)."),
        ),
        errors=(403, 422, 429, 503),
    ),
    ("/api/channels/wechat/callback", "get"): Doc(
        "wechatCallback",
        "WeChat's way back: the channel is confirmed by the user's consent",
        "push",
        {
            302: Answer(
                "To /follows, with the channel and its manage token in the fragment.",
                None,
                headers=("Location",),
            )
        },
        params=(Param("code", "query", str), Param("state", "query", str)),
        errors=(422, 503),
    ),
    ("/api/channels/{channel_id}/confirm", "post"): Doc(
        "confirmChannel",
        "Confirm a channel with the code it was sent",
        "push",
        {200: Answer("Active.", t.ChannelStatus)},
        body=t.ChannelConfirm,
        errors=(400, 404, 413, 415, 422, 429, 503),
    ),
    ("/api/channels/{channel_id}", "get"): Doc(
        "showChannel",
        "A channel, to the device that added it",
        "push",
        {200: Answer("The channel.", t.ChannelShown)},
        params=(MANAGE_TOKEN,),
        errors=(404, 503),
    ),
    ("/api/channels/{channel_id}", "delete"): Doc(
        "cancelChannel",
        "Cancel a channel: its address is erased",
        "push",
        {204: Answer("Cancelled.")},
        params=(MANAGE_TOKEN,),
        errors=(404, 503),
    ),
    ("/api/channels/{channel_id}/unsubscribe", "get"): Doc(
        "unsubscribePage",
        "The 退订 link of a message: a page with a button (a GET cancels nothing)",
        "push",
        {200: Answer("HTML", {}, "text/html")},
        params=(Param("token", "query", str),),
        errors=(503,),
    ),
    ("/api/channels/{channel_id}/unsubscribe", "post"): Doc(
        "unsubscribeChannel",
        "Cancel a channel from its message's link (RFC 8058 one-click)",
        "push",
        {200: Answer("HTML", {}, "text/html")},
        params=(Param("token", "query", str),),
        errors=(404, 503),
    ),
    ("/api/webhooks", "get"): Doc(
        "listWebhooks",
        "The webhooks, with where each is in the log (never their secrets)",
        "staff",
        {200: Answer("Every webhook.", t.WebhookList)},
        errors=(401, 403, 503),
        security="staff",
    ),
    ("/api/webhooks", "post"): Doc(
        "addWebhook",
        "Have every matching event POSTed to a URL, signed (Standard Webhooks)",
        "staff",
        {201: Answer("Its id, and the secret: shown only here.", t.WebhookCreated)},
        description="Events published from now on, in seq order, at least once: "
        '`{"type": "event", "event": {…}}` with `webhook-id`, `webhook-timestamp` and '
        "`webhook-signature` (docs/webhooks.md). Admin token.",
        body=t.WebhookAdd,
        errors=(400, 401, 403, 413, 415, 422, 503),
        security="staff",
    ),
    ("/api/webhooks/{webhook_id}", "delete"): Doc(
        "deleteWebhook",
        "Stop a webhook: nothing more is sent, its records go",
        "staff",
        {204: Answer("Deleted.")},
        errors=(401, 403, 404, 503),
        security="staff",
    ),
    ("/api/webhooks/{webhook_id}/deliveries", "get"): Doc(
        "webhookDeliveries",
        "A webhook's latest attempts, newest first",
        "staff",
        {200: Answer("Status, error, duration, attempt, seq, time.", t.WebhookDeliveries)},
        params=(limit(50, 1000),),
        errors=(401, 403, 404, 422, 503),
        security="staff",
    ),
    ("/api/webhooks/{webhook_id}/replay", "post"): Doc(
        "replayWebhook",
        "Send again every matching event after `since`; enables a disabled webhook",
        "staff",
        {200: Answer("The webhook, from its new place.", t.WebhookShown)},
        body=t.WebhookReplay,
        errors=(400, 401, 403, 404, 413, 415, 422, 503),
        security="staff",
    ),
    ("/api/catalog", "get"): Doc(
        "catalog",
        "The disclosure catalogue and the statutory time-limit rules",
        "public",
        {
            200: Answer(
                "Catalogue items (code, name, content, basis, time_limit, body, channel, "
                "audience, mode, level, stages) and rules (id, category, trigger, target, "
                "kind, amount, unit, basis, confidence).",
                t.Catalog,
            )
        },
    ),
    ("/api/compliance", "get"): Doc(
        "complianceScorecard",
        "Each agency's disclosure record: due, on time, late, open breaches",
        "public",
        {200: Answer("The scorecard.", t.Scorecard)},
        params=(
            *codes("agency", "category"),
            Param("month", "query", MONTH, "One month's figures, by the deadline's day."),
            Param("period", "query", MONTH, "The older name of `month`."),
        ),
        description="Agencies worst first: the most items late, too short or overdue, then "
        "the lowest on-time rate.",
        errors=(422,),
    ),
    ("/api/stats", "get"): Doc(
        "stats",
        "Statistics (统计分析): projects, publications, amounts, competition, time to award, "
        "on-time rates, answers",
        "public",
        {200: Answer("Every figure: totals, and one list of rows per table.", t.Stats)},
        params=STATS_FILTERS,
        description="Projects count in the month of their first notice (of their first event "
        "until one), publications in the month they were published, Beijing time; amounts in "
        "yuan. docs/stats.md defines every figure.",
        errors=(422,),
    ),
    ("/api/stats/{table}.csv", "get"): Doc(
        "statsTable",
        "One table of the statistics as CSV (UTF-8 with a byte-order mark, for Excel)",
        "public",
        {
            200: Answer(
                "The rows GET /api/stats serves under that name; a header line of column names.",
                {"type": "string"},
                "text/csv; charset=utf-8",
            ),
        },
        params=STATS_FILTERS,
        description="`Content-Disposition: attachment` names the file after the table and "
        "the filters.",
        errors=(404, 422),
    ),
    ("/api/compliance/items", "get"): Doc(
        "complianceItems",
        "The statutory items behind the scorecard, late first",
        "public",
        {200: Answer("One row per statutory item.", t.ComplianceItems)},
        params=(
            *codes("agency", "category", "project"),
            Param("month", "query", MONTH, "Items counted in this month of the scorecard."),
            Param(
                "status",
                "query",
                Annotated[str, Meta(extra_json_schema={"enum": list(ITEM_STATUSES)})],
                "Without it: late and open items. on_time needs `project`.",
            ),
            limit(500, 5000),
        ),
        errors=(422,),
    ),
    ("/api/supervision/warnings", "get"): Doc(
        "supervisionWarnings",
        "Compliance warnings, newest first",
        "staff",
        {200: Answer("A page of warnings (supervisor or admin token).", t.WarningPage)},
        params=(
            *codes("agency", "category", "project"),
            Param("level", "query", Level),
            Param("state", "query", Annotated[str, Meta(extra_json_schema={"enum": list(STATES)})]),
            Param("cursor", "query", str, "`next_cursor` of the previous page."),
            limit(50, 500),
        ),
        errors=(401, 403, 422),
        security="staff",
    ),
    ("/api/projects/{project_id}/enquiries", "post"): Doc(
        "askEnquiry",
        "Ask a question about a project (咨询): answered in public, or declined",
        "public",
        {
            201: Answer(
                "Received: keep the `ticket`, shown only here, to read the answer.",
                t.EnquiryFiled,
                headers=("Location",),
            )
        },
        description="The question and contact are kept sealed beside the log and never "
        "published as written; staff publish the question (personal data removed) with the "
        "answer as an `enquiry_answer` event on the project, due within the response rule's "
        "period (GET /api/catalog). Rate-limited per client address and per device "
        "(`X-Device-Id`).",
        params=(X_DEVICE,),
        body=t.EnquiryInput,
        errors=(400, 404, 413, 415, 422, 429),
    ),
    ("/api/enquiries", "get"): Doc(
        "listEnquiries",
        "The public's enquiries, oldest due first",
        "staff",
        {200: Answer("One page (`Cache-Control: no-store`).", t.EnquiryPage)},
        description="A publisher sees its own agency's (another `agency` is a 403); a "
        "supervisor or admin sees all, and only publishers and admins see `contact`.",
        params=case_inbox(CaseKind.ENQUIRY, "agency", "project"),
        errors=(401, 403, 422),
        security="staff",
    ),
    ("/api/enquiries/{case_id}", "get"): Doc(
        "getEnquiry",
        "An enquiry, to the one who asked it (with its ticket)",
        "public",
        {200: Answer("The asker's view (`Cache-Control: no-store`).", t.Enquiry)},
        params=(X_TICKET,),
        errors=(404,),
    ),
    ("/api/enquiries/{case_id}/rating", "post"): Doc(
        "rateEnquiry",
        "Rate the answer to one's enquiry, once (with its ticket)",
        "public",
        {201: Answer("Rated.", t.Rating)},
        description="409 `not_answered` before an answer (a declined enquiry is not "
        "rated), `already_rated` the second time. The ratings make the scorecard's "
        "`satisfaction`.",
        params=(X_TICKET, X_DEVICE),
        body=t.RatingInput,
        errors=(400, 404, 409, 413, 415, 422, 429),
    ),
    ("/api/enquiries/{case_id}/answer", "post"): Doc(
        "answerEnquiry",
        "Answer an enquiry: publish the answer (appends an `enquiry_answer` event)",
        "staff",
        {
            201: Answer("Published: the event.", t.Event, headers=("Location",)),
            200: Answer(
                "Linked (`same_as`): the earlier answer's event; nothing new is published.",
                t.Event,
            ),
        },
        description="A publisher of the enquiry's agency, or an admin. The event's `data` "
        "is `enquiry`, `question` (as published), `answer` and `asked_at`; it is on the "
        "project's topics and on `enquiry:<id>`, which the asker's device may follow by "
        "push. A question or answer holding personal data (a mobile or identity card "
        "number, an e-mail address, the asker's contact) is refused: 422 `personal_data`, "
        "`details.found` says what. `same_as` must name an answered enquiry of the same "
        "project (422 `not_answered` otherwise). 409 `not_open` once answered or declined.",
        body={"oneOf": [t.EnquiryAnswer, t.EnquiryLink]},
        errors=(400, 401, 403, 404, 409, 413, 415, 422, 503),
        security="staff",
    ),
    ("/api/enquiries/{case_id}/decline", "post"): Doc(
        "declineEnquiry",
        "Decline an enquiry with a reason told to the asker (nothing is published)",
        "staff",
        {200: Answer("The enquiry as staff see it.", t.EnquiryItem)},
        description="A publisher of the enquiry's agency, or an admin. 409 `not_open` once "
        "answered or declined. The scorecard counts it in `outcomes.declined`.",
        body=t.CaseReason,
        errors=(400, 401, 403, 404, 409, 413, 415, 422),
        security="staff",
    ),
    ("/api/disclosure-requests", "get"): Doc(
        "listDisclosureRequests",
        "Requests for government information (依申请公开), oldest due first",
        "staff",
        {200: Answer("One page (`Cache-Control: no-store`).", t.DisclosureRequestPage)},
        description="A publisher sees its own agency's (another `agency` is a 403); a "
        "supervisor or admin sees all, and only publishers and admins see `contact`.",
        params=case_inbox(CaseKind.DISCLOSURE_REQUEST, "agency"),
        errors=(401, 403, 422),
        security="staff",
    ),
    ("/api/disclosure-requests", "post"): Doc(
        "requestDisclosure",
        "Request government information from an agency (依申请公开)",
        "public",
        {
            201: Answer(
                "Received: keep the `ticket`, shown only here, to read the reply.",
                t.DisclosureRequestFiled,
                headers=("Location",),
            )
        },
        description="Due in 20 working days (政府信息公开条例 §33), once extendable by 20. "
        "Nothing of it is published; the subject, description and contact are kept sealed "
        "and erased a while after the reply. An agency not in GET /api/directory is a 422. "
        "Rate-limited per client address and per device (`X-Device-Id`).",
        params=(X_DEVICE,),
        body=t.DisclosureRequestInput,
        errors=(400, 413, 415, 422, 429),
    ),
    ("/api/disclosure-requests/{case_id}", "get"): Doc(
        "getDisclosureRequest",
        "A disclosure request, to the one who made it (with its ticket), the reply included",
        "public",
        {200: Answer("The requester's view (`Cache-Control: no-store`).", t.DisclosureRequest)},
        params=(X_TICKET,),
        errors=(404,),
    ),
    ("/api/disclosure-requests/{case_id}/extend", "post"): Doc(
        "extendDisclosureRequest",
        "Extend a request's period once, by its rule's extension, with a reason",
        "staff",
        {200: Answer("The request as staff see it, with its new `due`.", t.DisclosureRequestItem)},
        description="A publisher of the request's agency, or an admin. 409 "
        "`already_extended` the second time, `not_open` once replied.",
        body=t.CaseReason,
        errors=(400, 401, 403, 404, 409, 413, 415, 422),
        security="staff",
    ),
    ("/api/disclosure-requests/{case_id}/reply", "post"): Doc(
        "replyDisclosureRequest",
        "Reply to a request: its outcome, the text and the legal basis",
        "staff",
        {200: Answer("The request as staff see it.", t.DisclosureRequestItem)},
        description="A publisher of the request's agency, or an admin. 409 `not_open` once "
        "replied. Told to the requester only; nothing is published.",
        body=t.ReplyInput,
        errors=(400, 401, 403, 404, 409, 413, 415, 422),
        security="staff",
    ),
}
