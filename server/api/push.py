"""Web Push endpoints: the public key, subscribing, unsubscribing, delivery counts."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from server.api import JSONResponse, limit_subscribing, read_json, state_of
from server.core.errors import ApiError, invalid
from server.core.numbers import MAX_SEQ, whole_number
from server.core.topics import refuse_unless_allowed
from server.domain import format_time
from server.state import Push
from server.stream.request import parse_stages, parse_topics


def _push(request: Request) -> Push:
    push = state_of(request).push
    if push is None:
        raise ApiError(503, "unavailable", "push notifications are not running")
    return push


async def vapid_key(request: Request) -> Response:
    return JSONResponse({"publicKey": _push(request).public_key})


async def subscribe(request: Request) -> Response:
    state, push = state_of(request), _push(request)
    await limit_subscribing(request, "too many subscriptions from this address")
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("subscription"), dict):
        raise invalid("subscription", "a PushSubscription: {endpoint, keys: {p256dh, auth}}")
    topics = parse_topics(
        body.get("topics"), state.domain, state.settings.max_topics_per_connection, notify=True
    )
    refuse_unless_allowed(topics, None)  # push takes no token
    stages = parse_stages(body.get("stages"), state.domain)
    sub_id, created = await push.subscribe(
        body["subscription"],
        topics,
        None if stages is None else sorted(stages),
        format_time(state.clock.now()),
    )
    return JSONResponse({"id": sub_id, "topics": topics}, status_code=201 if created else 200)


async def unsubscribe(request: Request) -> Response:
    push = _push(request)
    body = await read_json(request)
    endpoint = body.get("endpoint") if isinstance(body, dict) else None
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > 2048:
        raise invalid("endpoint", "the subscription's endpoint URL")
    # Browsers send back the endpoint exactly as they subscribed with it, and
    # a real push service's URL is stored unchanged: forget it as given.
    await push.unsubscribe(endpoint)
    return Response(status_code=204)


async def deliveries(request: Request) -> Response:
    state, push = state_of(request), _push(request)
    await state.auth.from_header(request.headers.get("authorization"))
    raw = request.path_params["seq"]
    seq = whole_number(raw, 0, MAX_SEQ)
    if seq is None:
        raise invalid("seq", f"a whole number from 0 to {MAX_SEQ}")
    if not 1 <= seq <= state.store.head:
        raise ApiError(404, "not_found", f"no event with seq {seq}")
    return JSONResponse({"seq": seq, **await push.delivery_counts(seq)})
