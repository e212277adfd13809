"""The statutory time limits as data (`data/rules.toml`), checked at start-up.

A rule joins two moments of a project, `trigger` and `target`, each written
as a reference:

- `award`                  the publication of the project's `award` event;
- `contract.data.signed_at` the time in that event's `data.signed_at`;
- `*.occurred_at` / `*`    for rules on every event: its `occurred_at` (when
                           the fact arose) and its own publication.

A period that starts at a stage's publication may be `anchor`ed instead at
that event's `occurred_at`: the real-world moment staff record (the report
received, the award notice sent, the complaint accepted). The law counts
from that moment, and a late publication must not lengthen the period. An
event without `occurred_at` falls back to its publication.

`due_within`: the target must come within `amount` after the trigger (the
watchdog warns before the deadline and reports a breach when it passes).
`at_least`: the target must not come earlier than `amount` after the trigger
(checked when the target is known). Counting is the calendar's business.

A rule may apply only where some facts hold (`applies_when`): a statute that
binds only tenders the law requires (依法必须招标), one procurement method, or
administrative organs (行政机关). The facts are the project's own, as its log
states them (`PROJECT_FACTS`: the latest value the stages that state a fact
carry: the registration and amendments for must_tender, the notice for the
method …), or its agency's, from the directory (`AGENCY_FACTS`). An unknown
project fact holds nothing: the rule does not apply until staff record it.
An agency the directory gives no kind is held to the rule: the directory
names the agencies a rule does not bind, and a missed deadline costs more
than a warning a supervisor sets aside.

A rule may be `advisory`: local practice or policy, not law. Its warnings
reach supervisors like any other, but the public scorecard counts it apart.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from server.compliance.calendar import Unit
from server.core.datafile import DataFileError, Entry, entries, read_toml
from server.domain import Domain

RULES_FILE = Path(__file__).parent.parent / "data" / "rules.toml"
ALL = "all"  # the category of rules that apply in every category
ANY = "*"  # the stage of rules that apply to every event
MAX_AMOUNT = 3650
RULE_ID = re.compile(r"(?P<category>[a-z][a-z0-9_]*)\.[a-z0-9]+(?:-[a-z0-9]+)*")
REFERENCE = re.compile(
    r"(?P<stage>\*|[a-z][a-z0-9_]*)(?:\.(?P<field>occurred_at|data\.[a-z][a-z0-9_]*))?"
)
FIELDS = ("id", "name", "category", "trigger", "target", "kind", "amount", "unit", "basis")
OPTIONAL = (
    "anchor",
    "name_en",
    "basis_en",
    "applies_when",
    "advisory",
    "after_period",
    "if_stated",
)
# The facts `applies_when` may name: the kind of value each takes and, for a
# project's, the stages whose data state it (an evaluation's `method` is its
# evaluation method, not the procurement method a notice states).
PROJECT_FACTS: dict[str, tuple[type, tuple[str, ...]]] = {
    "must_tender": (bool, ("registered", "amended")),  # 依法必须招标
    "method": (str, ("notice",)),  # 招标/采购方式: 公开招标, 邀请招标, 竞争性谈判 …
    "deal": (str, ("notice",)),  # 国有产权: 产权转让, 增资, 资产转让
    "control_transfer": (bool, ("plan",)),  # 国有产权: the transfer moves control
}
AGENCY_FACTS: dict[str, type] = {
    "agency_kind": str,  # 行政机关, 事业单位, 企业 …: directory.toml
}


class RuleFileError(DataFileError):
    """`rules.toml` is malformed; the message names file, entry and field."""


class Kind(StrEnum):
    DUE_WITHIN = "due_within"
    AT_LEAST = "at_least"


class Anchor(StrEnum):
    """Where a period that starts at a stage's event is counted from."""

    PUBLISHED = "published"  # the event's publication
    OCCURRED = "occurred"  # its occurred_at (the publication where absent)


class Confidence(StrEnum):
    STATUTE = "statute"  # ✔ read in the statute's text
    SECONDARY = "secondary"  # ◐ a local or secondary source
    MEMORY = "memory"  # ○ from memory: to be checked


@dataclass(frozen=True)
class Ref:
    """A moment of a project: a stage's publication, its `occurred_at`, or a data field."""

    stage: str  # a stage code, or "*": the event the rule is looking at
    field: str = "published_at"  # or "occurred_at", or "data.<name>"

    @functools.cached_property  # read for every event at start-up
    def data_key(self) -> str | None:
        return self.field.removeprefix("data.") if self.field.startswith("data.") else None

    def __str__(self) -> str:
        return self.stage if self.field == "published_at" else f"{self.stage}.{self.field}"


@dataclass(frozen=True)
class Rule:
    id: str
    name: str  # short Chinese label for display
    category: str  # a category code, or "all"
    trigger: Ref
    target: Ref
    kind: Kind
    amount: int
    unit: Unit
    basis: str
    confidence: Confidence
    # None where the trigger names its own moment (a data time, *.occurred_at).
    anchor: Anchor | None = None
    name_en: str = ""  # the label in English (the Chinese one where the file has none)
    basis_en: str = ""  # the basis in English (likewise)
    # (fact, the values that make the rule apply) pairs, all of which must hold.
    applies_when: tuple[tuple[str, frozenset[Any]], ...] = ()
    advisory: bool = False  # local practice or policy, not law: counted apart
    # at_least: the target comes only once the period is over (a publicity's
    # whole term before the next step), not on its last day.
    after_period: bool = False
    # Checked only where the events state the data times it reads: a time an
    # announcement need not carry is no gap to warn about (no data_incomplete).
    if_stated: bool = False

    @functools.cached_property  # read for every event at start-up
    def start(self) -> Ref:
        """The moment the period is counted from: the trigger, moved to its
        event's occurred_at where the rule is anchored there."""
        if self.anchor is Anchor.OCCURRED:
            return Ref(self.trigger.stage, "occurred_at")
        return self.trigger

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "category": self.category,
            "trigger": str(self.trigger),
            "target": str(self.target),
            "kind": str(self.kind),
            "amount": self.amount,
            "unit": str(self.unit),
            "basis": self.basis,
            "basis_en": self.basis_en,
            "name_en": self.name_en,
            "confidence": str(self.confidence),
            "anchor": None if self.anchor is None else str(self.anchor),
            "applies_when": self.conditions(),
            "advisory": self.advisory,
            "after_period": self.after_period,
            "if_stated": self.if_stated,
        }

    def conditions(self) -> dict[str, Any] | None:
        """`applies_when` as the rules file writes it: one value, or a list of them."""
        if not self.applies_when:
            return None
        return {
            fact: next(iter(values)) if len(values) == 1 else sorted(values)
            for fact, values in self.applies_when
        }


@dataclass(frozen=True)
class Threshold:
    zh: str  # 施工, 货物, 服务
    en: str
    amount: int  # yuan: the estimated value of one contract from which tendering is required


@dataclass(frozen=True)
class MustTender:
    """What makes a project one the law requires to be tendered (依法必须招标):
    the values of 必须招标的工程项目规定, shown to staff who record must_tender.
    Scope and funding decide too, so the watchdog never infers the fact from
    a budget: staff state it."""

    basis: str
    basis_en: str
    thresholds: tuple[Threshold, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "basis": self.basis,
            "basis_en": self.basis_en,
            "thresholds": [{"zh": t.zh, "en": t.en, "amount": t.amount} for t in self.thresholds],
        }


class Rules:
    """All rules, with the two lookups the watchdog needs already resolved for
    `all` and `*`: what an event starts, and what an event answers."""

    def __init__(
        self, rules: Iterable[Rule], domain: Domain, must_tender: MustTender | None = None
    ) -> None:
        self.must_tender = must_tender
        self._rules = {rule.id: rule for rule in rules}
        starts: dict[tuple[str, str], list[Rule]] = {}
        answers: dict[tuple[str, str], list[Rule]] = {}
        for code, category in domain.categories.items():
            for stage in sorted(category.stages):
                key = (code, stage)
                for rule in self._rules.values():
                    if rule.category in (code, ALL):
                        if rule.trigger.stage in (stage, ANY):
                            starts.setdefault(key, []).append(rule)
                        if rule.target.stage in (stage, ANY):
                            answers.setdefault(key, []).append(rule)
        self._starts = {key: tuple(found) for key, found in starts.items()}
        self._answers = {key: tuple(found) for key, found in answers.items()}

    @classmethod
    def load(cls, path: Path = RULES_FILE, domain: Domain | None = None) -> Rules:
        domain = domain or Domain.load()
        # [[response]]: the answer windows of the public's cases (server/respond/rules.py).
        raw = read_toml(path, RuleFileError, ("rule", "must_tender", "response"))
        rules: dict[str, Rule] = {}
        for entry in entries(path, raw, "rule", "id", RuleFileError):
            rule = _rule(entry, domain)
            if rule.id in rules:
                raise entry.fail("id", f"{rule.id!r} is used by an earlier rule")
            rules[rule.id] = rule
        if not rules:
            raise RuleFileError(f"{path}: rule: no [[rule]] entries")
        return cls(rules.values(), domain, _must_tender(path, raw.get("must_tender")))

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules.values())

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def __getitem__(self, rule_id: str) -> Rule:
        return self._rules[rule_id]

    def triggered_by(self, category: str, stage: str) -> tuple[Rule, ...]:
        """Rules whose period an event of this stage starts (or may start)."""
        return self._starts.get((category, stage), ())

    def targeting(self, category: str, stage: str) -> tuple[Rule, ...]:
        """Rules an event of this stage answers (or is measured by)."""
        return self._answers.get((category, stage), ())

    def to_json(self) -> list[dict[str, Any]]:
        """The `rules` of `GET /api/catalog`."""
        return [rule.to_json() for rule in self._rules.values()]


def _must_tender(path: Path, raw: Any) -> MustTender | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RuleFileError(f"{path}: must_tender: a table of basis, basis_en and [[threshold]]")
    table = Entry(path, "must_tender", raw, RuleFileError)
    table.check_keys(("basis", "threshold"), ("basis_en",))
    thresholds = []
    for entry in entries(path, raw, "threshold", "zh", RuleFileError):
        entry.check_keys(("zh", "en", "amount"))
        thresholds.append(
            Threshold(entry.text("zh"), entry.text("en"), entry.whole("amount", 1, 10**12))
        )
    if not thresholds:
        raise table.fail("threshold", "at least one [[must_tender.threshold]]")
    basis = table.text("basis")
    return MustTender(
        basis, table.text("basis_en") if "basis_en" in raw else basis, tuple(thresholds)
    )


def _rule(entry: Entry, domain: Domain) -> Rule:
    entry.check_keys((*FIELDS, "confidence"), OPTIONAL)
    rule_id = entry.text("id")
    match = RULE_ID.fullmatch(rule_id)
    if not match:
        raise entry.fail("id", f"a slug such as construction.award-contract; not {rule_id!r}")
    category = entry.text("category")
    if category != ALL and category not in domain.categories:
        raise entry.fail("category", f"one of {ALL}, {', '.join(domain.categories)}")
    if match["category"] != category:
        raise entry.fail("id", f"should start with its category: {category}.…")
    trigger = _reference(entry, "trigger", category, domain)
    target = _reference(entry, "target", category, domain)
    if (trigger.stage == ANY) != (target.stage == ANY):
        raise entry.fail("target", "a rule on every event (*) uses * on both sides")
    if trigger == target:
        raise entry.fail("target", "the same moment as trigger")
    return Rule(
        id=rule_id,
        name=entry.text("name"),
        category=category,
        trigger=trigger,
        target=target,
        kind=Kind(entry.choice("kind", list(Kind))),
        amount=entry.whole("amount", 1, MAX_AMOUNT),
        unit=Unit(entry.choice("unit", list(Unit))),
        basis=entry.text("basis"),
        confidence=Confidence(entry.choice("confidence", list(Confidence))),
        anchor=_anchor(entry, trigger),
        name_en=entry.text("name_en") if "name_en" in entry.raw else entry.text("name"),
        basis_en=entry.text("basis_en") if "basis_en" in entry.raw else entry.text("basis"),
        applies_when=_conditions(entry),
        advisory=_flag(entry, "advisory"),
        after_period=_after_period(entry),
        if_stated=_if_stated(entry, trigger, target),
    )


def _if_stated(entry: Entry, trigger: Ref, target: Ref) -> bool:
    stated = _flag(entry, "if_stated")
    if stated and trigger.data_key is None and target.data_key is None:
        raise entry.fail("if_stated", "only for a rule that reads a time in an event's data")
    return stated


def _after_period(entry: Entry) -> bool:
    after = _flag(entry, "after_period")
    if after and entry.raw.get("kind") != Kind.AT_LEAST:
        raise entry.fail("after_period", "only for an at_least rule")
    return after


def _conditions(entry: Entry) -> tuple[tuple[str, frozenset[Any]], ...]:
    """`applies_when = { fact = value or [values] }`, each fact one of the known
    ones and each value of its kind."""
    raw = entry.raw.get("applies_when")
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        raise entry.fail("applies_when", "a table of facts, e.g. { must_tender = true }")
    known = {**{fact: kind for fact, (kind, _) in PROJECT_FACTS.items()}, **AGENCY_FACTS}
    conditions = []
    for fact, value in raw.items():
        kind = known.get(fact)
        if kind is None:
            raise entry.fail("applies_when", f"{fact!r}: one of {', '.join(sorted(known))}")
        values = value if isinstance(value, list) and kind is str else [value]
        if not values or not all(type(v) is kind and v != "" for v in values):
            what = "true or false" if kind is bool else "a text or a list of texts"
            raise entry.fail("applies_when", f"{fact}: {what}")
        conditions.append((fact, frozenset(values)))
    return tuple(conditions)


def _flag(entry: Entry, field: str) -> bool:
    value = entry.raw.get(field, False)
    if not isinstance(value, bool):
        raise entry.fail(field, "true or false")
    return value


def _anchor(entry: Entry, trigger: Ref) -> Anchor | None:
    """`published` unless stated; only for a trigger that is a stage's publication."""
    if trigger.field != "published_at" or trigger.stage == ANY:
        if "anchor" in entry.raw:
            raise entry.fail("anchor", f"only for a stage's event; {trigger} names its own moment")
        return None
    if "anchor" not in entry.raw:
        return Anchor.PUBLISHED
    return Anchor(entry.choice("anchor", list(Anchor)))


def _reference(entry: Entry, field: str, category: str, domain: Domain) -> Ref:
    text = entry.text(field)
    match = REFERENCE.fullmatch(text)
    if not match:
        raise entry.fail(field, f"a stage, stage.data.<name> or stage.occurred_at; not {text!r}")
    stage = match["stage"]
    if stage == ANY:
        if category != ALL:
            raise entry.fail(field, f"* (every event) is only for category {ALL}")
    elif category == ALL:
        if not all(stage in c.stages for c in domain.categories.values()):
            raise entry.fail(field, f"{stage!r} is not a stage of every category")
    elif stage not in domain.categories[category].stages:
        allowed = ", ".join(sorted(domain.categories[category].stages))
        raise entry.fail(field, f"{stage!r} is not a {category} stage ({allowed})")
    return Ref(stage, match["field"] or "published_at")
