"""Categories, their stage vocabularies, and validation of what staff publish.

The vocabulary is data (`data/categories.toml`) so staff can change it; it is
checked at start-up and a mistake names the file, entry and field.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from server.core.errors import ApiError, invalid
from server.core.text import LINE_UNSAFE, TEXT_UNSAFE, line_problem, text_problem
from server.core.topics import CODE
from server.facts import DataField, check_values, load_facts

CATEGORIES_FILE = Path(__file__).parent / "data" / "categories.toml"
MAX_TITLE = 200
MAX_BODY = 20_000
MAX_DATA_DEPTH = 32
MAX_REASON = 500
# What a registration sets and an amendment may change (`id`, `category` and
# `agency` say which project it is and who answers for it: they never change).
PROJECT_FIELDS = ("title", "budget", "currency", "region", "must_tender")
# RFC 3339 `date-time` with an offset. Only the upper-case `T` and `Z`, and no
# space for `T` (RFC 3339 allows both): Python's own parser and the app read
# only these, and one spelling per moment keeps the log plain. No week dates,
# ordinal dates or basic format (`20261201T0930`), which ISO 8601 has and
# `datetime.fromisoformat` takes. [0-9], not \d: no other scripts' digits.
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
LOCAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?")
TIME_HINT = "an RFC 3339 time with offset, e.g. 2026-12-01T09:30:00+08:00"


class DomainFileError(ValueError):
    """The vocabulary file is malformed; the message names file, entry and field."""


@dataclass(frozen=True)
class Stage:
    code: str
    zh: str
    en: str
    oversight: bool
    record: bool = False  # records the project itself: registered, amended
    concludes: bool = False  # after it the project takes no more bids: award, contract, failed
    fields: tuple[str, ...] = ()  # the facts it carries in every category, in display order
    required: tuple[str, ...] = ()  # the ones it must carry to be published


@dataclass(frozen=True)
class StageUse:
    """A stage as one category uses it: the trade's own name for the step, the
    facts it carries there, and the times it may not come before."""

    code: str
    zh: str
    en: str
    oversight: bool
    fields: tuple[str, ...]
    required: tuple[str, ...]
    # data key → rule id: the event may not occur before the latest value of that key.
    not_before: Mapping[str, str]


@dataclass(frozen=True)
class Category:
    code: str
    zh: str
    en: str
    board: str
    lifecycle: tuple[str, ...]
    stages: frozenset[str]  # what staff may publish: lifecycle plus every oversight stage
    # Every stage it may show (lifecycle, oversight, record) as this category uses it.
    uses: Mapping[str, StageUse] = field(default_factory=dict)


@dataclass(frozen=True)
class Domain:
    stages: dict[str, Stage]
    categories: dict[str, Category]
    facts: dict[str, DataField] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = CATEGORIES_FILE) -> Domain:
        try:
            raw = tomllib.loads(path.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise DomainFileError(f"{path}: {exc}") from exc
        unknown = sorted(set(raw) - {"stages", "categories", "fields", "category_stages"})
        if unknown:
            raise DomainFileError(
                f"{path}: unknown table [{unknown[0]}]: use [stages.<code>], [categories.<code>], "
                "[fields.<key>] and [category_stages.<category>.<stage>]"
            )
        facts = load_facts(path, raw.get("fields"), DomainFileError)
        stages = {
            code: _stage(path, code, entry, facts) for code, entry in _table(path, raw, "stages")
        }
        oversight = tuple(s.code for s in stages.values() if s.oversight)
        for stage in stages.values():
            if stage.oversight and stage.record:
                raise DomainFileError(
                    f"{path}: stages.{stage.code}: a stage is oversight or record, not both"
                )
        categories = {}
        for code, entry in _table(path, raw, "categories"):
            lifecycle = entry.get("stages")
            if not isinstance(lifecycle, list) or not lifecycle:
                raise DomainFileError(f"{path}: categories.{code}.stages: a non-empty list")
            for stage in lifecycle:
                if stage not in stages or stages[stage].oversight or stages[stage].record:
                    raise DomainFileError(
                        f"{path}: categories.{code}.stages: {stage!r} is not a lifecycle stage"
                    )
            categories[code] = Category(
                code=code,
                zh=_text(path, f"categories.{code}", entry, "zh"),
                en=_text(path, f"categories.{code}", entry, "en"),
                board=_text(path, f"categories.{code}", entry, "board"),
                lifecycle=tuple(lifecycle),
                stages=frozenset(lifecycle) | frozenset(oversight),
            )
        uses = _category_stages(path, raw.get("category_stages", {}), stages, categories, facts)
        categories = {
            code: replace(category, uses=MappingProxyType(uses[code]))
            for code, category in categories.items()
        }
        return cls(stages=stages, categories=categories, facts=facts)

    @cached_property
    def lifecycle_stages(self) -> frozenset[str]:
        """The stages that move a project's `stage` (in some category)."""
        return frozenset(s.code for s in self.stages.values() if not (s.oversight or s.record))

    def as_json(self) -> dict[str, Any]:
        """`GET /api/categories`: lifecycle stages in order, then oversight ones,
        then the record stages (the project's registration and amendments, the
        answers to the public's enquiries: so the app has their names),
        each named as the category names it, with the facts it carries; and the
        labels, kinds and units of those facts."""
        oversight = [s.code for s in self.stages.values() if s.oversight]
        oversight += [s.code for s in self.stages.values() if s.record]
        return {
            "items": [
                {
                    "code": c.code,
                    "name": {"zh": c.zh, "en": c.en},
                    "board": c.board,
                    "stages": [
                        {
                            "code": use.code,
                            "name": {"zh": use.zh, "en": use.en},
                            "oversight": use.oversight,
                            "fields": list(use.fields),
                            "required": list(use.required),
                        }
                        for use in [c.uses[x] for x in (*c.lifecycle, *oversight)]
                    ],
                }
                for c in self.categories.values()
            ],
            "fields": {key: fact.as_json() for key, fact in self.facts.items()},
        }

    @cached_property
    def concluding_stages(self) -> frozenset[str]:
        """The stages after which a project takes no more bids."""
        return frozenset(s.code for s in self.stages.values() if s.concludes)

    @cached_property
    def key_date_fields(self) -> tuple[str, ...]:
        """The data keys that hold a date that matters to bidders."""
        return tuple(f.key for f in self.facts.values() if f.key_date is not None)

    @cached_property
    def closing_fields(self) -> frozenset[str]:
        """The data keys whose date ends the bidding window."""
        return frozenset(f.key for f in self.facts.values() if f.closes)

    def is_lifecycle(self, stage: str) -> bool:
        return stage in self.lifecycle_stages

    # --- validation of staff input -------------------------------------

    def project_input(self, body: object) -> dict[str, Any]:
        fields = _object(body, {"id", "category", "agency", *PROJECT_FIELDS})
        category = fields.get("category")
        if not isinstance(category, str) or category not in self.categories:
            raise invalid("category", f"one of {', '.join(self.categories)}")
        return {
            "id": _code(fields.get("id"), "id"),
            "category": category,
            "agency": _code(fields.get("agency"), "agency"),
            **_project_fields({"currency": "CNY", **fields}, PROJECT_FIELDS),
        }

    def amendment_input(self, body: object) -> tuple[dict[str, Any], str]:
        """The fields a PATCH changes (at least one) and its reason."""
        fields = _object(body, {"reason", *PROJECT_FIELDS})
        reason = fields.get("reason")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
            raise invalid("reason", f"non-empty text of at most {MAX_REASON} characters")
        if problem := line_problem(reason.strip()):
            raise invalid("reason", problem)
        named = [f for f in PROJECT_FIELDS if f in fields]
        if not named:
            raise ApiError(
                422,
                "invalid_body",
                f"name at least one field to change: {', '.join(PROJECT_FIELDS)}",
                {"allowed": sorted(PROJECT_FIELDS)},
            )
        return _project_fields(fields, named), reason.strip()

    def missing_fact(self, category: str, stage: str, data: Mapping[str, Any]) -> ApiError | None:
        """The first fact `stage` requires in `category` that `data` lacks, as the answer."""
        use = self.categories[category].uses[stage]
        for key in use.required:  # the facts without which the stage cannot be true
            if data.get(key) is None:
                fact = self.facts[key]
                return invalid(
                    f"data.{key}",
                    f"{use.zh}须写明{fact.zh}（required in this stage: {fact.en}）",
                )
        return None

    def event_input(
        self,
        body: object,
        category: str,
        tz: ZoneInfo,
        time_fields: Mapping[str, Collection[str]] | None = None,
    ) -> dict[str, Any]:
        """The publishable part of an event; the server fills in the rest.

        `time_fields`: stage → the data fields read as times in its events
        (by the time-limit rules); where present they must be RFC 3339 times.
        """
        fields = _object(body, {"stage", "title", "body", "data", "occurred_at"})
        stage = fields.get("stage")
        allowed = self.categories[category].stages
        if not isinstance(stage, str) or stage not in allowed:
            names = sorted(allowed)
            raise ApiError(
                422,
                "invalid_stage",
                f"stage must be one of the {category} stages: {', '.join(names)}",
                {"field": "stage", "allowed": names},
            )
        text = fields.get("body", "")
        if not isinstance(text, str) or len(text) > MAX_BODY:
            raise invalid("body", f"text of at most {MAX_BODY} characters")
        if problem := text_problem(text):
            raise invalid("body", problem)
        data = fields.get("data", {})
        if not isinstance(data, dict):
            raise invalid("data", "an object")
        depth, safe = _data_shape(data)
        if depth > MAX_DATA_DEPTH:
            raise invalid("data", f"nested at most {MAX_DATA_DEPTH} levels deep")
        if not safe:
            _check_data_text(data)  # raises, naming where
        occurred = fields.get("occurred_at")
        draft = {
            "stage": stage,
            "title": _line(fields.get("title"), "title", MAX_TITLE),
            "body": text,
            "data": data,
            "occurred_at": None if occurred is None else parse_time(occurred, "occurred_at", tz),
        }
        # The facts last: a form's own fields are named first when both are wrong.
        # (Required facts are checked with the log, projects/checks.py: after a
        # repeat of an Idempotency-Key is answered with the event it made.)
        for key in (time_fields or {}).get(stage, ()):
            if data.get(key) is not None:  # absent or null: the watchdog reports it missing
                parse_time(data[key], f"data.{key}", tz)
        check_values(data, self.facts, lambda value, name: parse_time(value, name, tz))
        return draft


def _project_fields(fields: Mapping[str, Any], names: Collection[str]) -> dict[str, Any]:
    """`names` of a project's own fields, validated (and `title` stripped)."""
    checked: dict[str, Any] = {}
    if "title" in names:
        checked["title"] = _line(fields.get("title"), "title", MAX_TITLE)
    if "region" in names:
        region = fields.get("region")
        checked["region"] = None if region is None else _code(region, "region")
    if "budget" in names:
        budget = fields.get("budget")
        if budget is not None and (
            isinstance(budget, bool)
            or not isinstance(budget, int | float)
            or not math.isfinite(budget)
            or budget < 0
        ):
            raise invalid("budget", "a non-negative number")
        checked["budget"] = None if budget is None else float(budget)
    if "currency" in names:
        currency = fields.get("currency")
        if not (
            isinstance(currency, str)
            and len(currency) == 3
            and currency.isupper()
            and currency.isascii()
            and currency.isalpha()
        ):
            raise invalid("currency", "an ISO 4217 code such as CNY")
        checked["currency"] = currency
    if "must_tender" in names:
        must_tender = fields.get("must_tender")
        if must_tender is not None and not isinstance(must_tender, bool):
            raise invalid("must_tender", "true, false or null")
        checked["must_tender"] = must_tender
    return checked


def parse_time(value: object, field: str, tz: ZoneInfo) -> str:
    """An RFC 3339 time with offset, re-expressed in the server's time zone."""
    if not isinstance(value, str) or len(value) > 40:
        raise invalid(field, TIME_HINT)
    if not RFC3339.fullmatch(value):
        if LOCAL_TIME.fullmatch(value):
            raise invalid(field, f"needs a time of day and a UTC offset: {TIME_HINT}")
        raise invalid(field, TIME_HINT)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:  # e.g. February 30th, 24:00, a leap second, offset +25:00
        raise invalid(field, f"not a real date and time: {TIME_HINT}") from None
    try:
        return format_time(moment.astimezone(tz))
    except OverflowError:  # e.g. 9999-12-31T23:59:59-12:00 is past year 9999 here
        raise invalid(field, "a time between the years 1 and 9999") from None


def format_time(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")


def _data_shape(value: object) -> tuple[int, bool]:
    """How deeply objects and arrays nest (iterative: input may nest 1,000 deep),
    and whether every key and string displays as what it holds: one pass, as
    every publication goes through it."""
    deepest, safe, stack = 0, True, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            safe = safe and TEXT_UNSAFE.search(item) is None
            continue
        if isinstance(item, dict):
            safe = safe and not any(LINE_UNSAFE.search(key) for key in item)
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in item)
    return deepest, safe


def _object(body: object, allowed: set[str]) -> dict[str, Any]:
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
    return body


def _code(value: object, field: str) -> str:
    if not isinstance(value, str) or not CODE.fullmatch(value):
        raise invalid(field, "1-64 characters of A-Z a-z 0-9 . _ -")
    return value


def _line(value: object, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise invalid(field, f"non-empty text of at most {limit} characters")
    if problem := line_problem(value.strip()):
        raise invalid(field, problem)
    return value.strip()


def _check_data_text(data: dict[str, Any]) -> None:
    """Data keys are shown as names and string values as text: both must display
    as what they hold. The error names the path, e.g. `data.bidders[2].name`."""
    stack: list[tuple[object, str]] = [(data, "data")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if problem := text_problem(item):
                raise invalid(path, problem)
        elif isinstance(item, dict):
            for key, value in item.items():
                if problem := line_problem(key):
                    raise invalid(path, f"a field name {problem}")
                stack.append((value, f"{path}.{key[:40]}"))
        elif isinstance(item, list):
            stack.extend((value, f"{path}[{i}]") for i, value in enumerate(item))


def _table(path: Path, raw: dict[str, Any], name: str) -> list[tuple[str, dict[str, Any]]]:
    table = raw.get(name)
    if not isinstance(table, dict) or not table:
        raise DomainFileError(f"{path}: [{name}.<code>] tables are missing")
    for code, entry in table.items():
        if not CODE.fullmatch(code) or not isinstance(entry, dict):
            raise DomainFileError(f"{path}: {name}.{code}: not a valid entry")
    return list(table.items())


def _stage(path: Path, code: str, entry: dict[str, Any], facts: Mapping[str, DataField]) -> Stage:
    flags = {}
    for flag in ("oversight", "record", "concludes"):
        flags[flag] = entry.get(flag, False)
        if not isinstance(flags[flag], bool):
            raise DomainFileError(f"{path}: stages.{code}.{flag}: true or false")
    fields, required = _stage_fields(path, f"stages.{code}", entry, facts, (), ())
    return Stage(
        code,
        _text(path, f"stages.{code}", entry, "zh"),
        _text(path, f"stages.{code}", entry, "en"),
        flags["oversight"],
        flags["record"],
        flags["concludes"],
        fields,
        required,
    )


def _stage_fields(
    path: Path,
    where: str,
    entry: Mapping[str, Any],
    facts: Mapping[str, DataField],
    fields: tuple[str, ...],
    required: tuple[str, ...],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """An entry's `fields` and `required` (each defaulting to what is given):
    known keys, no repeats, every required one among the fields."""
    for name in ("fields", "required"):
        keys = entry.get(name)
        if keys is None:
            continue
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise DomainFileError(f"{path}: {where}.{name}: a list of field keys")
        for key in keys:
            if key not in facts:
                raise DomainFileError(f"{path}: {where}.{name}: {key!r} is not in [fields]")
        if len(set(keys)) != len(keys):
            raise DomainFileError(f"{path}: {where}.{name}: a key is listed twice")
        if name == "fields":
            fields = tuple(keys)
        else:
            required = tuple(keys)
    missing = [key for key in required if key not in fields]
    if missing:
        raise DomainFileError(f"{path}: {where}.required: {missing[0]!r} is not in its fields")
    return fields, required


def _category_stages(
    path: Path,
    table: object,
    stages: Mapping[str, Stage],
    categories: Mapping[str, Category],
    facts: Mapping[str, DataField],
) -> dict[str, dict[str, StageUse]]:
    """Each category's stages as it uses them: its own entry where it has one,
    the stage's generic name, fields and required ones where not."""
    if not isinstance(table, dict):
        raise DomainFileError(f"{path}: category_stages: [category_stages.<category>.<stage>]")
    for code, entries in table.items():
        if code not in categories or not isinstance(entries, dict):
            raise DomainFileError(f"{path}: category_stages.{code}: not a category")
        for stage in entries:
            if stage not in categories[code].stages:
                raise DomainFileError(
                    f"{path}: category_stages.{code}.{stage}: not a stage of {code}"
                )
    uses: dict[str, dict[str, StageUse]] = {}
    for code in categories:
        uses[code] = {}
        for stage in stages.values():
            entry = table.get(code, {}).get(stage.code, {})
            where = f"category_stages.{code}.{stage.code}"
            if not isinstance(entry, dict):
                raise DomainFileError(f"{path}: {where}: not a valid entry")
            allowed = {"zh", "en", "fields", "required", "not_before"}
            unknown = sorted(set(entry) - allowed)
            if unknown:
                raise DomainFileError(f"{path}: {where}.{unknown[0]}: unknown setting")
            fields, required = _stage_fields(
                path, where, entry, facts, stage.fields, stage.required
            )
            uses[code][stage.code] = StageUse(
                code=stage.code,
                zh=_text(path, where, entry, "zh") if "zh" in entry else stage.zh,
                en=_text(path, where, entry, "en") if "en" in entry else stage.en,
                oversight=stage.oversight,
                fields=fields,
                required=required,
                not_before=_not_before(path, where, entry.get("not_before", {}), facts),
            )
    return uses


def _not_before(
    path: Path, where: str, table: object, facts: Mapping[str, DataField]
) -> Mapping[str, str]:
    if not isinstance(table, dict):
        raise DomainFileError(f'{path}: {where}.not_before: {{ <field> = "<rule>" }}')
    for key, rule in table.items():
        # A key date: the checks read its latest value from the project's key
        # dates (projects/fold.py), not from every event that may state it.
        fact = facts.get(key)
        if fact is None or fact.kind.value != "datetime" or fact.key_date is None:
            raise DomainFileError(f"{path}: {where}.not_before: {key!r} is not a key date field")
        if not isinstance(rule, str) or not CODE.fullmatch(rule):
            raise DomainFileError(f"{path}: {where}.not_before.{key}: a rule id such as x_before_y")
    return MappingProxyType(dict(table))


def _text(path: Path, where: str, entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DomainFileError(f"{path}: {where}.{key}: non-empty text required")
    return value
