"""The small conversions every OCDS release needs: money, times, counts, names.

An event's `data` was checked when it was published (server/facts.py), but
the log also holds events from before a fact's kind was known, and keys the
vocabulary does not list: so each value is taken only when it has the shape
its OCDS field needs, and left out otherwise. A release the schema refuses
would be worse than one missing a figure.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from server.domain import RFC3339
from server.facts import AMOUNT_TEXT

CURRENCY = "CNY"  # every amount in an event's data is in yuan (categories.toml)
# 1285万元 is 12,850,000 yuan: the Chinese units of money staff may write.
MONEY_UNITS = {"元": 1, "万元": 10_000, "亿元": 100_000_000}


def amount(value: object) -> int | float | None:
    """Yuan as a number: a non-negative number as it is, text such as
    "1285万元" in yuan; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return value if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str) and AMOUNT_TEXT.fullmatch(value):
        for unit, factor in sorted(MONEY_UNITS.items(), key=lambda u: -len(u[0])):
            if value.endswith(unit):
                yuan = Decimal(value.removesuffix(unit)) * factor
                return int(yuan) if yuan == yuan.to_integral_value() else float(yuan)
    return None


def money(value: object, currency: str = CURRENCY) -> dict[str, Any] | None:
    """An OCDS Value, or None when `value` is no amount."""
    yuan = amount(value)
    return None if yuan is None else {"amount": yuan, "currency": currency}


def when(value: object) -> str | None:
    """An RFC 3339 time with offset, as OCDS's date-time wants it; else None."""
    if isinstance(value, str) and RFC3339.fullmatch(value):
        return value
    return None


def count(value: object) -> int | None:
    """A whole number of firms (bidders, tenderers); else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def text(value: object) -> str | None:
    """Non-empty text; else None."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def number(value: object) -> int | float | None:
    """A finite number (a quantity); else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def prune(value: Any) -> Any:
    """`value` without None, empty objects and empty lists, at any depth: OCDS
    fields are left out rather than null, so a release never erases in a
    compiled release what an earlier one said. (Written for speed: it visits
    every field of every release of a feed page.)"""
    if type(value) is dict:
        kept = {}
        for key, item in value.items():
            if item is None:
                continue
            if type(item) is dict or type(item) is list:
                item = prune(item)
                if not item:
                    continue
            kept[key] = item
        return kept
    if type(value) is list:
        items = []
        for item in value:
            if item is None:
                continue
            if type(item) is dict or type(item) is list:
                item = prune(item)
                if not item:
                    continue
            items.append(item)
        return items
    return value
