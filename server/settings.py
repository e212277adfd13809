"""Settings from `SUNBID_*` environment variables, validated once at start-up."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from push.endpoints import AllowList, AllowListError
from push.payload import check_origin
from push.vapid import VapidSubjectError, validate_subject

DEFAULT_PUSH_HOSTS = (
    "fcm.googleapis.com,updates.push.services.mozilla.com,*.push.apple.com,*.notify.windows.com"
)

LOG_FORMATS = ("text", "json")
MIN_TOKEN_LENGTH = 16


class SettingsError(ValueError):
    """A setting has a value the server cannot run with."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    bus_url: str
    timezone: ZoneInfo
    demo: bool
    vapid_subject: str
    push_allowed_hosts: tuple[str, ...]
    # Where people open the app (https://host): lets Safari show a push
    # without the service worker (Declarative Web Push needs an absolute URL).
    public_url: str | None
    # Limits: exceeding one answers with the contract's error, never a crash.
    max_body_bytes: int
    max_frame_bytes: int
    max_topics_per_connection: int
    max_connections_per_address: int
    # Bytes a connection may have waiting while its socket pushes back (replay
    # included); one frame more and it is closed with 4008 `lagging` (it
    # resumes with `since`).
    max_pending_bytes: int
    # A stream whose socket takes no data for this long is aborted (not closed:
    # a close would wait for a peer that does not read).
    send_timeout: float
    # Proxies whose X-Forwarded-For names the client ("*": any peer); the
    # address every per-address limit counts comes from it (docs/operations.md).
    forwarded_allow_ips: str
    # Push subscriptions created per address: a burst, refilled one per this many seconds.
    subscribe_burst: int
    subscribe_refill_seconds: float
    # HTTP connections: idle time between requests, time for a request's headers
    # to arrive whole (from the connection's start or the request's first byte),
    # and open connections in all (streams included) before new ones get 503.
    http_keepalive_seconds: int
    http_header_timeout: float
    max_connections: int
    ws_ping_interval: float
    sqlite_synchronous: str
    # Compliance: warn this many working days before a statutory deadline (0: only breaches)
    warn_lead_workdays: int
    compliance_snapshot_events: int
    # Staff-edited data files; None: the ones shipped in server/data/
    rules_file: Path | None
    catalog_file: Path | None
    workdays_file: Path | None
    directory_file: Path | None
    # Web Push sending (push/worker.py, in the process of push/process.py)
    push_concurrency: int
    push_timeout: float
    push_retry_base: float
    push_max_attempts: int
    # Operations: log lines as text or one JSON object each; the bearer token
    # /metrics asks for (None: open, for a scraper on a private network).
    log_format: str
    metrics_token: str | None
    # The SUNBID_* variables these settings came from: a helper process (the
    # push worker) is started with them, so it runs with exactly these.
    environ: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("SUNBID_DATA_DIR", "./data"))
        tz_name = env.get("SUNBID_TIMEZONE", "Asia/Shanghai")
        try:
            timezone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingsError(f"SUNBID_TIMEZONE: unknown time zone {tz_name!r}") from exc
        subject = env.get("SUNBID_VAPID_SUBJECT", "mailto:admin@sunbid.invalid")
        try:
            subject = validate_subject(subject)
        except VapidSubjectError as exc:
            raise SettingsError(f"SUNBID_VAPID_SUBJECT: {exc}") from None
        allowed = tuple(
            h.strip()
            for h in env.get("SUNBID_PUSH_ALLOWED_HOSTS", DEFAULT_PUSH_HOSTS).split(",")
            if h.strip()
        )
        try:
            AllowList.from_entries(allowed)
        except AllowListError as exc:
            raise SettingsError(f"SUNBID_PUSH_ALLOWED_HOSTS: {exc}") from None
        public_url = env.get("SUNBID_PUBLIC_URL") or None
        if public_url is not None:
            try:
                public_url = check_origin(public_url)
            except ValueError as exc:
                raise SettingsError(f"SUNBID_PUBLIC_URL: {exc}") from None
        synchronous = env.get("SUNBID_SQLITE_SYNCHRONOUS", "FULL").upper()
        if synchronous not in {"FULL", "NORMAL", "EXTRA"}:
            raise SettingsError("SUNBID_SQLITE_SYNCHRONOUS must be FULL, EXTRA or NORMAL")
        max_body_bytes = _int(env, "SUNBID_MAX_BODY_BYTES", 64 * 1024, 1024)
        max_pending_bytes = _int(env, "SUNBID_MAX_PENDING_BYTES", 1024 * 1024, 1024)
        if max_pending_bytes < 2 * max_body_bytes:
            # An event carries at most a body's worth: room for two, or a client
            # that is merely one frame behind would be cut off.
            raise SettingsError(
                "SUNBID_MAX_PENDING_BYTES must be at least twice SUNBID_MAX_BODY_BYTES "
                f"({2 * max_body_bytes}), got {max_pending_bytes}"
            )
        log_format = env.get("SUNBID_LOG_FORMAT", "text").lower()
        if log_format not in LOG_FORMATS:
            raise SettingsError("SUNBID_LOG_FORMAT must be text or json")
        return cls(
            forwarded_allow_ips=_forwarded_allow_ips(env),
            subscribe_burst=_int(env, "SUNBID_SUBSCRIBE_BURST", 60, 1),
            subscribe_refill_seconds=_float(env, "SUNBID_SUBSCRIBE_REFILL_SECONDS", 2.0),
            http_keepalive_seconds=_int(env, "SUNBID_HTTP_KEEPALIVE_SECONDS", 20, 1),
            http_header_timeout=float(_int(env, "SUNBID_HTTP_HEADER_TIMEOUT_SECONDS", 10, 1)),
            max_connections=_int(env, "SUNBID_MAX_CONNECTIONS", 12_000, 16),
            data_dir=data_dir,
            database_url=env.get("SUNBID_DATABASE_URL", f"sqlite:///{data_dir / 'sunbid.db'}"),
            bus_url=env.get("SUNBID_BUS_URL", "memory://"),
            timezone=timezone,
            demo=_flag(env, "SUNBID_DEMO", True),
            vapid_subject=subject,
            push_allowed_hosts=allowed,
            public_url=public_url,
            max_body_bytes=max_body_bytes,
            max_frame_bytes=_int(env, "SUNBID_MAX_FRAME_BYTES", 16 * 1024, 256),
            max_topics_per_connection=_int(env, "SUNBID_MAX_TOPICS", 64, 1),
            max_connections_per_address=_int(env, "SUNBID_MAX_CONNECTIONS_PER_ADDRESS", 256, 1),
            max_pending_bytes=max_pending_bytes,
            send_timeout=float(_int(env, "SUNBID_SEND_TIMEOUT_SECONDS", 30, 1)),
            ws_ping_interval=float(_int(env, "SUNBID_WS_PING_SECONDS", 20, 1)),
            sqlite_synchronous=synchronous,
            warn_lead_workdays=_int(env, "SUNBID_WARN_LEAD_WORKDAYS", 1, 0),
            compliance_snapshot_events=_int(env, "SUNBID_COMPLIANCE_SNAPSHOT_EVENTS", 50_000, 0),
            rules_file=_path(env, "SUNBID_RULES_FILE"),
            catalog_file=_path(env, "SUNBID_CATALOG_FILE"),
            workdays_file=_path(env, "SUNBID_WORKDAYS_FILE"),
            directory_file=_path(env, "SUNBID_DIRECTORY_FILE"),
            push_concurrency=_int(env, "SUNBID_PUSH_CONCURRENCY", 256, 1),
            push_timeout=float(_int(env, "SUNBID_PUSH_TIMEOUT_SECONDS", 15, 1)),
            push_retry_base=_float(env, "SUNBID_PUSH_RETRY_BASE_SECONDS", 2.0),
            push_max_attempts=_int(env, "SUNBID_PUSH_MAX_ATTEMPTS", 8, 1),
            log_format=log_format,
            metrics_token=_token(env, "SUNBID_METRICS_TOKEN"),
            environ={k: v for k, v in env.items() if k.startswith("SUNBID_")},
        )


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not 0 < value < 3600:
        raise SettingsError(f"{name} must be between 0 and 3600, got {value}")
    return value


def _forwarded_allow_ips(env: Mapping[str, str]) -> str:
    """`*`, or IP addresses and networks separated by commas (as uvicorn takes them).

    uvicorn silently treats an entry it cannot parse (`10.0.0.1/8`, a host
    name) as a literal string that no peer ever matches: refuse it here.
    """
    name = "SUNBID_FORWARDED_ALLOW_IPS"
    raw = env.get(name, "127.0.0.1").strip()
    if raw == "*":
        return raw
    entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
    for entry in entries:
        try:
            if "/" in entry:
                ipaddress.ip_network(entry)
            else:
                ipaddress.ip_address(entry)
        except ValueError:
            raise SettingsError(
                f"{name}: {entry!r} is not an IP address or network such as 10.0.0.0/8 (or give *)"
            ) from None
    return ",".join(entries)


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw) if raw else None


def _token(env: Mapping[str, str], name: str) -> str | None:
    """A secret a client sends in a header: long enough not to be guessed, and
    printable ASCII without spaces so it survives `Authorization: Bearer …`."""
    raw = env.get(name)
    if not raw:
        return None
    if len(raw) < MIN_TOKEN_LENGTH or not all(0x21 <= ord(c) <= 0x7E for c in raw):
        raise SettingsError(
            f"{name} must be at least {MIN_TOKEN_LENGTH} printable ASCII characters, no spaces"
        )
    return raw


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be 0 or 1, got {raw!r}")
