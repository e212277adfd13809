"""Share cards: the app shell's title, description and Open Graph tags for a page.

A link pasted into a chat (WeChat and others) is shown from the shell's
`<title>`, `<meta name="description">` and `og:*` tags, read by a crawler
that runs no script. `pwa/index.html` holds the app's own values; for a
project's page (`/p/{id}`) they are replaced with the project's, and the
image and page URLs are made absolute (with the public origin setting, or
the origin the request came to). Every value is HTML-escaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.domain import Domain

SITE = "阳光交易"
MAX_DESCRIPTION = 160  # characters; chat previews show two or three lines
TITLE = re.compile(rb"<title>[^<]*</title>")
DESCRIPTION = re.compile(rb'(<meta name="description" content=")[^"]*(">)')
OPEN_GRAPH = re.compile(
    rb'(<meta property="og:(title|description|image|url)" content=")([^"]*)(">)'
)


@dataclass(frozen=True)
class Card:
    title: str
    description: str | None  # None: the app's own
    path: str  # the page's path, e.g. /p/YW-GC-2026-0141


def project_card(project: Mapping[str, Any], domain: Domain, path: str) -> Card:
    """A project's card: its title, and what it is, where it stands and when it closes."""
    parts = []
    category = domain.categories.get(project["category"])
    if category is not None:
        parts.append(category.zh)
    stage = domain.stages.get(project.get("stage") or "")
    parts.append(stage.zh if stage is not None else "已登记")
    fields = domain.facts
    for key_date in project.get("key_dates") or ():
        names = fields[key_date["field"]].key_date if key_date["field"] in fields else None
        if names is not None and key_date["field"] in domain.closing_fields:
            parts.append(f"{names[0]} {_day_and_time(key_date['at'])}")
    description = "｜".join(parts) + f"｜{project['id']}"
    if len(description) > MAX_DESCRIPTION:
        description = description[: MAX_DESCRIPTION - 1] + "…"
    return Card(f"{project['title']} - {SITE}", description, path)


def render(shell: bytes, card: Card | None, origin: str, path: str) -> bytes:
    """`shell` with the card's texts (the app's own where `card` is None) and
    absolute image and page URLs."""
    page_url = origin + (card.path if card is not None else path)

    def open_graph(match: re.Match[bytes]) -> bytes:
        name, value = match[2], match[3]
        if name == b"image" or name == b"url":
            value = _escape(page_url) if name == b"url" else _escape(origin) + value
        elif card is not None and name == b"title":
            value = _escape(card.title)
        elif card is not None and name == b"description" and card.description is not None:
            value = _escape(card.description)
        return match[1] + value + match[4]

    body = OPEN_GRAPH.sub(open_graph, shell)
    if card is not None:
        body = TITLE.sub(lambda _: b"<title>" + _escape(card.title) + b"</title>", body, count=1)
        if card.description is not None:
            description = _escape(card.description)
            body = DESCRIPTION.sub(lambda m: m[1] + description + m[2], body, count=1)
    return body


def _escape(text: str) -> bytes:
    return html.escape(text, quote=True).encode()


def _day_and_time(moment: str) -> str:
    try:
        at = datetime.fromisoformat(moment)
    except ValueError:
        return moment
    return f"{at.year}年{at.month}月{at.day}日 {at.hour:02d}:{at.minute:02d}"
