"""WeChat Official Account (公众号) template messages, and the openid they go to.

A follower is reached by a template message (模板消息) from the deployment's
service account: `POST /cgi-bin/message/template/send` with the follower's
openid, a template approved in advance, its data fields and a link. The
openid is learnt once, when the follower opens our page inside WeChat and
is sent through web authorization (网页授权, scope `snsapi_base`: silent, no
consent page): `oauth_url` is where to send the browser, and `openid_for`
turns the `code` WeChat brings back into the openid.

Every API call but the web authorization needs the account's access token,
fetched with the app secret (`GET /cgi-bin/token`) and valid about two
hours. Fetching is rationed (2,000 a day) and each fetch retires the
previous token five minutes later, so one token is shared by every
concurrent send, a single fetch runs at a time (an asyncio lock), it is
replaced a few minutes before it expires, and a send refused for its token
(40001/40014/42001: invalid, malformed, expired) drops it and is tried once
more with a fresh one. Several worker processes each holding their own
token retire each other's; a second refusal after a fresh fetch is that
race (or a secret reset) and is retried later rather than failed.

The event template's data fields are named by the template WeChat assigned
(`thing1`, `phrase2`, `character_string3`…), so which parameter goes to
which field is a setting (`SUNBID_WECHAT_TEMPLATE_EVENT_KEYS`, default
`project=thing1,stage=thing2`); the link becomes the message's `url`. Each
field type has a length limit (`thing` 20 characters, `phrase` 5,
`character_string` 32…, and since May 2023 no field shows more than 20
characters nor a line break): values are cut to their field's limit,
with "…" where the type allows it.

WeChat answers HTTP 200 with an `errcode` for almost everything; `classify`
maps the code to a `Result`, and a `Sent.detail` carries only the code.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from push.channels import Message, Result, Sent
from server.core.env import SettingsError, environ, origin

log = logging.getLogger("sunbid.channels.wechat")

API_BASE = "https://api.weixin.qq.com"
OAUTH_BASE = "https://open.weixin.qq.com"
EVENT_KEYS = "project=thing1,stage=thing2"
EVENT_PARAMS = frozenset({"project", "stage"})

TOKEN_ERRORS = frozenset({40001, 40014, 42001})  # invalid, malformed, expired access token
GONE_ERRORS = frozenset({40003, 43004})  # not an openid of this account; not following
RETRY_ERRORS = frozenset({-1, 45009, 45047})  # system busy; call quota / frequency limit
REFRESH_MARGIN = 300.0  # seconds before a token's expiry when it is replaced

# Characters a field of each type may hold (订阅通知/类目模板 parameter rules).
FIELD_LIMITS = {
    "thing": 20,
    "phrase": 5,
    "character_string": 32,
    "number": 32,
    "letter": 32,
    "symbol": 5,
    "name": 10,
    "car_number": 8,
    "phone_number": 17,
}
FIELD_LIMIT = 20  # any other field: the 2023 rule for every template field
ELLIPSIS_TYPES = frozenset({"thing", "keyword"})  # free text: a cut is marked
_FIELD_KEY = re.compile(r"[a-z_]+[0-9]+")
_STATE = re.compile(r"[A-Za-z0-9]{0,128}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def classify(errcode: int) -> Result:
    """What an `errcode` of the template-send API means for the delivery."""
    if errcode == 0:
        return Result.DELIVERED
    if errcode in GONE_ERRORS:
        return Result.GONE
    if errcode in RETRY_ERRORS:
        return Result.RETRY
    return Result.FAILED


def fit(key: str, value: str) -> str:
    """`value` made acceptable to the data field `key` (e.g. `thing1`)."""
    kind = key.rstrip("0123456789")
    limit = FIELD_LIMITS.get(kind, FIELD_LIMIT)
    text = _CONTROL.sub(" ", value).strip()  # WeChat shows no line breaks
    if len(text) <= limit:
        return text
    if kind in ELLIPSIS_TYPES:
        return text[: limit - 1] + "…"
    return text[:limit]


class WeChatError(Exception):
    """A WeChat call that did not give what was asked: `errcode` is WeChat's
    answer, None when WeChat could not be reached or gave no JSON answer."""

    def __init__(self, detail: str, *, errcode: int | None = None, transient: bool = True) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errcode = errcode
        self.retryable = transient if errcode is None else classify(errcode) is Result.RETRY


@dataclass(frozen=True)
class WeChatSettings:
    appid: str
    secret: str = field(repr=False)
    event_template: str
    event_keys: Mapping[str, str]  # Message.params name -> template data key
    api_base: str = API_BASE
    oauth_base: str = OAUTH_BASE


class TokenCache:
    """The one access token every send shares; one fetch at a time."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[tuple[str, float]]],
        clock: Callable[[], float],
        margin: float = REFRESH_MARGIN,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin = margin
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def get(self) -> str:
        token = self._fresh()
        if token is not None:
            return token
        async with self._lock:
            token = self._fresh()  # fetched by another send while this one waited
            if token is not None:
                return token
            token, expires_in = await self._fetch()
            self.fetches += 1
            # A token handed out near its end lives at least five minutes:
            # never plan to replace it before half its life.
            margin = min(self._margin, expires_in / 2)
            self._token, self._refresh_at = token, self._clock() + expires_in - margin
            return token

    def discard(self, token: str) -> None:
        """WeChat refused `token`; a newer one fetched meanwhile is kept."""
        if self._token == token:
            self._token = None

    def _fresh(self) -> str | None:
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        return None


class WeChatSender:
    kind = "wechat"

    def __init__(
        self,
        settings: WeChatSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 10.0,
    ) -> None:
        self.settings = settings
        self.tokens = TokenCache(self._fetch_token, clock)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, address: str, message: Message) -> Sent:
        if message.template != "event":
            return Sent(Result.FAILED, detail=f"no wechat template for {message.template}")
        body = self._template_body(address, message)
        try:
            token = await self.tokens.get()
            errcode = await self._send_template(token, body)
            if errcode in TOKEN_ERRORS:
                self.tokens.discard(token)
                errcode = await self._send_template(await self.tokens.get(), body)
                if errcode in TOKEN_ERRORS:
                    return Sent(Result.RETRY, detail=f"errcode {errcode}")
        except WeChatError as exc:
            result = Result.RETRY if exc.retryable else Result.FAILED
            if result is Result.FAILED:
                log.warning("wechat: %s", exc.detail)  # a setting to fix, not one address
            return Sent(result, detail=exc.detail)
        return Sent(classify(errcode), detail=f"errcode {errcode}")

    def oauth_url(self, redirect_uri: str, state: str) -> str:
        """Where to send a browser inside WeChat to learn its user's openid:
        WeChat redirects it to `redirect_uri?code=…&state=…` (whose host must
        be the account's authorized web domain). `state` (letters and digits,
        at most 128) should tie the answer to the browser that asked."""
        if not _STATE.fullmatch(state):
            raise ValueError("state must be at most 128 letters and digits")
        query = urlencode(  # in the order WeChat documents
            {
                "appid": self.settings.appid,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": "snsapi_base",
                "state": state,
            }
        )
        return f"{self.settings.oauth_base}/connect/oauth2/authorize?{query}#wechat_redirect"

    async def openid_for(self, code: str) -> str:
        """The openid of the user WeChat issued `code` to (single use, minutes
        long); `WeChatError` otherwise (40029: a code unknown, used or old)."""
        answer = await self._call(
            "GET",
            "/sns/oauth2/access_token",
            params={
                "appid": self.settings.appid,
                "secret": self.settings.secret,
                "code": code,
                "grant_type": "authorization_code",
            },
        )
        openid = answer.get("openid")
        if not isinstance(openid, str) or not openid:
            raise WeChatError("oauth answer has no openid")
        return openid

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- the API -----------------------------------------------------------------

    def _template_body(self, openid: str, message: Message) -> dict[str, Any]:
        data = {
            key: {"value": fit(key, message.params.get(param, ""))}
            for param, key in self.settings.event_keys.items()
        }
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": self.settings.event_template,
            "data": data,
        }
        link = message.params.get("link")
        if link:
            body["url"] = link
        key = message.extra.get("idempotency_key")
        if key:
            # WeChat sends one message per openid and client_msg_id within ten
            # minutes: a retry after a lost answer is not shown twice.
            body["client_msg_id"] = hashlib.sha256(key.encode()).hexdigest()[:32]
        return body

    async def _send_template(self, token: str, body: dict[str, Any]) -> int:
        answer = await self._call(
            "POST",
            "/cgi-bin/message/template/send",
            params={"access_token": token},
            body=body,
            check=False,
        )
        return _errcode(answer)

    async def _fetch_token(self) -> tuple[str, float]:
        answer = await self._call(
            "GET",
            "/cgi-bin/token",
            params={
                "grant_type": "client_credential",
                "appid": self.settings.appid,
                "secret": self.settings.secret,
            },
            what="token",
        )
        token, expires_in = answer.get("access_token"), answer.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            raise WeChatError("token answer has no access_token")
        return token, float(expires_in)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str],
        body: Mapping[str, Any] | None = None,
        check: bool = True,
        what: str = "",
    ) -> dict[str, Any]:
        """One API call's JSON answer; `WeChatError` if it did not come, or
        (with `check`) if it carries a non-zero errcode."""
        prefix = f"{what} " if what else ""
        data = None if body is None else orjson.dumps(body)
        headers = {} if data is None else {"Content-Type": "application/json; charset=utf-8"}
        try:
            async with self._client().request(
                method, self.settings.api_base + path, params=params, data=data, headers=headers
            ) as response:
                if response.status != 200:
                    # Not WeChat's own answer (it says everything with an
                    # errcode) but a server or proxy failing on the way.
                    transient = response.status >= 500 or response.status == 429
                    raise WeChatError(f"{prefix}http {response.status}", transient=transient)
                raw = await response.read()
        except aiohttp.ClientError:
            raise WeChatError(f"{prefix}network error") from None
        except TimeoutError:
            raise WeChatError(f"{prefix}timeout") from None
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise WeChatError(f"{prefix}answer is not JSON") from None
        if not isinstance(answer, dict):
            raise WeChatError(f"{prefix}answer is not a JSON object")
        errcode = _errcode(answer)
        if check and errcode != 0:
            raise WeChatError(f"{prefix}errcode {errcode}", errcode=errcode)
        return answer

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def _errcode(answer: Mapping[str, Any]) -> int:
    errcode = answer.get("errcode", 0)
    return errcode if isinstance(errcode, int) else -1


def from_env(env: Mapping[str, str] | None = None) -> WeChatSender | None:
    """The sender the `SUNBID_WECHAT_*` settings describe; None when WeChat
    is not configured (no app id), `SettingsError` when half configured."""
    env = environ(env)
    appid = env.get("SUNBID_WECHAT_APPID")
    if not appid:
        return None
    return WeChatSender(
        WeChatSettings(
            appid=appid,
            secret=_required(env, "SUNBID_WECHAT_SECRET"),
            event_template=_required(env, "SUNBID_WECHAT_TEMPLATE_EVENT"),
            event_keys=event_keys(env),
            api_base=origin(env, "SUNBID_WECHAT_API_BASE") or API_BASE,
            oauth_base=origin(env, "SUNBID_WECHAT_OAUTH_BASE") or OAUTH_BASE,
        )
    )


def event_keys(env: Mapping[str, str]) -> dict[str, str]:
    """`SUNBID_WECHAT_TEMPLATE_EVENT_KEYS`: `param=key` pairs, comma separated."""
    name = "SUNBID_WECHAT_TEMPLATE_EVENT_KEYS"
    keys: dict[str, str] = {}
    for pair in (env.get(name) or EVENT_KEYS).split(","):
        param, _, key = (part.strip() for part in pair.partition("="))
        if param not in EVENT_PARAMS:
            raise SettingsError(f"{name}: {param!r} is not one of {sorted(EVENT_PARAMS)}")
        if not _FIELD_KEY.fullmatch(key):
            raise SettingsError(f"{name}: {key!r} is not a template data key such as thing1")
        keys[param] = key
    if "project" not in keys:
        raise SettingsError(f"{name} must give a data key for project")
    return keys


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise SettingsError(f"{name} must be set when SUNBID_WECHAT_APPID is")
    return value
