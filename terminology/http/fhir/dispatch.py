"""A thin dispatch for operation GETs, in front of Flask (setting `fast_dispatch`).

A type-level operation GET (`/fhir/CodeSystem/$lookup?...`) is a pure function of its query
string and a few headers, and Flask's own per-request work (request context, routing, the
hooks, Werkzeug's response object) costs more than a small operation. This middleware
answers such a request itself: it runs the same stages of the pipeline as the Flask route
(terminology/http/pipeline.py: request id, size limits, negotiation, query encoding...,
then the resource and response stages) around the same handler, and sends the same status
line, headers and body bytes. Every error is the same OperationOutcome: a FhirError is
rendered by its own `outcome()`, as the app's error handler does; anything this path is not
sure to answer exactly as Flask would (a POST, an instance or unknown operation, a non-ASCII
query, a request stage that refuses or answers itself, XML, tx-resource or cache-id, an
unexpected exception) goes to Flask, which answers it as before. tests/http/test_dispatch.py
compares the two answers on every shipped value set and CPT code.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from werkzeug.http import HTTP_STATUS_CODES

from terminology.errors import FhirError
from terminology.http.exchange import DISPATCH, Exchange, HeaderList, Site
from terminology.http.fhir.negotiation import FHIR_JSON, JSON
from terminology.http.fhir.response_cache import BYPASS_PARAMS
from terminology.http.wsgi import StartResponse, WsgiApp
from terminology.operations import HANDLERS, OperationContext
from terminology.params import bag_from_query
from terminology.providers.filters import request_deadline

TYPE_OPERATION = re.compile(r"/fhir/([^/]+)/\$([^/]+)")


def _status_line(code: int) -> str:
    """The status line Werkzeug writes for `code`."""
    return f"{code} {HTTP_STATUS_CODES.get(code, 'UNKNOWN').upper()}"


class EnvironHeaders(Mapping[str, str]):
    """The request headers as `dict(flask.request.headers)` gives them, read from the WSGI
    environ only when an operation asks (one of them reads one header; granian's environ
    carries the process environment too, so a copy per request would scan ~60 keys)."""

    __slots__ = ("environ", "_found")

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self._found: dict[str, str] | None = None

    def _all(self) -> dict[str, str]:
        if self._found is None:
            out: dict[str, str] = {}
            for key, value in self.environ.items():
                if key.startswith("HTTP_") and key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                    out[key[5:].replace("_", "-").title()] = value
                elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                    out[key.replace("_", "-").title()] = value
            self._found = out
        return self._found

    def __getitem__(self, name: str) -> str:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


@functools.lru_cache(maxsize=1024)
def _decoded(text: str) -> str:
    """A query name or value percent-decoded, strictly (UnicodeDecodeError when not UTF-8);
    the same few (the system's url, a value set's) come on most requests."""
    return unquote(text.replace("+", " "), errors="strict")


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
                name = _decoded(name)
            if "+" in value or "%" in value:
                value = _decoded(value) if len(value) <= 256 else unquote(value.replace("+", " "), errors="strict")
            grouped.setdefault(name, []).append(value)
    except UnicodeDecodeError:
        return None
    return [(name, value) for name, values in grouped.items() for value in values]


class OperationDispatch:
    """WSGI middleware: answers type-level operation GETs without entering Flask."""

    def __init__(self, app: WsgiApp, site: Site) -> None:
        self.app = app
        self.site = site
        self.settings = site.settings

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        x = self.answer(environ)
        if x is None:
            return self.app(environ, start_response)
        try:
            body = x.body or b""
            x.headers = HeaderList([("Content-Type", FHIR_JSON), ("Content-Length", str(len(body)))])
            for finish in x.stages.response:
                finish(x)
            start_response(_status_line(x.status), x.headers.items)
            return [body]
        finally:
            for end in x.stages.teardown:
                end(x)

    def answer(self, environ: dict[str, Any]) -> Exchange | None:
        """The exchange, answered (status and body), for a request this path answers, else None."""
        if environ.get("REQUEST_METHOD") != "GET" or environ.get("SCRIPT_NAME"):
            return None
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        match = TYPE_OPERATION.fullmatch(path)
        if match is None or not path.isascii() or not query.isascii():
            return None
        rtype, op = match.group(1), match.group(2)
        handler = HANDLERS.get((rtype, op))
        if handler is None:
            return None
        pairs = _query_pairs(query)
        if pairs is None or any(word in text for pair in pairs for text in pair for word in BYPASS_PARAMS):
            return None  # request-scoped content: Flask's route scopes the registry
        args: dict[str, str] = {}
        for name, value in pairs:
            args.setdefault(name, value)
        stages = self.site.paths[DISPATCH]
        x = Exchange(environ, self.site, stages, args, "fhir.type_operation", {"rtype": rtype, "op": op})
        x.one_answer = True
        try:
            for step in stages.request:
                if step(x) is not None:
                    return None  # a stage answers it itself: Flask's route does the same
        except FhirError:
            return None  # Flask answers the 414, 431, 406, 400... in its own format
        if x.fmt != JSON:
            return None  # XML: Flask's route writes it
        try:
            ctx = OperationContext(x.registry or self.site.current(), bag_from_query(pairs), self.settings, None,
                                   environ.get("HTTP_ACCEPT_LANGUAGE"), EnvironHeaders(environ))
            with request_deadline(self.settings.request_time_limit, self.settings.max_regex_length):
                result = handler(ctx)
            x.body = x.json(x.screened(result, 200))
        except FhirError as e:  # the app's error handler renders a FhirError the same way
            x.body = x.json(x.screened(e.outcome(), e.status))
        except Exception:  # noqa: BLE001  (Flask answers it: its error handler logs the 500)
            return None
        return x
