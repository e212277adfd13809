"""Feeds and calendars kept once rendered, by the version of what they were
rendered from.

A feed reader or a phone's calendar asks every few minutes, mostly for what
it already has: the handler works out a version (the newest matching seq,
the watchdog's head …) in a query or less, and only a version not seen yet
is rendered. The version's digest is the answer's ETag, so an unchanged
feed costs a 304 and no rendering.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

KEPT = 256  # renderings of a few KB to a few hundred KB each
# …and at most this many bytes of them: an agency's calendar with hundreds of
# projects is megabytes, and without SUNBID_PUBLIC_URL every Host header a
# request makes up is a version of its own.
KEPT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Rendering:
    body: bytes
    etag: str
    last_modified: datetime | None


class Renderings:
    def __init__(self, kept: int = KEPT, kept_bytes: int = KEPT_BYTES) -> None:
        self.kept = kept
        self.kept_bytes = kept_bytes
        self._found: OrderedDict[str, Rendering] = OrderedDict()
        self._size = 0  # the bytes of the renderings in _found
        # What is rendered (an agency's calendar …): its latest version, chosen when.
        self._made: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def throttled(self, what: str, version: str, seconds: float) -> str:
        """`version`, or the version of `what` chosen less than `seconds` ago:
        for renderings costly enough that a little staleness is the better deal."""
        now = time.monotonic()
        chosen = self._made.get(what)
        if chosen is not None and now - chosen[1] < seconds and chosen[0] in self._found:
            return chosen[0]
        if chosen is None or chosen[0] != version:
            self._made[what] = (version, now)
            self._made.move_to_end(what)
            while len(self._made) > self.kept:
                self._made.popitem(last=False)
        return version

    @staticmethod
    def etag(version: str) -> str:
        return '"' + hashlib.sha256(version.encode()).hexdigest()[:32] + '"'

    def get(self, version: str) -> Rendering | None:
        found = self._found.get(version)
        if found is not None:
            self._found.move_to_end(version)
        return found

    async def get_or_render(
        self,
        version: str,
        render: Callable[[], Awaitable[tuple[bytes, datetime | None]]],
    ) -> Rendering:
        found = self.get(version)
        if found is not None:
            return found
        body, last_modified = await render()
        made = Rendering(body, self.etag(version), last_modified)
        replaced = self._found.pop(version, None)  # rendered twice at once
        self._size -= len(replaced.body) if replaced else 0
        self._found[version] = made
        self._size += len(body)
        # The oldest go first; the one just made stays even if alone it is larger.
        while len(self._found) > 1 and (
            len(self._found) > self.kept or self._size > self.kept_bytes
        ):
            _, dropped = self._found.popitem(last=False)
            self._size -= len(dropped.body)
        return made

    def kept_size(self) -> int:
        """The bytes of the renderings kept."""
        return self._size
