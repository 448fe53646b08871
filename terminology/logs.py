"""Every log line one JSON object: start-up, errors, access lines and the WSGI server's own.

`JsonFormatter` writes {"time", "level", "logger", "message", "pid", ...} with the request id of the
request being handled (set by the HTTP layer in `request_id`), any `fields` passed as
`extra={"fields": {...}}` and, for an exception, its traceback as one string. `configure`
installs it on the root logger; `dict_config` is the same as a logging.config dictionary,
which the launcher hands to granian (its workers apply it after forking) so that granian's
own lines are JSON too.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import time
from contextvars import ContextVar
from typing import Any

import orjson

# The id of the request this thread is handling ("" between requests).
request_id: ContextVar[str] = ContextVar("request_id", default="")
# Loggers of the WSGI servers, routed to the same JSON handler.
SERVER_LOGGERS = ("_granian", "granian.access", "gunicorn.error", "gunicorn.access", "werkzeug")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        rid = request_id.get()
        if rid:
            out["request_id"] = rid
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            out.update(extra)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = record.stack_info
        return orjson.dumps(out, default=str).decode()


def dict_config(level: str = "info") -> dict[str, Any]:
    """A logging.config dictionary: every logger, ours and the servers', as JSON on stderr."""
    lvl = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "loggers": {name: {"handlers": ["json"], "level": lvl, "propagate": False}
                    for name in SERVER_LOGGERS},
        "root": {"handlers": ["json"], "level": lvl},
    }


def configure(level: str = "info") -> None:
    """Send every log record of this process through the JSON formatter."""
    logging.config.dictConfig(dict_config(level))
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    """An exception nothing caught, as one JSON line (not Python's plain traceback)."""
    logging.getLogger("terminology").critical("unhandled error: %s", exc, exc_info=(kind, exc, tb))
