"""OCDS 1.1 packages: the release feed (one release per event, in seq order)
and a project's record (its releases and the compiled release).

Pure functions of events already read from the log; server/api/ocds.py reads
them and serves the packages. Each release is built by ocds_release.py; the
compiled release is `ocdsmerge`'s, with the merge rules of the release
schema shipped in server/data/ocds/ (so nothing is downloaded at run time).
The releases are merged in seq order, the log's, rather than sorted by date
as `ocdsmerge.Merger` would: two events of the same second keep their order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ocdsmerge import CompiledRelease
from ocdsmerge.rules import MergeRules, get_merge_rules

from server.interop.ocds_release import Context, corrected_basis, corrected_seq, release_of

__all__ = ["Context", "Publication", "corrected_seq", "record_package", "release_package"]

VERSION = "1.1"
RELEASE_SCHEMA = Path(__file__).parent.parent / "data" / "ocds" / "release-schema.json"
# The extensions the packages use: enquiries (tender.enquiries, issue 14's
# answers) and, in the feed, pagination (`links.next`).
ENQUIRIES = (
    "https://raw.githubusercontent.com/open-contracting-extensions/"
    "ocds_enquiry_extension/v1.1.5/extension.json"
)
PAGINATION = (
    "https://raw.githubusercontent.com/open-contracting-extensions/"
    "ocds_pagination_extension/master/extension.json"
)


@dataclass(frozen=True)
class Publication:
    """What every package says about who publishes it and on what terms."""

    publisher: str
    license: str
    policy: str  # the publication policy's URL: the disclosure catalogue


def release_package(
    events: Iterable[Mapping[str, Any]],
    corrected: Mapping[int, Mapping[str, Any]],
    context: Context,
    publication: Publication,
    *,
    uri: str,
    published: str,
    next_page: str | None,
) -> dict[str, Any]:
    """A page of the feed. `corrected`: seq → event, the earlier events of the
    projects the page's corrections are about (those the log holds: what each
    correction names, and the other corrections of the same event). `published`:
    the last release's date (so a page reads the same each time), or the time of
    asking for an empty one."""
    package = _package(publication, uri, published, [ENQUIRIES, PAGINATION])
    package["releases"] = releases_of(events, corrected, context)
    if next_page is not None:
        package["links"] = {"next": next_page}
    return package


def record_package(
    events: list[Mapping[str, Any]],
    context: Context,
    publication: Publication,
    *,
    uri: str,
) -> dict[str, Any]:
    """A project's record: every release of its events (the log's whole
    timeline of the project, `events`), and the compiled release."""
    by_seq = {event["seq"]: event for event in events}
    releases = releases_of(events, by_seq, context)
    package = _package(publication, uri, releases[-1]["date"], [ENQUIRIES])
    package["records"] = [
        {
            "ocid": context.ocid(events[0]["project"]),
            "releases": releases,
            "compiledRelease": compile_releases(releases),
        }
    ]
    return package


def releases_of(
    events: Iterable[Mapping[str, Any]],
    corrected: Mapping[int, Mapping[str, Any]],
    context: Context,
) -> list[dict[str, Any]]:
    found = []
    for event in events:
        target = corrected_seq(event)
        earlier = corrected.get(target) if target is not None else None
        # Only an earlier event of the same project is corrected (as the API checks).
        if earlier is not None and earlier["project"] != event["project"]:
            earlier = None
        basis = corrected_basis(event, corrected) if earlier is not None else None
        found.append(release_of(event, context, earlier, basis or earlier))
    return found


def compile_releases(releases: list[dict[str, Any]]) -> dict[str, Any]:
    compiled = CompiledRelease(merge_rules=merge_rules())
    for release in releases:
        compiled.append(release)
    result: dict[str, Any] = compiled.asdict()
    return result


@cache
def merge_rules() -> MergeRules:
    """Read once: ocdsmerge's rules from the shipped release schema."""
    return get_merge_rules(json.loads(RELEASE_SCHEMA.read_text("utf-8")))


def _package(
    publication: Publication, uri: str, published: str, extensions: list[str]
) -> dict[str, Any]:
    return {
        "uri": uri,
        "version": VERSION,
        "extensions": extensions,
        "publishedDate": published,
        "publisher": {"name": publication.publisher},
        "license": publication.license,
        "publicationPolicy": publication.policy,
    }
