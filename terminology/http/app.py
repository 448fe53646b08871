"""The Flask app: routes, content negotiation and the one error handler.

Views only parse the request, call an operation and serialize its dict with orjson. Every
error, ours, Werkzeug's or unexpected, leaves as an OperationOutcome in application/fhir+json.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, unquote_to_bytes

import orjson
from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from terminology.content import (
    INLINE_RESOURCE_PARAMS,
    check_inline_resource,
    load_registry,
    overlay_registry,
)
from terminology.errors import (
    BadRequest,
    FhirError,
    Issue,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    operation_outcome,
)
from terminology.http.compression import Gzip
from terminology.http.conditional import ConditionalGet, set_validators
from terminology.http.negotiation import (
    CONTENT_TYPES,
    JSON,
    body_format,
    negotiate,
    parse_body,
    serialize,
)
from terminology.http.openapi import openapi_spec
from terminology.http.response_cache import ResponseCache
from terminology.http.response_cache import install as install_response_cache
from terminology.http.web import web as web_pages
from terminology.operations import HANDLERS, OperationContext
from terminology.operations.metadata import capability_statement, terminology_capabilities, versions
from terminology.operations.search import read, search
from terminology.params import ParamBag, bag_from_parameters, bag_from_query
from terminology.providers.filters import request_deadline
from terminology.registry import Registry
from terminology.settings import Settings

log = logging.getLogger("terminology")
access_log = logging.getLogger("terminology.access")
FORM_TYPE = "application/x-www-form-urlencoded"
VARY = "Accept, Accept-Encoding, Accept-Language"  # answers differ by format, encoding, language
RESOURCE_TYPES = ("CodeSystem", "ValueSet", "ConceptMap")
HTTP_ISSUE_CODES = {404: "not-found", 405: "not-supported", 406: "not-supported",
                    413: "too-costly", 415: "not-supported"}
# CORS for browser-based FHIR apps (SMART apps, form builders): any origin, no credentials.
CORS_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "X-Request-Id"}
CORS_PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Accept, Accept-Language, X-Request-Id, Authorization",
    "Access-Control-Max-Age": "86400",
}


def fhir_response(body: dict[str, Any], status: int = 200) -> Response:
    """A FHIR response from a resource dict, in the format the request negotiated."""
    fmt = g.get("fmt", JSON)
    return Response(serialize(body, fmt), status=status, content_type=CONTENT_TYPES[fmt])


def _check_query_encoding() -> None:
    """400 for a query string whose percent-encoded bytes are not UTF-8.

    Werkzeug keeps undecodable '%FF' as literal text, so a bad code would be looked up as
    the string '%FF'; naming the parameter is more useful to the client.
    """
    raw = request.query_string
    if raw.isascii() and b"%" not in raw:
        return
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


def _read_body() -> bytes:
    """The request body, never more than MAX_CONTENT_LENGTH bytes in memory; 413 past it.

    Werkzeug refuses a too-long Content-Length up front, but on a chunked body its limited
    stream stops silently at the limit, so a truncated body would be parsed: read one byte
    more than the limit ourselves and refuse.
    """
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None or "wsgi.input_terminated" not in request.environ:
        return request.get_data(cache=False)
    stream = request.environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(min(64 * 1024, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than the {limit} bytes the server accepts")
    return b"".join(chunks)


def _form_bag(raw: bytes) -> ParamBag:
    """A url-encoded form body as parameters; 400 when it is not UTF-8."""
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as e:
        raise BadRequest("The form body is not valid UTF-8") from e
    return bag_from_query(pairs)


def request_bag() -> ParamBag:
    """The request's parameters: the query string, plus a Parameters body or a form."""
    query = bag_from_query(list(request.args.items(multi=True)))
    if request.method != "POST":
        return query
    ctype = (request.mimetype or "").lower()
    length = request.content_length
    if ctype == FORM_TYPE:
        return ParamBag(query.params + _form_bag(_read_body()).params)
    fmt = body_format(ctype)  # 415 for a type that is neither FHIR JSON nor FHIR XML
    raw = _read_body()
    if not raw and not length:
        if query.params:
            return query
        raise BadRequest("The request body is empty; send a FHIR Parameters resource")
    return ParamBag(query.params + bag_from_parameters(parse_body(raw, fmt)).params)


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> Flask:
    """The WSGI app serving `registry` (loaded from settings.content_dirs when not given)."""
    settings = settings or Settings.from_env()
    if registry is None:
        registry = load_registry(settings.content_dirs, settings.validation_cache())
    app = Flask("terminology")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["tx_registry"] = registry
    app.extensions["tx_settings"] = settings
    # When the served content last changed (Last-Modified of answers without their own
    # meta.lastUpdated); whatever changes content while running must move it forward.
    app.extensions["tx_last_modified"] = time.time()
    app.register_blueprint(web_pages)  # the HTML terminology browser (terminology/web)
    routed = {f"{t}/{op}" for t, op in HANDLERS}

    def base_url() -> str:
        return request.host_url.rstrip("/") + "/fhir"

    @app.before_request
    def _start() -> Response | None:
        g.started = time.perf_counter()
        g.request_id = _request_id(request.headers.get("X-Request-Id"))
        if request.method == "OPTIONS":  # a CORS preflight (or a bare OPTIONS): no body
            return Response(status=204, headers=CORS_PREFLIGHT)
        if request.path.startswith("/fhir"):  # first, so that later errors use the format
            g.fmt = negotiate(request.args.get("_format"), request.accept_mimetypes,
                              request.headers.get("Accept"))
        _check_query_encoding()
        return None

    @app.after_request
    def _finish(resp: Response) -> Response:
        if request.path.startswith("/fhir"):
            resp.headers["Vary"] = VARY
            if request.method in ("GET", "HEAD") and resp.status_code == 200 and not resp.is_streamed:
                operation = request.endpoint in ("type_operation", "instance_operation")
                set_validators(resp, g.get("resource"), app.extensions["tx_last_modified"],
                               settings.operation_cache_control if operation else None)
        resp.headers["X-Request-Id"] = g.get("request_id", "")
        resp.headers.update(CORS_HEADERS)
        log_access(g.get("request_id", ""), request.method, request.path, resp.status_code,
                   g.get("started", time.perf_counter()))
        return resp

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness: the process answers."""
        return Response(b'{"status":"ok"}', content_type="application/json")

    @app.get("/readyz")
    def readyz() -> Response:
        """Readiness: all content is loaded (the app exists only after loading completes)."""
        body = {"status": "ready", "codeSystems": len(registry.providers()),
                "valueSets": len(registry.resources("ValueSet"))}
        return Response(orjson.dumps(body), content_type="application/json")

    @app.get("/fhir/metadata")
    def metadata() -> Response:
        if request.args.get("mode") == "terminology":
            return fhir_response(terminology_capabilities(registry, base_url()))
        return fhir_response(capability_statement(registry, base_url(), routed))

    @app.get("/fhir/openapi.json")
    def openapi() -> Response:
        """The OpenAPI 3 description of these endpoints (client generators, fuzzers)."""
        body = openapi_spec(HANDLERS, RESOURCE_TYPES, request.host_url)
        return Response(orjson.dumps(body), content_type="application/json")

    @app.get("/fhir/$versions")
    def fhir_versions() -> Response:
        return fhir_response(versions())

    @app.route("/fhir/<rtype>/$<op>", methods=["GET", "POST"])
    def type_operation(rtype: str, op: str) -> Response:
        return _operation(rtype, op, None)

    @app.route("/fhir/<rtype>/<rid>/$<op>", methods=["GET", "POST"])
    def instance_operation(rtype: str, rid: str, op: str) -> Response:
        _known_type(rtype)
        instance = registry.by_id(rtype, rid)
        if instance is None:
            raise NotFound(f"{rtype}/{rid} is not known to this server", expression="id")
        return _operation(rtype, op, instance)

    def _operation(rtype: str, op: str, instance: dict[str, Any] | None) -> Response:
        _known_type(rtype)
        handler = HANDLERS.get((rtype, op))
        if handler is None:
            raise NotFound(f"The operation ${op} is not supported on {rtype}",
                           code="not-supported", expression="operation")
        bag = request_bag()
        for name in INLINE_RESOURCE_PARAMS:
            for p in bag.all(name):
                if p.resource is not None:
                    check_inline_resource(name, p.resource)
        scoped = overlay_registry(registry, bag.resources("tx-resource"))
        ctx = OperationContext(scoped, bag, settings, instance,
                               request.headers.get("Accept-Language"), dict(request.headers))
        with request_deadline(settings.request_time_limit):
            return fhir_response(handler(ctx))

    @app.route("/fhir/<rtype>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def type_search(rtype: str) -> Response:
        _known_type(rtype)
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed(f"{request.method} on {rtype} is not supported: this server is read-only")
        # R4 search.html#errors: Prefer: handling=strict makes unknown parameters a 400.
        strict = "handling=strict" in request.headers.get("Prefer", "").replace(" ", "").lower()
        bag = bag_from_query(list(request.args.items(multi=True)))
        return fhir_response(search(registry, rtype, bag, base_url(), strict))

    @app.route("/fhir/<rtype>/<rid>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def instance_read(rtype: str, rid: str) -> Response:
        _known_type(rtype)
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed(f"{request.method} on {rtype}/{rid} is not supported: this server is read-only")
        g.resource = read(registry, rtype, rid, bag_from_query(list(request.args.items(multi=True))))
        return fhir_response(g.resource)

    @app.errorhandler(Exception)
    def _error(exc: Exception) -> Response:
        return error_response(exc)

    # Response cache (terminology/response_cache.py): repeated operation GETs are answered in
    # front of Flask, each with its own request id and access-log line.
    if settings.response_cache_bytes > 0:
        install_response_cache(app, ResponseCache(settings.response_cache_bytes),
                               _request_id, log_access)
    # In front of the cache: a 304 for a matching validator, then gzip on the way out.
    app.wsgi_app = ConditionalGet(app.wsgi_app)  # type: ignore[method-assign]
    if settings.gzip:
        app.wsgi_app = Gzip(app.wsgi_app, settings.gzip_min_bytes)  # type: ignore[method-assign]
    return app


def log_access(request_id: str, method: str, path: str, status: int, started: float) -> None:
    """One JSON access-log line for a finished request."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(orjson.dumps({
            "request_id": request_id, "method": method, "path": path, "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        }).decode())


def _request_id(sent: str | None) -> str:
    """The client's X-Request-Id when it is a sane token, else a new one."""
    if sent and len(sent) <= 200 and sent.isprintable():
        return sent
    return uuid.uuid4().hex


def _known_type(rtype: str) -> None:
    if rtype not in RESOURCE_TYPES:
        raise NotFound(f"The resource type '{rtype}' is not served here (CodeSystem, ValueSet, ConceptMap)",
                       expression="resourceType")


def error_response(exc: Exception) -> Response:
    """Any exception as an OperationOutcome response with the right status."""
    if isinstance(exc, FhirError):
        return fhir_response(exc.outcome(), exc.status)
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        if status == 413:
            err: FhirError = PayloadTooLarge("The request body is larger than the server accepts")
            return fhir_response(err.outcome(), 413)
        if status == 404:
            text = f"No route for {request.method} {request.path}"
        elif status == 405:
            text = f"{request.method} is not allowed on {request.path}"
        else:
            text = exc.description or exc.name
        issue = Issue("error", HTTP_ISSUE_CODES.get(status, "invalid" if status < 500 else "exception"), text)
        return fhir_response(operation_outcome([issue]), status)
    request_id = g.get("request_id", "")
    log.exception("unexpected error handling request %s", request_id)
    issue = Issue("error", "exception",
                  f"An unexpected error occurred handling this request (request id {request_id})")
    return fhir_response(operation_outcome([issue]), 500)
