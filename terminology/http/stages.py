"""The pipeline's general stages (terminology/http/pipeline.py lists them all, in order).

Each is one small function of the request's Exchange, run on every path the list does not
exempt: the thin dispatch, a response-cache hit and the Flask routes.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any
from urllib.parse import unquote_plus, unquote_to_bytes

from terminology.errors import BadRequest, HeadersTooLarge, UriTooLong
from terminology.http.exchange import Early, Exchange
from terminology.logs import AccessLog
from terminology.logs import request_id as log_request_id

access_log_lines = AccessLog("terminology.access")  # logs.py: one JSON line per request, buffered
CORS_PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Accept, Accept-Language, X-Request-Id, Authorization, "
                                    "If-Match, If-None-Exist, Prefer",
    "Access-Control-Max-Age": "86400",
}
# A read-only server offers no PUT or DELETE (POST: operations, batch, _search)
CORS_PREFLIGHT_READ_ONLY = {**CORS_PREFLIGHT, "Access-Control-Allow-Methods": "GET, POST, OPTIONS"}


HIGH_ESCAPE = re.compile(r"%[89a-fA-F][0-9a-fA-F]")  # a percent-escape of a byte over 0x7F


def new_request_id(sent: str | None) -> str:
    """The client's X-Request-Id when it is a sane token, else a new one."""
    if sent and len(sent) <= 200 and sent.isprintable():
        return sent
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID


def request_id(x: Exchange) -> Early | None:
    """Stage: the request's id (the client's X-Request-Id when sane), also on its log lines."""
    x.request_id = new_request_id(x.environ.get("HTTP_X_REQUEST_ID"))
    log_request_id.set(x.request_id)
    return None


def size_limits(x: Exchange) -> Early | None:
    """Stage: 414 for a URL over max_url_bytes, 431 for headers over max_header_bytes."""
    settings = x.site.settings
    environ = x.environ
    url = len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", ""))
    if url > settings.max_url_bytes:
        raise UriTooLong(f"The request URL is {url} bytes long, more than the {settings.max_url_bytes} "
                         "this server accepts (setting max_url_bytes); send long requests as a POST "
                         "with a Parameters body")
    headers = 0
    for k, v in environ.items():  # granian's environ holds the process environment too
        if k[:5] == "HTTP_":
            headers += len(k) + len(v)
    if headers > settings.max_header_bytes:
        raise HeadersTooLarge(f"The request headers are {headers} bytes, more than the "
                              f"{settings.max_header_bytes} this server accepts (setting max_header_bytes)")
    return None


def pin_registry(x: Exchange) -> Early | None:
    """Stage: the content this request runs on, even if a reload swaps it meanwhile."""
    x.registry = x.site.current()
    return None


def preflight(x: Exchange) -> Early | None:
    """Stage: a CORS preflight (or a bare OPTIONS) is answered here, without a body."""
    if x.method != "OPTIONS":
        return None
    return 204, CORS_PREFLIGHT if x.site.authorizer.writes_enabled else CORS_PREFLIGHT_READ_ONLY


def query_encoding(x: Exchange) -> Early | None:
    """Stage: 400 for a query string whose percent-encoded bytes are not UTF-8.

    Werkzeug keeps undecodable '%FF' as literal text, so a bad code would be looked up as
    the string '%FF'; naming the parameter is more useful to the client.
    """
    query = x.environ.get("QUERY_STRING", "")
    if query.isascii() and ("%" not in query or HIGH_ESCAPE.search(query) is None):
        return None  # only ASCII once decoded: valid UTF-8
    raw = query.encode("latin-1")  # the bytes as sent (WSGI strings are latin-1)
    try:
        unquote_to_bytes(raw).decode("utf-8")  # every percent-escape decoded at once
    except UnicodeDecodeError:
        for pair in raw.decode("latin-1").split("&"):
            name, _, value = pair.partition("=")
            try:
                unquote_plus(name, errors="strict")
                unquote_plus(value, errors="strict")
            except UnicodeDecodeError:
                shown = unquote_plus(name, errors="replace")
                raise BadRequest(f"The query parameter '{shown}' is not valid UTF-8 once "
                                 "percent-decoded", expression=shown) from None
        raise BadRequest("The query string is not valid UTF-8") from None
    return None


def request_id_header(x: Exchange) -> None:
    """Stage: X-Request-Id on every answer."""
    x.headers["X-Request-Id"] = x.request_id


def access_log(x: Exchange) -> None:
    """Stage: one JSON access-log line (`"cache": "hit"` when the response cache answered)."""
    log_access(x.request_id, x.method, x.path, x.status, x.started, x.cached)


def log_access(request_id: str, method: str, path: str, status: int, started: float,
               cached: bool = False) -> None:
    """One access line, written in batches by the log's buffered handler (logs.AccessLog);
    also for answers given outside the pipeline (the server's 408 for a stalled body)."""
    fields: dict[str, Any] = {
        "request_id": request_id, "method": method, "path": path, "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    if cached:
        fields["cache"] = "hit"
    access_log_lines.write(f"{method} {path} {status}", fields)


def forget_request_id(x: Exchange) -> None:
    """Stage (teardown): later log lines of this thread belong to no request."""
    log_request_id.set("")
