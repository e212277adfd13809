"""Events as published: canonical form, the hash chain, and the stored shape.

An event's `hash` is SHA-256 over the previous hash (hex text) followed by the
event's canonical JSON without `hash`. The canonical form is defined by the
contract as Python's `json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`, so that is what we use here — not orjson, whose float
formatting differs in corner cases — and anyone can recompute it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS_HASH = "0" * 64

# Field order as served; the hash does not depend on it (keys are sorted).
EVENT_FIELDS = (
    "seq",
    "project",
    "category",
    "agency",
    "region",
    "stage",
    "title",
    "body",
    "data",
    "occurred_at",
    "published_at",
)


def canonical_json(event: dict[str, Any]) -> bytes:
    unhashed = {k: v for k, v in event.items() if k != "hash"}
    return json.dumps(unhashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def chain_hash(previous_hash: str, event: dict[str, Any]) -> str:
    digest = hashlib.sha256(previous_hash.encode("ascii"))
    digest.update(canonical_json(event))
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A committed event: the routing fields plus its JSON, serialized once.

    `json` is the exact bytes every client receives; frames for WebSocket and
    SSE are built from it once per event (see stream/frames.py), never per
    recipient.
    """

    seq: int
    project: str
    category: str
    agency: str
    region: str | None
    stage: str
    json: bytes

    @classmethod
    def from_dict(cls, event: dict[str, Any]) -> StoredEvent:
        return cls(
            seq=event["seq"],
            project=event["project"],
            category=event["category"],
            agency=event["agency"],
            region=event["region"],
            stage=event["stage"],
            json=orjson.dumps(event),
        )

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = orjson.loads(self.json)
        return result
