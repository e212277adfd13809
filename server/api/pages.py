"""The app (`pwa/`): the shell for every page, the service worker, the manifest, static files.

The app has no build step: its files are served as they lie in `pwa/`, which
sits beside this package in a checkout, in an editable install and in a
wheel (where it is shipped as data). Every page path answers with the same
shell; the app routes on the client.

Nothing here is cached for long: the file names carry no version, so every
answer says `no-cache` and carries an `ETag`, and a browser revalidates with
a cheap 304. Text files are sent gzipped to clients that accept it (the app's
126 KB of text become 50 KB); each is compressed once, when it is read, and
kept beside its plain bytes, with an ETag of its own.

Offline and fast starts are the service worker's job: `/sw.js` is served
with a digest of all the app's files and the list of them spliced in, so any
change to any file is a new worker with a new cache.

A first visit on a slow network waits mostly for round trips: the shell, then
the app's code, then the data its first page shows. So the shell's answer
names in a `Link` header what the page it is asked for will need — the
vocabulary, the page's data, the page's own view module — and the browser
fetches it all at once, while it is still fetching the code. The body stays
the same for every page (one ETag, one cached shell).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from server.api import JSONResponse, share, state_of
from server.core.topics import CODE

log = logging.getLogger("sunbid")

PWA_DIR = Path(__file__).resolve().parents[2] / "pwa"
STATIC = "static"
# Every path the app routes on the client (pwa/static/js/router.js) answers with the shell.
SHELL_PATHS = (
    "/",
    "/p/{project_id}",
    "/follows",
    "/mine",
    "/request",
    "/catalog",
    "/stats",
    "/staff",
)
RENDERED_KEEP = 256  # shells with a card kept rendered (and gzipped), the latest asked for
# What each page's first render fetches (pwa/static/js/app.js, views/list.js,
# views/project.js), named in the shell's `Link` header; keep the two in step
# (tests/test_pwa_fast.py checks that nothing is fetched twice). `crossorigin`:
# a preload matches the app's fetch() only with the same credentials mode.
VOCABULARY_LINKS = (
    "</api/categories>; rel=preload; as=fetch; crossorigin",
    "</api/directory>; rel=preload; as=fetch; crossorigin",
)
LIST_VIEW = "</static/js/views/list.js>; rel=modulepreload"
PROJECT_VIEW = "</static/js/views/project.js>; rel=modulepreload"
FIRST_LIST_PAGE = "/api/projects?limit=20"  # views/list.js without filters
LATE_ITEMS = "/api/compliance/items?project={}&status=late"  # views/project.js marks late steps
# Characters encodeURIComponent leaves as they are, besides quote()'s own.
URI_COMPONENT_SAFE = "!~*'()"
LONGEST_PRELOADED_ID = 200
# The placeholders in pwa/sw.js that each answer fills in.
BUILD_LINE = 'const BUILD = "dev";'
ASSETS_LINE = "const ASSETS = [];"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",  # covers ws: and wss: to this same host
        "manifest-src 'self'",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
COMMON_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}
SHELL_HEADERS = {
    **COMMON_HEADERS,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
# Python 3.11's mimetypes says application/javascript; the HTML standard says text/javascript.
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
}


# Types worth compressing; images are compressed already (PNG) or tiny.
COMPRESSIBLE = ("text/", "application/manifest+json", "image/svg+xml")


@dataclass(frozen=True, slots=True)
class LoadedFile:
    body: bytes
    etag: str
    last_modified: str
    stamp: tuple[int, int]  # (mtime_ns, size): reloaded when either changes
    gzipped: bytes | None  # None: not worth it (gzip saved nothing)

    @property
    def gzip_etag(self) -> str:
        # A different representation needs a different strong ETag (RFC 9110 8.8.3).
        return self.etag[:-1] + '-gzip"'


class AppPages:
    """The handlers for the app's routes, reading from one `pwa/` directory.

    The files are few and small (about 170 KB in all): each answer checks them
    with a `stat` and rereads one only when it changed, so an edit shows on
    the next request without a restart, at a cost of microseconds.
    """

    def __init__(self, root: Path = PWA_DIR) -> None:
        self.root = root
        self.available = (root / "index.html").is_file()
        if not self.available:
            log.warning(
                "the app's files are not at %s: pages answer 503 (install the project "
                "from a checkout, or a wheel built from one, to get them)",
                root,
            )
        self._files: dict[str, LoadedFile] = {}
        self._worker: tuple[tuple[tuple[str, int, int], ...], LoadedFile] | None = None
        self._rendered: dict[bytes, LoadedFile] = {}
        self.static = StaticAssets(self, directory=root / STATIC, check_dir=False)

    async def shell(self, request: Request) -> Response:
        """The shell, with the page's share card: a project's for `/p/{id}` (an
        unknown one gets the app's own: the app shows its not-found)."""
        template = self._load("index.html")
        if template is None:
            return _missing()
        state = state_of(request)
        origin = state.settings.public_url or f"{request.url.scheme}://{request.url.netloc}"
        card = None
        project_id = request.path_params.get("project_id")
        if project_id is not None and CODE.fullmatch(project_id):
            project = await state.projects.get(project_id)
            if project is not None:
                card = share.project_card(project, state.domain, f"/p/{project_id}")
        body = share.render(template.body, card, origin, request.url.path)
        answer = self._answer(
            request, self._rendered_file(body, template.stamp), "text/html; charset=utf-8"
        )
        if answer.status_code in (200, 304):
            answer.headers["Link"] = ", ".join(first_needs(request))
        return answer

    async def manifest(self, request: Request) -> Response:
        return self._answer(
            request, self._load("manifest.webmanifest"), MEDIA_TYPES[".webmanifest"]
        )

    async def service_worker(self, request: Request) -> Response:
        return self._answer(request, self._worker_file(), MEDIA_TYPES[".js"])

    async def static_files(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.available:
            await _missing()(scope, receive, send)
            return
        await self.static(scope, receive, send)

    def static_answer(self, full_path: str, scope: Scope) -> Response:
        """A file StaticAssets found (safely inside pwa/static/), answered like the others."""
        name = Path(full_path).relative_to(self.root.resolve()).as_posix()
        media_type = MEDIA_TYPES.get(Path(name).suffix) or "application/octet-stream"
        return self._answer(Request(scope), self._load(name), media_type)

    # --- files ---------------------------------------------------------------------

    def _load(self, name: str) -> LoadedFile | None:
        path = self.root / name
        try:
            stat = path.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = self._files.get(name)
        if cached is None or cached.stamp != stamp:
            cached = _loaded(path.read_bytes(), stamp)
            self._files[name] = cached
        return cached

    def _rendered_file(self, body: bytes, stamp: tuple[int, int]) -> LoadedFile:
        """`body` with its ETag and gzip, computed once while it is asked for."""
        found = self._rendered.pop(body, None)
        if found is None or found.stamp != stamp:
            found = _loaded(body, stamp)
        self._rendered[body] = found  # the latest asked for last
        while len(self._rendered) > RENDERED_KEEP:
            del self._rendered[next(iter(self._rendered))]
        return found

    def _worker_file(self) -> LoadedFile | None:
        """sw.js with BUILD (a digest of every app file) and ASSETS (the static files)."""
        source = self._load("sw.js")
        if source is None:
            return None
        assets = sorted(self._static_names())
        files = ["index.html", "manifest.webmanifest", "sw.js", *(f"{STATIC}/{a}" for a in assets)]
        stamps = tuple((name, *self._stat(name)) for name in files)
        if self._worker is not None and self._worker[0] == stamps:
            return self._worker[1]
        digest = hashlib.sha256()
        for name in files:
            digest.update(name.encode() + b"\0")
            loaded = self._load(name)
            digest.update(loaded.body if loaded else b"")
        build = digest.hexdigest()[:16]
        urls = orjson.dumps([f"/{STATIC}/{a}" for a in assets]).decode()
        body = source.body.replace(BUILD_LINE.encode(), f'const BUILD = "{build}";'.encode(), 1)
        body = body.replace(ASSETS_LINE.encode(), f"const ASSETS = {urls};".encode(), 1)
        worker = _loaded(body, source.stamp)
        self._worker = (stamps, worker)
        return worker

    def _static_names(self) -> list[str]:
        base = self.root / STATIC
        names = []
        for directory, _, files in os.walk(base):
            for file in files:
                if not file.startswith("."):
                    names.append((Path(directory) / file).relative_to(base).as_posix())
        return names

    def _stat(self, name: str) -> tuple[int, int]:
        try:
            stat = (self.root / name).stat()
        except OSError:
            return (0, 0)
        return (stat.st_mtime_ns, stat.st_size)

    # --- answers -------------------------------------------------------------------

    def _answer(self, request: Request, file: LoadedFile | None, media_type: str) -> Response:
        if file is None:
            return _missing()
        headers = {
            **(SHELL_HEADERS if media_type.startswith("text/html") else COMMON_HEADERS),
            "ETag": file.etag,
            "Last-Modified": file.last_modified,
        }
        body = file.body
        if media_type.startswith(COMPRESSIBLE):
            headers["Vary"] = "Accept-Encoding"  # caches keep the two apart
            if file.gzipped is not None and accepts_gzip(request.headers.get("accept-encoding")):
                body = file.gzipped
                headers["ETag"] = file.gzip_etag
                headers["Content-Encoding"] = "gzip"
        wanted = request.headers.get("if-none-match", "")
        if headers["ETag"] in (tag.strip().removeprefix("W/") for tag in wanted.split(",")):
            headers.pop("Content-Encoding", None)
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=media_type, headers=headers)


class StaticAssets(StaticFiles):
    """`/static/…`: Starlette's StaticFiles finds the file (no listing, no escaping
    the directory, 404 and 405); AppPages answers it like the app's other files
    (from memory, gzipped when accepted, ETag and 304)."""

    def __init__(self, pages: AppPages, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pages = pages

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        return self.pages.static_answer(str(full_path), scope)


def first_needs(request: Request) -> list[str]:
    """`Link` values for what the first render of the page asked for fetches."""
    links = list(VOCABULARY_LINKS)
    project_id = request.path_params.get("project_id")
    if project_id is not None:
        links.append(PROJECT_VIEW)
        if len(project_id) <= LONGEST_PRELOADED_ID:
            quoted = quote(project_id, safe=URI_COMPONENT_SAFE)
            # The project, and its late steps that its timeline marks.
            for path in (f"/api/projects/{quoted}", LATE_ITEMS.format(quoted)):
                links.append(f"<{path}>; rel=preload; as=fetch; crossorigin")
    elif request.url.path == "/":
        links.append(LIST_VIEW)
        # With filters the app builds its own query: only the plain list is named.
        if not request.url.query:
            links.append(f"<{FIRST_LIST_PAGE}>; rel=preload; as=fetch; crossorigin")
    return links


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether `Accept-Encoding` admits gzip (`gzip`, `x-gzip` or `*`, with q > 0)."""
    for item in (accept_encoding or "").split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        name, _, value = params.partition("=")
        if name.strip().lower() != "q":
            return True
        try:
            return float(value) > 0
        except ValueError:
            return False
    return False


def _loaded(body: bytes, stamp: tuple[int, int]) -> LoadedFile:
    # mtime=0: the same bytes give the same gzip bytes in every process.
    gzipped = gzip.compress(body, compresslevel=9, mtime=0)
    return LoadedFile(
        body=body,
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        last_modified=formatdate(stamp[0] / 1e9, usegmt=True),
        stamp=stamp,
        gzipped=gzipped if len(gzipped) < len(body) else None,
    )


def _missing() -> Response:
    return JSONResponse(
        {
            "error": {
                "code": "unavailable",
                "message": "the app's files are not installed on this server",
            }
        },
        status_code=503,
    )
