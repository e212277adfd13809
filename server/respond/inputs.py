"""What the public and staff send about cases, checked: 422 naming the field."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from server.core.errors import ApiError, invalid
from server.core.text import line_problem, text_problem
from server.core.topics import CODE

MAX_QUESTION = 2000
MAX_CONTACT = 200
MAX_SUBJECT = 200
MAX_DESCRIPTION = 4000
MAX_ANSWER = 4000
MAX_REASON = 500
MAX_COMMENT = 500
MAX_BASIS = 200
OUTCOMES = ("granted", "partly_granted", "refused", "not_held", "not_ours")
# What must not be published with an answer (个人信息保护法): staff remove it
# from the question (and never write it in the answer). Refused, not cleaned:
# a person decides what the published text says. Looked for in the text as a
# reader sees it (full-width digits as digits, invisible characters gone,
# digits joined across the spaces, dots and dashes people group them with).
PERSONAL_DATA = (
    (re.compile(r"(?<![0-9])(?:\+?86|0086)?1[3-9][0-9]{9}(?![0-9])"), "a mobile number"),
    (
        re.compile(
            r"(?<![0-9])[1-9][0-9]{5}(?:(?:19|20)[0-9]{2}[01][0-9][0-3][0-9][0-9]{3}[0-9Xx]"
            r"|[0-9]{2}[01][0-9][0-3][0-9][0-9]{3})(?![0-9])"
        ),
        "an identity card number",
    ),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"), "an e-mail address"),
)
GROUPING = re.compile(r"(?<=[0-9])[ \t\-\u2010-\u2015.()（）]+(?=[+0-9])")
MIN_DIGITS = 7  # a contact matched by its digits: a phone number, not a year or an amount
MIN_CONTACT = 5  # otherwise by its words, if it says enough not to match everything (无, 略)


@dataclass(frozen=True)
class Question:
    question: str
    contact: str | None


@dataclass(frozen=True)
class Request:
    agency: str
    subject: str
    description: str
    contact: str


@dataclass(frozen=True)
class Answer:
    answer: str | None  # None when answered by linking
    question: str | None  # as published; None: the asker's own words
    same_as: str | None  # an earlier answered enquiry of the same project


@dataclass(frozen=True)
class Reply:
    outcome: str
    text: str
    basis: str | None


def question(body: object) -> Question:
    fields = _object(body, {"question", "contact"}, required=("question",))
    return Question(
        text(fields["question"], "question", MAX_QUESTION),
        line(fields["contact"], "contact", MAX_CONTACT) if fields.get("contact") else None,
    )


def request(body: object) -> Request:
    fields = _object(
        body,
        {"agency", "subject", "description", "contact"},
        required=("agency", "subject", "description", "contact"),
    )
    agency = fields["agency"]
    if not isinstance(agency, str) or not CODE.fullmatch(agency):
        raise invalid("agency", "an agency code from GET /api/directory")
    return Request(
        agency,
        line(fields["subject"], "subject", MAX_SUBJECT),
        text(fields["description"], "description", MAX_DESCRIPTION),
        line(fields["contact"], "contact", MAX_CONTACT),
    )


def answer(body: object) -> Answer:
    fields = _object(body, {"answer", "question", "same_as"})
    if "same_as" in fields:
        if set(fields) != {"same_as"}:
            raise ApiError(
                422,
                "invalid_body",
                "same_as answers by linking to an earlier answer: send it alone",
                {"field": "same_as"},
            )
        same_as = fields["same_as"]
        if not isinstance(same_as, str) or not CODE.fullmatch(same_as):
            raise invalid("same_as", "the id of an answered enquiry on the same project")
        return Answer(None, None, same_as)
    if "answer" not in fields:
        raise invalid("answer", "required (or same_as, to link to an earlier answer)")
    published = fields.get("question")
    return Answer(
        text(fields["answer"], "answer", MAX_ANSWER),
        text(published, "question", MAX_QUESTION) if published is not None else None,
        None,
    )


def reason(body: object) -> str:
    fields = _object(body, {"reason"}, required=("reason",))
    return text(fields["reason"], "reason", MAX_REASON)


def reply(body: object) -> Reply:
    fields = _object(body, {"outcome", "text", "basis"}, required=("outcome", "text"))
    outcome = fields["outcome"]
    if outcome not in OUTCOMES:
        raise invalid("outcome", f"one of {', '.join(OUTCOMES)}")
    basis = fields.get("basis")
    return Reply(
        outcome,
        text(fields["text"], "text", MAX_DESCRIPTION),
        line(basis, "basis", MAX_BASIS) if basis else None,
    )


def rating(body: object) -> tuple[int, str | None]:
    fields = _object(body, {"score", "comment"}, required=("score",))
    score = fields["score"]
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise invalid("score", "a whole number from 1 to 5")
    comment = fields.get("comment")
    return score, text(comment, "comment", MAX_COMMENT) if comment else None


def publishable(value: str, field: str, contact: str | None) -> str:
    """`value` unless it holds personal data: 422 `personal_data` naming what."""
    seen = as_read(value)
    found = [what for pattern, what in PERSONAL_DATA if pattern.search(seen)]
    if contact and _holds(seen, as_read(contact)):
        found.append("the asker's contact")
    if found:
        raise ApiError(
            422,
            "personal_data",
            f"{field}: remove {' and '.join(found)} before publishing",
            {"field": field, "found": found},
        )
    return value


def as_read(text: str) -> str:
    """The text as a reader takes it in: compatibility forms folded (full-width
    digits and letters), invisible formatting characters gone, and the spaces
    and dashes between digits closed up."""
    folded = unicodedata.normalize("NFKC", text)
    visible = "".join(c for c in folded if unicodedata.category(c) != "Cf")
    return GROUPING.sub("", visible)


def _holds(text: str, contact: str) -> bool:
    digits = "".join(c for c in contact if c.isdigit())
    if len(digits) >= MIN_DIGITS:
        return digits[-MIN_DIGITS:] in "".join(c for c in text if c.isdigit())
    if len(contact.strip()) >= MIN_CONTACT:
        return contact.strip().casefold() in text.casefold()
    return False


def text(value: object, field: str, limit: int) -> str:
    """Multi-line text a person reads: 1..limit characters once trimmed."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(field, f"non-empty text of at most {limit} characters")
    value = value.strip()
    if len(value) > limit:
        raise invalid(field, f"at most {limit} characters (this has {len(value)})")
    if problem := text_problem(value):
        raise invalid(field, problem)
    return value


def line(value: object, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid(field, f"non-empty text of at most {limit} characters")
    value = value.strip()
    if len(value) > limit:
        raise invalid(field, f"at most {limit} characters (this has {len(value)})")
    if problem := line_problem(value):
        raise invalid(field, problem)
    return value


def _object(body: object, allowed: set[str], required: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(
            422,
            "unknown_field",
            f"unknown field(s): {', '.join(k[:40] for k in unknown[:5])}",
            {"allowed": sorted(allowed)},
        )
    for name in required:
        if body.get(name) is None:
            raise invalid(name, "required")
    return body
