"""`create_app`: routes and wiring only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from push.channels.contacts import ContactCipher
from push.channels.senders import service_for
from push.service import PushService
from push.settings import PushSettings
from push.webhooks.service import WebhookService
from server.api import (
    JSONResponse,
    channels,
    compliance,
    feeds,
    ocds,
    operations,
    pages,
    public,
    push,
    respond,
    staff,
    stats,
    webhooks,
)
from server.api.headers import ApiHeaders
from server.api.openapi import openapi
from server.auth import Authenticator
from server.bus import open_bus
from server.compliance.calendar import WORKDAYS_FILE, WorkCalendar
from server.compliance.rules import RULES_FILE
from server.compliance.service import Compliance
from server.core.clock import Clock
from server.core.errors import ApiError
from server.core.frames import warning_frame
from server.core.pg import CONNECTION_LOST
from server.demo import load_demo
from server.directory import DIRECTORY_FILE, Directory
from server.domain import Domain
from server.hub import Hub
from server.projects import open_projects
from server.pruning import Pruner
from server.respond.cases import CASES_FILE, CaseStore
from server.respond.rules import ResponseRules
from server.respond.service import Respond
from server.settings import Settings
from server.shared_limits import SharedRateLimiter, open_shared_limits
from server.state import AppState
from server.stats import open_stats
from server.stats.service import Statistics
from server.store import open_store
from server.store.pruning import key_home
from server.stream import peer
from server.stream.limits import ConnectionLimiter
from server.stream.revocation import RevocationWatch
from server.stream.sse import SSEStream
from server.stream.ws import WebSocketStream
from server.tokens import tokens_of

log = logging.getLogger("sunbid")
STREAM_PATHS = frozenset({"/ws", "/api/stream"})


class SunbidApp:
    """The ASGI app: `/ws` straight to the stream, everything else to Starlette."""

    def __init__(self, state: AppState, http: Starlette) -> None:
        self.state = state
        self.http = http
        self._http = ApiHeaders(http)
        self.ws = WebSocketStream(state)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("path") in STREAM_PATHS:
            # Here `send` is still the server's own: a stream finds its socket through it.
            scope[peer.SCOPE_KEY] = peer.transport_of(send)
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            await self.ws(scope, receive, send)
        else:
            await self._http(scope, receive, send)

    async def close_streams(self) -> None:
        """Tell every streaming client to reconnect elsewhere (WebSocket 1001)."""
        self.state.shutting_down = True  # /readyz: the load balancer stops sending
        connections = list(self.state.connections)
        await asyncio.gather(*(c.shutdown() for c in connections), return_exceptions=True)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> SunbidApp:
    settings = settings or Settings.from_env()
    clock = clock or Clock(settings.timezone)
    store = open_store(
        settings.database_url,
        clock,
        synchronous=settings.sqlite_synchronous,
        schema=settings.database_schema,
    )
    domain = Domain.load()
    directory = Directory.load(settings.directory_file or DIRECTORY_FILE)
    projects = open_projects(store, domain)
    stats_table = open_stats(store, domain)
    tokens = tokens_of(store)
    hub = Hub()
    auth = Authenticator(tokens)
    # On a Redis bus several processes serve: per-address limits count in Redis.
    shared = open_shared_limits(
        settings.bus_url,
        settings.bus_prefix,
        settings.max_connections_per_address,
        settings.subscribe_burst,
        settings.subscribe_refill_seconds,
    )
    state = AppState(
        settings=settings,
        domain=domain,
        directory=directory,
        clock=clock,
        store=store,
        projects=projects,
        bus=open_bus(settings.bus_url, store, prefix=settings.bus_prefix),
        hub=hub,
        auth=auth,
        limiter=(
            shared.streams
            if shared is not None and shared.streams is not None
            else ConnectionLimiter(settings.max_connections_per_address)
        ),
        compliance=Compliance.load(
            settings, domain, clock, lambda warning: hub.warn(warning_frame(warning))
        ),
        revocations=RevocationWatch(tokens, auth),
    )
    state.stats = Statistics(stats_table, list(domain.categories), settings.stats_cache_seconds)
    if shared is not None and shared.subscriptions is not None:
        state.subscribe_limiter = shared.subscriptions
        state.ask_limiter = SharedRateLimiter(
            settings.ask_burst, settings.ask_refill_seconds, shared, "ask"
        )
        state.ask_device_limiter = SharedRateLimiter(
            settings.ask_device_burst, settings.ask_device_refill_seconds, shared, "ask-device"
        )

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Everything opened is closed again, also when a later step refuses to
        # start (a missing VAPID key …): otherwise the store's threads would
        # keep a failed process alive.
        async with AsyncExitStack() as stack:
            await state.store.open()
            stack.push_async_callback(state.store.close)
            state.store.on_commit(state.bus.publish)
            state.bus.subscribe(state.hub.dispatch)
            await state.bus.start()
            stack.push_async_callback(state.bus.close)
            if shared is not None:
                await shared.start()  # never raises: with Redis down it counts locally
                stack.push_async_callback(shared.close)
            state.revocations.start()
            stack.push_async_callback(state.revocations.close)
            if settings.demo:
                # Before the watchdog starts: it judges the demo's past weeks as
                # history, rather than watching them go by in a moment.
                await load_demo(state.store, state.projects, state.domain, clock.now())
            await state.compliance.open(state.store, state.bus)
            stack.push_async_callback(state.compliance.close)
            cases = open_respond(
                settings, domain, clock, lambda warning: hub.warn(warning_frame(warning))
            )
            await cases.open(state.store.timeline)
            state.respond = cases
            stack.push_async_callback(cases.close)
            # Push reads its settings from the same SUNBID_* variables.
            push_settings = PushSettings.from_env(settings.environ)
            # `serve --no-worker`: subscriptions are taken here, sent by `sunbid worker`.
            push = await PushService.open(push_settings, state.bus, send=settings.background)
            state.push = push
            stack.push_async_callback(push.close)
            beside_push = service_for(push_settings, push.queue)  # SMS, e-mail, WeChat
            push.channel_kinds = beside_push.kinds
            state.channels = beside_push
            stack.push_async_callback(beside_push.close)
            # Sent by the push worker process; stored and listed here.
            hooks = await WebhookService.open(
                push_settings, push.wake, lambda warning: hub.warn(warning_frame(warning))
            )
            state.webhooks = hooks
            stack.push_async_callback(hooks.close)
            if settings.background:
                pruner = Pruner(
                    key_home(state.store),
                    push.queue,
                    clock,
                    keep_keys=timedelta(hours=settings.idempotency_keep_hours),
                    keep_deliveries=timedelta(days=push_settings.delivery_keep_days),
                )
                pruner.start()
                stack.push_async_callback(pruner.close)
            stack.push_async_callback(app.close_streams)
            yield

    app_pages = pages.AppPages()
    routes = [
        # Publishing first: Starlette tries the routes in order, and a publish
        # should not pay for matching every page and endpoint before it.
        Route("/api/projects/{project_id}/events", staff.publish_event, methods=["POST"]),
        # The app: one shell for every page, the worker and manifest at the root.
        *(Route(path, app_pages.shell) for path in pages.SHELL_PATHS),
        Route("/sw.js", app_pages.service_worker),
        Route("/manifest.webmanifest", app_pages.manifest),
        Mount("/static", app=app_pages.static_files),
        Route("/healthz", public.healthz),
        Route("/readyz", operations.readyz),
        Route("/metrics", operations.metrics),
        Route("/api/openapi.json", openapi),
        Route("/api/categories", public.categories),
        Route("/api/directory", public.directory),
        Route(
            "/api/projects",
            _by_method(GET=public.list_projects, POST=staff.create_project),
            methods=["GET", "POST"],
        ),
        Route(
            "/api/projects/{project_id}",
            _by_method(GET=public.get_project, PATCH=staff.amend_project),
            methods=["GET", "PATCH"],
        ),
        Route("/api/events", public.list_events),
        Route("/api/feed.atom", feeds.atom_feed),
        Route("/api/projects/{project_id}/deadlines.ics", feeds.project_calendar),
        Route("/api/deadlines.ics", feeds.deadlines_calendar),
        Route("/api/stream", SSEStream(state), methods=["GET"]),
        Route("/api/push/vapid-key", push.vapid_key),
        Route(
            "/api/push/subscriptions",
            _by_method(POST=push.subscribe, DELETE=push.unsubscribe),
            methods=["POST", "DELETE"],
        ),
        Route("/api/events/{seq}/deliveries", push.deliveries),
        Route("/api/channels/available", channels.available),
        Route("/api/channels/usage", channels.usage),
        Route("/api/channels", channels.add, methods=["POST"]),
        Route("/api/channels/wechat/authorize", channels.wechat_authorize),
        Route("/api/channels/wechat/callback", channels.wechat_callback),
        Route("/api/channels/{channel_id}/confirm", channels.confirm, methods=["POST"]),
        Route(
            "/api/channels/{channel_id}/unsubscribe",
            channels.unsubscribe,
            methods=["GET", "POST"],
        ),
        Route("/api/channels/{channel_id}", channels.one, methods=["GET", "DELETE"]),
        Route("/api/projects/{project_id}/enquiries", respond.ask, methods=["POST"]),
        Route("/api/enquiries", respond.list_enquiries),
        Route("/api/enquiries/{case_id}", respond.enquiry),
        Route("/api/enquiries/{case_id}/rating", respond.rate, methods=["POST"]),
        Route("/api/enquiries/{case_id}/answer", respond.answer, methods=["POST"]),
        Route("/api/enquiries/{case_id}/decline", respond.decline, methods=["POST"]),
        Route(
            "/api/disclosure-requests",
            _by_method(GET=respond.list_requests, POST=respond.file_request),
            methods=["GET", "POST"],
        ),
        Route("/api/disclosure-requests/{case_id}", respond.disclosure_request),
        Route("/api/disclosure-requests/{case_id}/extend", respond.extend, methods=["POST"]),
        Route("/api/disclosure-requests/{case_id}/reply", respond.reply, methods=["POST"]),
        Route("/api/catalog", compliance.catalog),
        Route("/api/compliance", compliance.scorecard),
        Route("/api/stats", stats.stats),
        Route("/api/stats/{table}.csv", stats.table_csv),
        Route("/api/compliance/items", compliance.items),
        Route("/api/supervision/warnings", compliance.warnings),
        Route("/api/ocds/releases", ocds.releases),
        Route("/api/ocds/records/{project_id}", ocds.record),
        Route("/api/webhooks", webhooks.collection, methods=["GET", "POST"]),
        Route("/api/webhooks/{webhook_id}", webhooks.one, methods=["DELETE"]),
        Route("/api/webhooks/{webhook_id}/deliveries", webhooks.deliveries),
        Route("/api/webhooks/{webhook_id}/replay", webhooks.replay, methods=["POST"]),
    ]
    http = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            # PostgreSQL down or restarting: a read failed, not the request.
            **dict.fromkeys(CONNECTION_LOST, _store_down),
            Exception: _internal_error,
        },
    )
    http.state.sunbid = state
    app = SunbidApp(state, http)
    return app


def open_respond(
    settings: Settings,
    domain: Domain,
    clock: Clock,
    notify: Callable[[dict[str, Any]], None],
    *,
    sealing: bool = True,
) -> Respond:
    """The public's cases: their rules beside the stage rules, the same
    calendar, and the addresses' key (push/channels/contacts.py) to seal what
    people write (`sealing` false: `sunbid verify` and `rebuild`, which
    unseal nothing, make no key file)."""
    return Respond(
        CaseStore(
            settings.data_dir / CASES_FILE,
            database_url=settings.database_url,
            database_schema=settings.database_schema,
        ),
        ResponseRules.load(settings.rules_file or RULES_FILE, domain),
        WorkCalendar.load(settings.workdays_file or WORKDAYS_FILE),
        clock,
        ContactCipher.for_data_dir(settings.data_dir, needed=sealing),
        notify,
        lead_workdays=settings.warn_lead_workdays,
        keep=timedelta(days=settings.case_keep_days),
        background=settings.background,
    )


def _by_method(
    **handlers: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """One route serving several methods, so a 405 lists them all in `Allow`."""

    async def endpoint(request: Request) -> Response:
        return await handlers[request.method](request)

    return endpoint


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": {"code": code, "message": str(exc.detail)}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _store_down(_: Request, exc: Exception) -> Response:
    log.warning("the database could not be reached: %s", exc)
    return JSONResponse(
        {
            "error": {
                "code": "store_unavailable",
                "message": "the database cannot be reached right now; try again",
            }
        },
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _internal_error(_: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc)
    return JSONResponse(
        {"error": {"code": "internal", "message": "internal error"}}, status_code=500
    )
