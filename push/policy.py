"""Push headers per stage: `TTL`, `Urgency` and a per-project `Topic`.

The values live in `policy.toml` beside this module so staff can change them;
docs/push.md tables what ships and why, and a test keeps the two in step.

A TTL is how long the push service keeps a message for a device that is
offline; after it the message is dropped and the app's timeline is the only
record. It is never 0 (which means "only if reachable this instant") and at
most 2,419,200 s, FCM's cap. A bidder's phone may be off over a weekend or a
holiday, so anything that starts a legal period lives at least as long as it.

`Topic` is the same for every message about one project, so a push service
holding an undelivered message replaces it with the newer stage instead of
delivering both when the device comes back.
"""

from __future__ import annotations

import base64
import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLICY_FILE = Path(__file__).parent / "policy.toml"
URGENCIES = ("very-low", "low", "normal", "high")
MIN_TTL = 60  # anything shorter is almost certainly a unit mistake
MAX_TTL = 2_419_200  # 4 weeks: FCM's cap, and what other services accept


class PolicyFileError(ValueError):
    """policy.toml is malformed; the message names file, entry and field."""


@dataclass(frozen=True)
class StagePolicy:
    ttl: int
    urgency: str


@dataclass(frozen=True)
class PushPolicy:
    stages: Mapping[str, StagePolicy]
    default: StagePolicy
    warning: StagePolicy

    @classmethod
    def load(cls, path: Path = POLICY_FILE) -> PushPolicy:
        try:
            raw = tomllib.loads(path.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PolicyFileError(f"{path}: {exc}") from exc
        unknown = sorted(set(raw) - {"default", "warning", "stages"})
        if unknown:
            raise PolicyFileError(
                f"{path}: unknown table [{unknown[0]}]: use [default], [warning], [stages.<code>]"
            )
        stages = raw.get("stages", {})
        if not isinstance(stages, dict):
            raise PolicyFileError(f"{path}: stages: use [stages.<code>] tables")
        return cls(
            stages={code: _entry(path, f"stages.{code}", e) for code, e in stages.items()},
            default=_entry(path, "default", raw.get("default")),
            warning=_entry(path, "warning", raw.get("warning")),
        )

    def for_stage(self, stage: str) -> StagePolicy:
        return self.stages.get(stage, self.default)

    def headers(self, stage: str, project: str) -> dict[str, str]:
        """`TTL`, `Urgency` and `Topic` for an event, as strings (HTTP header values)."""
        return _headers(self.for_stage(stage), project)

    def warning_headers(self, key: str) -> dict[str, str]:
        """For a compliance warning; `key` should be the warning's own id, so a
        warning never replaces a pending event push about the same project."""
        return _headers(self.warning, "warning:" + key)


def topic_for(key: str) -> str:
    """A stable 32-character base64url `Topic` for a project id (or any key).

    Hashed because project ids may contain `.` (not in the Topic alphabet) and
    be up to 64 characters; 24 bytes of SHA-256 make collisions irrelevant.
    """
    digest = hashlib.sha256(key.encode("utf-8")).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def _headers(policy: StagePolicy, topic_key: str) -> dict[str, str]:
    return {"TTL": str(policy.ttl), "Urgency": policy.urgency, "Topic": topic_for(topic_key)}


def _entry(path: Path, where: str, entry: Any) -> StagePolicy:
    if not isinstance(entry, dict):
        raise PolicyFileError(f"{path}: [{where}] is missing or not a table")
    unknown = sorted(set(entry) - {"ttl", "urgency"})
    if unknown:
        raise PolicyFileError(f"{path}: {where}.{unknown[0]}: unknown field (ttl, urgency)")
    ttl = entry.get("ttl")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL <= ttl <= MAX_TTL:
        raise PolicyFileError(
            f"{path}: {where}.ttl: whole seconds from {MIN_TTL} to {MAX_TTL}, got {ttl!r}"
        )
    urgency = entry.get("urgency")
    if urgency not in URGENCIES:
        raise PolicyFileError(
            f"{path}: {where}.urgency: one of {', '.join(URGENCIES)}, got {urgency!r}"
        )
    return StagePolicy(ttl=ttl, urgency=urgency)
