"""Reading the staff-editable TOML files, with errors that name file, entry and field.

Each loader reads its file with `read_toml`, walks the `[[…]]` entries with
`entries`, and takes each field through an `Entry`, so that every mistake
reads `<file>: <entry>: <field>: <what is expected>`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Iterator
from datetime import date
from pathlib import Path
from typing import Any


class DataFileError(ValueError):
    """A data file is malformed; the message names file, entry and field."""


def read_toml(path: Path, error: type[DataFileError], keys: Collection[str]) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{path}: {exc}") from exc
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        expected = ", ".join(sorted(keys))
        raise error(f"{path}: {unknown[0]}: unknown key (this file has: {expected})")
    return raw


def entries(
    path: Path, raw: dict[str, Any], table: str, key: str, error: type[DataFileError]
) -> Iterator[Entry]:
    """The `[[table]]` entries, each named in errors by its number (from 1) and,
    when it has one, its `key`: `rule #4 'construction.award-contract'`."""
    items = raw.get(table, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise error(f"{path}: {table}: write each entry as a [[{table}]] table")
    for number, item in enumerate(items, start=1):
        name = f"{table} #{number}"
        if isinstance(item.get(key), str) and item[key].strip():
            name += f" {item[key].strip()!r}"
        yield Entry(path, name, item, error)


class Entry:
    """One entry of a data file; every accessor raises an error naming the field."""

    def __init__(
        self, path: Path, name: str, raw: dict[str, Any], error: type[DataFileError]
    ) -> None:
        self.path = path
        self.name = name
        self.raw = raw
        self.error = error

    def fail(self, field: str, problem: str) -> DataFileError:
        return self.error(f"{self.path}: {self.name}: {field}: {problem}")

    def check_keys(self, required: Collection[str], optional: Collection[str] = ()) -> None:
        unknown = sorted(set(self.raw) - set(required) - set(optional))
        if unknown:
            fields = ", ".join(sorted({*required, *optional}))
            raise self.fail(unknown[0], f"unknown field (fields: {fields})")
        for key in required:
            if key not in self.raw:
                raise self.fail(key, "missing")

    def text(self, field: str) -> str:
        value = self.raw.get(field)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, "non-empty text required")
        return value.strip()

    def texts(self, field: str, low: int = 0, high: int = 1000) -> tuple[str, ...]:
        value = self.raw.get(field, [])
        if (
            not isinstance(value, list)
            or not low <= len(value) <= high
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            count = f"{low} to {high}" if high < 1000 else f"at least {low}"
            raise self.fail(field, f"a list of {count} non-empty texts")
        return tuple(v.strip() for v in value)

    def choice(self, field: str, options: Collection[str]) -> str:
        value = self.raw.get(field)
        if value not in options:
            raise self.fail(field, f"one of {', '.join(options)}; not {value!r}")
        return str(value)

    def whole(self, field: str, low: int, high: int) -> int:
        value = self.raw.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(field, f"a whole number from {low} to {high}; not {value!r}")
        return value

    def day(self, field: str) -> date:
        value = self.raw.get(field)
        if type(value) is not date:  # a TOML datetime is a date subclass: refuse it too
            raise self.fail(field, f"a date such as 2027-01-01; not {value!r}")
        return value

    def days(self, field: str) -> tuple[date, ...]:
        value = self.raw.get(field, [])
        if not isinstance(value, list) or not all(type(v) is date for v in value):
            raise self.fail(field, "a list of dates such as [2027-02-06, 2027-02-20]")
        return tuple(value)
