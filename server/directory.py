"""The directory: agencies and regions by code, with their names.

Projects carry bare codes (`agency`, `region`); the names people read are
reference data the trading centre keeps in `data/directory.toml`. It is
checked at start-up, and a mistake names the file, entry and field. A code
missing here is not an error anywhere else: a new agency can publish before
anyone has named it, and the app shows its code until then.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from server.core.datafile import DataFileError, read_toml
from server.core.text import line_problem
from server.core.topics import CODE

DIRECTORY_FILE = Path(__file__).parent / "data" / "directory.toml"
TABLES = {"agencies": "region", "regions": "parent"}  # table → its optional link to a region


class DirectoryFileError(DataFileError):
    """The directory file is malformed; the message names file, entry and field."""


@dataclass(frozen=True)
class Place:
    """An agency (`link`: the region it serves) or a region (`link`: its parent)."""

    code: str
    zh: str
    en: str
    link: str | None
    kind: str | None = None  # an agency's: 行政机关, 事业单位, 企业 … (rules.toml's agency_kind)


@dataclass(frozen=True)
class Directory:
    agencies: dict[str, Place]
    regions: dict[str, Place]
    body: bytes  # `GET /api/directory`, encoded once
    etag: str

    @classmethod
    def load(cls, path: Path = DIRECTORY_FILE) -> Directory:
        raw = read_toml(path, DirectoryFileError, TABLES)
        agencies = _entries(path, raw, "agencies")
        regions = _entries(path, raw, "regions")
        for table, places in (("agencies", agencies), ("regions", regions)):
            field = TABLES[table]
            for place in places.values():
                if place.link is not None and place.link not in regions:
                    raise _fail(path, table, place.code, field, f"{place.link!r} is not a region")
        for region in regions.values():  # a parent chain must end
            seen = {region.code}
            parent = region.link
            while parent is not None:
                if parent in seen:
                    raise _fail(path, "regions", region.code, "parent", "regions form a loop")
                seen.add(parent)
                parent = regions[parent].link
        body = orjson.dumps(
            {
                "agencies": [
                    {"code": a.code, "zh": a.zh, "en": a.en, "region": a.link, "kind": a.kind}
                    for a in agencies.values()
                ],
                "regions": [
                    {"code": r.code, "zh": r.zh, "en": r.en, "parent": r.link}
                    for r in regions.values()
                ],
            }
        )
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return cls(agencies=agencies, regions=regions, body=body, etag=etag)


def _fail(path: Path, table: str, code: str, field: str, problem: str) -> DirectoryFileError:
    return DirectoryFileError(f"{path}: {table}.{code}.{field}: {problem}")


def _entries(path: Path, raw: dict[str, Any], table: str) -> dict[str, Place]:
    items = raw.get(table, {})
    if not isinstance(items, dict):
        raise DirectoryFileError(f"{path}: {table}: write each entry as a [{table}.<code>] table")
    link = TABLES[table]
    places = {}
    for code, entry in items.items():
        if not CODE.fullmatch(code):
            raise DirectoryFileError(
                f"{path}: {table}.{code}: not a code (1-64 characters of A-Z a-z 0-9 . _ -)"
            )
        if not isinstance(entry, dict):
            raise DirectoryFileError(f"{path}: {table}.{code}: write it as a table of zh, en …")
        allowed = {"zh", "en", link} | ({"kind"} if table == "agencies" else set())
        unknown = sorted(set(entry) - allowed)
        if unknown:
            fields = ", ".join(sorted(allowed))
            raise _fail(path, table, code, unknown[0], f"unknown field (fields: {fields})")
        names = []
        for key in ("zh", "en"):
            value = entry.get(key)
            if not isinstance(value, str) or not value.strip():
                raise _fail(path, table, code, key, "non-empty text required")
            if problem := line_problem(value.strip()):
                raise _fail(path, table, code, key, problem)
            names.append(value.strip())
        target = entry.get(link)
        if target is not None and (not isinstance(target, str) or not CODE.fullmatch(target)):
            raise _fail(path, table, code, link, "a region code")
        kind = entry.get("kind")
        if kind is not None and (not isinstance(kind, str) or not kind.strip()):
            raise _fail(path, table, code, "kind", "non-empty text, such as 行政机关")
        places[code] = Place(code, names[0], names[1], target, kind and kind.strip())
    return places
