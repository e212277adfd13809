"""Web Push's settings, read from the same `SUNBID_*` variables as the server's.

Push reads them itself (rather than being handed server/settings.py's
object) so that it depends on the core alone, and so that the worker process
(push/process.py), started with the server's `SUNBID_*` variables, reads
exactly what the web server read. `sunbid serve` reads these before it
starts anything: a bad value stops it with the variable's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from push.endpoints import AllowList, AllowListError
from push.vapid import VapidSubjectError, validate_subject
from server.core import env as read
from server.core.env import SettingsError, check_origin

DEFAULT_PUSH_HOSTS = (
    "fcm.googleapis.com,updates.push.services.mozilla.com,*.push.apple.com,*.notify.windows.com"
)


@dataclass(frozen=True)
class PushSettings:
    data_dir: Path  # push.db and the VAPID key live here
    database_url: str  # the log the worker derives deliveries from
    database_schema: str  # its PostgreSQL schema (and the push tables')
    timezone: ZoneInfo
    vapid_subject: str
    push_allowed_hosts: tuple[str, ...]
    # Where people open the app (https://host): lets Safari show a push
    # without the service worker (Declarative Web Push needs an absolute URL).
    public_url: str | None
    # Sending (push/worker.py, in the process of push/process.py)
    push_concurrency: int
    push_timeout: float
    push_retry_base: float
    push_max_attempts: int
    # PostgreSQL: how long a worker's claim on a due row holds (push/queue.py)
    push_claim_seconds: float
    # Finished deliveries are kept so long, then pruned (server/pruning.py)
    delivery_keep_days: int
    log_format: str
    # Webhooks (push/webhooks/): where they may point, and how they are sent
    webhook_allowed_hosts: tuple[str, ...] = ()
    webhook_timeout: float = 10.0
    webhook_retry_base: float = 5.0
    webhook_disable_after_days: float = 3.0
    webhook_concurrency: int = 256
    webhook_records_kept: int = 1000
    # The SUNBID_* variables these came from: the worker process is started
    # with them, so it runs with exactly these.
    environ: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PushSettings:
        env = read.environ(env)
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
        webhook_hosts = tuple(
            h.strip() for h in env.get("SUNBID_WEBHOOK_ALLOWED_HOSTS", "").split(",") if h.strip()
        )
        try:
            AllowList.from_entries(webhook_hosts)
        except AllowListError as exc:
            raise SettingsError(f"SUNBID_WEBHOOK_ALLOWED_HOSTS: {exc}") from None
        public_url = env.get("SUNBID_PUBLIC_URL") or None
        if public_url is not None:
            try:
                public_url = check_origin(public_url)
            except ValueError as exc:
                raise SettingsError(f"SUNBID_PUBLIC_URL: {exc}") from None
        return cls(
            data_dir=read.data_dir(env),
            database_url=read.database_url(env),
            database_schema=read.database_schema(env),
            timezone=read.timezone(env),
            vapid_subject=subject,
            push_allowed_hosts=allowed,
            public_url=public_url,
            push_concurrency=read.whole(env, "SUNBID_PUSH_CONCURRENCY", 256, 1),
            push_timeout=float(read.whole(env, "SUNBID_PUSH_TIMEOUT_SECONDS", 15, 1)),
            delivery_keep_days=read.whole(env, "SUNBID_DELIVERY_KEEP_DAYS", 30, 1),
            push_retry_base=read.seconds(env, "SUNBID_PUSH_RETRY_BASE_SECONDS", 2.0),
            push_max_attempts=read.whole(env, "SUNBID_PUSH_MAX_ATTEMPTS", 8, 1),
            push_claim_seconds=float(read.whole(env, "SUNBID_PUSH_CLAIM_SECONDS", 60, 1)),
            log_format=read.log_format(env),
            webhook_allowed_hosts=webhook_hosts,
            webhook_timeout=read.seconds(env, "SUNBID_WEBHOOK_TIMEOUT_SECONDS", 10.0),
            webhook_retry_base=read.seconds(env, "SUNBID_WEBHOOK_RETRY_BASE_SECONDS", 5.0),
            webhook_disable_after_days=read.days(env, "SUNBID_WEBHOOK_DISABLE_AFTER_DAYS", 3.0),
            webhook_concurrency=read.whole(env, "SUNBID_WEBHOOK_CONCURRENCY", 256, 1),
            webhook_records_kept=read.whole(env, "SUNBID_WEBHOOK_RECORDS_KEPT", 1000, 10),
            environ=read.sunbid_variables(env),
        )
