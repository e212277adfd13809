"""The public's cases (回应): enquiries on projects and disclosure requests.

Anyone files one, keeps the ticket the 201 shows once, and reads the case
back with it (`X-Ticket`); staff list their agency's cases oldest due first
and answer, decline, extend or reply. A wrong ticket and an unknown id are
the same 404. What a person wrote never leaves through a public answer: the
asker's own view shows it to the ticket holder only, and staff lists carry
`Cache-Control: no-store`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server.api import JSONResponse, choice_param, code_params, int_param, read_json, state_of
from server.api.staff import idempotency_key
from server.auth import require_publisher_of
from server.core.errors import ApiError
from server.core.text import line_problem
from server.core.topics import CODE, ENQUIRY_ANSWER
from server.domain import MAX_TITLE
from server.respond import inputs
from server.respond.cases import CaseRow
from server.respond.deadlines import from_us, iso
from server.respond.rules import CaseKind
from server.respond.service import (
    OPEN,
    STATUSES,
    CaseNotFound,
    Respond,
    Retry,
    answers,
)
from server.state import AppState
from server.store import AppendRequest, IdempotencyConflict, StoreUnavailable
from server.stream.limits import client_address
from server.tokens import Token

DEVICE = "x-device-id"
TICKET = "x-ticket"
NO_STORE = {"Cache-Control": "no-store"}
DAY_US = 86_400_000_000
ANSWER_KEY = "enquiry-answer:"  # + the enquiry's id: the Idempotency-Key of its answer


# --- the public --------------------------------------------------------------------


async def ask(request: Request) -> Response:
    state = state_of(request)
    project_id = request.path_params["project_id"]
    project = await state.projects.identity(project_id) if CODE.fullmatch(project_id) else None
    if project is None:
        raise ApiError(404, "not_found", f"no project {project_id[:64]!r}")
    body = inputs.question(await read_json(request))
    retry = _retry(request, project["id"], body)
    await _limit_filing(request, state)
    filed = await _respond(state).ask(project, body.question, body.contact, retry)
    case = filed.case
    return JSONResponse(
        {
            "id": case.id,
            "ticket": filed.ticket,
            "status": case.status,
            "due": _iso(case.due_us),
            "asked_at": _iso(case.received_us),
            "project": case.project,
            "topic": f"enquiry:{case.id}",
        },
        status_code=201 if filed.created else 200,
        headers={**NO_STORE, "Location": f"/api/enquiries/{case.id}"},
    )


async def enquiry(request: Request) -> Response:
    """The asker's view, with the ticket."""
    state = state_of(request)
    case = await _find(request, CaseKind.ENQUIRY)
    respond = _respond(state)
    private = respond.private(case)
    rating = None
    if case.score is not None:
        rating = {"score": case.score, "comment": private.get("comment")}
    return JSONResponse(
        {
            **_times(case, state),
            "project": case.project,
            "question": private.get("question"),
            "answer": await _answer(state, case),
            "reason": private.get("reason"),
            "rating": rating,
        },
        headers=NO_STORE,
    )


async def rate(request: Request) -> Response:
    state = state_of(request)
    case = await _find(request, CaseKind.ENQUIRY)
    score, comment = inputs.rating(await read_json(request))
    await _limit_filing(request, state)
    await _respond(state).rate(case, score, comment)
    return JSONResponse({"score": score, "comment": comment}, status_code=201, headers=NO_STORE)


async def file_request(request: Request) -> Response:
    state = state_of(request)
    body = inputs.request(await read_json(request))
    if body.agency not in state.directory.agencies:
        raise ApiError(
            422,
            "invalid_field",
            f"agency: {body.agency!r} is not in the directory (GET /api/directory)",
            {"field": "agency"},
        )
    retry = _retry(request, body.agency, body)
    await _limit_filing(request, state)
    filed = await _respond(state).request(
        body.agency, body.subject, body.description, body.contact, retry
    )
    case = filed.case
    return JSONResponse(
        {
            "id": case.id,
            "ticket": filed.ticket,
            "status": case.status,
            "due": _iso(case.due_us),
            "received_at": _iso(case.received_us),
            "agency": case.agency,
        },
        status_code=201 if filed.created else 200,
        headers={**NO_STORE, "Location": f"/api/disclosure-requests/{case.id}"},
    )


async def disclosure_request(request: Request) -> Response:
    """The requester's view, with the ticket: the reply included."""
    state = state_of(request)
    case = await _find(request, CaseKind.DISCLOSURE_REQUEST)
    return JSONResponse(_request_view(state, case), headers=NO_STORE)


# --- staff -------------------------------------------------------------------------


async def list_enquiries(request: Request) -> Response:
    return await _inbox(request, CaseKind.ENQUIRY)


async def list_requests(request: Request) -> Response:
    return await _inbox(request, CaseKind.DISCLOSURE_REQUEST)


async def answer(request: Request) -> Response:
    """Publish the answer as an `enquiry_answer` event (201 with it), or link
    a repeat to an earlier answer on the same project (200 with that one)."""
    state = state_of(request)
    token, case = await _staff_case(request, CaseKind.ENQUIRY)
    body = inputs.answer(await read_json(request))
    respond = _respond(state)
    if body.same_as is not None:
        try:
            earlier = await respond.staff_get(CaseKind.ENQUIRY, body.same_as)
        except CaseNotFound:
            raise ApiError(
                422,
                "invalid_field",
                f"same_as: no enquiry {body.same_as!r}",
                {"field": "same_as"},
            ) from None
        await respond.link(case, earlier, token.name)
        assert earlier.answer_seq is not None  # link() checked it
        linked = await state.store.get_event(earlier.answer_seq)
        assert linked is not None
        return Response(linked.json, media_type="application/json")
    if case.status not in OPEN[CaseKind.ENQUIRY]:
        raise ApiError(409, "not_open", f"the enquiry is {case.status} already")
    private = respond.private(case)
    question = body.question or private.get("question")
    if question is None:  # erased: nothing to publish unless staff write it
        raise ApiError(
            422,
            "invalid_field",
            "question: the asker's words were erased; write the question as published",
            {"field": "question"},
        )
    assert body.answer is not None
    inputs.publishable(question, "question", private.get("contact"))
    if problem := line_problem(" ".join(question.split())):  # it is the event's title
        raise ApiError(422, "invalid_field", f"question: {problem}", {"field": "question"})
    inputs.publishable(body.answer, "answer", private.get("contact"))
    project = await state.projects.get(case.project or "")  # its region routes the event
    if project is None:
        raise ApiError(404, "not_found", f"no project {case.project!r}")
    marked = await respond.begin_answer(case)
    draft = _answer_draft(case, question, body.answer)
    try:
        result = await state.store.append(
            AppendRequest(
                project=project,
                draft=draft,
                # One answer per enquiry, decided in the log's own transaction:
                # a repeat of the same answer is that answer, another is refused.
                idempotency_key=ANSWER_KEY + case.id,
                fingerprint=hashlib.sha256(
                    orjson.dumps(draft, option=orjson.OPT_SORT_KEYS)
                ).hexdigest(),
            )
        )
    except IdempotencyConflict:
        await _settle(state, respond, case)
        raise ApiError(409, "not_open", f"enquiry {case.id} was answered already") from None
    except StoreUnavailable:  # nothing was appended
        await respond.store.forget_answering(case.id, marked)
        raise ApiError(
            503,
            "store_unavailable",
            "the event log cannot be written right now; nothing was published, try again",
            headers={"Retry-After": "5"},
        ) from None
    # Any other failure leaves the mark: whether the answer was appended is
    # not known here, and the next start (or answer) finds out from the log.
    await respond.answered(case, result.event, token.name)
    return Response(
        result.event.json,
        status_code=201 if result.created else 200,
        media_type="application/json",
        headers={"Location": f"/api/events?since={result.event.seq - 1}&limit=1"},
    )


async def _settle(state: AppState, respond: Respond, case: CaseRow) -> None:
    """The log holds an answer to `case` that the case does not know of yet
    (its process died after appending it): close the case with it."""
    for event in await state.store.timeline(case.project or ""):
        if answers(event, case.id):
            await respond.answered(case, event, None)
            return


async def decline(request: Request) -> Response:
    state = state_of(request)
    token, case = await _staff_case(request, CaseKind.ENQUIRY)
    reason = inputs.reason(await read_json(request))
    declined = await _respond(state).decline(case, reason, token.name)
    return JSONResponse(_staff_item(state, declined, token), headers=NO_STORE)


async def extend(request: Request) -> Response:
    state = state_of(request)
    token, case = await _staff_case(request, CaseKind.DISCLOSURE_REQUEST)
    reason = inputs.reason(await read_json(request))
    extended = await _respond(state).extend(case, reason, token.name)
    return JSONResponse(_staff_item(state, extended, token), headers=NO_STORE)


async def reply(request: Request) -> Response:
    state = state_of(request)
    token, case = await _staff_case(request, CaseKind.DISCLOSURE_REQUEST)
    body = inputs.reply(await read_json(request))
    replied = await _respond(state).reply(case, body.outcome, body.text, body.basis, token.name)
    return JSONResponse(_staff_item(state, replied, token), headers=NO_STORE)


# --- shared ------------------------------------------------------------------------


def _respond(state: AppState) -> Respond:
    if state.respond is None:
        raise ApiError(503, "unavailable", "the server is starting; try again")
    return state.respond


def _retry(request: Request, where: str, body: inputs.Question | inputs.Request) -> Retry | None:
    """The filing's Idempotency-Key, if sent, with a digest of what it files."""
    key = idempotency_key(request)
    if key is None:
        return None
    filed = orjson.dumps([where, dataclasses.asdict(body)], option=orjson.OPT_SORT_KEYS)
    return Retry(key, hashlib.sha256(filed).hexdigest())


async def _limit_filing(request: Request, state: AppState) -> None:
    """429 once this address, or this device, has filed too much too fast."""
    device = request.headers.get(DEVICE)
    if device is not None and (not 8 <= len(device) <= 64 or not CODE.fullmatch(device)):
        raise ApiError(  # refused before it costs the address a filing
            422,
            "invalid_parameter",
            f"{DEVICE}: 8-64 characters of A-Z a-z 0-9 . _ -",
            {"field": DEVICE},
        )
    waits = [await state.ask_limiter.check(client_address(request.scope))]
    if device is not None:
        waits.append(await state.ask_device_limiter.check("device:" + device))
    wait = max(waits)
    if wait:
        raise ApiError(
            429,
            "too_many_requests",
            "too many questions and requests from here: try again later",
            headers={"Retry-After": str(int(wait) + 1)},
        )


async def _find(request: Request, kind: CaseKind) -> CaseRow:
    case_id = request.path_params["case_id"]
    try:
        return await _respond(state_of(request)).find(kind, case_id, request.headers.get(TICKET))
    except CaseNotFound:
        raise _not_found(kind) from None


async def _staff_case(request: Request, kind: CaseKind) -> tuple[Token, CaseRow]:
    """The token (a publisher of the case's agency, or an admin) and the case."""
    state = state_of(request)
    token = await state.auth.from_header(request.headers.get("authorization"))
    try:
        case = await _respond(state).staff_get(kind, request.path_params["case_id"])
    except CaseNotFound:
        if token.role not in ("publisher", "admin"):
            require_publisher_of(token, "")  # 403 before 404: nothing to learn
        raise _not_found(kind) from None
    require_publisher_of(token, case.agency)
    return token, case


async def _inbox(request: Request, kind: CaseKind) -> Response:
    state = state_of(request)
    token = await state.auth.from_header(request.headers.get("authorization"))
    filters = code_params(request, ("agency", "project"))
    # A publisher sees its own agency's cases (asked for or not); others see all.
    if token.role == "publisher" and filters.setdefault("agency", token.agency or "") != (
        token.agency
    ):
        raise ApiError(403, "forbidden", "a publisher sees its own agency's cases only")
    status = choice_param(request, "status", (*STATUSES[kind], "open"))
    statuses: tuple[str, ...] = ()
    if status == "open":
        statuses = OPEN[kind]
    elif status is not None:
        statuses = (status,)
    limit = int_param(request, "limit", 50, 1, 500)
    cursor = request.query_params.get("cursor") or None
    try:
        cases, next_cursor = await _respond(state).store.inbox(
            str(kind), filters, statuses, cursor, limit
        )
    except ValueError:
        raise ApiError(
            422, "invalid_parameter", "cursor: not a cursor this API gave out", {"field": "cursor"}
        ) from None
    items = [_staff_item(state, c, token) for c in cases]
    if kind is CaseKind.ENQUIRY:  # the console names the project, not just its code
        titles = await state.projects.titles(item["project"] for item in items)
        for item in items:
            item["project_title"] = titles.get(item["project"])
    return JSONResponse({"items": items, "next_cursor": next_cursor}, headers=NO_STORE)


def _staff_item(state: AppState, case: CaseRow, token: Token) -> dict[str, Any]:
    """A case as staff see it; the contact only for those who answer it."""
    private = _respond(state).private(case)
    now_us = state.clock.now_us()
    item = {
        **_times(case, state),
        "agency": case.agency,
        "contact": private.get("contact") if token.role != "supervisor" else None,
        "age_days": round(((case.closed_us or now_us) - case.received_us) / DAY_US, 1),
    }
    if case.kind == CaseKind.ENQUIRY:
        item.update(
            project=case.project,
            category=case.category,
            question=private.get("question"),
            answer_seq=case.answer_seq,
            linked=case.linked,
            reason=private.get("reason"),
            score=case.score,
        )
    else:
        item.update(_request_details(case, private))
    return item


def _request_view(state: AppState, case: CaseRow) -> dict[str, Any]:
    private = _respond(state).private(case)
    return {**_times(case, state), "agency": case.agency, **_request_details(case, private)}


def _request_details(case: CaseRow, private: dict[str, Any]) -> dict[str, Any]:
    extension = None
    if case.extended_us is not None:
        extension = {"reason": private.get("extension"), "at": _iso(case.extended_us)}
    reply_ = None
    if case.status == "replied":
        written = private.get("reply") or {}
        reply_ = {
            "outcome": case.outcome,
            "text": written.get("text"),
            "basis": written.get("basis"),
            "at": _iso(case.closed_us),
        }
    return {
        "subject": private.get("subject"),
        "description": private.get("description"),
        "extension": extension,
        "reply": reply_,
    }


def _times(case: CaseRow, state: AppState) -> dict[str, Any]:
    now_us = state.clock.now_us()
    open_ = case.closed_us is None
    return {
        "id": case.id,
        "status": case.status,
        "asked_at" if case.kind == CaseKind.ENQUIRY else "received_at": _iso(case.received_us),
        "due": _iso(case.due_us),
        "due_estimated": bool(case.due_estimated),
        "closed_at": _iso(case.closed_us),
        "overdue": (now_us if open_ else case.closed_us or 0) > case.due_us,
        "rule": case.rule,
        "erased": case.erased_us is not None,
    }


async def _answer(state: AppState, case: CaseRow) -> dict[str, Any] | None:
    if case.answer_seq is None:
        return None
    event = await state.store.get_event(case.answer_seq)
    if event is None:
        return None
    doc = orjson.loads(event.json)
    data = doc.get("data") or {}
    return {
        "seq": event.seq,
        "question": data.get("question"),
        "answer": data.get("answer"),
        "published_at": doc.get("published_at"),
    }


def _answer_draft(case: CaseRow, question: str, answer_text: str) -> dict[str, Any]:
    # The question is the title: a timeline and a notification already name
    # the stage (咨询答复), so a reader sees what was asked.
    title = " ".join(question.split())
    if len(title) > MAX_TITLE:
        title = title[: MAX_TITLE - 1] + "…"
    return {
        "stage": ENQUIRY_ANSWER,
        "title": title,
        "body": answer_text,
        "data": {
            "enquiry": case.id,
            "question": question,
            "answer": answer_text,
            "asked_at": _iso(case.received_us),
        },
        "occurred_at": None,
    }


def _not_found(kind: CaseKind) -> ApiError:
    what = "enquiry" if kind is CaseKind.ENQUIRY else "disclosure request"
    return ApiError(404, "not_found", f"no such {what}, or not this ticket")


def _iso(at_us: int | None) -> str | None:
    return None if at_us is None else iso(from_us(at_us))
