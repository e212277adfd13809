"""SMS, e-mail and WeChat beside Web Push: what is offered, adding a channel,
confirming it, reading and cancelling it (CONTRACT.md "Notification
channels"). The rules live in push/channels/service.py; these handlers read
the request and answer."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from server.api import JSONResponse, limit_subscribing, read_json, state_of
from server.api.compliance import month_param
from server.auth import STAFF_VIEW_ROLES, require_role
from server.core.errors import ApiError, invalid
from server.core.topics import refuse_unless_allowed
from server.domain import format_time
from server.state import AppState, Channels
from server.stream.request import parse_stages, parse_topics

MANAGE_HEADER = "x-manage-token"
WECHAT_COOKIE = "sunbid_wechat"


def _channels(request: Request) -> Channels:
    channels = state_of(request).channels
    if channels is None:
        raise ApiError(503, "unavailable", "notification channels are not running")
    return channels


async def available(request: Request) -> Response:
    return JSONResponse({"kinds": _channels(request).kinds})


async def usage(request: Request) -> Response:
    """What the channels cost: messages sent per kind, today and in a month."""
    state, channels = state_of(request), _channels(request)
    token = await state.auth.from_header(request.headers.get("authorization"))
    require_role(token, STAFF_VIEW_ROLES)
    return JSONResponse(await channels.usage(month_param(request, "month")))


async def add(request: Request) -> Response:
    state, channels = state_of(request), _channels(request)
    await limit_subscribing(request, "too many requests from this address")
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid("body", "an object: {kind, address, topics, stages?}")
    topics, stages = _follows(state, body.get("topics"), body.get("stages"))
    added = await channels.add(
        body.get("kind"), body.get("address"), topics, stages, format_time(state.clock.now())
    )
    return JSONResponse(added, status_code=202)


async def confirm(request: Request) -> Response:
    state, channels = state_of(request), _channels(request)
    await limit_subscribing(request, "too many requests from this address")
    body = await read_json(request)
    code = body.get("code") if isinstance(body, dict) else None
    confirmed = await channels.confirm(
        request.path_params["channel_id"], code, format_time(state.clock.now())
    )
    return JSONResponse(confirmed)


async def one(request: Request) -> Response:
    channels, channel_id = _channels(request), request.path_params["channel_id"]
    token = request.headers.get(MANAGE_HEADER)
    if request.method == "DELETE":
        await channels.cancel(channel_id, token)
        return Response(status_code=204)
    return JSONResponse(await channels.describe(channel_id, token))


async def unsubscribe(request: Request) -> Response:
    """The 退订 link of a message. GET shows a button (mail scanners follow
    links: a GET must not cancel); POST cancels, as RFC 8058's one-click does."""
    channels, channel_id = _channels(request), request.path_params["channel_id"]
    token = request.query_params.get("token")
    if request.method == "GET":
        action = f"/api/channels/{quote(channel_id)}/unsubscribe?token={quote(token or '')}"
        return Response(UNSUBSCRIBE_PAGE.format(action=action), media_type="text/html")
    await channels.unsubscribe(channel_id, token)
    return Response(DONE_PAGE, media_type="text/html")


async def wechat_authorize(request: Request) -> Response:
    state, channels = state_of(request), _channels(request)
    await limit_subscribing(request, "too many requests from this address")
    raw_topics = request.query_params.get("topics", "")
    raw_stages = request.query_params.get("stages")
    topics, stages = _follows(
        state,
        [t for t in raw_topics.split(",") if t],
        None if raw_stages is None else [s for s in raw_stages.split(",") if s],
    )
    url, secret = await channels.wechat_authorize_url(
        topics, stages, format_time(state.clock.now())
    )
    response = RedirectResponse(url, status_code=302)
    # The browser that asked is the one WeChat must send back: a link to
    # WeChat's page opened by someone else finds no cookie and adds nothing.
    response.set_cookie(
        WECHAT_COOKIE,
        secret,
        max_age=600,
        path="/api/channels/wechat",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return response


async def wechat_callback(request: Request) -> Response:
    state, channels = state_of(request), _channels(request)
    channel_id, token = await channels.wechat_complete(
        request.query_params.get("code"),
        request.query_params.get("state"),
        request.cookies.get(WECHAT_COOKIE),
        format_time(state.clock.now()),
    )
    # In the fragment: never sent to a server, never in an access log.
    response = RedirectResponse(f"/follows#channel={channel_id}&token={token}", status_code=302)
    response.delete_cookie(WECHAT_COOKIE, path="/api/channels/wechat")
    return response


def _follows(state: AppState, topics: object, stages: object) -> tuple[list[str], list[str] | None]:
    parsed = parse_topics(
        topics, state.domain, state.settings.max_topics_per_connection, notify=True
    )
    refuse_unless_allowed(parsed, None)  # channels take no token
    chosen = parse_stages(stages, state.domain)
    return parsed, None if chosen is None else sorted(chosen)


UNSUBSCRIBE_PAGE = """<!doctype html><html lang="zh-CN"><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>退订提醒</title>
<main style="font:18px/1.6 system-ui,sans-serif;max-width:28em;margin:2em auto;padding:0 1em">
<h1>退订这个提醒</h1><p>退订后不再通过此方式收到提醒，联系方式随即删除。</p>
<form method="post" action="{action}"><button type="submit"
 style="font-size:1em;padding:.6em 1.4em">确认退订</button></form></main></html>
"""
DONE_PAGE = """<!doctype html><html lang="zh-CN"><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>已退订</title>
<main style="font:18px/1.6 system-ui,sans-serif;max-width:28em;margin:2em auto;padding:0 1em">
<h1>已退订</h1><p>不会再通过此方式提醒您，联系方式已删除。</p>
<p><a href="/follows">回到我的关注</a></p></main></html>
"""
