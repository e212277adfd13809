"""The facts stages carry (`[fields.<key>]` of data/categories.toml), and their values.

Each data key an event may hold has a label, a kind and, where it has one, a
unit; some are dates that matter to bidders (`key_date`), one per trade ends
the bidding window (`closes`). Publishing checks a known key's value by its
kind; keys the table does not know are accepted as they are (the app shows
them with their raw key).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

from server.core.errors import invalid
from server.core.topics import CODE

# A figure as staff wrote it in the notice: digits, an optional fraction, a
# Chinese money unit. Kept as written (1285万元 stays 1285万元, not 12850000.0).
AMOUNT_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?(元|万元|亿元)")
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_SEQ = 2**63


class Kind(StrEnum):
    DATETIME = "datetime"  # RFC 3339 with offset
    DATE = "date"  # YYYY-MM-DD
    AMOUNT = "amount"  # money in yuan: a number, or text such as "1285万元"
    NUMBER = "number"
    INTEGER = "integer"
    PERCENT = "percent"  # a fraction: 0.12 is 12 %
    TEXT = "text"
    BOOLEAN = "boolean"
    LIST = "list"
    EVENT = "event"  # the seq of an earlier event of the same project


@dataclass(frozen=True)
class DataField:
    key: str
    zh: str
    en: str
    kind: Kind
    unit: tuple[str, str] | None = None
    key_date: tuple[str, str] | None = None
    closes: bool = False
    # The value has the kind of the field another key names (a correction's
    # `was` and `now` have the kind of its `field`).
    value_of: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "zh": self.zh,
            "en": self.en,
            "kind": str(self.kind),
            "unit": _pair(self.unit),
            "key_date": _pair(self.key_date),
            "closes": self.closes,
        }


def load_facts(path: Path, table: object, fail: type[ValueError]) -> dict[str, DataField]:
    """`[fields.<key>]` validated; a mistake names the entry and what is wrong."""
    if not isinstance(table, dict) or not table:
        raise fail(f"{path}: [fields.<key>] tables are missing")
    facts: dict[str, DataField] = {}
    for key, entry in table.items():
        where = f"{path}: fields.{key}"
        if not CODE.fullmatch(key) or not isinstance(entry, dict):
            raise fail(f"{where}: not a valid entry")
        allowed = {"zh", "en", "kind", "unit", "key_date", "closes", "value_of"}
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise fail(f"{where}.{unknown[0]}: unknown setting (use {', '.join(sorted(allowed))})")
        kind = entry.get("kind")
        if kind not in list(Kind):
            raise fail(f"{where}.kind: one of {', '.join(Kind)}")
        closes = entry.get("closes", False)
        if not isinstance(closes, bool):
            raise fail(f"{where}.closes: true or false")
        value_of = entry.get("value_of")
        if value_of is not None and value_of not in table:
            raise fail(f"{where}.value_of: {value_of!r} is not a field")
        if closes and kind != Kind.DATETIME:
            raise fail(f"{where}.closes: only a datetime field closes the bidding window")
        facts[key] = DataField(
            key,
            _name(where, entry.get("zh"), "zh", fail),
            _name(where, entry.get("en"), "en", fail),
            Kind(kind),
            _names(where, entry, "unit", fail),
            _names(where, entry, "key_date", fail),
            closes,
            value_of,
        )
        if facts[key].key_date is not None and kind not in (Kind.DATETIME, Kind.DATE):
            raise fail(f"{where}.key_date: only for a datetime or date field")
    return facts


def check_values(data: Mapping[str, Any], facts: Mapping[str, DataField], time: Any) -> None:
    """Each known key's value by its kind (422 naming `data.<key>`); null and
    unknown keys pass. `time(value, field)` checks an RFC 3339 time.

    An `event` value is checked here for its shape only: whether it is an
    earlier event of the same project is the log's to say (projects/checks.py).
    """
    for key, value in data.items():
        fact = facts.get(key)
        if fact is None or value is None:
            continue
        kind = fact.kind
        if fact.value_of is not None:
            named = facts.get(str(data.get(fact.value_of)))
            if named is None or named.value_of is not None:
                continue  # a value of a field the table does not know: as it is
            kind = named.kind
        _check(kind, value, f"data.{key}", time)


def _check(kind: Kind, value: object, field: str, time: Any) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is Kind.DATETIME:
        time(value, field)
    elif kind is Kind.DATE:
        if not isinstance(value, str) or not DATE.fullmatch(value) or not _real_date(value):
            raise invalid(field, "a date such as 2026-12-01")
    elif kind is Kind.AMOUNT:
        written = isinstance(value, str) and AMOUNT_TEXT.fullmatch(value) is not None
        if not written and not (number and math.isfinite(value) and value >= 0):  # type: ignore[arg-type,operator]
            raise invalid(field, "an amount in yuan: a non-negative number, or text like 1285万元")
    elif kind in (Kind.NUMBER, Kind.PERCENT):
        if not number or not math.isfinite(value):  # type: ignore[arg-type]
            what = "a number" if kind is Kind.NUMBER else "a fraction (0.12 for 12%)"
            raise invalid(field, what)
    elif kind is Kind.INTEGER:
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) >= MAX_SEQ:
            raise invalid(field, "a whole number")
    elif kind is Kind.TEXT:
        if not isinstance(value, str):
            raise invalid(field, "text")
    elif kind is Kind.BOOLEAN:
        if not isinstance(value, bool):
            raise invalid(field, "true or false")
    elif kind is Kind.LIST:
        if not isinstance(value, list):
            raise invalid(field, "a list")
    elif kind is Kind.EVENT and not (
        isinstance(value, int) and not isinstance(value, bool) and 1 <= value < MAX_SEQ
    ):
        raise invalid(field, "the seq of an earlier event of this project")


def _real_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _pair(names: tuple[str, str] | None) -> dict[str, str] | None:
    return None if names is None else {"zh": names[0], "en": names[1]}


def _names(
    where: str, entry: Mapping[str, Any], key: str, fail: type[ValueError]
) -> tuple[str, str] | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"zh", "en"}:
        raise fail(f'{where}.{key}: {{ zh = "…", en = "…" }}')
    return (
        _name(f"{where}.{key}", value["zh"], "zh", fail),
        _name(f"{where}.{key}", value["en"], "en", fail),
    )


def _name(where: str, value: object, key: str, fail: type[ValueError]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(f"{where}.{key}: non-empty text required")
    return value
