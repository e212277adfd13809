"""The web server's settings from `SUNBID_*` variables, validated once at start-up.

Web Push reads its own (push/settings.py) from the same variables: `server/`
does not import `push/` except where the two are wired together. `sunbid
serve` reads both before it starts anything, so a bad value of either stops
it with the variable's name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from server.core import env as read
from server.core.env import SettingsError

__all__ = ["Settings", "SettingsError"]

MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    database_schema: str  # PostgreSQL only: the schema holding every table
    bus_url: str
    bus_prefix: str  # prefixes every Redis key and channel: deployments can share one Redis
    timezone: ZoneInfo
    demo: bool
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
    # Pruning (server/pruning.py): idempotency keys are kept so long
    idempotency_keep_hours: int
    # Operations: log lines as text or one JSON object each; the bearer token
    # /metrics asks for (None: open, for a scraper on a private network).
    log_format: str
    metrics_token: str | None
    # The app's public origin (SUNBID_PUBLIC_URL): share cards' absolute URLs.
    # None: the origin each request came to.
    public_url: str | None = None
    # The background work (push worker, pruning, candidacy for the compliance
    # lease) runs here: False for `serve --no-worker`, beside `sunbid worker`.
    background: bool = True
    # The public's cases (server/respond/): filing enquiries, requests and
    # ratings per client address (generous: a mobile carrier's NAT puts many
    # phones behind one address) and per device (the app's X-Device-Id).
    ask_burst: int = 20
    ask_refill_seconds: float = 30.0
    ask_device_burst: int = 5
    ask_device_refill_seconds: float = 600.0
    case_keep_days: float = 30.0  # what people wrote is erased this long after a case closes
    # OCDS (server/interop/ocds.py): `ocid` = this prefix + "-" + project id
    # (a placeholder until a prefix is registered with the Open Contracting
    # Partnership), and what every package says of who publishes it and how.
    ocid_prefix: str = "ocds-sunbid"
    ocds_publisher: str = "Sunbid"
    ocds_license: str = "https://creativecommons.org/licenses/by/4.0/"
    # How long GET /api/stats keeps an answer for the same filters and log head
    # (the on-time rates and answers also move with the clock).
    stats_cache_seconds: float = 5.0
    # The SUNBID_* variables these settings came from: Web Push reads its own
    # settings from them (push/settings.py), so both agree on every value.
    environ: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = read.environ(env)
        synchronous = env.get("SUNBID_SQLITE_SYNCHRONOUS", "FULL").upper()
        if synchronous not in {"FULL", "NORMAL", "EXTRA"}:
            raise SettingsError("SUNBID_SQLITE_SYNCHRONOUS must be FULL, EXTRA or NORMAL")
        whole, seconds = read.whole, read.seconds
        max_body_bytes = whole(env, "SUNBID_MAX_BODY_BYTES", 64 * 1024, 1024)
        max_pending_bytes = whole(env, "SUNBID_MAX_PENDING_BYTES", 1024 * 1024, 1024)
        if max_pending_bytes < 2 * max_body_bytes:
            # An event carries at most a body's worth: room for two, or a client
            # that is merely one frame behind would be cut off.
            raise SettingsError(
                "SUNBID_MAX_PENDING_BYTES must be at least twice SUNBID_MAX_BODY_BYTES "
                f"({2 * max_body_bytes}), got {max_pending_bytes}"
            )
        return cls(
            forwarded_allow_ips=_forwarded_allow_ips(env),
            subscribe_burst=whole(env, "SUNBID_SUBSCRIBE_BURST", 60, 1),
            subscribe_refill_seconds=seconds(env, "SUNBID_SUBSCRIBE_REFILL_SECONDS", 2.0),
            http_keepalive_seconds=whole(env, "SUNBID_HTTP_KEEPALIVE_SECONDS", 20, 1),
            http_header_timeout=float(whole(env, "SUNBID_HTTP_HEADER_TIMEOUT_SECONDS", 10, 1)),
            max_connections=whole(env, "SUNBID_MAX_CONNECTIONS", 12_000, 16),
            data_dir=read.data_dir(env),
            database_url=read.database_url(env),
            database_schema=read.database_schema(env),
            bus_url=bus_url(env),
            bus_prefix=bus_prefix(env),
            timezone=read.timezone(env),
            demo=read.flag(env, "SUNBID_DEMO", True),
            max_body_bytes=max_body_bytes,
            max_frame_bytes=whole(env, "SUNBID_MAX_FRAME_BYTES", 16 * 1024, 256),
            max_topics_per_connection=whole(env, "SUNBID_MAX_TOPICS", 64, 1),
            max_connections_per_address=whole(env, "SUNBID_MAX_CONNECTIONS_PER_ADDRESS", 256, 1),
            max_pending_bytes=max_pending_bytes,
            send_timeout=float(whole(env, "SUNBID_SEND_TIMEOUT_SECONDS", 30, 1)),
            ws_ping_interval=float(whole(env, "SUNBID_WS_PING_SECONDS", 20, 1)),
            sqlite_synchronous=synchronous,
            warn_lead_workdays=whole(env, "SUNBID_WARN_LEAD_WORKDAYS", 1, 0),
            compliance_snapshot_events=whole(env, "SUNBID_COMPLIANCE_SNAPSHOT_EVENTS", 50_000, 0),
            rules_file=read.path(env, "SUNBID_RULES_FILE"),
            catalog_file=read.path(env, "SUNBID_CATALOG_FILE"),
            workdays_file=read.path(env, "SUNBID_WORKDAYS_FILE"),
            directory_file=read.path(env, "SUNBID_DIRECTORY_FILE"),
            idempotency_keep_hours=whole(env, "SUNBID_IDEMPOTENCY_KEEP_HOURS", 168, 1),
            log_format=read.log_format(env),
            metrics_token=_token(env, "SUNBID_METRICS_TOKEN"),
            public_url=read.origin(env, "SUNBID_PUBLIC_URL"),
            ask_burst=whole(env, "SUNBID_ASK_BURST", 20, 1),
            ask_refill_seconds=seconds(env, "SUNBID_ASK_REFILL_SECONDS", 30.0),
            ask_device_burst=whole(env, "SUNBID_ASK_DEVICE_BURST", 5, 1),
            ask_device_refill_seconds=seconds(env, "SUNBID_ASK_DEVICE_REFILL_SECONDS", 600.0),
            case_keep_days=read.days(env, "SUNBID_CASE_KEEP_DAYS", 30.0),
            ocid_prefix=ocid_prefix(env),
            ocds_publisher=_printable(env, "SUNBID_OCDS_PUBLISHER", "Sunbid"),
            ocds_license=_url(
                env, "SUNBID_OCDS_LICENSE", "https://creativecommons.org/licenses/by/4.0/"
            ),
            stats_cache_seconds=seconds(env, "SUNBID_STATS_CACHE_SECONDS", 5.0),
            environ=read.sunbid_variables(env),
        )


OCID_PREFIX = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def ocid_prefix(env: Mapping[str, str]) -> str:
    """OCDS ids are `ocds-<registered prefix>`: lower-case letters and digits in
    dash-separated words, short enough to leave the project id room."""
    prefix = env.get("SUNBID_OCID_PREFIX", "ocds-sunbid")
    if len(prefix) > 40 or not OCID_PREFIX.fullmatch(prefix):
        raise SettingsError(
            "SUNBID_OCID_PREFIX must be 1-40 lower-case letters and digits in words joined"
            " by dashes, such as ocds-a1b2c3"
        )
    return prefix


def _printable(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default).strip()
    if not value or len(value) > 200 or not value.isprintable():
        raise SettingsError(f"{name} must be 1-200 printable characters")
    return value


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default).strip()
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or not value.isprintable():
        raise SettingsError(f"{name} must be an http(s) URL")
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


def bus_url(env: Mapping[str, str]) -> str:
    """Checked here so a typo stops `sunbid serve` with a message, not a traceback."""
    url = env.get("SUNBID_BUS_URL", "memory://")
    usage = "SUNBID_BUS_URL must be memory:// or redis://host[:port][/db]"
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return url
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise SettingsError(usage)
    try:
        parts.port  # noqa: B018 - raises ValueError when it is not a port number
    except ValueError:
        raise SettingsError(f"{usage} (bad port)") from None
    if parts.path.strip("/") and not parts.path.strip("/").isdigit():
        raise SettingsError(f"{usage} (the database is a number)")
    return url


def bus_prefix(env: Mapping[str, str]) -> str:
    prefix = env.get("SUNBID_BUS_PREFIX", "sunbid")
    if (
        not prefix
        or len(prefix) > 100
        or not prefix.isprintable()
        or any(c.isspace() for c in prefix)
    ):
        raise SettingsError("SUNBID_BUS_PREFIX must be 1-100 printable characters without spaces")
    return prefix
