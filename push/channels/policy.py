"""When a channel beside Web Push carries an event: its stages, quiet hours,
daily cap and price, per kind, from policy.toml (data, like push's TTL and
Urgency table).

An SMS costs money and wakes people: it goes only for the stages a bidder
acts on, never between 22:00 and 07:00 unless the stage is urgent (a
clarification or correction before a deadline), and at most `daily_cap` a
day per subscriber. A message held by quiet hours is sent when they end, if
it is still worth sending then (the delivery's expiry, from push's TTL).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

POLICY_FILE = Path(__file__).parent / "policy.toml"
KINDS = ("sms", "email", "wechat")
EVERY = "*"


def local_day(now: float, timezone: ZoneInfo) -> str:
    """The local date of `now` (epoch seconds): what daily caps and usage count by."""
    return datetime.fromtimestamp(now, timezone).date().isoformat()


class ChannelPolicyError(ValueError):
    """policy.toml is malformed; the message names the entry and field."""


@dataclass(frozen=True)
class KindPolicy:
    stages: frozenset[str] | None  # None: every stage
    urgent: frozenset[str] | None  # None: every stage
    quiet: tuple[time, time] | None  # from, until (local)
    daily_cap: int
    price: float

    def carries(self, stage: str) -> bool:
        return self.stages is None or stage in self.stages

    def send_at(self, stage: str, now: datetime) -> datetime | None:
        """None: now; else when quiet hours end (for a stage that is not urgent)."""
        if self.quiet is None or self.urgent is None or stage in self.urgent:
            return None
        start, end = self.quiet
        clock = now.time()
        inside = start <= clock or clock < end if start > end else start <= clock < end
        if not inside:
            return None
        until = now.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
        return until if until > now else until + timedelta(days=1)


@dataclass(frozen=True)
class ChannelPolicy:
    kinds: Mapping[str, KindPolicy]

    @classmethod
    def load(cls, path: Path = POLICY_FILE) -> ChannelPolicy:
        try:
            raw = tomllib.loads(path.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ChannelPolicyError(f"{path}: {exc}") from exc
        unknown = sorted(set(raw) - set(KINDS))
        if unknown:
            raise ChannelPolicyError(f"{path}: unknown table [{unknown[0]}]: use {list(KINDS)}")
        return cls({kind: _kind(path, kind, raw.get(kind, {})) for kind in KINDS})

    def of(self, kind: str) -> KindPolicy:
        return self.kinds[kind]


def _kind(path: Path, kind: str, entry: Any) -> KindPolicy:
    def fail(field: str, why: str) -> ChannelPolicyError:
        return ChannelPolicyError(f"{path}: [{kind}] {field}: {why}")

    if not isinstance(entry, dict):
        raise fail("", "a table")
    extra = sorted(
        set(entry) - {"stages", "urgent", "quiet_from", "quiet_until", "daily_cap", "price"}
    )
    if extra:
        raise fail(extra[0], "unknown field")

    def stage_set(field: str) -> frozenset[str] | None:
        value = entry.get(field, EVERY)
        if value == EVERY:
            return None
        if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
            raise fail(field, 'a list of stage codes, or "*"')
        return frozenset(value)

    quiet = None
    if "quiet_from" in entry or "quiet_until" in entry:
        try:
            quiet = (
                time.fromisoformat(entry["quiet_from"]),
                time.fromisoformat(entry["quiet_until"]),
            )
        except (KeyError, TypeError, ValueError):
            raise fail("quiet_from/quiet_until", 'both, as "HH:MM"') from None
    cap = entry.get("daily_cap", 0)
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        raise fail("daily_cap", "a whole number of at least 1")
    price = entry.get("price", 0.0)
    if not isinstance(price, int | float) or isinstance(price, bool) or price < 0:
        raise fail("price", "yuan per message, 0 or more")
    return KindPolicy(stage_set("stages"), stage_set("urgent"), quiet, cap, float(price))
