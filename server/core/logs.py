"""Log lines as text for a person, or one JSON object each for a log pipeline.

`SUNBID_LOG_FORMAT=json` makes every line of the web server (uvicorn's own
loggers included) and of the push worker process a single JSON object:
`{"time", "level", "logger", "message"}`, plus `"exception"` with the
traceback when there is one. A traceback is kept inside its line, so a
collector never mistakes its lines for separate records.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # default=str: an argument orjson cannot encode must not lose the line.
        return orjson.dumps(line, default=str).decode("utf-8")


def configure_logging(log_format: str) -> None:
    """Set up the root logger: every process calls this once, first thing."""
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
        # What Python itself would write to stderr goes through the log too:
        # warnings, and the traceback of an exception that ends the process.
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
    else:
        logging.basicConfig(level=logging.INFO, format=TEXT_FORMAT)


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    logging.getLogger("sunbid").critical("uncaught exception", exc_info=(kind, exc, tb))


def uvicorn_log_config(log_format: str) -> dict[str, Any] | None:
    """The `log_config` to hand uvicorn.

    For text, uvicorn keeps its own set-up. For JSON it is told to configure
    nothing, so its loggers propagate to the root handler and come out in the
    same JSON as everything else.
    """
    if log_format == "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    return LOGGING_CONFIG
