"""Whole numbers and seqs in what a client sends (query strings, paths, headers).

Every number a client writes is checked here before `int()` sees it: Python
refuses to convert more than 4,300 digits (a ValueError far from any handler
that expects it), SQLite refuses integers of 2^63 and more, and `int()` also
takes `١٢٣`, ` 7`, `+7` and `1_000`, none of which a client should rely on.
"""

from __future__ import annotations

MAX_SEQ = 2**63 - 1  # SQLite's largest integer
MAX_DIGITS = len(str(MAX_SEQ))  # no range asked for here goes beyond it


def whole_number(raw: str, low: int, high: int) -> int | None:
    """`raw` as an int from `low` to `high` (both ≥ 0) if it is plain ASCII digits; else None."""
    if not (raw.isascii() and raw.isdigit()):
        return None
    if len(raw) > MAX_DIGITS:
        raw = raw.lstrip("0") or "0"
        if len(raw) > MAX_DIGITS:  # out of any range here: never handed to int()
            return None
    value = int(raw)
    return value if low <= value <= high else None
