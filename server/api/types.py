"""The HTTP API's request and response records, as types the OpenAPI document
is generated from (server/api/openapi.py).

Each record is a `msgspec.Struct` whose fields carry their constraints in
`Annotated[..., Meta(...)]`: msgspec turns them into JSON Schema
(`maxLength`, `minimum`, `pattern`, `enum`, `default`) without a literal
written by hand. Facts with a home elsewhere are taken from it: the limits
from server/domain.py, the event's fields from server/core/events.py, the
category and stage codes from the vocabulary file the server loads (filled
in when the document is built, see `VOCABULARY`).

`COMPONENT` marks a reusable schema (a code, a time): the document names it
once under `components/schemas` and refers to it everywhere else.

These records describe the wire; they do not replace its code: requests are
still checked by server/domain.py and answers encoded with orjson, so msgspec
only renders schemas. tests/test_openapi.py keeps the two in step by
validating every endpoint's real answers against the document.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from server.compliance.rules import Confidence, Kind
from server.compliance.watchdog import Level
from server.core.events import EVENT_FIELDS
from server.core.numbers import MAX_SEQ
from server.core.topics import CODE, MAX_CODE
from server.domain import MAX_BODY, MAX_REASON, MAX_TITLE
from server.respond.inputs import (
    MAX_ANSWER,
    MAX_BASIS,
    MAX_COMMENT,
    MAX_CONTACT,
    MAX_DESCRIPTION,
    MAX_QUESTION,
    MAX_SUBJECT,
    OUTCOMES,
)
from server.respond.inputs import MAX_REASON as MAX_CASE_REASON
from server.respond.rules import CaseKind
from server.respond.service import STATUSES

# The keys of the markers the document builder replaces (openapi.py).
COMPONENT = "x-sunbid-component"
VOCABULARY = "x-sunbid-vocabulary"


def component(name: str, **schema: Any) -> Meta:
    """A named schema: built once under components/schemas, referred to by $ref."""
    return Meta(extra_json_schema={COMPONENT: name, **schema})


def described(text: str) -> Meta:
    return Meta(description=text)


# --- shared pieces --------------------------------------------------------------------------

Code = Annotated[
    str,
    Meta(min_length=1, max_length=MAX_CODE, pattern=f"^{CODE.pattern}$"),
    component("Code", description=f"An identifier: 1-{MAX_CODE} characters of A-Z a-z 0-9 . _ -"),
]
CategoryCode = Annotated[str, component("CategoryCode", **{VOCABULARY: "categories"})]
StageCode = Annotated[
    str,
    component(
        "StageCode",
        description="A stage of GET /api/categories; which ones a project may use "
        "depends on its category.",
        examples=["notice", "bid_opening", "award", "objection", "correction"],
        **{VOCABULARY: "stages"},
    ),
]
Time = Annotated[
    str,
    component(
        "Time",
        format="date-time",
        description="RFC 3339 with the offset of SUNBID_TIMEZONE (default +08:00). Sent "
        "times must be YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM): upper-case T and Z, no "
        "week or ordinal dates.",
        examples=["2026-12-01T09:30:00+08:00"],
    ),
]
# An amendment's reason: at most this long (server/domain.py checks it as it takes it).
# Each named piece, for the document to define once as it is written here.
NAMED = (Code, CategoryCode, StageCode, Time)
Head = Annotated[int, Meta(ge=0, description="The latest seq.")]
Seq = Annotated[int, Meta(ge=1, le=MAX_SEQ)]
Count = Annotated[int, Meta(ge=0)]
Title = Annotated[str, Meta(min_length=1, max_length=MAX_TITLE)]
Currency = Annotated[str, Meta(pattern="^[A-Z]{3}$", description="An ISO 4217 code.")]
MustTender = Annotated[bool, described("依法必须招标: whether the law requires a tender.")]
NextCursor = Annotated[
    str | None, described("Pass as `cursor` for the next page; null on the last page.")
]


class Name(Struct):
    zh: str
    en: str


class ErrorBody(Struct):
    code: Annotated[str, Meta(description="Stable, machine-readable.", examples=["invalid_field"])]
    message: Annotated[str, described("For people.")]
    details: (
        Annotated[
            ErrorDetails,
            described(
                "Where useful: `field` names the offending field, `allowed` lists the accepted "
                "values, `reasons` says why a process is not ready, `fields` names the fields "
                "an amendment would leave as they are."
            ),
        ]
        | UnsetType
    ) = UNSET


class ErrorDetails(Struct):
    field: str | UnsetType = UNSET
    allowed: list[str] | UnsetType = UNSET
    reasons: list[str] | UnsetType = UNSET
    fields: list[str] | UnsetType = UNSET
    event: (
        Annotated[int, described("`contradicts`: the earlier event the publication contradicts.")]
        | UnsetType
    ) = UNSET
    rule: (
        Annotated[str, described("`contradicts`: which check refused it, e.g. second_award.")]
        | UnsetType
    ) = UNSET
    found: (
        Annotated[
            list[str],
            described("`personal_data`: what an answer may not publish, e.g. a mobile number."),
        ]
        | UnsetType
    ) = UNSET


class Error(Struct, forbid_unknown_fields=True):
    """Every answer with a status of 400 or more."""

    error: ErrorBody


# --- operations ------------------------------------------------------------------------------


class Health(Struct):
    status: Literal["ok"]
    head: Head
    # Which process answered, `host:pid`: one of a deployment's many.
    node: Annotated[str, Meta(examples=["web-1:4012"])]


class Ready(Struct):
    status: Literal["ready"]
    head: Head
    degraded: (
        Annotated[
            list[Literal["push_worker_down", "bus_unreachable"]],
            described("What does not work now, though the process serves."),
        ]
        | UnsetType
    ) = UNSET
    compliance_active: (
        Annotated[
            bool,
            described(
                "PostgreSQL only: whether this process stores the compliance warnings "
                "(it holds the lease). A standby serves the same answers from memory."
            ),
        ]
        | UnsetType
    ) = UNSET


# --- the vocabulary and the directory --------------------------------------------------------


class CategoryStage(Struct):
    code: StageCode
    name: Annotated[
        Name,
        described(
            "How this category names the stage (land `notice`: 出让公告); the stage's "
            "generic name where the category has none of its own."
        ),
    ]
    oversight: bool | UnsetType = UNSET
    fields: (
        Annotated[list[str], described("The data keys the stage carries here, in display order.")]
        | UnsetType
    ) = UNSET
    required: (
        Annotated[list[str], described("The data keys it must carry to be published.")] | UnsetType
    ) = UNSET


class FieldInfo(Struct):
    """What a data key means: its name, kind and unit."""

    zh: str
    en: str
    kind: Annotated[
        Literal[
            "datetime",
            "date",
            "amount",
            "number",
            "integer",
            "percent",
            "text",
            "boolean",
            "list",
            "event",
        ],
        described(
            "`amount`: money in yuan (a number, or text such as 1285万元 kept as written); "
            "`percent`: a fraction (0.12 is 12%); `event`: the seq of an event of the same "
            "project."
        ),
    ]
    unit: Name | None
    key_date: Annotated[
        Name | None,
        described("Names a date that matters to bidders (投标截止, 挂牌截止 …); null if not one."),
    ]
    closes: Annotated[bool, described("Whether this date ends the bidding window.")]


class Category(Struct):
    code: CategoryCode
    name: Name
    stages: Annotated[
        list[CategoryStage],
        described(
            "Lifecycle stages in their usual order, then the oversight stages every "
            "category may use at any time."
        ),
    ]
    board: (
        Annotated[str, described("Board prefix of the national data spec, e.g. GCJS.")] | UnsetType
    ) = UNSET


class Categories(Struct):
    items: list[Category]
    fields: Annotated[
        dict[str, FieldInfo],
        described(
            "Every data key a stage names. Keys an event holds that are not here are "
            "still valid: show them with their raw key."
        ),
    ]


class Agency(Struct):
    code: Code
    zh: str
    en: str
    region: Annotated[Code | None, described("The region the agency serves, one of `regions`.")]


class Region(Struct):
    code: Code
    zh: str
    en: str
    parent: Annotated[Code | None, described("The enclosing region, one of `regions`.")]


class Directory(Struct):
    agencies: list[Agency]
    regions: list[Region]


# --- projects --------------------------------------------------------------------------------


class ProjectInput(Struct, forbid_unknown_fields=True):
    id: Code
    title: Title
    category: CategoryCode
    agency: Code
    region: Code | UnsetType | None = UNSET
    budget: Annotated[float, Meta(ge=0)] | UnsetType | None = UNSET
    currency: Currency = "CNY"
    must_tender: MustTender | UnsetType | None = UNSET


class ProjectAmendment(Struct, forbid_unknown_fields=True):
    """The fields to change (any of them) and why: appended as an `amended` event."""

    reason: Annotated[str, Meta(min_length=1, max_length=MAX_REASON), described("Why.")]
    title: Title | UnsetType = UNSET
    region: Code | UnsetType | None = UNSET
    budget: Annotated[float, Meta(ge=0)] | UnsetType | None = UNSET
    currency: Currency | UnsetType = UNSET
    must_tender: MustTender | UnsetType | None = UNSET


class KeyDate(Struct):
    """A date that matters to bidders: the latest value of a key-date field
    (`GET /api/categories` names them) published in the project's events."""

    field: Annotated[str, described("The data key, e.g. deadline, listing_ends.")]
    at: Time
    stage: Annotated[str, described("The stage of the event that published it.")]
    seq: Seq


class Project(Struct):
    id: Code
    title: str
    category: CategoryCode
    agency: Code
    region: str | None
    budget: float | None
    currency: str
    stage: Annotated[
        str | None,
        described(
            "The latest lifecycle stage reached (oversight stages such as objection do not "
            "move it); null before the first publication."
        ),
    ]
    created_at: Time
    updated_at: Annotated[Time, described("The latest activity.")]
    last_seq: (
        Annotated[int, Meta(ge=0), described("The seq of its latest event; 0 if none.")] | UnsetType
    ) = UNSET
    must_tender: MustTender | UnsetType | None = UNSET
    key_dates: (
        Annotated[
            list[KeyDate],
            described(
                "For each key-date field, the latest value its events published (a "
                "clarification or correction with a new deadline replaces the notice's), "
                "ascending by `at`."
            ),
        ]
        | UnsetType
    ) = UNSET
    closes_at: (
        Annotated[
            Time | None,
            described("When bids or the listing close: the latest value of a `closes` field."),
        ]
        | UnsetType
    ) = UNSET
    open: (
        Annotated[
            bool,
            described(
                "Still taking bids: closes_at is in the future and no award, contract or "
                "failed event yet."
            ),
        ]
        | UnsetType
    ) = UNSET


class ProjectPage(Struct):
    items: list[Project]
    next_cursor: NextCursor


class Deadline(Struct):
    """An open statutory deadline: a stage awaited by `due` (due_within), or a stage that
    may not come before `not_before` (at_least). Times are Beijing time, as statutory days
    are."""

    rule: Annotated[str, Meta(examples=["construction.award-contract"])]
    name: str
    kind: Kind
    target: Annotated[str, described("The stage (or stage.data.field).")]
    trigger: Annotated[int, described("The seq that started it.")]
    due: Time | None
    not_before: Time | None
    basis: str
    confidence: Confidence | UnsetType = UNSET
    name_en: str | UnsetType = UNSET
    basis_en: str | UnsetType = UNSET
    estimated: (
        Annotated[bool, described("Counted Monday–Friday for days no holiday calendar covers yet.")]
        | UnsetType
    ) = UNSET
    status: Literal["open", "approaching", "overdue"] | UnsetType = UNSET


# --- events ------------------------------------------------------------------------------------


class EventInput(Struct, forbid_unknown_fields=True):
    stage: StageCode
    title: Title
    body: Annotated[str, Meta(max_length=MAX_BODY)] = ""
    data: Annotated[
        dict[str, Any],
        described(
            "Stage-specific facts, e.g. notice: deadline; award: winner, amount. A correction "
            "needs `corrects`: the seq of an earlier event of the same project."
        ),
    ] = {}
    occurred_at: (
        Annotated[
            Time,
            described("When it happened, with a UTC offset; defaults to the publication time."),
        ]
        | UnsetType
    ) = UNSET


# The type of each field an event is served with; the fields themselves and their
# order are core/events.py's EVENT_FIELDS, plus the `hash` the chain adds.
EVENT_FIELD_TYPES: dict[str, Any] = {
    "seq": Annotated[Seq, described("Global, gapless, strictly increasing by 1.")],
    "project": Code,
    "category": CategoryCode,
    "agency": Code,
    "region": str | None,
    "stage": StageCode,
    "title": str,
    "body": str,
    "data": dict[str, Any],
    "occurred_at": Time,
    "published_at": Time,
    "hash": Annotated[
        str,
        Meta(
            pattern="^[0-9a-f]{64}$",
            description="SHA-256 (hex) of the previous event's hash (64 zeros before seq 1) "
            "followed by this event without `hash` as json.dumps(sort_keys=True, "
            "separators=(',', ':'), ensure_ascii=False), UTF-8.",
        ),
    ],
}
# Built, not declared, so the type checker sees a variable: uses below say so.
Event: type[Struct] = msgspec.defstruct(
    "Event",
    [(name, EVENT_FIELD_TYPES[name]) for name in (*EVENT_FIELDS, "hash")],
)
Event.__doc__ = "Immutable once published; the same JSON on HTTP, WebSocket and SSE."


EventPreview: type[Struct] = msgspec.defstruct(
    "EventPreview",
    [(name, EVENT_FIELD_TYPES[name]) for name in EVENT_FIELDS if name != "seq"],
    forbid_unknown_fields=True,
)
EventPreview.__doc__ = (
    "An event as it would be published now: every field but `seq` and `hash`, which "
    "only publishing gives it."
)


class PublishWarning(Struct):
    """A statutory warning the compliance watchdog would raise because of the event."""

    rule: str
    name: Annotated[str, described("The rule in words.")]
    kind: Kind
    level: Level
    message: Annotated[
        str, described("For people; an `at_least` breach starts with 时限不足 (period too short).")
    ]
    due_at: Time | None
    basis: str
    confidence: Confidence
    advisory: Annotated[
        bool,
        described(
            "Local practice or policy, not law: shown to supervisors, counted apart on the "
            "public scorecard."
        ),
    ]


class DryRun(Struct, forbid_unknown_fields=True):
    event: EventPreview  # type: ignore[valid-type]
    warnings: list[PublishWarning]


class EventPage(Struct):
    items: list[Event]  # type: ignore[valid-type]
    head: Head


class ProjectDetail(Project, kw_only=True):
    timeline: Annotated[list[Event], described("Its events in seq order.")]  # type: ignore[valid-type]
    deadlines: list[Deadline]


# --- compliance ------------------------------------------------------------------------------


WebhookId = Annotated[str, Meta(pattern="^wh_[0-9a-f]{16}$")]


class WebhookRef(Struct):
    id: WebhookId
    origin: Annotated[
        str,
        described(
            "`scheme://host[:port]` of its URL, never the path or query (often the "
            "receiver's credential): admins see the whole URL in GET /api/webhooks."
        ),
    ]


class ComplianceWarning(Struct):
    """A compliance warning; `due` is null for a rule broken by a publication itself.
    Streamed on the `supervision` topic as `{"op":"warning","warning":…}`, again when
    resolved."""

    id: str
    rule: str
    project: Annotated[
        str | None, described("Null for a disclosure request's or a webhook's warning.")
    ]
    agency: Annotated[str | None, described("Null for a webhook's warning.")]
    due: Time | None
    basis: Annotated[str | None, described("Null for a webhook's warning: not a legal rule.")]
    level: Level
    message: str
    created_at: Time
    resolved_at: Time | None
    category: str | UnsetType | None = UNSET
    state: (
        Annotated[
            Literal["approaching", "overdue", "too_short", "data_incomplete", "disabled"],
            described(
                "In words: a breach of a time limit is overdue (已超期); of a minimum period, "
                "too_short (时限不足)."
            ),
        ]
        | UnsetType
    ) = UNSET
    rule_name: Name | UnsetType = UNSET
    basis_en: str | UnsetType = UNSET
    advisory: (
        Annotated[
            bool,
            described("Local practice or policy, not law: the scorecard counts it apart."),
        ]
        | UnsetType
    ) = UNSET
    case: (
        Annotated[
            CaseRef,
            described("A response rule's warning: the public's case it is about (not its text)."),
        ]
        | UnsetType
    ) = UNSET
    webhook: (
        Annotated[
            WebhookRef,
            described(
                "rule `webhook_disabled`: the webhook that failed too long and was disabled."
            ),
        ]
        | UnsetType
    ) = UNSET


class WarningPage(Struct):
    items: list[ComplianceWarning]
    next_cursor: NextCursor


class Score(Struct):
    """Statutory limits only; advisory ones (local practice, not law) apart."""

    due: Annotated[int, described("Disclosures whose time limit has come.")]
    on_time: int
    late: Annotated[int, described("Made after the time limit.")]
    open_breaches: Annotated[int, described("Overdue and still not made.")]
    on_time_rate: float | None
    completed: int | UnsetType = UNSET
    too_short: (
        Annotated[
            int,
            described("A minimum period left too short (时限不足): made, neither late nor open."),
        ]
        | UnsetType
    ) = UNSET
    advisory_late: (
        Annotated[
            int, described("Advisory limits (not law) missed: made late or a period too short.")
        ]
        | UnsetType
    ) = UNSET
    advisory_open: (
        Annotated[int, described("Advisory limits (not law) overdue and not made.")] | UnsetType
    ) = UNSET


class CategoryScore(Score, kw_only=True):
    category: CategoryCode


class PeriodScore(Score, kw_only=True):
    period: Annotated[str, Meta(pattern="^[0-9]{4}-[0-9]{2}$")]


class AgencyScore(Score, kw_only=True):
    agency: Code
    by_category: list[CategoryScore]
    by_period: list[PeriodScore]
    enquiries: (
        Annotated[EnquiryFigures, described("How it answers enquiries on its projects.")]
        | UnsetType
    ) = UNSET
    disclosure_requests: (
        Annotated[
            CaseFigures,
            described("How it replies to requests for information (依申请公开)."),
        ]
        | UnsetType
    ) = UNSET


class Scorecard(Struct):
    as_of: Time
    agencies: list[AgencyScore]


class ComplianceItem(Struct):
    """One statutory item: what was due by when, and when it was done."""

    project: Code
    project_title: str | None
    agency: Code
    category: CategoryCode
    rule: str
    rule_name: Name
    basis: str
    basis_en: str
    kind: Literal["due_within", "at_least"]
    due_at: Annotated[
        Time | None,
        described("The last moment allowed (due_within) or the earliest (at_least)."),
    ]
    done_at: Time | None
    status: Literal["late", "open", "on_time"]
    state: Annotated[
        Literal["late", "overdue", "too_short", "on_time"],
        described(
            "late: done after the deadline (已逾期); overdue: due and still not done "
            "(已超期); too_short: a minimum period left too short (时限不足); on_time."
        ),
    ]
    advisory: Annotated[
        bool,
        described(
            "Local practice or policy, not law: shown to supervisors, counted apart on the "
            "public scorecard."
        ),
    ]
    trigger_seq: Seq
    target_seq: Seq | None


class ComplianceItems(Struct):
    items: list[ComplianceItem]
    as_of: Time


class Catalog(Struct):
    items: list[dict[str, Any]]
    rules: list[dict[str, Any]]
    must_tender: Annotated[
        dict[str, Any] | None,
        described(
            "What makes a tender one the law requires (依法必须招标): `basis`, `basis_en` and "
            "`thresholds` [{zh, en, amount}], the estimated contract values in yuan."
        ),
    ] = None


# --- push --------------------------------------------------------------------------------------


class VapidKey(Struct):
    publicKey: Annotated[str, described("base64url uncompressed P-256 point")]


class PushKeys(Struct):
    p256dh: str
    auth: str


class PushSubscription(Struct):
    endpoint: Annotated[str, Meta(extra_json_schema={"format": "uri"})]
    keys: PushKeys
    expirationTime: float | UnsetType | None = UNSET


class PushSubscribe(Struct):
    subscription: PushSubscription
    topics: list[str]
    stages: list[str] | UnsetType = UNSET


class PushUnsubscribe(Struct):
    endpoint: Annotated[str, Meta(min_length=1, max_length=2048)]


class PushSubscriptionResult(Struct):
    id: int
    topics: list[str]


class DeliveryCounts(Struct):
    queued: Count
    delivered: Count
    failed: Count
    gone: Count


class Deliveries(Struct):
    seq: Count
    queued: Count
    delivered: Count
    failed: Count
    gone: Count
    channels: Annotated[
        dict[str, DeliveryCounts],
        described("The same counts for each channel beside Web Push (sms, email, wechat)."),
    ]


ChannelKind = Literal["sms", "email", "wechat"]
ChannelId = Annotated[str, Meta(pattern="^[0-9a-f]{16}$")]


class ChannelKinds(Struct):
    kinds: list[ChannelKind]


class ChannelAdd(Struct):
    kind: Literal["sms", "email"]
    address: Annotated[str, Meta(min_length=1, max_length=320)]
    topics: list[str]
    stages: list[str] | UnsetType = UNSET


class ChannelAdded(Struct):
    id: ChannelId
    status: Literal["pending"]
    manage_token: Annotated[str, described("Keep it on the device: it reads and cancels.")]


class ChannelConfirm(Struct):
    code: Annotated[str, Meta(min_length=1, max_length=20)]


class ChannelStatus(Struct):
    status: Literal["active"]


class ChannelKindUsage(Struct):
    active: Count
    pending: Count
    sent_today: Count
    sent_month: Count
    price: Annotated[float, Meta(ge=0), described("Yuan per message (policy.toml).")]
    cost_month: Annotated[float, Meta(ge=0)]


class ChannelUsage(Struct):
    month: Annotated[str, Meta(pattern="^[0-9]{4}-[0-9]{2}$")]
    currency: Literal["CNY"]
    kinds: dict[str, ChannelKindUsage]


class ChannelShown(Struct):
    id: ChannelId
    kind: ChannelKind
    status: Literal["pending", "active"]
    topics: list[str]
    stages: list[str] | None
    address_hint: Annotated[str, described("Enough to recognise the address: 138****5678.")]


# --- the public's cases (回应) -------------------------------------------------------------------

EnquiryId = Annotated[str, Meta(pattern="^q[a-z2-7]{12}$")]
RequestId = Annotated[str, Meta(pattern="^r[a-z2-7]{12}$")]
Ticket = Annotated[
    str,
    Meta(
        pattern="^[A-Za-z0-9_-]{43}$",
        description="The case's secret, shown only in this answer: send it back as "
        "`X-Ticket` to read the case. It cannot be shown again.",
    ),
]
EnquiryStatus = Annotated[str, Meta(extra_json_schema={"enum": list(STATUSES[CaseKind.ENQUIRY])})]
RequestStatus = Annotated[
    str, Meta(extra_json_schema={"enum": list(STATUSES[CaseKind.DISCLOSURE_REQUEST])})
]
Outcome = Annotated[
    str,
    Meta(
        extra_json_schema={"enum": list(OUTCOMES)},
        description="granted 予以公开, partly_granted 部分公开, refused 不予公开, "
        "not_held 信息不存在, not_ours 非本机关掌握.",
    ),
]
Due = Annotated[
    Time,
    described(
        "The last moment to answer: the response rule's period (GET /api/catalog) from the "
        "day after it was received, or the extended one."
    ),
]
ClosedAt = Annotated[Time | None, described("When it was answered, declined or replied to.")]
DueEstimated = Annotated[
    bool,
    described(
        "`due` counted days the working-day calendar does not know yet (next year's "
        "holidays before they are announced) as Monday–Friday; counted again once it does."
    ),
]
Overdue = Annotated[bool, described("Past `due` and still open, or closed after it.")]
CaseRule = Annotated[
    str, Meta(examples=["all.enquiry-answer"]), described("The response rule `due` follows.")
]
Erased = Annotated[
    bool,
    described(
        "What the person wrote was erased, as it is a while after the case closes "
        "(SUNBID_CASE_KEEP_DAYS): those fields are null now."
    ),
]
AgeDays = Annotated[float, Meta(ge=0), described("Days from receipt to closing, or to now.")]
Contact = Annotated[
    str | None,
    described("How to reach the person: for publishers and admins; null for supervisors."),
]
RatingScore = Annotated[int, Meta(ge=1, le=5, description="1 (poor) to 5 (good).")]
# Text a person writes: 1..limit characters once trimmed (server/respond/inputs.py).
Question = Annotated[str, Meta(min_length=1, max_length=MAX_QUESTION)]
AnswerText = Annotated[str, Meta(min_length=1, max_length=MAX_ANSWER)]
ReasonText = Annotated[str, Meta(min_length=1, max_length=MAX_CASE_REASON)]
Subject = Annotated[str, Meta(min_length=1, max_length=MAX_SUBJECT)]
Description = Annotated[str, Meta(min_length=1, max_length=MAX_DESCRIPTION)]


class EnquiryInput(Struct, forbid_unknown_fields=True):
    question: Annotated[Question, described("Never published as it is written.")]
    contact: (
        Annotated[
            str,
            Meta(max_length=MAX_CONTACT),
            described("Optional; staff see it, nothing public ever does."),
        ]
        | UnsetType
        | None
    ) = UNSET


class EnquiryFiled(Struct):
    id: EnquiryId
    ticket: Ticket
    status: Literal["open"]
    due: Due
    asked_at: Time
    project: Code
    topic: Annotated[
        str,
        Meta(pattern="^enquiry:q[a-z2-7]{12}$"),
        described(
            "Add it to the device's push subscription (or a channel) to be told of the answer."
        ),
    ]


class PublishedAnswer(Struct):
    """The `enquiry_answer` event that answers it, as published for everyone."""

    seq: Seq
    question: Annotated[str, described("The question as published (personal data removed).")]
    answer: str
    published_at: Time


class Rating(Struct):
    score: RatingScore
    comment: str | None


class RatingInput(Struct, forbid_unknown_fields=True):
    score: RatingScore
    comment: Annotated[str, Meta(max_length=MAX_COMMENT)] | UnsetType | None = UNSET


class Enquiry(Struct):
    """The asker's view (with the ticket)."""

    id: EnquiryId
    project: Code
    status: EnquiryStatus
    question: Annotated[str | None, described("The asker's own words; null once erased.")]
    asked_at: Time
    due: Due
    due_estimated: DueEstimated
    closed_at: ClosedAt
    answer: PublishedAnswer | None
    reason: Annotated[str | None, described("Why it was declined.")]
    rating: Rating | None
    overdue: Overdue
    rule: CaseRule
    erased: Erased


class EnquiryItem(Struct):
    """An enquiry as staff see it."""

    id: EnquiryId
    project: Code
    agency: Code
    category: CategoryCode
    question: Annotated[str | None, described("The asker's words; null once erased.")]
    status: EnquiryStatus
    asked_at: Time
    due: Due
    due_estimated: DueEstimated
    closed_at: ClosedAt
    answer_seq: Annotated[Seq | None, described("The `enquiry_answer` event that answers it.")]
    linked: Annotated[bool, described("Answered by linking to an earlier answer (`same_as`).")]
    reason: Annotated[str | None, described("Why it was declined.")]
    score: Annotated[RatingScore | None, described("The asker's rating.")]
    overdue: Overdue
    age_days: AgeDays
    contact: Contact
    rule: CaseRule
    erased: Erased
    project_title: (
        Annotated[str | None, described("In the inbox: the project's title, as it is now.")]
        | UnsetType
    ) = UNSET


class EnquiryPage(Struct):
    items: Annotated[list[EnquiryItem], described("Oldest due first.")]
    next_cursor: NextCursor


class EnquiryAnswer(Struct, forbid_unknown_fields=True):
    answer: AnswerText
    question: (
        Annotated[
            Question,
            described(
                "The question as it will be published, personal data removed; the asker's "
                "words if absent."
            ),
        ]
        | UnsetType
        | None
    ) = UNSET


class EnquiryLink(Struct, forbid_unknown_fields=True):
    same_as: Annotated[
        EnquiryId,
        described(
            "A repeat question: the id of an answered enquiry of the same project, whose "
            "answer answers this one. Nothing new is published."
        ),
    ]


class CaseReason(Struct, forbid_unknown_fields=True):
    reason: Annotated[ReasonText, described("Told to the person; never published.")]


class DisclosureRequestInput(Struct, forbid_unknown_fields=True):
    agency: Annotated[Code, described("An agency of GET /api/directory.")]
    subject: Subject
    description: Description
    contact: Annotated[
        str,
        Meta(min_length=1, max_length=MAX_CONTACT),
        described("Staff see it, nothing public ever does."),
    ]


class DisclosureRequestFiled(Struct):
    id: RequestId
    ticket: Ticket
    status: Literal["received"]
    due: Due
    received_at: Time
    agency: Code


class Extension(Struct):
    reason: Annotated[str | None, described("Told to the requester; null once erased.")]
    at: Time


class Reply(Struct):
    outcome: Outcome
    text: Annotated[str | None, described("Null once erased.")]
    basis: Annotated[str | None, described("The article relied on.")]
    at: Time


class ReplyInput(Struct, forbid_unknown_fields=True):
    outcome: Outcome
    text: Description
    basis: (
        Annotated[str, Meta(max_length=MAX_BASIS), described("The article relied on.")]
        | UnsetType
        | None
    ) = UNSET


class DisclosureRequest(Struct):
    """The requester's view (with the ticket), the reply included."""

    id: RequestId
    agency: Code
    status: RequestStatus
    subject: Annotated[str | None, described("Null once erased.")]
    description: Annotated[str | None, described("Null once erased.")]
    received_at: Time
    due: Due
    due_estimated: DueEstimated
    closed_at: ClosedAt
    extension: Annotated[
        Extension | None, described("The period's one extension, if it was extended.")
    ]
    reply: Reply | None
    overdue: Overdue
    rule: CaseRule
    erased: Erased


class DisclosureRequestItem(DisclosureRequest, kw_only=True):
    """A disclosure request as staff see it."""

    age_days: AgeDays
    contact: Contact


class DisclosureRequestPage(Struct):
    items: Annotated[list[DisclosureRequestItem], described("Oldest due first.")]
    next_cursor: NextCursor


class CaseRef(Struct):
    kind: Annotated[str, Meta(extra_json_schema={"enum": [str(kind) for kind in CaseKind]})]
    id: Annotated[str, Meta(pattern="^[qr][a-z2-7]{12}$")]


class CaseFigures(Struct):
    """The public's cases an agency received (in the month asked for, by when each was
    received), and how it answered them."""

    received: Count
    answered_on_time: Annotated[Count, described("Closed by their due time.")]
    late: Annotated[Count, described("Closed after their due time, or still open past it.")]
    open: Count
    median_days: Annotated[
        Annotated[float, Meta(ge=0)] | None,
        described("Days from receipt to closing, of those closed."),
    ]
    outcomes: Annotated[
        dict[str, Count],
        described(
            "Closed cases by how they ended: answered or declined (enquiries), a reply's "
            "outcome (requests)."
        ),
    ]


class Satisfaction(Struct):
    mean: Annotated[
        Annotated[float, Meta(ge=1, le=5)] | None, described("Null before the first rating.")
    ]
    count: Count


class EnquiryFigures(CaseFigures, kw_only=True):
    satisfaction: Annotated[Satisfaction, described("The askers' ratings of the answers.")]


# --- OCDS 1.1 (docs/ocds.md) ------------------------------------------------------------------
# The package's own fields; the releases inside follow the OCDS release schema
# (https://standard.open-contracting.org/schema/1__1__5/release-schema.json),
# which tests/test_ocds.py validates them against.

OcdsRelease = Annotated[
    dict[str, Any],
    described("An OCDS 1.1 release: one per event, `id` `<ocid>-<seq>`, `date` its published_at."),
]


class OcdsPublisher(Struct):
    name: str


class OcdsLinks(Struct):
    next: Annotated[str, described("The next page; absent on the last page.")]


class OcdsPackage(Struct, kw_only=True):
    uri: Annotated[str, Meta(description="This package's own URL.")]
    version: Literal["1.1"]
    extensions: Annotated[list[str], described("The OCDS extensions its data uses.")]
    publishedDate: Annotated[str, described("The date of its newest release.")]
    publisher: OcdsPublisher
    license: str
    publicationPolicy: Annotated[str, described("The disclosure catalogue (/catalog).")]


class OcdsReleasePackage(OcdsPackage, kw_only=True):
    releases: list[OcdsRelease]
    links: OcdsLinks | UnsetType = UNSET


class OcdsRecord(Struct):
    ocid: Annotated[str, described("SUNBID_OCID_PREFIX, a dash, the project id.")]
    releases: list[OcdsRelease]
    compiledRelease: Annotated[dict[str, Any], described("The releases merged (ocdsmerge).")]


class OcdsRecordPackage(OcdsPackage, kw_only=True):
    records: Annotated[list[OcdsRecord], Meta(min_length=1, max_length=1)]


# --- statistics (统计分析) ---------------------------------------------------------------------

Month = Annotated[str, Meta(pattern="^[0-9]{4}-[0-9]{2}$")]
Yuan = Annotated[float, Meta(ge=0), described("Yuan (CNY).")] | None
Rate = Annotated[float, Meta(ge=0, le=1), described("A fraction of 1.")] | None


class StatsFilters(Struct):
    year: int | None
    month: int | None
    category: CategoryCode | None
    agency: Code | None


class AnswerTotals(Struct):
    kind: Literal["enquiries", "disclosure_requests"]
    received: int
    answered_on_time: int
    late: int
    open: int
    on_time_rate: Rate
    median_days: float | None


class StatsTotals(Struct):
    projects: int
    events: int
    budget_sum: Yuan
    budget_median: Yuan
    award_count: int
    award_sum: Yuan
    award_median: Yuan
    awarded: int
    failed: int
    failure_rate: Rate
    median_days: Annotated[float | None, described("Days from the first notice to the award.")]
    mean_bidders: float | None
    single_bidder: Annotated[int, described("Procedures with one bidder: no competition.")]
    counted_bidders: int
    due: int
    on_time: int
    on_time_rate: Rate
    enquiries: AnswerTotals
    disclosure_requests: AnswerTotals


class StageCount(Struct):
    category: CategoryCode
    stage: StageCode
    projects: int


class MonthCount(Struct):
    month: Month
    category: CategoryCode
    projects: int


class MonthEvents(Struct):
    month: Month
    events: int


class CategoryAmounts(Struct):
    category: CategoryCode
    projects: int
    budget_count: int
    budget_sum: Yuan
    budget_median: Yuan
    award_count: int
    award_sum: Yuan
    award_median: Yuan


class CategoryCompetition(Struct):
    category: CategoryCode
    counted: Annotated[int, described("Projects with a published number of bidders.")]
    mean_bidders: float | None
    bidders_0: int
    bidders_1: int
    bidders_2: int
    bidders_3_5: int
    bidders_6_plus: int


class CategoryDurations(Struct):
    category: CategoryCode
    awarded: int
    failed: int
    failure_rate: Rate
    timed: Annotated[int, described("Awarded projects with a notice: those the median counts.")]
    median_days: float | None


class CategoryOnTime(Struct):
    category: CategoryCode
    due: int
    on_time: int
    late: int
    too_short: int
    open_breaches: int
    on_time_rate: Rate


class AgencyAnswers(Struct):
    agency: Code
    kind: Literal["enquiries", "disclosure_requests"]
    received: int
    answered_on_time: int
    late: int
    open: int
    on_time_rate: Rate
    median_days: float | None


class Stats(Struct):
    as_of: Time
    log_head: int
    filters: StatsFilters
    currency: Literal["CNY"]
    totals: StatsTotals
    projects_by_stage: list[StageCount]
    projects_by_month: Annotated[list[MonthCount], described("By the month of the first notice.")]
    events_by_month: Annotated[list[MonthEvents], described("By the month of publication.")]
    amounts: list[CategoryAmounts]
    competition: list[CategoryCompetition]
    durations: list[CategoryDurations]
    on_time: list[CategoryOnTime]
    answers: list[AgencyAnswers]


# --- webhooks (push/webhooks/) -------------------------------------------------------------


class WebhookAdd(Struct):
    url: Annotated[
        str,
        Meta(max_length=2048),
        described("https on port 443 on a host SUNBID_WEBHOOK_ALLOWED_HOSTS names, public."),
    ]
    topics: list[str]
    stages: list[str] | UnsetType | None = UNSET
    description: Annotated[str, Meta(max_length=500)] | UnsetType | None = UNSET


class WebhookCreated(Struct):
    id: WebhookId
    secret: Annotated[
        str,
        Meta(pattern="^whsec_[A-Za-z0-9+/=]+$"),
        described("Shown only here: verify each request's webhook-signature with it."),
    ]


class WebhookShown(Struct):
    id: WebhookId
    url: str
    topics: list[str]
    stages: list[str] | None
    description: str
    created_at: Time
    state: Annotated[
        Literal["active", "failing", "disabled"],
        described("failing: the next event is being retried; disabled: given up on."),
    ]
    cursor: Annotated[int, described("The last seq delivered or skipped.")]
    attempts: Annotated[int, described("Failed attempts at the next event.")]
    next_attempt_at: Annotated[float | None, described("Epoch seconds of the next retry.")]
    failing_since: Annotated[float | None, described("Epoch seconds of the first failure.")]
    disabled_at: Time | None


class WebhookList(Struct):
    items: list[WebhookShown]


class WebhookDelivery(Struct):
    seq: int
    attempt: Annotated[int, Meta(ge=1)]
    status: Annotated[int | None, described("The receiver's HTTP status, if it answered.")]
    error: Annotated[
        Literal["status", "timeout", "connection", "redirect"] | None,
        described("None: a 2xx. status: any other status; redirect: a 3xx (never followed)."),
    ]
    duration_ms: float
    at: Time


class WebhookDeliveries(Struct):
    id: WebhookId
    items: list[WebhookDelivery]


class WebhookReplay(Struct):
    since: Annotated[int, Meta(ge=0, le=MAX_SEQ)]
