"""Every log line one JSON object: start-up, errors, access lines and the WSGI server's own.

`JsonFormatter` writes {"time", "level", "logger", "message", "pid", ...} with the request id of the
request being handled (set by the HTTP layer in `request_id`), any `fields` passed as
`extra={"fields": {...}}` and, for an exception, its traceback as one string. `configure`
installs it on the root logger; `dict_config` is the same as a logging.config dictionary,
which the launcher hands to granian (its workers apply it after forking) so that granian's
own lines are JSON too.

Lines are written through `BufferedJsonHandler`. `AccessLog` writes the access line of each
request: the same JSON object the formatter writes, built directly (no LogRecord, no caller
lookup) whenever the only handler it reaches is that handler, and through `logging`
otherwise (a test capturing records, an operator's own handler). Access lines are written
in batches by a flusher thread, at most FLUSH_SECONDS after the request (and at exit), so a
request does not pay for a write() and a flush() of its own; every other record is
written at once, with the access lines waiting before it.
"""

from __future__ import annotations

import atexit
import logging
import logging.config
import os
import sys
import threading
import time
from contextvars import ContextVar
from typing import Any

import orjson

# The id of the request this thread is handling ("" between requests).
request_id: ContextVar[str] = ContextVar("request_id", default="")
# Loggers of the WSGI servers, routed to the same JSON handler.
SERVER_LOGGERS = ("_granian", "granian.access", "gunicorn.error", "gunicorn.access", "werkzeug")
FLUSH_SECONDS = 0.1  # how long a buffered access line may wait before it is written
FLUSH_LINES = 256  # a batch this long is written at once


def every(seconds: float, run: Any, name: str) -> threading.Thread:
    """A started daemon thread that calls `run()` every `seconds` (the batching flushers of
    the access log here and of the metrics, http/metrics.py)."""
    def forever() -> None:
        while True:
            time.sleep(seconds)
            run()

    thread = threading.Thread(target=forever, name=name, daemon=True)
    thread.start()
    return thread
ATOMIC_WRITE = 4096  # PIPE_BUF on Linux: a write this small to a pipe is never split


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": timestamp(record.created),
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


_second: list[tuple[int, str]] = [(-1, "")]  # the last whole second formatted, and its text


def timestamp(created: float) -> str:
    """`created` as 2026-01-02T03:04:05.678Z (the seconds part formatted once per second)."""
    whole = int(created)
    last = _second[0]
    if last[0] != whole:
        last = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
        _second[0] = last
    return f"{last[1]}.{int((created - whole) * 1000):03d}Z"


class BufferedJsonHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """A StreamHandler whose access lines (`write_line`) are written in batches from a
    flusher thread (FLUSH_SECONDS); records (`emit`) are written at once, with whatever
    waits before them; what is buffered is written at exit and by `flush()`. Safe across fork: a child starts with an
    empty buffer (the parent writes its own) and its own flusher thread.
    """

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush)

    def _reset(self) -> None:
        self._lines: list[str] = []
        self._pending = threading.Lock()
        self._wake = threading.Event()
        self._pid = os.getpid()
        self._flusher: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001  (as logging does: report, never raise)
            self.handleError(record)
            return
        self.write_line(line, urgent=True)  # only access lines (write_line) wait for a batch

    def write_line(self, line: str, urgent: bool = False) -> None:
        """Queue one formatted line; written within FLUSH_SECONDS (at once when urgent)."""
        with self._pending:
            self._lines.append(line)
            full = len(self._lines) >= FLUSH_LINES
        if urgent or full:
            self.flush()
        elif self._flusher is None:
            self._start_flusher()

    def _start_flusher(self) -> None:
        with self._pending:
            if self._flusher is None:
                self._flusher = every(FLUSH_SECONDS, self.flush, "log-flusher")

    def flush(self) -> None:
        with self._pending:
            lines, self._lines = self._lines, []
        if not lines:
            return
        self.acquire()
        try:
            stream = self.stream
            for piece in pieces(lines, self.terminator):
                stream.write(piece)
                if hasattr(stream, "flush"):
                    stream.flush()
        except Exception:  # noqa: BLE001  (a closed stream at exit: nothing left to tell)
            pass
        finally:
            self.release()


def pieces(lines: list[str], terminator: str = "\n", size: int = ATOMIC_WRITE) -> list[str]:
    """`lines` joined into writes of at most `size` bytes of whole lines (a longer line
    alone): on a pipe, writes that small are atomic, so lines of workers sharing the
    pipe never interleave."""
    out: list[str] = []
    batch: list[str] = []
    length = 0
    for line in lines:
        n = (len(line) if line.isascii() else len(line.encode())) + len(terminator)
        if batch and length + n > size:
            out.append(terminator.join(batch) + terminator)
            batch, length = [], 0
        batch.append(line)
        length += n
    if batch:
        out.append(terminator.join(batch) + terminator)
    return out


class AccessLog:
    """The access line of each answered request, at INFO on logger `name`."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)
        self.pid = os.getpid()
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self.pid = os.getpid()

    def _direct_handler(self) -> BufferedJsonHandler | None:
        """The one buffered JSON handler every access record would reach, else None."""
        found: BufferedJsonHandler | None = None
        logger: logging.Logger | None = self.logger
        while logger is not None:
            for handler in logger.handlers:
                if found is not None or type(handler) is not BufferedJsonHandler or (
                        type(handler.formatter) is not JsonFormatter or handler.filters
                        or handler.level > logging.INFO):
                    return None
                found = handler
            logger = logger.parent if logger.propagate else None
        return found

    def write(self, message: str, fields: dict[str, Any]) -> None:
        """One access line: `message` with `fields` (as `extra={"fields": fields}` gives)."""
        logger = self.logger
        if logger.disabled or not logger.isEnabledFor(logging.INFO):
            return
        handler = self._direct_handler() if not logger.filters else None
        if handler is None:
            logger.info(message, extra={"fields": fields})
            return
        out: dict[str, Any] = {"time": timestamp(time.time()), "level": "info",
                               "logger": logger.name, "message": message, "pid": self.pid}
        rid = request_id.get()
        if rid:
            out["request_id"] = rid
        out.update(fields)
        handler.write_line(orjson.dumps(out, default=str).decode())


def dict_config(level: str = "info") -> dict[str, Any]:
    """A logging.config dictionary: every logger, ours and the servers', as JSON on stderr."""
    lvl = level.upper()
    handler = {"class": "terminology.logs.BufferedJsonHandler", "formatter": "json",
               "stream": "ext://sys.stderr"}
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
