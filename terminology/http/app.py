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
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    operation_outcome,
)
from terminology.http.auth import Authorizer
from terminology.http.authoring import Authoring
from terminology.http.openapi import openapi_spec
from terminology.http.response_cache import ResponseCache
from terminology.http.response_cache import install as install_response_cache
from terminology.http.web import web as web_pages
from terminology.http.writes import install_writes, read_headers
from terminology.operations import HANDLERS, OperationContext
from terminology.operations.metadata import capability_statement, terminology_capabilities, versions
from terminology.operations.search import read, search
from terminology.params import ParamBag, bag_from_parameters, bag_from_query
from terminology.providers.filters import request_deadline
from terminology.registry import Registry
from terminology.settings import Settings

log = logging.getLogger("terminology")
access_log = logging.getLogger("terminology.access")
FHIR_JSON = "application/fhir+json; charset=utf-8"
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir", "text/json")
FORM_TYPE = "application/x-www-form-urlencoded"
RESOURCE_TYPES = ("CodeSystem", "ValueSet", "ConceptMap")
HTTP_ISSUE_CODES = {404: "not-found", 405: "not-supported", 406: "not-supported",
                    413: "too-costly", 415: "not-supported"}
# CORS for browser-based FHIR apps (SMART apps, form builders): any origin, no credentials.
CORS_HEADERS = {"Access-Control-Allow-Origin": "*",
                "Access-Control-Expose-Headers": "X-Request-Id, ETag, Location, Last-Modified, WWW-Authenticate"}
CORS_PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Accept, Accept-Language, X-Request-Id, Authorization, "
                                    "If-Match, If-None-Exist, Prefer",
    "Access-Control-Max-Age": "86400",
}


def fhir_response(body: dict[str, Any], status: int = 200) -> Response:
    """A FHIR JSON response from a resource dict."""
    resp = Response(orjson.dumps(body), status=status, content_type=FHIR_JSON)
    return resp


def _check_accept() -> None:
    """406 when the client accepts only formats we do not write (XML, HTML...)."""
    fmt = request.args.get("_format")
    if fmt is not None:
        if fmt in ("json", "fhir+json") or fmt in JSON_TYPES:
            return
        raise NotAcceptable(f"_format '{fmt}' is not supported; this server writes JSON",
                            expression="_format")
    accept = request.headers.get("Accept")
    if not accept:
        return
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if any(t in JSON_TYPES or t in ("*/*", "application/*", "") for t in types):
        return
    raise NotAcceptable(
        f"This server writes application/fhir+json; the request accepts only '{accept}'"
    )


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
    if ctype and ctype not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type '{request.mimetype}' is not supported; send application/fhir+json"
        )
    raw = _read_body()
    if not raw and not length:
        if query.params:
            return query
        raise BadRequest("The request body is empty; send a FHIR Parameters resource")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"The request body is not valid JSON: {e}") from e
    return ParamBag(query.params + bag_from_parameters(body).params)


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> Flask:
    """The WSGI app serving `registry` (loaded from settings.content_dirs when not given)."""
    settings = settings or Settings.from_env()
    if registry is None:
        registry = load_registry(settings.content_dirs, settings.validation_cache())
    app = Flask("terminology")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["tx_registry"] = registry
    app.extensions["tx_settings"] = settings
    app.register_blueprint(web_pages)  # the HTML terminology browser (terminology/web)
    authorizer = Authorizer(settings)
    routed = {f"{t}/{op}" for t, op in HANDLERS}

    def base_url() -> str:
        return request.host_url.rstrip("/") + "/fhir"

    @app.before_request
    def _start() -> Response | None:
        g.started = time.perf_counter()
        g.request_id = _request_id(request.headers.get("X-Request-Id"))
        if request.method == "OPTIONS":  # a CORS preflight (or a bare OPTIONS): no body
            return Response(status=204, headers=CORS_PREFLIGHT)
        _check_query_encoding()
        if request.path.startswith("/fhir"):
            _check_accept()
        return None

    @app.after_request
    def _finish(resp: Response) -> Response:
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
        return fhir_response(capability_statement(registry, base_url(), routed,
                                                  writes=authorizer.writes_enabled,
                                                  jwt=authorizer.jwt_enabled))

    @app.get("/fhir/openapi.json")
    def openapi() -> Response:
        """The OpenAPI 3 description of these endpoints (client generators, fuzzers)."""
        body = openapi_spec(HANDLERS, RESOURCE_TYPES, request.host_url, authorizer.writes_enabled)
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

    # Writes (POST, PUT, DELETE) are routed by http/writes.py; what is left here is refused.
    @app.route("/fhir/<rtype>", methods=["GET", "DELETE", "PATCH"])
    def type_search(rtype: str) -> Response:
        _known_type(rtype)
        if request.method != "GET":
            raise MethodNotAllowed(f"{request.method} on {rtype} is not supported: this server is read-only")
        return fhir_response(search(registry, rtype, bag_from_query(list(request.args.items(multi=True))), base_url()))

    @app.route("/fhir/<rtype>/<rid>", methods=["GET", "POST", "PATCH"])
    def instance_read(rtype: str, rid: str) -> Response:
        _known_type(rtype)
        if request.method != "GET":
            raise MethodNotAllowed(f"{request.method} on {rtype}/{rid} is not supported: this server is read-only")
        headers = read_headers(app, rtype, rid)  # a stored resource: its version; 410 when deleted
        resp = fhir_response(read(registry, rtype, rid))
        resp.headers.update(headers)
        return resp

    @app.errorhandler(Exception)
    def _error(exc: Exception) -> Response:
        return error_response(exc)

    # Response cache (terminology/response_cache.py): repeated operation GETs are answered in
    # front of Flask, each with its own request id and access-log line. Not when reads need a
    # token: the cache answers before any check.
    cache = None
    if settings.response_cache_bytes > 0 and not settings.read_requires_token:
        cache = ResponseCache(settings.response_cache_bytes)
        install_response_cache(app, cache, _request_id, log_access)
    # Authored resources (http/authoring.py, http/writes.py): the store's content joins the
    # registry, and every request first follows the store's change feed.
    authoring = Authoring(settings, registry, cache) if authorizer.writes_enabled or settings.store else None
    install_writes(app, authoring, authorizer)
    if authoring is not None:
        app.extensions["tx_authoring_inner_app"] = app.wsgi_app  # benchmarks compare the two
        app.wsgi_app = authoring.middleware(app.wsgi_app)  # type: ignore[method-assign,assignment]
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
        resp = fhir_response(exc.outcome(), exc.status)
        resp.headers.update(exc.headers)
        return resp
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
