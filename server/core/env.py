"""Reading `SUNBID_*` variables: one error type, one message per mistake.

The web server's settings (server/settings.py) and the push worker's
(push/settings.py) are read from the same environment, each by its own
package; the readers and the variables both need (where the data lives,
the time zone, the log format) are defined once, here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOG_FORMATS = ("text", "json")
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class SettingsError(ValueError):
    """A setting has a value the server cannot run with."""


def environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def sunbid_variables(env: Mapping[str, str]) -> dict[str, str]:
    """The SUNBID_* variables only: what a helper process is started with."""
    return {k: v for k, v in env.items() if k.startswith("SUNBID_")}


def data_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get("SUNBID_DATA_DIR", "./data"))


def database_url(env: Mapping[str, str]) -> str:
    return env.get("SUNBID_DATABASE_URL", f"sqlite:///{data_dir(env) / 'sunbid.db'}")


def database_schema(env: Mapping[str, str]) -> str:
    value = env.get("SUNBID_DATABASE_SCHEMA", "public")
    if not SCHEMA_NAME.match(value):
        raise SettingsError(
            "SUNBID_DATABASE_SCHEMA must be a plain lower-case name (letters, digits, _)"
        )
    return value


def timezone(env: Mapping[str, str]) -> ZoneInfo:
    tz_name = env.get("SUNBID_TIMEZONE", "Asia/Shanghai")
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(f"SUNBID_TIMEZONE: unknown time zone {tz_name!r}") from exc


def log_format(env: Mapping[str, str]) -> str:
    value = env.get("SUNBID_LOG_FORMAT", "text").lower()
    if value not in LOG_FORMATS:
        raise SettingsError("SUNBID_LOG_FORMAT must be text or json")
    return value


def whole(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
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


def seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """A number of seconds above 0 and below an hour."""
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


def days(env: Mapping[str, str], name: str, default: float) -> float:
    """A number of days from 0 (at once) to ten years, fractions allowed."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3650:  # also refuses nan
        raise SettingsError(f"{name} must be a number of days from 0 to 3650, got {raw!r}")
    return value


def path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw) if raw else None


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be 0 or 1, got {raw!r}")


def origin(env: Mapping[str, str], name: str) -> str | None:
    """An origin (`https://host[:port]`) from `name`, normalised; None if unset."""
    value = env.get(name) or None
    if value is None:
        return None
    try:
        return check_origin(value)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def check_origin(origin: str) -> str:
    """The app's public origin (`https://host[:port]`), normalised; ValueError if not one."""
    parts = urlsplit(origin.strip())
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(f"{origin!r} is not an origin such as https://sunbid.example.org")
    return f"{parts.scheme}://{parts.netloc.lower()}"
