"""A WeChat Official Account API on loopback, as strict as WeChat, for tests.

It answers the calls push/channels/wechat.py makes, with WeChat's errcodes
and the checks WeChat applies:

- `GET /cgi-bin/token`: the app id and secret (40013, 40125), grant type
  (40002); a token lives `token_lifetime` seconds, and fetching a new one
  retires the previous ones five minutes later, as WeChat does;
- `POST /cgi-bin/message/template/send`: the token (41001 missing, 40001
  unknown, 42001 expired), a JSON body (47001), the openid (40003 not one
  of this account's), the template (40037), the user still following
  (43004), and every data field of the template present and valid for its
  type (47003: `thing` at most 20 characters, `phrase` at most 5 Chinese
  characters…); a repeated `client_msg_id` for the same openid within ten
  minutes is answered 0 and not shown twice;
- web authorization: `/connect/oauth2/authorize` redirects the browser of
  `browser_user` to `redirect_uri?code=…&state=…` when the redirect's host
  is the authorized domain, and `/sns/oauth2/access_token` turns a code
  into its openid once, within five minutes (40029 otherwise).

Tests set it up (`add_template`, `new_follower`, `unfollow`,
`expire_tokens`), make it fail on purpose (`fail_next(45009, …)`,
`fail_next(503)` for an HTTP status), and read what it accepted
(`messages`) and what it answered (`answers`, `token_fetches`).

    async with WeChatService() as wechat:
        wechat.add_template("tpl-event", ["thing1", "thing2"])
        openid = wechat.new_follower()
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from aiohttp import web

APPID = "wx5d3f0c9e2a7b1d46"
SECRET = "3c2b8e0f6a9d4c1e7b5a0f2d8c6e4a19"
OAUTH_DOMAIN = "sunbid.example.org"
CODE_SECONDS = 300  # a web-authorization code's life
HANDOVER_SECONDS = 300  # an old token works this long after a new one is fetched
DEDUP_SECONDS = 600  # client_msg_id memory

_CHINESE = re.compile(r"[\u4e00-\u9fff]+")
_CHARACTER_STRING = re.compile(r"[\x21-\x7e]+")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Accepted:
    """A template message WeChat would show."""

    openid: str
    template_id: str
    url: str | None
    data: dict[str, str]  # key -> value
    client_msg_id: str | None
    at: float


@dataclass
class _Token:
    value: str
    expires_at: float


def _valid(kind: str, value: str) -> bool:
    """Whether `value` is acceptable to a template field of type `kind`."""
    if _CONTROL.search(value):
        return False
    if kind == "thing":
        return 0 < len(value) <= 20
    if kind == "phrase":
        return _CHINESE.fullmatch(value) is not None and len(value) <= 5
    if kind == "character_string":
        return _CHARACTER_STRING.fullmatch(value) is not None and len(value) <= 32
    if kind == "number":
        return _NUMBER.fullmatch(value) is not None and len(value) <= 32
    return 0 < len(value) <= 20  # since May 2023, any template field


class WeChatService:
    def __init__(
        self,
        *,
        appid: str = APPID,
        secret: str = SECRET,
        token_lifetime: int = 7200,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.appid = appid
        self.secret = secret
        self.token_lifetime = token_lifetime
        self.clock = clock
        self.oauth_domain = OAUTH_DOMAIN
        self.browser_user: str | None = None  # whose WeChat opens the authorize page
        self.token_delay = 0.0  # seconds a token fetch takes (to let fetches overlap)
        self.messages: list[Accepted] = []
        self.answers: list[tuple[str, int]] = []  # (path, errcode or HTTP status)
        self.token_fetches = 0
        self.port = 0
        self._templates: dict[str, dict[str, str]] = {}  # id -> key -> type
        self._followers: dict[str, bool] = {}  # openid -> following
        self._tokens: list[_Token] = []
        self._codes: dict[str, tuple[str, float]] = {}  # code -> (openid, issued)
        self._sent_ids: dict[tuple[str, str], float] = {}
        self._faults: deque[int] = deque()
        self._runner: web.AppRunner | None = None

    # --- running ------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        """What `SUNBID_WECHAT_API_BASE` and `SUNBID_WECHAT_OAUTH_BASE` are set to."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> WeChatService:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/template/send", self._template_send)
        app.router.add_get("/connect/oauth2/authorize", self._authorize)
        app.router.add_get("/sns/oauth2/access_token", self._oauth_token)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> WeChatService:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # --- set-up by tests ----------------------------------------------------------------

    def add_template(self, template_id: str, keys: Iterable[str]) -> None:
        """A template of the account, with data fields such as `thing1`."""
        self._templates[template_id] = {key: key.rstrip("0123456789") for key in keys}

    def new_follower(self) -> str:
        """The openid of a new user following the account (28 characters)."""
        openid = "o" + secrets.token_urlsafe(20)[:27]
        self._followers[openid] = True
        return openid

    def unfollow(self, openid: str) -> None:
        self._followers[openid] = False

    def expire_tokens(self) -> None:
        """Every token handed out expires now (42001 from then on)."""
        for token in self._tokens:
            token.expires_at = self.clock()

    def fail_next(self, *answers: int) -> None:
        """Answer the next template sends so, once each, before checking them:
        an errcode (45009, -1…) or an HTTP status (400-599)."""
        self._faults.extend(answers)

    def issue_code(self, openid: str) -> str:
        """A web-authorization code for `openid`, as the redirect carries it."""
        code = secrets.token_hex(16)
        self._codes[code] = (openid, self.clock())
        return code

    # --- what tests read ----------------------------------------------------------------

    def received(self, openid: str) -> list[Accepted]:
        return [m for m in self.messages if m.openid == openid]

    def errcodes(self, path: str = "/cgi-bin/message/template/send") -> list[int]:
        return [code for p, code in self.answers if p == path]

    # --- the API ------------------------------------------------------------------------

    def _answer(self, request: web.Request, errcode: int, **fields: Any) -> web.Response:
        self.answers.append((request.path, errcode))
        body = {"errcode": errcode, "errmsg": "ok" if errcode == 0 else "error", **fields}
        if errcode == 0 and request.path != "/cgi-bin/message/template/send":
            body = fields  # token answers carry no errcode when they succeed
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def _token(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("grant_type") != "client_credential":
            return self._answer(request, 40002)
        if query.get("appid") != self.appid:
            return self._answer(request, 40013)
        if query.get("secret") != self.secret:
            return self._answer(request, 40125)
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        now = self.clock()
        for old in self._tokens:
            old.expires_at = min(old.expires_at, now + HANDOVER_SECONDS)
        token = _Token(secrets.token_urlsafe(96), now + self.token_lifetime)
        self._tokens.append(token)
        self.token_fetches += 1
        return self._answer(request, 0, access_token=token.value, expires_in=self.token_lifetime)

    def _token_error(self, value: str | None) -> int:
        if not value:
            return 41001
        token = next((t for t in self._tokens if t.value == value), None)
        if token is None:
            return 40001
        if self.clock() >= token.expires_at:
            return 42001
        return 0

    async def _template_send(self, request: web.Request) -> web.Response:
        errcode = self._token_error(request.query.get("access_token"))
        if errcode:
            return self._answer(request, errcode)
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._answer(request, 47001)
        if not isinstance(body, dict):
            return self._answer(request, 47001)
        if self._faults:
            fault = self._faults.popleft()
            if 400 <= fault < 600:
                self.answers.append((request.path, fault))
                return web.Response(status=fault, text="upstream failed")
            return self._answer(request, fault)
        errcode, fields = self._deliver(body)
        return self._answer(request, errcode, **fields)

    def _deliver(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        openid = body.get("touser")
        if not isinstance(openid, str) or openid not in self._followers:
            return 40003, {}
        fields = self._templates.get(body.get("template_id"))  # type: ignore[arg-type]
        if fields is None:
            return 40037, {}
        if not self._followers[openid]:
            return 43004, {}
        data = body.get("data")
        if not isinstance(data, dict) or set(data) != set(fields):
            return 47003, {}
        values: dict[str, str] = {}
        for key, kind in fields.items():
            value = data[key].get("value") if isinstance(data[key], dict) else None
            if not isinstance(value, str) or not _valid(kind, value):
                return 47003, {}
            values[key] = value
        url = body.get("url")
        if url is not None and (not isinstance(url, str) or not url.startswith("http")):
            return 40062, {}
        client_msg_id = body.get("client_msg_id")
        now = self.clock()
        if isinstance(client_msg_id, str):
            seen = self._sent_ids.get((openid, client_msg_id))
            if seen is not None and now - seen < DEDUP_SECONDS:
                return 0, {"msgid": 0}  # already sent: not shown again
            self._sent_ids[(openid, client_msg_id)] = now
        message = Accepted(openid, str(body["template_id"]), url, values, client_msg_id, now)
        self.messages.append(message)
        return 0, {"msgid": len(self.messages)}

    # --- web authorization --------------------------------------------------------------

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        redirect = urlsplit(query.get("redirect_uri", ""))
        if query.get("appid") != self.appid:
            return web.Response(status=400, text="appid 参数错误")
        if query.get("response_type") != "code":
            return web.Response(status=400, text="response_type 参数错误")
        if query.get("scope") not in ("snsapi_base", "snsapi_userinfo"):
            return web.Response(status=400, text="scope 参数错误")
        if redirect.hostname != self.oauth_domain:
            return web.Response(status=400, text="redirect_uri 域名与后台配置不一致 10003")
        if self.browser_user is None:
            return web.Response(status=400, text="open this page in WeChat")
        code = self.issue_code(self.browser_user)
        pairs = [*parse_qsl(redirect.query), ("code", code), ("state", query.get("state", ""))]
        location = urlunsplit(redirect._replace(query=urlencode(pairs), fragment=""))
        raise web.HTTPFound(location)

    async def _oauth_token(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("appid") != self.appid:
            return self._answer(request, 40013)
        if query.get("secret") != self.secret:
            return self._answer(request, 40125)
        if query.get("grant_type") != "authorization_code":
            return self._answer(request, 40002)
        issued = self._codes.pop(query.get("code", ""), None)  # a code works once
        if issued is None or self.clock() - issued[1] > CODE_SECONDS:
            return self._answer(request, 40029)
        return self._answer(
            request,
            0,
            access_token=secrets.token_urlsafe(64),
            expires_in=7200,
            refresh_token=secrets.token_urlsafe(64),
            openid=issued[0],
            scope="snsapi_base",
        )
