"""A thin dispatch for operation GETs, in front of Flask (setting `fast_dispatch`).

A type-level operation GET (`/fhir/CodeSystem/$lookup?...`) is a pure function of its query
string and a few headers, and Flask's own per-request work (request context, routing, the
hooks, Werkzeug's response object) costs more than a small operation. This middleware
answers such a request itself, doing what the Flask route does in the same order (request
id, query encoding, content negotiation, parameters, the request time limit, the handler)
and sending the same status line, headers and body bytes. Every error is the same
OperationOutcome: a FhirError is rendered by its own `outcome()`, as the app's error handler
does; anything this path is not sure to answer exactly as Flask would (a POST, an instance
or unknown operation, a non-ASCII or badly encoded query, tx-resource or cache-id, an unexpected
exception) goes to Flask, which answers it as before. tests/http/test_dispatch.py compares
the two answers on every shipped value set and CPT code.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

import orjson
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import HTTP_STATUS_CODES, http_date, parse_accept_header

from terminology.errors import FhirError
from terminology.http import metrics
from terminology.http.conditional import strong_etag
from terminology.http.negotiation import EVERY_ANSWER_HEADERS, FHIR_JSON, JSON, VARY, negotiate
from terminology.http.response_cache import BYPASS_PARAMS, CACHEABLE
from terminology.http.wsgi import StartResponse, WsgiApp
from terminology.operations import HANDLERS, OperationContext
from terminology.params import bag_from_query
from terminology.providers.filters import request_deadline
from terminology.registry import Registry
from terminology.settings import Settings

TYPE_OPERATION = re.compile(r"/fhir/([^/]+)/\$([^/]+)")
Answer = tuple[int, bytes, str, float]  # status, body, request id, start time


def _status_line(code: int) -> str:
    """The status line Werkzeug writes for `code`."""
    return f"{code} {HTTP_STATUS_CODES.get(code, 'UNKNOWN').upper()}"


def _headers(environ: dict[str, Any]) -> tuple[dict[str, str], int]:
    """The request headers as `dict(flask.request.headers)` gives them, and their size as
    app._check_sizes counts it (names and values of the HTTP_ keys), in one pass."""
    out: dict[str, str] = {}
    size = 0
    for key, value in environ.items():
        if key[:5] == "HTTP_":
            size += len(key) + len(str(value))
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                out[key[5:].replace("_", "-").title()] = value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            out[key.replace("_", "-").title()] = value
    return out, size


def _query_pairs(query: str) -> list[tuple[str, str]] | None:
    """The query's (name, value) pairs in the order `request.args.items(multi=True)` gives
    them (grouped by name, names in first-seen order); None when the query is not valid
    UTF-8 once percent-decoded (Flask answers that with its 400). Split as parse_qsl(query,
    keep_blank_values=True, errors="strict") does; a name or value is decoded only when
    it has a '+' or a '%' (the strict decoding of each piece is the same as of the whole
    query, since the separators are ASCII)."""
    grouped: dict[str, list[str]] = {}
    try:
        for piece in query.split("&"):
            if not piece:
                continue
            name, _, value = piece.partition("=")
            if "+" in name or "%" in name:
                name = unquote(name.replace("+", " "), errors="strict")
            if "+" in value or "%" in value:
                value = unquote(value.replace("+", " "), errors="strict")
            grouped.setdefault(name, []).append(value)
    except UnicodeDecodeError:
        return None
    return [(name, value) for name, values in grouped.items() for value in values]


class OperationDispatch:
    """WSGI middleware: answers type-level operation GETs without entering Flask."""

    def __init__(self, app: WsgiApp, registry: Callable[[], Registry], settings: Settings,
                 request_id: Callable[[str | None], str], log_access: Callable[..., None],
                 last_modified: Callable[[], float]) -> None:
        self.app = app
        self.last_modified = last_modified  # when the served content last changed
        self.registry = registry  # the content served now (a reload swaps it)
        self.settings = settings
        self.request_id = request_id
        self.log_access = log_access
        self._last_modified: tuple[float, str] = (-1.0, "")  # the last one as an HTTP date

    def last_modified_header(self) -> str:
        """Last-Modified: the content's time as an HTTP date, formatted once per change."""
        when = self.last_modified()
        known = self._last_modified
        if known[0] != when:
            known = self._last_modified = (when, http_date(when))
        return known[1]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        answer = self.answer(environ)
        if answer is None:
            return self.app(environ, start_response)
        status, body, rid, started = answer
        if status == 200:
            environ[CACHEABLE] = True  # the response cache keeps it, as for the Flask route
        headers = [("Content-Type", FHIR_JSON), ("Content-Length", str(len(body))), ("Vary", VARY)]
        if status == 200:  # the validators Flask's _finish sets (conditional.set_validators)
            headers += [("ETag", strong_etag(body)), ("Last-Modified", self.last_modified_header())]
            if self.settings.operation_cache_control:
                headers.append(("Cache-Control", self.settings.operation_cache_control))
        start_response(_status_line(status), [
            *headers, ("X-Request-Id", rid), *EVERY_ANSWER_HEADERS.items()])
        self.log_access(rid, "GET", environ["PATH_INFO"], status, started)
        return [body]

    def answer(self, environ: dict[str, Any]) -> Answer | None:
        """(status, body, request id, start) for a request this path answers, else None."""
        if environ.get("REQUEST_METHOD") != "GET" or environ.get("SCRIPT_NAME"):
            return None
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        match = TYPE_OPERATION.fullmatch(path)
        if match is None or not path.isascii() or not query.isascii():
            return None
        headers, header_bytes = _headers(environ)
        if len(path) + len(query) > self.settings.max_url_bytes or (
                header_bytes > self.settings.max_header_bytes):
            return None  # Flask answers the 414 / 431
        handler = HANDLERS.get((match.group(1), match.group(2)))
        if handler is None:
            return None
        started = time.perf_counter()
        pairs = _query_pairs(query)
        if pairs is None or any(any(word in text for word in BYPASS_PARAMS)
                                for pair in pairs for text in pair):
            return None  # request-scoped content: Flask's route scopes the registry
        rid = self.request_id(environ.get("HTTP_X_REQUEST_ID"))
        fmt = next((v for k, v in pairs if k == "_format"), None)
        accept = environ.get("HTTP_ACCEPT")
        try:
            if (fmt is not None or accept) and negotiate(
                    fmt, parse_accept_header(accept, MIMEAccept), accept) != JSON:
                return None  # XML: Flask's route writes it
        except FhirError:
            return None  # Flask's route answers the 406 in its own format
        try:
            ctx = OperationContext(self.registry(), bag_from_query(pairs), self.settings, None,
                                   environ.get("HTTP_ACCEPT_LANGUAGE"), headers)
            with request_deadline(self.settings.request_time_limit, self.settings.max_regex_length):
                body = handler(ctx)
            if match.group(2) == "expand":
                metrics.record_expansion(body)  # as the Flask route counts it
            return 200, orjson.dumps(body), rid, started
        except FhirError as e:  # the app's error handler renders a FhirError the same way
            return e.status, orjson.dumps(e.outcome()), rid, started
        except Exception:  # noqa: BLE001  (Flask answers it: its error handler logs the 500)
            return None
