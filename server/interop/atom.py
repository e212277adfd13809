"""Events as an Atom 1.0 feed (RFC 4287), for feed readers and the tools that
turn a feed into WeChat articles: one feed per set of topics and stages.

Identity is what a reader keys on, so it never depends on when or how the
feed was asked for: the feed's id is a tag URI (RFC 4151) of the deployment's
host and the topics and stages in a canonical order; an entry's id is the
host and the event's seq, which the log never gives twice. `updated` is the
event's `published_at` (an event is immutable: it is never updated after),
and the feed's is its newest entry's. Each entry names its agency as author,
links to the project's page at the event, and carries the topics it was
published on as category terms (`category:construction` …), the very names a
reader could subscribe to next.

Pure: from events (as the log serves them) and names to bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from feedgen.feed import FeedGenerator

from server.interop.names import Names

TAG_DATE = "2026"  # the tag URIs' date (RFC 4151): fixed, so ids never change
NO_EVENTS_YET = datetime(1970, 1, 1, tzinfo=UTC)  # `updated` of a feed with no entry
SITE = "阳光交易 Sunbid"
# XML 1.0 cannot carry these; the API refuses most of them in titles and bodies,
# and the rest (U+FFFE, U+FFFF, lone surrogates) would stop lxml.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class FeedInfo:
    host: str  # the deployment's host name: the tag URIs' authority
    origin: str  # where the app is served, for absolute links
    key: str  # the canonical topics and stages (`topics=…&stages=…`)
    title: str
    self_url: str
    page_url: str  # the app's page showing the same events


def render(info: FeedInfo, events: Sequence[Mapping[str, Any]], names: Names) -> bytes:
    """`events` newest first."""
    feed = FeedGenerator()
    feed.id(f"tag:{info.host},{TAG_DATE}:feed?{info.key}")
    feed.title(_xml(info.title))
    feed.subtitle("公共资源交易全过程信息公开")
    feed.author(name=SITE, uri=info.origin + "/")
    feed.link(href=info.self_url, rel="self", type="application/atom+xml")
    feed.link(href=info.page_url, rel="alternate", type="text/html")
    feed.language("zh-CN")
    feed.generator("Sunbid", uri=info.origin + "/")
    feed.updated(_moment(events[0]["published_at"]) if events else NO_EVENTS_YET)
    for event in events:
        _entry(feed, info, event, names)
    return bytes(feed.atom_str(pretty=False))


def _entry(feed: FeedGenerator, info: FeedInfo, event: Mapping[str, Any], names: Names) -> None:
    category, stage = event["category"], event["stage"]
    stage_name = names.stage(category, stage)
    agency = names.agency(event["agency"])
    entry = feed.add_entry(order="append")
    entry.id(f"tag:{info.host},{TAG_DATE}:event/{event['seq']}")
    entry.title(_xml(event["title"]))
    published = _moment(event["published_at"])
    entry.updated(published)
    entry.published(published)
    entry.author(name=_xml(agency))
    entry.link(
        href=f"{info.origin}/p/{quote(event['project'], safe='')}#e{event['seq']}",
        rel="alternate",
        type="text/html",
    )
    about = f"{stage_name} · {names.category(category)} · {agency} · {event['project']}"
    entry.summary(_xml(about))
    entry.content(_xml(event.get("body") or event["title"]), type="text")
    terms = [
        (f"category:{category}", names.category(category)),
        (f"agency:{event['agency']}", agency),
        (f"stage:{stage}", stage_name),
    ]
    if event.get("region"):
        terms.append((f"region:{event['region']}", names.region(event["region"])))
    for term, label in terms:
        entry.category(term=term, label=_xml(label))


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _xml(text: str) -> str:
    return NOT_XML.sub("\ufffd", text)
