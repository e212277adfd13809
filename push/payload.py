"""The push message for an event: built once per event, trimmed to one record.

One JSON shape serves every browser. A service worker reads `title`, `body`,
`url`, `tag` and `event`; Safari 18.4+ (Declarative Web Push) shows
`notification` by itself when the message carries `"web_push": 8030`. WebKit
parses `notification.navigate` as an absolute URL (no base), so the
declarative members are added only when the app's public origin is known: a
declarative message with a relative `navigate` is invalid there, while a
plain message still reaches the service worker everywhere.

Fitting (plaintext at most 3,993 bytes, never split into records; 2,744 for
Mozilla's push service, see `plaintext_limit`) removes the
least useful bytes first: the event's `body`, then its `data`, then the
displayed texts. Cuts fall between characters (and not inside an emoji
sequence), and the event copy says `"truncated": true` so the app knows to
fetch the full event by `seq`.
"""

from __future__ import annotations

import functools
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from push.crypto import MAX_PLAINTEXT
from server.core.env import check_origin

CATEGORIES_FILE = Path(__file__).resolve().parent.parent / "server" / "data" / "categories.toml"
NOTIFICATION_BODY = 120  # characters; a lock screen shows about three lines
MIN_TITLE = 12  # characters kept of the displayed title: Safari needs a non-empty one
ELLIPSIS = "…"
LANG = "zh-CN"
# Firefox on Android receives pushes through a bridge that takes about this
# much plaintext; a Mozilla endpoint does not say whether a phone is behind it.
MOZILLA_PLAINTEXT = 2744
MOZILLA_HOSTS = ("updates.push.services.mozilla.com", ".push.services.mozilla.com")


class PayloadError(ValueError):
    """Even the smallest form of the message does not fit (absurd ids or origin)."""


@functools.cache
def default_stage_names() -> Mapping[str, str]:
    """Chinese stage names from the vocabulary file, read-only."""
    raw = tomllib.loads(CATEGORIES_FILE.read_text("utf-8"))
    return {code: entry["zh"] for code, entry in raw.get("stages", {}).items()}


def plaintext_limit(endpoint: str) -> int:
    """The most plaintext bytes a push through `endpoint` may carry."""
    host = urlsplit(endpoint).hostname or ""
    if host == MOZILLA_HOSTS[0] or host.endswith(MOZILLA_HOSTS[1]):
        return MOZILLA_PLAINTEXT
    return MAX_PLAINTEXT


def build_payload(
    event: Mapping[str, Any],
    *,
    stage_names: Mapping[str, str] | None = None,
    origin: str | None = None,
    max_bytes: int = MAX_PLAINTEXT,
) -> bytes:
    """UTF-8 JSON of at most `max_bytes` bytes; `event` is not modified."""
    names = default_stage_names() if stage_names is None else stage_names
    project = str(event.get("project", ""))
    stage = str(event.get("stage", ""))
    title = f"【{names.get(stage, stage)}】{_text(event.get('title'))}"
    body = _one_line(_text(event.get("body"))) or f"项目编号 {project}"
    url = "/p/" + quote(project, safe="")
    navigate = None if origin is None else check_origin(origin) + url
    copy = dict(event)

    def render(limit: int | None = None) -> bytes:
        shown_title = title if limit is None else _cut(title, max(limit, MIN_TITLE))
        shown_body = _cut(
            body, NOTIFICATION_BODY if limit is None else min(limit, NOTIFICATION_BODY)
        )
        message: dict[str, Any] = {}
        if navigate is not None:
            message["web_push"] = 8030
            message["notification"] = {
                "title": shown_title,
                "body": shown_body,
                "navigate": navigate,
                "tag": project,
                "lang": LANG,
            }
        message.update(title=shown_title, body=shown_body, url=url, tag=project, event=copy)
        return orjson.dumps(message)

    def with_body(n: int) -> bytes:
        copy["body"] = _cut(full_body, n)
        return render()

    def with_texts(n: int) -> bytes:
        if isinstance(full_title, str):
            copy["title"] = _cut(full_title, n)
        return render(n)

    payload = render()
    if len(payload) <= max_bytes:
        return payload
    copy["truncated"] = True
    full_body = _text(event.get("body"))
    full_title = event.get("title")
    fitted = _longest(with_body, len(full_body), max_bytes) if full_body else None
    if fitted is None and copy.get("data"):
        copy["data"] = {}
        # Without the data there may be room for the body again.
        fitted = (
            _longest(with_body, len(full_body), max_bytes)
            if full_body
            else _fits(render(), max_bytes)
        )
    if fitted is None:
        longest = len(full_title) if isinstance(full_title, str) else 0
        fitted = _longest(with_texts, max(longest, len(title), NOTIFICATION_BODY), max_bytes)
    if fitted is None:
        # Last resort, for events with unexpected large fields: keep what routes it.
        kept: dict[str, Any] = {k: copy[k] for k in ("seq", "project", "stage") if k in copy}
        copy.clear()
        copy.update(kept, truncated=True)
        fitted = render(0)
    if len(fitted) > max_bytes:
        raise PayloadError(f"event {event.get('seq')} cannot be made to fit {max_bytes} bytes")
    return fitted


def _fits(payload: bytes, max_bytes: int) -> bytes | None:
    return payload if len(payload) <= max_bytes else None


def _longest(attempt: Callable[[int], bytes], most: int, max_bytes: int) -> bytes | None:
    """The payload for the largest n in [0, most] that fits; None if even 0 does not."""
    best = attempt(0)
    if len(best) > max_bytes:
        return None
    low, high = 0, most  # invariant: attempt(low) fits
    while low < high:
        middle = (low + high + 1) // 2
        if len(attempt(middle)) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    return attempt(low)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters, ending in … if cut, never inside a character cluster."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    end = limit - 1
    while end > 0 and (_joins_previous(text[end]) or text[end - 1] == "\u200d"):
        end -= 1
    if end > 0 and _regional(text[end]) and _regional_run(text, end) % 2:
        end -= 1  # keep both halves of a flag together
    return text[:end] + ELLIPSIS


def _joins_previous(char: str) -> bool:
    """Combining marks, variation selectors, joiners, skin tones and emoji tags
    belong to the character before them."""
    return (
        char == "\u200d"
        or unicodedata.category(char) in ("Mn", "Mc", "Me")
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or "\U000e0020" <= char <= "\U000e007f"
    )


def _regional(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def _regional_run(text: str, end: int) -> int:
    count = 0
    while end - count > 0 and _regional(text[end - count - 1]):
        count += 1
    return count
