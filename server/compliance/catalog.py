"""The disclosure catalogue (公开事项标准目录) as data (`data/catalog.toml`).

Each item says what is disclosed, on what basis, by whom, where, to whom and
how fast; `stages` ties it to the events that carry it and `rules` to the
time limits the watchdog checks for it. Checked at start-up: an unknown
stage, category or rule stops the server with the file, item and field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.compliance.rules import ALL, Rules
from server.core.datafile import DataFileError, Entry, entries, read_toml
from server.core.topics import CODE
from server.domain import Domain

CATALOG_FILE = Path(__file__).parent.parent / "data" / "catalog.toml"
AUDIENCES = ("全社会", "特定对象")
MODES = ("主动", "依申请")
LEVELS = ("市", "县", "乡")
REQUIRED = (
    "code",
    "name",
    "content",
    "basis",
    "time_limit",
    "body",
    "channel",
    "audience",
    "mode",
    "level",
    "stages",
)


class CatalogFileError(DataFileError):
    """`catalog.toml` is malformed; the message names file, item and field."""


@dataclass(frozen=True)
class Item:
    code: str
    name: tuple[str, ...]  # 一级, 二级, 三级事项
    content: str  # 公开内容要素
    basis: str  # 公开依据
    basis_en: str  # the basis in English (the Chinese one where the file has none)
    time_limit: str  # 公开时限, as the catalogue words it
    rules: tuple[str, ...]  # the rules.toml ids that check that time limit
    body: str  # 公开主体
    channel: str  # 公开渠道和载体
    audience: str  # 全社会 | 特定对象
    mode: str  # 主动 | 依申请
    level: tuple[str, ...]  # 市 / 县 / 乡
    categories: tuple[str, ...]
    stages: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": list(self.name),
            "content": self.content,
            "basis": self.basis,
            "basis_en": self.basis_en,
            "time_limit": self.time_limit,
            "rules": list(self.rules),
            "body": self.body,
            "channel": self.channel,
            "audience": self.audience,
            "mode": self.mode,
            "level": list(self.level),
            "categories": list(self.categories),
            "stages": list(self.stages),
        }


class Catalog:
    def __init__(self, items: list[Item]) -> None:
        self._items = {item.code: item for item in items}

    @classmethod
    def load(
        cls, path: Path = CATALOG_FILE, domain: Domain | None = None, rules: Rules | None = None
    ) -> Catalog:
        domain = domain or Domain.load()
        rules = rules or Rules.load(domain=domain)
        raw = read_toml(path, CatalogFileError, ("item",))
        items: dict[str, Item] = {}
        for entry in entries(path, raw, "item", "code", CatalogFileError):
            item = _item(entry, domain, rules)
            if item.code in items:
                raise entry.fail("code", f"{item.code!r} is used by an earlier item")
            items[item.code] = item
        if not items:
            raise CatalogFileError(f"{path}: item: no [[item]] entries")
        return cls(list(items.values()))

    def __iter__(self) -> Iterator[Item]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, code: str) -> Item:
        return self._items[code]

    def for_stage(self, category: str, stage: str) -> list[Item]:
        """The items an event of this stage discloses."""
        return [i for i in self if category in i.categories and stage in i.stages]

    def to_json(self) -> list[dict[str, Any]]:
        """The `items` of `GET /api/catalog`."""
        return [item.to_json() for item in self]


def _item(entry: Entry, domain: Domain, rules: Rules) -> Item:
    entry.check_keys(REQUIRED, ("rules", "categories", "basis_en"))
    code = entry.text("code")
    if not CODE.fullmatch(code):
        raise entry.fail("code", f"1-64 characters of A-Z a-z 0-9 . _ -; not {code!r}")
    categories = (
        entry.texts("categories", 1) if "categories" in entry.raw else tuple(domain.categories)
    )
    _distinct(entry, "categories", categories)
    for category in categories:
        if category not in domain.categories:
            raise entry.fail("categories", f"{category!r} is not a category")
    stages = entry.texts("stages")
    _distinct(entry, "stages", stages)
    for stage in stages:
        if not any(stage in domain.categories[c].stages for c in categories):
            raise entry.fail("stages", f"{stage!r} is not a stage of {', '.join(categories)}")
    linked = entry.texts("rules")
    _distinct(entry, "rules", linked)
    for rule_id in linked:
        if rule_id not in rules:
            raise entry.fail("rules", f"{rule_id!r} is not a rule in rules.toml")
        if rules[rule_id].category not in (ALL, *categories):
            raise entry.fail(
                "rules", f"{rule_id!r} is a {rules[rule_id].category} rule, not for this item"
            )
    level = entry.texts("level", 1, len(LEVELS))
    _distinct(entry, "level", level)
    for name in level:
        if name not in LEVELS:
            raise entry.fail("level", f"each one of {', '.join(LEVELS)}; not {name!r}")
    return Item(
        code=code,
        name=entry.texts("name", 1, 3),
        content=entry.text("content"),
        basis=entry.text("basis"),
        basis_en=entry.text("basis_en") if "basis_en" in entry.raw else entry.text("basis"),
        time_limit=entry.text("time_limit"),
        rules=linked,
        body=entry.text("body"),
        channel=entry.text("channel"),
        audience=entry.choice("audience", AUDIENCES),
        mode=entry.choice("mode", MODES),
        level=level,
        categories=categories,
        stages=stages,
    )


def _distinct(entry: Entry, field: str, values: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise entry.fail(field, f"{value!r} is listed twice")
        seen.add(value)
