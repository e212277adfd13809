"""Share cards: the shell's title, description and Open Graph tags (real server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from server.compliance.calendar import LEGAL_TZ
from tests.conftest import ServerProcess, Staff

APP_TITLE = "阳光交易"
TRICKY = "<script>alert(\"x\")</script> & '引号'"


class Head(HTMLParser):
    """The title and the meta tags of a page, as a crawler reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.meta: dict[str, str] = {}
        self.scripts: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "title":
            self._in_title = True
        elif tag == "meta" and ("property" in values or "name" in values):
            self.meta[values.get("property") or values["name"]] = values.get("content", "")
        elif tag == "script":
            self.scripts.append(values.get("src", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def head(server: ServerProcess, path: str, **headers: str) -> tuple[httpx.Response, Head]:
    response = httpx.get(server.url + path, headers=headers, timeout=30)
    parsed = Head()
    parsed.feed(response.text)
    return response, parsed


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Staff]]:
    proc = ServerProcess(Path(tmp_path_factory.mktemp("share")) / "data").start()
    staff = Staff(proc, proc.token("share-admin"))
    response = staff.client.post(
        "/api/projects",
        json={"id": "S-1", "title": TRICKY, "category": "construction", "agency": "YW-GGZY"},
    )
    assert response.status_code == 201, response.text
    deadline = (datetime.now(LEGAL_TZ) + timedelta(days=25)).replace(
        hour=9, minute=30, second=0, microsecond=0
    )
    staff.publish("S-1", "notice", data={"deadline": deadline.isoformat()})
    yield proc, staff
    staff.client.close()
    if proc.process is not None:
        proc.stop()


def test_a_project_page_carries_the_projects_card(shared: tuple[ServerProcess, Staff]) -> None:
    server, _ = shared
    response, page = head(server, "/p/S-1")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert page.title == f"{TRICKY} - {APP_TITLE}"
    assert page.meta["og:title"] == page.title
    description = page.meta["description"]
    assert description == page.meta["og:description"]
    assert "工程建设项目招标投标" in description and "投标截止" in description
    assert "S-1" in description
    assert page.meta["og:url"] == f"{server.url}/p/S-1"
    assert page.meta["og:image"] == f"{server.url}/static/icons/icon-512.png"
    # Escaped: the title's markup is text, not a script of the page.
    assert "<script>alert" not in response.text and "&lt;script&gt;" in response.text
    assert page.scripts == ["/static/js/app.js"]
    image = httpx.get(page.meta["og:image"], timeout=30)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


def test_the_app_and_unknown_projects_carry_the_apps_card(
    shared: tuple[ServerProcess, Staff],
) -> None:
    server, _ = shared
    _, home = head(server, "/")
    assert home.title == APP_TITLE and home.meta["og:title"] == APP_TITLE
    assert home.meta["og:description"] == home.meta["description"]
    assert home.meta["og:url"] == f"{server.url}/"
    assert home.meta["og:image"] == f"{server.url}/static/icons/icon-512.png"
    for path in ("/p/NOPE", '/p/"><b>x'):
        response, page = head(server, path)
        assert response.status_code == 200, path
        assert page.title == APP_TITLE and page.meta["og:title"] == APP_TITLE
        assert "<b>x" not in response.text
    _, odd = head(server, '/p/"><b>x')
    assert odd.meta["og:url"] == f'{server.url}/p/"><b>x', "escaped, so read back as sent"


def test_the_card_follows_the_project_and_revalidates(shared: tuple[ServerProcess, Staff]) -> None:
    server, staff = shared
    first = httpx.get(server.url + "/p/S-1", timeout=30)
    again = httpx.get(
        server.url + "/p/S-1", headers={"If-None-Match": first.headers["etag"]}, timeout=30
    )
    assert again.status_code == 304
    staff.publish("S-1", "clarification")
    _, page = head(server, "/p/S-1")
    assert "澄清" in page.meta["description"], "the stage it is at now"
    changed = httpx.get(
        server.url + "/p/S-1", headers={"If-None-Match": first.headers["etag"]}, timeout=30
    )
    assert changed.status_code == 200


def test_the_public_origin_setting_gives_absolute_urls(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(SUNBID_PUBLIC_URL="https://JY.example.gov.cn/")
    _, page = head(server, "/p/NONE")
    assert page.meta["og:image"] == "https://jy.example.gov.cn/static/icons/icon-512.png"
    assert page.meta["og:url"] == "https://jy.example.gov.cn/p/NONE"


def test_a_public_origin_that_is_not_one_stops_the_server(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "data", SUNBID_PUBLIC_URL="https://x.example/app?y")
    with pytest.raises(RuntimeError, match="SUNBID_PUBLIC_URL"):
        proc.start()
