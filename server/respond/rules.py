"""The answer windows of the public's cases: the `[[response]]` entries of
the rules file (server/data/rules.toml), beside the stage rules.

A case takes the rule of its kind and its project's category, or the
kind's `all` rule where its category has none (a disclosure request names
no project: always `all`). The window counts like every forward period
(server/compliance/calendar.py): from the day after the case was received,
a last day that is a rest day moving to the next working day.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from server.compliance.calendar import Unit
from server.compliance.rules import ALL, MAX_AMOUNT, RULE_ID, RULES_FILE, Confidence, RuleFileError
from server.core.datafile import Entry, entries, read_toml
from server.domain import Domain

FIELDS = ("id", "name", "case", "category", "amount", "unit", "basis", "confidence")
OPTIONAL = ("name_en", "basis_en", "advisory", "extension")


class CaseKind(StrEnum):
    ENQUIRY = "enquiry"  # 咨询/询问 on a project: answered in public
    DISCLOSURE_REQUEST = "disclosure_request"  # 依申请公开: replied to the requester


# What a rule's period runs from and to, as GET /api/catalog names them.
TRIGGER = {CaseKind.ENQUIRY: "enquiry", CaseKind.DISCLOSURE_REQUEST: "disclosure_request"}
TARGET = {CaseKind.ENQUIRY: "enquiry_answer", CaseKind.DISCLOSURE_REQUEST: "disclosure_reply"}


@dataclass(frozen=True)
class ResponseRule:
    id: str
    name: str
    case: CaseKind
    category: str  # a category code, or "all"
    amount: int
    unit: Unit
    basis: str
    confidence: Confidence
    name_en: str
    basis_en: str
    advisory: bool = False  # local practice, not law: the scorecard says so
    extension: int = 0  # working days one extension adds (0: none allowed)

    def to_json(self) -> dict[str, Any]:
        """As the stage rules in GET /api/catalog, with `case` and `extension`."""
        return {
            "id": self.id,
            "name": self.name,
            "name_en": self.name_en,
            "category": self.category,
            "trigger": TRIGGER[self.case],
            "target": TARGET[self.case],
            "kind": "due_within",
            "amount": self.amount,
            "unit": str(self.unit),
            "basis": self.basis,
            "basis_en": self.basis_en,
            "confidence": str(self.confidence),
            "anchor": "received",
            "applies_when": None,
            "advisory": self.advisory,
            "after_period": False,
            "if_stated": False,
            "case": str(self.case),
            "extension": self.extension or None,
        }


class ResponseRules:
    def __init__(self, rules: Iterable[ResponseRule]) -> None:
        self._rules = {rule.id: rule for rule in rules}

    @classmethod
    def load(cls, path: Path = RULES_FILE, domain: Domain | None = None) -> ResponseRules:
        domain = domain or Domain.load()
        raw = read_toml(path, RuleFileError, ("rule", "must_tender", "response"))
        rules: dict[str, ResponseRule] = {}
        for entry in entries(path, raw, "response", "id", RuleFileError):
            rule = _rule(entry, domain)
            if rule.id in rules:
                raise entry.fail("id", f"{rule.id!r} is used by an earlier response rule")
            rules[rule.id] = rule
        found = cls(rules.values())
        for kind in CaseKind:
            if not any(r.case is kind and r.category == ALL for r in rules.values()):
                raise RuleFileError(f"{path}: response: no rule for {kind} in category {ALL!r}")
        return found

    def __iter__(self) -> Iterator[ResponseRule]:
        return iter(self._rules.values())

    def __getitem__(self, rule_id: str) -> ResponseRule:
        return self._rules[rule_id]

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    def for_case(self, kind: CaseKind, category: str | None) -> ResponseRule:
        """The category's own rule for this kind of case, else the kind's `all` rule."""
        fallback = None
        for rule in self._rules.values():
            if rule.case is kind:
                if category is not None and rule.category == category:
                    return rule
                if rule.category == ALL:
                    fallback = rule
        assert fallback is not None, "load() checks every kind has an `all` rule"
        return fallback

    def to_json(self) -> list[dict[str, Any]]:
        return [rule.to_json() for rule in self._rules.values()]


def _rule(entry: Entry, domain: Domain) -> ResponseRule:
    entry.check_keys(FIELDS, OPTIONAL)
    rule_id = entry.text("id")
    match = RULE_ID.fullmatch(rule_id)
    if not match:
        raise entry.fail("id", f"a slug such as all.enquiry-answer; not {rule_id!r}")
    category = entry.text("category")
    if category != ALL and category not in domain.categories:
        raise entry.fail("category", f"one of {ALL}, {', '.join(domain.categories)}")
    if match["category"] != category:
        raise entry.fail("id", f"should start with its category: {category}.…")
    case = CaseKind(entry.choice("case", list(CaseKind)))
    if case is CaseKind.DISCLOSURE_REQUEST and category != ALL:
        raise entry.fail("category", f"a disclosure request names no project: {ALL}")
    advisory = entry.raw.get("advisory", False)
    if not isinstance(advisory, bool):
        raise entry.fail("advisory", "true or false")
    extension = entry.whole("extension", 1, MAX_AMOUNT) if "extension" in entry.raw else 0
    if extension and case is not CaseKind.DISCLOSURE_REQUEST:
        raise entry.fail("extension", "only a disclosure request's period may be extended")
    name = entry.text("name")
    basis = entry.text("basis")
    return ResponseRule(
        id=rule_id,
        name=name,
        case=case,
        category=category,
        amount=entry.whole("amount", 1, MAX_AMOUNT),
        unit=Unit(entry.choice("unit", list(Unit))),
        basis=basis,
        confidence=Confidence(entry.choice("confidence", list(Confidence))),
        name_en=entry.text("name_en") if "name_en" in entry.raw else name,
        basis_en=entry.text("basis_en") if "basis_en" in entry.raw else basis,
        advisory=advisory,
        extension=extension,
    )
