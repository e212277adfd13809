"""What feeds and calendars call things: the vocabulary's and the directory's
Chinese names, and the code itself where neither has one."""

from __future__ import annotations

from dataclasses import dataclass

from server.directory import Directory
from server.domain import Domain


@dataclass(frozen=True)
class Names:
    """What the calendar calls things: the vocabulary's and directory's names."""

    domain: Domain
    directory: Directory

    def category(self, code: str) -> str:
        found = self.domain.categories.get(code)
        return found.zh if found else code

    def stage(self, category: str, code: str) -> str:
        found = self.domain.categories.get(category)
        use = found.uses.get(code) if found else None
        if use is not None:
            return use.zh
        stage = self.domain.stages.get(code)
        return stage.zh if stage else code

    def agency(self, code: str) -> str:
        found = self.directory.agencies.get(code)
        return found.zh if found else code

    def region(self, code: str) -> str:
        found = self.directory.regions.get(code)
        return found.zh if found else code

    def key_date(self, key: str) -> str:
        fact = self.domain.facts.get(key)
        return fact.key_date[0] if fact and fact.key_date else key
