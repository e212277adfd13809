"""SMS through Alibaba Cloud SMS (Dysmsapi 2017-05-25, SendSms).

How: one signed POST per message to the RPC endpoint, the parameters
(`PhoneNumbers`, `SignName`, `TemplateCode`, `TemplateParam` as a JSON
object of strings) in the query string, an empty body, signature V3
(push/channels/acs3.py). The answer is a JSON object whose `Code` is "OK"
or an error code; business refusals come back with HTTP 200, gateway
refusals (signature, key, throttling) with 4xx, outages with 5xx.

Why not the SDK (`alibabacloud-dysmsapi20170525`): its asyncio path
(`TeaCore.async_do_action`) opens a new `aiohttp.ClientSession` and
connector for every request, takes its proxy from the environment, and
turns every non-2xx answer into an exception carrying a message rather than
a status, so a sender could neither keep one pooled session nor tell a 503
from a refused key without parsing text. Signing by hand is some sixty
lines (acs3.py), tested against the documentation's worked example, and
keeps the sender on the worker's own aiohttp terms: one session, one
timeout, `close()`.

What a result means (`classify`): "OK" is DELIVERED (accepted by the
provider; the handset's receipt comes later and is not awaited). Flow
control — `isv.BUSINESS_LIMIT_CONTROL` (per-number limits: 1 a minute,
5 an hour, 10 a day for codes by default), `Throttling.*`, the account's
own daily cap — and 5xx, timeouts and network errors are RETRY, with
`retry_after` when the answer says how long. A number that cannot receive
(`isv.MOBILE_NUMBER_ILLEGAL`; `isv.CUSTOMER_REFUSED`, the holder opted
out) is GONE. Everything else — a bad key, signature, sign name, template
or parameter, an account out of credit or service, `isv.DENY_IP_RANGE`
(our server's address is outside the mainland, not the number's fault) —
is FAILED: retrying cannot help until someone changes the settings or the
account, and an unknown code lands here too so that it is seen rather than
retried for ever.

Template variables: an approved notification template takes at most 35
characters per free-text variable, so titles are cut to fit with "…". A
variable may not carry a URL (`isv.PARAM_NOT_SUPPORT_URL`): the template
fixes the site's origin and `${link}` is only the page's path, e.g.
`…详见 https://sunbid.example.org/${link}`.

Privacy: the number and the text are never logged; `Sent.detail` is the
provider's code (or "timeout", "network", "http-503", …).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import orjson
from yarl import URL

from push.channels import Message, Result, Sent
from push.channels.acs3 import Credentials, acs_date, canonical_query, signed_headers
from server.core.env import SettingsError, check_origin

log = logging.getLogger("sunbid.push.sms")

DEFAULT_API_BASE = "https://dysmsapi.aliyuncs.com"
ACTION = "SendSms"
VERSION = "2017-05-25"
DEFAULT_TIMEOUT = 10.0
VARIABLE_LIMIT = 35  # characters in one free-text variable of a notification template
CHINA = ZoneInfo("Asia/Shanghai")

_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_PREFIX = re.compile(r"(?:\+86|0086|86)(?=1[0-9]{10}$)")
_SEPARATORS = re.compile(r"[\s\-()]")
_TEMPLATE_CODE = re.compile(r"SMS_[0-9]+")
_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9]+")

GONE_CODES = frozenset({"isv.MOBILE_NUMBER_ILLEGAL", "isv.CUSTOMER_REFUSED"})
RETRY_CODES = frozenset(
    {
        "isv.BUSINESS_LIMIT_CONTROL",
        "isv.DAY_LIMIT_CONTROL",
        "isp.SYSTEM_ERROR",
        "isp.GATEWAY_ERROR",
        "InternalError",
        "ServiceUnavailable",
    }
)
# How long each level of `isv.BUSINESS_LIMIT_CONTROL` holds, by its message
# ("触发分钟级流控Permits:1", "触发小时级流控Permits:5", "触发天级流控Permits:10").
_LIMIT_WINDOWS = (("分钟级", 60.0), ("小时级", 3600.0), ("天级", 86400.0))


# --- numbers ----------------------------------------------------------------------------


def normalize_phone(text: str) -> str:
    """A mainland China mobile number as `+86` and 11 digits; ValueError if not one.

    Accepts what people type: spaces, hyphens, brackets, full-width digits,
    and a `+86`, `0086` or `86` prefix.
    """
    compact = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text))
    national = _PREFIX.sub("", compact, count=1)
    if not _MOBILE.fullmatch(national):
        raise ValueError("not a mainland China mobile number")
    return "+86" + national


def _national(number: str) -> str:
    return normalize_phone(number)[3:]


# --- settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SmsSettings:
    credentials: Credentials
    sign_name: str
    templates: Mapping[str, str]  # Message.template → the approved template's code
    api_base: str = DEFAULT_API_BASE


def from_env(env: Mapping[str, str]) -> SmsSender | None:
    """The SMS channel from `SUNBID_SMS_*`; None when `SUNBID_SMS_PROVIDER` is unset."""
    settings = settings_from_env(env)
    return None if settings is None else SmsSender(settings)


def settings_from_env(env: Mapping[str, str]) -> SmsSettings | None:
    provider = env.get("SUNBID_SMS_PROVIDER", "").strip()
    if not provider:
        return None
    if provider != "aliyun":
        raise SettingsError(f"SUNBID_SMS_PROVIDER must be aliyun, got {provider!r}")
    key_id = _required(env, "SUNBID_SMS_ACCESS_KEY_ID")
    if not _ACCESS_KEY_ID.fullmatch(key_id):
        raise SettingsError("SUNBID_SMS_ACCESS_KEY_ID must be letters and digits only")
    secret = _required(env, "SUNBID_SMS_ACCESS_KEY_SECRET")
    return SmsSettings(
        credentials=Credentials(key_id, secret),
        sign_name=_sign_name(env),
        templates={
            "event": _template_code(env, "SUNBID_SMS_TEMPLATE_EVENT"),
            "code": _template_code(env, "SUNBID_SMS_TEMPLATE_CODE"),
        },
        api_base=_api_base(env),
    )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required when SUNBID_SMS_PROVIDER is set")
    return value


def _sign_name(env: Mapping[str, str]) -> str:
    value = _required(env, "SUNBID_SMS_SIGN_NAME")
    if "【" in value or "】" in value:
        # The platform adds the brackets; with them the name matches no approved one.
        raise SettingsError("SUNBID_SMS_SIGN_NAME is the name alone, without 【】")
    return value


def _template_code(env: Mapping[str, str], name: str) -> str:
    value = _required(env, name)
    if not _TEMPLATE_CODE.fullmatch(value):
        raise SettingsError(f"{name} must be a template code such as SMS_123456789")
    return value


def _api_base(env: Mapping[str, str]) -> str:
    name = "SUNBID_SMS_API_BASE"
    try:
        base = check_origin(env.get(name) or DEFAULT_API_BASE)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None
    host = urlsplit(base).hostname or ""
    if base.startswith("http:") and not _loopback(host):
        # The key's signature is safe in clear, but the number and text are not.
        raise SettingsError(f"{name} must be https (plain http only to a loopback address)")
    return base


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


# --- template parameters ----------------------------------------------------------------


def fit(text: str, limit: int = VARIABLE_LIMIT) -> str:
    """`text` on one line, cut to `limit` characters with "…" when longer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def link_path(link: str) -> str:
    """The part of the page's URL after the origin, which the template fixes."""
    parts = urlsplit(link)
    path = parts.path.lstrip("/")
    return f"{path}?{parts.query}" if parts.query else path


def template_params(message: Message) -> dict[str, str]:
    if message.template == "event":
        # A missing one is sent empty, for the provider to refuse by its code.
        params = message.params
        return {
            "project": fit(params.get("project", "")),
            "stage": fit(params.get("stage", "")),
            "link": link_path(params.get("link", "")),
        }
    return {name: str(value) for name, value in message.params.items()}


# --- answers ----------------------------------------------------------------------------


def classify(
    status: int,
    answer: Mapping[str, Any] | None,
    *,
    retry_after_header: str | None = None,
    now: float | None = None,
) -> Sent:
    """What one HTTP answer of SendSms means for the delivery."""
    code = answer.get("Code") if answer is not None else None
    if not isinstance(code, str) or not code:
        result = Result.RETRY if status >= 500 or status == 429 else Result.FAILED
        return Sent(result, _seconds(retry_after_header), detail=f"http-{status}")
    if code == "OK" and status == 200:
        return Sent(Result.DELIVERED, detail=code)
    if code in GONE_CODES:
        return Sent(Result.GONE, detail=code)
    if code in RETRY_CODES or code.startswith("Throttling") or status >= 500 or status == 429:
        message = answer.get("Message") if answer is not None else None
        wait = _seconds(retry_after_header) or _provider_wait(code, message, now)
        return Sent(Result.RETRY, wait, detail=code)
    return Sent(Result.FAILED, detail=code)


def _provider_wait(code: str, message: object, now: float | None) -> float | None:
    if code == "isv.BUSINESS_LIMIT_CONTROL" and isinstance(message, str):
        return next((seconds for level, seconds in _LIMIT_WINDOWS if level in message), None)
    if code == "isv.DAY_LIMIT_CONTROL":
        return seconds_to_china_midnight(time.time() if now is None else now)
    return None


def seconds_to_china_midnight(now: float) -> float:
    """The account's daily cap is counted per calendar day in Beijing time."""
    today = datetime.fromtimestamp(now, CHINA)
    midnight = datetime.combine(today.date() + timedelta(days=1), datetime.min.time(), CHINA)
    return midnight.timestamp() - now


def _seconds(header: str | None) -> float | None:
    if header is None or not header.strip().isdigit():
        return None
    return float(header.strip())


_LOG_LEVELS = {
    Result.DELIVERED: logging.DEBUG,
    Result.RETRY: logging.INFO,
    Result.GONE: logging.INFO,
    Result.FAILED: logging.WARNING,
}


# --- sending ----------------------------------------------------------------------------


@dataclass
class SmsSender:
    """Sends one message per `send`, over one pooled session made on first use."""

    settings: SmsSettings
    clock: Callable[[], float] = time.time
    timeout: float = DEFAULT_TIMEOUT
    kind: str = "sms"
    _session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    async def send(self, address: str, message: Message) -> Sent:
        template = self.settings.templates.get(message.template)
        if template is None:
            return self._outcome(Sent(Result.FAILED, detail="no-such-template"))
        try:
            number = _national(address)
        except ValueError:
            return self._outcome(Sent(Result.GONE, detail="not-a-mobile-number"))
        query = {
            "PhoneNumbers": number,
            "SignName": self.settings.sign_name,
            "TemplateCode": template,
            "TemplateParam": orjson.dumps(template_params(message)).decode(),
        }
        return self._outcome(await self._post(query))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, query: Mapping[str, str]) -> Sent:
        url = URL(f"{self.settings.api_base}/?{canonical_query(query)}", encoded=True)
        headers = signed_headers(
            self.settings.credentials,
            method="POST",
            host=url.raw_authority,
            action=ACTION,
            version=VERSION,
            date=acs_date(self.clock()),
            nonce=secrets.token_hex(16),
            query=query,
            headers={"accept": "application/json"},
        )
        try:
            async with self._client().post(url, headers=headers) as response:
                body = await response.read()
                retry_after = response.headers.get("Retry-After")
                status = response.status
        except TimeoutError:
            return Sent(Result.RETRY, detail="timeout")
        except aiohttp.ClientError:
            return Sent(Result.RETRY, detail="network")
        return classify(status, _json(body), retry_after_header=retry_after, now=self.clock())

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                # aiohttp would label the empty body application/octet-stream,
                # an unsigned Content-Type the gateway refuses.
                skip_auto_headers=("User-Agent", "Content-Type"),
            )
        return self._session

    def _outcome(self, sent: Sent) -> Sent:
        # A refusal for good wants someone to change a setting; the rest is routine.
        level = _LOG_LEVELS[sent.result]
        log.log(level, "sms %s: %s", sent.result.value, sent.detail)
        return sent


def _json(body: bytes) -> Mapping[str, Any] | None:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None


__all__ = ["SmsSender", "SmsSettings", "classify", "from_env", "normalize_phone"]
