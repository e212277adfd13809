"""Alibaba Cloud SMS (Dysmsapi 2017-05-25, SendSms) on loopback, for tests.

It checks a request the way the provider's gateway does, with its own
implementation of signature V3 written from the documentation (it imports
nothing of the sender's): the `Authorization` header's form, the action and
version, a known AccessKey ID, `x-acs-date` within 15 minutes of its clock,
every `host`/`content-type`/`x-acs-*` header signed, `x-acs-content-sha256`
matching the body, the HMAC-SHA256 signature, and a nonce never seen before.
A request that passes is then checked as SendSms checks it: the sign name
and template exist, `TemplateParam` is a JSON object of strings giving every
variable of the template, none longer than the template allows or holding a
URL, and the number is a mainland mobile number. Refusals use the provider's
codes, statuses and body shapes; an accepted message is recorded with its
number (11 digits), sign name, template and parameters.

Tests can make it answer the next verified requests otherwise: throttled by
the business limit (`isv.BUSINESS_LIMIT_CONTROL`, HTTP 200) or by the gateway
(`Throttling.User`, HTTP 429), a 5xx, the daily cap, or no answer until
`release()`; and refuse given numbers for good (`isv.MOBILE_NUMBER_ILLEGAL`
or `isv.CUSTOMER_REFUSED`).

    async with SmsService() as service:
        env = service.env()          # SUNBID_SMS_* pointing at it
        ...
        assert service.messages[0].params["project"] == "…"

It logs nothing, so a test capturing logs sees only the sender's lines.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import web

ACCESS_KEY_ID = "LTAI5tSunbidTest0001"
ACCESS_KEY_SECRET = "stand-in-secret-0001"
SIGN_NAME = "阳光招标"
TEMPLATE_EVENT = "SMS_480000001"
TEMPLATE_CODE = "SMS_480000002"
# Variable name → longest value; a notification template's free text takes 35,
# a verification code 4-6 digits.
TEMPLATES: dict[str, dict[str, int]] = {
    TEMPLATE_EVENT: {"project": 35, "stage": 35, "link": 35},
    TEMPLATE_CODE: {"code": 6},
}
MAX_SKEW = 15 * 60
UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_AUTHORIZATION = re.compile(
    r"ACS3-HMAC-SHA256 Credential=(?P<key>[^,\s]+),"
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+),Signature=(?P<signature>[0-9a-f]{64})"
)
_MOBILE = re.compile(r"(?:\+86|0086|86)?(?P<national>1[3-9][0-9]{9})")
_URL = re.compile(r"https?://|www\.|\.(?:com|cn|net|org)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Accepted:
    number: str  # the 11-digit national number
    sign_name: str
    template: str
    params: dict[str, str]


@dataclass(frozen=True)
class Answer:
    """A scripted answer to a verified request, instead of the normal one."""

    status: int
    code: str
    message: str
    hang: bool = False


def business_limit(level: str = "分钟级", permits: int = 1) -> Answer:
    return Answer(200, "isv.BUSINESS_LIMIT_CONTROL", f"触发{level}流控Permits:{permits}")


GATEWAY_THROTTLED = Answer(429, "Throttling.User", "Request was denied due to user flow control.")
DAY_LIMIT = Answer(200, "isv.DAY_LIMIT_CONTROL", "触发日发送限额")
INTERNAL_ERROR = Answer(
    500, "InternalError", "The request processing has failed due to some unknown error."
)
UNAVAILABLE = Answer(
    503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."
)
HANG = Answer(200, "OK", "OK", hang=True)


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


@dataclass
class SmsService:
    clock: Callable[[], float] = time.time
    keys: dict[str, str] = field(default_factory=lambda: {ACCESS_KEY_ID: ACCESS_KEY_SECRET})
    sign_names: set[str] = field(default_factory=lambda: {SIGN_NAME})
    templates: dict[str, dict[str, int]] = field(default_factory=lambda: dict(TEMPLATES))
    messages: list[Accepted] = field(default_factory=list)
    answers: list[tuple[int, str]] = field(default_factory=list)  # (status, Code) of each request
    peers: set[tuple[str, int]] = field(default_factory=set)
    port: int = 0
    _script: deque[Answer] = field(default_factory=deque)
    _refused_numbers: dict[str, str] = field(default_factory=dict)
    _nonces: dict[str, float] = field(default_factory=dict)
    _released: asyncio.Event | None = None
    _runner: web.AppRunner | None = None

    # --- running -------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **overrides: str) -> dict[str, str]:
        """`SUNBID_SMS_*` settings for a sender that this service accepts."""
        return {
            "SUNBID_SMS_PROVIDER": "aliyun",
            "SUNBID_SMS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "SUNBID_SMS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
            "SUNBID_SMS_SIGN_NAME": SIGN_NAME,
            "SUNBID_SMS_TEMPLATE_EVENT": TEMPLATE_EVENT,
            "SUNBID_SMS_TEMPLATE_CODE": TEMPLATE_CODE,
            "SUNBID_SMS_API_BASE": self.origin,
            **overrides,
        }

    async def start(self) -> SmsService:
        self._released = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SmsService:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # --- set-up by tests -----------------------------------------------------------------

    def script(self, *answers: Answer) -> None:
        """Answer the next verified requests so, once each, in order."""
        self._script.extend(answers)

    def refuse_number(self, number: str, code: str = "isv.MOBILE_NUMBER_ILLEGAL") -> None:
        """Refuse every message to `number` (11 digits) with `code`."""
        self._refused_numbers[number] = code

    def release(self) -> None:
        """Let hanging requests go (they are answered as if scripted "OK")."""
        if self._released is not None:
            self._released.set()
            self._released = asyncio.Event()

    # --- the endpoint --------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.add((str(peer[0]), int(peer[1])))
        request_id = str(uuid.uuid4()).upper()
        try:
            self._verify_signature(request, body)
            answer = await self._send_sms(request, body)
        except Refused as refused:
            self.answers.append((refused.status, refused.code))
            return _json(
                refused.status,
                {
                    "RequestId": request_id,
                    "HostId": request.host,
                    "Code": refused.code,
                    "Message": refused.message,
                    "Recommend": "https://api.aliyun.com/troubleshoot"
                    f"?q={refused.code}&product=Dysmsapi&requestId={request_id}",
                },
            )
        self.answers.append((200, answer["Code"]))
        return _json(200, {"RequestId": request_id, **answer})

    # --- the gateway: signature V3 -------------------------------------------------------

    def _verify_signature(self, request: web.Request, body: bytes) -> None:
        match = _AUTHORIZATION.fullmatch(request.headers.get("Authorization", ""))
        if match is None:
            raise Refused(
                400,
                "IncompleteSignature",
                "The request signature does not conform to Aliyun standards.",
            )
        if request.headers.get("x-acs-action") != "SendSms":
            raise Refused(
                404,
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.",
            )
        if request.headers.get("x-acs-version") != "2017-05-25":
            raise Refused(400, "InvalidVersion", "Specified parameter Version is not valid.")
        secret = self.keys.get(match["key"])
        if secret is None:
            raise Refused(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        self._check_date(request.headers.get("x-acs-date", ""))
        signed = match["signed"].split(";")
        present = {name.lower() for name in request.headers}
        must_sign = {n for n in present if n in ("host", "content-type") or n.startswith("x-acs-")}
        if not must_sign <= set(signed) or signed != sorted(set(signed)):
            raise Refused(
                400,
                "IncompleteSignature",
                "The request signature does not conform to Aliyun standards.",
            )
        if request.headers.get("x-acs-content-sha256") != hashlib.sha256(body).hexdigest():
            raise Refused(
                400, "SignatureDoesNotMatch", "Specified signature does not match our calculation."
            )
        expected = expected_signature(
            secret,
            method=request.method,
            path=request.rel_url.raw_path,
            raw_query=request.rel_url.raw_query_string,
            headers={name: request.headers.get(name, "") for name in signed},
            body=body,
        )
        if not hmac.compare_digest(expected, match["signature"]):
            raise Refused(
                400, "SignatureDoesNotMatch", "Specified signature does not match our calculation."
            )
        self._spend_nonce(request.headers.get("x-acs-signature-nonce", ""))

    def _check_date(self, value: str) -> None:
        try:
            moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise Refused(
                400,
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            ) from None
        if abs(moment.timestamp() - self.clock()) > MAX_SKEW:
            raise Refused(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )

    def _spend_nonce(self, nonce: str) -> None:
        now = self.clock()
        for old in [n for n, at in self._nonces.items() if at < now - 2 * MAX_SKEW]:
            del self._nonces[old]
        if not nonce:
            raise Refused(
                400, "MissingSignatureNonce", "SignatureNonce is mandatory for this action."
            )
        if nonce in self._nonces:
            raise Refused(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self._nonces[nonce] = now

    # --- SendSms itself ------------------------------------------------------------------

    async def _send_sms(self, request: web.Request, body: bytes) -> dict[str, str]:
        params = parse_query(request.rel_url.raw_query_string)
        if request.content_type == "application/x-www-form-urlencoded":
            params.update(parse_query(body.decode()))
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                raise Refused(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if params["SignName"] not in self.sign_names:
            return _refusal("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        variables = self.templates.get(params["TemplateCode"])
        if variables is None:
            return _refusal("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        values = _template_values(params.get("TemplateParam", "{}"))
        if values is None:
            return _refusal("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if set(variables) - set(values):
            return _refusal("isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
        if any(len(values[name]) > limit for name, limit in variables.items()):
            return _refusal("isv.PARAM_LENGTH_LIMIT", "参数超出长度限制")
        if any(_URL.search(value) for value in values.values()):
            return _refusal("isv.PARAM_NOT_SUPPORT_URL", "不支持URL")
        number = _MOBILE.fullmatch(params["PhoneNumbers"])
        if number is None:
            return _refusal("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        refused = self._refused_numbers.get(number["national"])
        if refused is not None:
            return _refusal(refused, "非法手机号" if "ILLEGAL" in refused else "用户已退订")
        if self._script:
            scripted = self._script.popleft()
            if scripted.hang:
                assert self._released is not None
                await self._released.wait()
            elif scripted.status != 200:
                raise Refused(scripted.status, scripted.code, scripted.message)
            elif scripted.code != "OK":
                return _refusal(scripted.code, scripted.message)
        self.messages.append(
            Accepted(number["national"], params["SignName"], params["TemplateCode"], values)
        )
        return {"Code": "OK", "Message": "OK", "BizId": f"{uuid.uuid4().int % 10**18}^0"}


def expected_signature(
    secret: str,
    *,
    method: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """Signature V3 of a request as received, from the documentation's steps."""
    query = parse_query(raw_query)
    canonical_query = "&".join(f"{encode(name)}={encode(query[name])}" for name in sorted(query))
    names = sorted(name.lower() for name in headers)
    lowered = {name.lower(): value for name, value in headers.items()}
    canonical_headers = "".join(f"{name}:{lowered[name].strip()}\n" for name in names)
    canonical_request = (
        f"{method.upper()}\n{path or '/'}\n{canonical_query}\n{canonical_headers}\n"
        f"{';'.join(names)}\n{hashlib.sha256(body).hexdigest()}"
    )
    string_to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode()).hexdigest()
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def encode(text: str) -> str:
    """RFC 3986 percent-encoding of UTF-8, byte by byte, upper-case hex."""
    return "".join(chr(b) if b in UNRESERVED else f"%{b:02X}" for b in text.encode())


def parse_query(raw: str) -> dict[str, str]:
    pairs = (part.partition("=") for part in raw.split("&") if part)
    return {
        unquote(name, errors="strict"): unquote(value, errors="strict") for name, _, value in pairs
    }


def _template_values(raw: str) -> dict[str, str] | None:
    try:
        values = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        return None
    return values


def _refusal(code: str, message: str) -> dict[str, str]:
    return {"Code": code, "Message": message}


def _json(status: int, payload: Mapping[str, Any]) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload, ensure_ascii=False).encode(),
        content_type="application/json",
        charset="utf-8",
    )
