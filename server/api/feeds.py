"""Feeds and calendars anyone may subscribe to (server/interop/ renders them).

- `GET /api/feed.atom?topics=&stages=`: the newest 50 events on the topics;
- `GET /api/projects/{id}/deadlines.ics`: a project's key dates, open
  statutory deadlines and cut-offs;
- `GET /api/deadlines.ics?agency=&category=`: the same for every project of
  an agency or category (or all) with an open statutory deadline or still
  open for bids.

All public: events are, and so are the deadlines `GET /api/projects/{id}`
shows; staff-only topics are refused as for every other way of following
without a token, and no warning (staff data) is in a calendar. Feed readers
and calendars poll: answers carry an ETag and Last-Modified, a short public
Cache-Control, and a 304 for a client that has them already.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.api import code_params, state_of
from server.core.errors import ApiError
from server.core.topics import CODE, refuse_unless_allowed
from server.interop import atom, calendar
from server.interop.cache import Renderings
from server.interop.names import Names
from server.state import AppState
from server.store import TopicStages
from server.stream.request import parse_stages, parse_topics, split_list

FEED_SIZE = 50
ATOM = "application/atom+xml; charset=utf-8"
ICS = "text/calendar; charset=utf-8"
FEED_MAX_AGE = 60  # a minute: readers poll every 15 minutes or more anyway
CALENDAR_MAX_AGE = 300
# An agency's or category's calendar: at most this many projects of each
# kind (with an open statutory deadline; open for bids), soonest first.
CALENDAR_PROJECTS = 500
PAGE = 100
REMAKE_SECONDS = 60  # an agency's or category's calendar is made at most this often
RENDERING = "1"  # raise when what a rendering contains changes: every ETag changes


async def atom_feed(request: Request) -> Response:
    state = state_of(request)
    selection, key = _selection(request, state)
    events = await state.store.newest(selection, FEED_SIZE)
    origin = origin_of(request, state)
    newest = events[0].seq if events else 0
    version = f"atom|{RENDERING}|{key}|{newest}|{origin}|{state.directory.etag}"

    async def render() -> tuple[bytes, datetime | None]:
        docs = [orjson.loads(e.json) for e in events]
        info = atom.FeedInfo(
            host=_host(origin),
            origin=origin,
            key=key,
            title=_feed_title(selection, state),
            self_url=f"{origin}/api/feed.atom?{key}",
            page_url=_page_of(selection, origin),
        )
        body = atom.render(info, docs, Names(state.domain, state.directory))
        latest = datetime.fromisoformat(docs[0]["published_at"]) if docs else atom.NO_EVENTS_YET
        return body, latest

    return await _answer(request, state.renderings, version, render, ATOM, FEED_MAX_AGE)


async def project_calendar(request: Request) -> Response:
    state = state_of(request)
    project_id = request.path_params["project_id"]
    project = await state.projects.get(project_id) if CODE.fullmatch(project_id) else None
    if project is None:
        raise ApiError(404, "not_found", f"no project {project_id[:64]!r}")
    origin = origin_of(request, state)
    watchdog = state.compliance.watchdog
    # The project's dates change only with its own events, once the watchdog
    # has seen them; the rules and names only with a restart.
    caught_up = watchdog.head >= project["last_seq"]
    version = (
        f"ics|{RENDERING}|{project_id}|{project['last_seq']}|{caught_up}|{origin}"
        f"|{state.directory.etag}|{_rules_digest(state)}"
    )

    async def render() -> tuple[bytes, datetime | None]:
        names = Names(state.domain, state.directory)
        entries = _entries_of(project, state, origin, names)
        body = calendar.render(
            f"{project['title']} · 阳光交易", entries, state.settings.timezone, _host(origin)
        )
        return body, datetime.fromisoformat(project["updated_at"])

    return await _answer(request, state.renderings, version, render, ICS, CALENDAR_MAX_AGE)


async def deadlines_calendar(request: Request) -> Response:
    state = state_of(request)
    filters = code_params(request, ("agency", "category"))
    agency, category = filters.get("agency"), filters.get("category")
    if category is not None and category not in state.domain.categories:
        raise ApiError(
            422, "invalid_parameter", f"category: unknown {category!r}", {"field": "category"}
        )
    origin = origin_of(request, state)
    now = state.clock.now()
    watchdog = state.compliance.watchdog
    # Which projects are open for bids changes with time as well as the log:
    # the calendar is made again at least every hour. Hundreds of projects
    # take a fraction of a second to render, and any event anywhere makes a
    # new version: one is made at most every REMAKE_SECONDS per calendar
    # (subscribers re-read it hourly), and rendered in a thread.
    place = f"ics-all|{agency}|{category}|{origin}"
    version = (
        f"{place}|{RENDERING}|{state.store.head}|{watchdog.head}"
        f"|{now:%Y%m%d%H}|{state.directory.etag}|{_rules_digest(state)}"
    )
    version = state.renderings.throttled(place, version, REMAKE_SECONDS)

    async def render() -> tuple[bytes, datetime | None]:
        names = Names(state.domain, state.directory)
        projects = await _calendar_projects(state, agency, category, now)
        entries = [e for p in projects for e in _entries_of(p, state, origin, names)]
        title = " · ".join(
            ["阳光交易", *(names.agency(agency) for _ in [agency] if agency)]
            + [names.category(category) for _ in [category] if category]
            + ["法定时限与关键日期"]
        )
        zone, host = state.settings.timezone, _host(origin)
        body = await asyncio.to_thread(calendar.render, title, entries, zone, host)
        # Not only its projects' activity: a project leaving the calendar (it
        # failed, or bidding closed) changes it too, and then the newest of
        # those left may be older than what a client has. The log's newest
        # event and the hour (which projects are open) bound every change.
        stamps = [datetime.fromisoformat(p["updated_at"]) for p in projects]
        newest = await state.store.get_event(state.store.head) if state.store.head else None
        if newest is not None:
            stamps.append(datetime.fromisoformat(orjson.loads(newest.json)["published_at"]))
        stamps.append(now.replace(minute=0, second=0, microsecond=0))
        return body, max(stamps)

    return await _answer(request, state.renderings, version, render, ICS, CALENDAR_MAX_AGE)


def origin_of(request: Request, state: AppState) -> str:
    """The app's public origin (SUNBID_PUBLIC_URL), else the one this request came to."""
    return state.settings.public_url or f"{request.url.scheme}://{request.url.netloc}"


# --- what a feed follows ----------------------------------------------------------------------


def _selection(request: Request, state: AppState) -> tuple[TopicStages, str]:
    """The topics and stages asked for, checked as the event listing checks
    them, and their canonical query (sorted: the same feed has one id)."""
    params = request.query_params
    raw_topics = split_list(params.get("topics")) or ["all"]
    topics = parse_topics(raw_topics, state.domain, state.settings.max_topics_per_connection)
    refuse_unless_allowed(topics, None)
    stages = parse_stages(split_list(params.get("stages")), state.domain)
    query = {"topics": ",".join(sorted(topics))}
    if stages:
        query["stages"] = ",".join(sorted(stages))
    return dict.fromkeys(topics, stages), urlencode(query, safe=":,")


def _feed_title(selection: TopicStages, state: AppState) -> str:
    names = Names(state.domain, state.directory)
    labels = [_topic_label(topic, names) for topic in sorted(selection)]
    stages = next(iter(selection.values()))
    if stages:
        labels.append("、".join(sorted(state.domain.stages[s].zh for s in stages)))
    return "阳光交易 · " + " · ".join(labels)


def _topic_label(topic: str, names: Names) -> str:
    kind, _, code = topic.partition(":")
    if kind == "category":
        return names.category(code)
    if kind == "agency":
        return names.agency(code)
    if kind == "region":
        return names.region(code)
    if kind == "project":
        return f"项目 {code}"
    return "全部项目"


def _page_of(selection: TopicStages, origin: str) -> str:
    """The app's page with the same events: a project's, or the list filtered."""
    if len(selection) == 1:
        kind, _, code = next(iter(selection)).partition(":")
        if kind == "project":
            return f"{origin}/p/{code}"
        if kind in ("category", "agency", "region"):
            return f"{origin}/?{kind}={code}"
    return origin + "/"


# --- what a calendar holds --------------------------------------------------------------------


def _entries_of(
    project: dict[str, Any], state: AppState, origin: str, names: Names
) -> list[calendar.Entry]:
    watchdog = state.compliance.watchdog
    deadlines = watchdog.deadlines(project["id"], state.clock.now())
    return calendar.project_entries(
        project,
        deadlines,
        watchdog.cutoffs(project["id"]),
        names,
        origin,
        state.settings.timezone,
    )


async def _calendar_projects(
    state: AppState, agency: str | None, category: str | None, now: datetime
) -> list[dict[str, Any]]:
    """The projects of an agency's or category's calendar: those with an open
    statutory deadline (soonest due first), then those open for bids
    (soonest closing first), each at most CALENDAR_PROJECTS."""
    watchdog = state.compliance.watchdog
    due: list[tuple[str, str]] = []
    for project_id in watchdog.project_ids(agency, category):
        shown = [d["due"] for d in watchdog.deadlines(project_id, now) if d["due"]]
        if shown:
            due.append((min(shown), project_id))
    found: dict[str, dict[str, Any]] = {}
    for _, project_id in sorted(due)[:CALENDAR_PROJECTS]:
        project = await state.projects.get(project_id)
        if project is not None:
            found[project_id] = project
    filters = {k: v for k, v in (("agency", agency), ("category", category)) if v}
    cursor, taken = None, 0
    while taken < CALENDAR_PROJECTS:
        page, cursor = await state.projects.list(
            filters, None, cursor, PAGE, status="open", sort="closes"
        )
        for project in page:
            found.setdefault(project["id"], project)
        taken += len(page)
        if cursor is None:
            break
    return list(found.values())


# --- answering --------------------------------------------------------------------------------


async def _answer(
    request: Request,
    renderings: Renderings,
    version: str,
    render: Callable[[], Awaitable[tuple[bytes, datetime | None]]],
    media_type: str,
    max_age: int,
) -> Response:
    """The rendering for `version`, or 304 when the client has it (its ETag,
    or, without If-None-Match, a Last-Modified no older: RFC 9110 13.2.2)."""
    etag = Renderings.etag(version)
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    made = await renderings.get_or_render(version, render)
    if made.last_modified is not None:
        headers["Last-Modified"] = format_datetime(made.last_modified.astimezone(UTC), usegmt=True)
        if "if-none-match" not in request.headers and _not_modified_since(
            request.headers.get("if-modified-since"), made.last_modified
        ):
            return Response(status_code=304, headers=headers)
    return Response(made.body, media_type=media_type, headers=headers)


def _matches(wanted: str | None, etag: str) -> bool:
    if wanted is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in wanted.split(",")]
    return "*" in tags or etag in tags


def _not_modified_since(since: str | None, modified: datetime) -> bool:
    if not since:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError, IndexError):
        return False  # an unreadable date is ignored (RFC 9110 13.1.3)
    if moment.tzinfo is None:
        return False
    return modified.replace(microsecond=0) <= moment


def _host(origin: str) -> str:
    return urlsplit(origin).hostname or "localhost"


_digests: dict[int, tuple[object, str]] = {}


def _rules_digest(state: AppState) -> str:
    """The rules the watchdog applies, as a short digest: an edited rules file
    (read at start-up) changes every calendar's ETag. Kept per rules object
    (held, so its id is not reused)."""
    rules = state.compliance.watchdog.rules
    found = _digests.get(id(rules))
    if found is None:
        text = repr([repr(rule) for rule in rules])
        found = _digests[id(rules)] = (rules, hashlib.sha256(text.encode()).hexdigest()[:16])
    return found[1]
