"""The Flask app: routes, content negotiation and the one error handler.

Views only parse the request, call an operation and serialize its dict with orjson. Every
error, ours, Werkzeug's or unexpected, leaves as an OperationOutcome in application/fhir+json.
"""

from __future__ import annotations

import hmac
import logging
import os
import signal
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, unquote_to_bytes

import orjson
from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from terminology.cache_ids import CachedResources, postgres_database, private_database
from terminology.content import load_content
from terminology.errors import (
    BadRequest,
    FhirError,
    HeadersTooLarge,
    Issue,
    MethodNotAllowed,
    UriTooLong,
    operation_outcome,
)
from terminology.http import metrics
from terminology.http.auth import Authorizer
from terminology.http.batch import run_batch
from terminology.http.body import parse_json, read_body, too_large
from terminology.http.compression import Gzip
from terminology.http.conditional import ConditionalGet, set_validators
from terminology.http.dispatch import OperationDispatch
from terminology.http.invoke import (
    RESOURCE_TYPES,
    Server,
    handler_for,
    instance_for,
    known_type,
    run_operation,
)
from terminology.http.negotiation import (
    CONTENT_TYPES,
    EVERY_ANSWER_HEADERS,
    JSON,
    VARY,
    XML,
    body_format,
    negotiate,
    parse_body,
    serialize,
)
from terminology.http.openapi import openapi_spec
from terminology.http.reload import reload_content
from terminology.http.response_cache import ResponseCache
from terminology.http.response_cache import install as install_response_cache
from terminology.http.web import web as web_pages
from terminology.http.writes import install_writes, read_headers
from terminology.logs import request_id as log_request_id
from terminology.operations import HANDLERS
from terminology.operations.metadata import capability_statement, terminology_capabilities, versions
from terminology.operations.search import read, search
from terminology.params import ParamBag, bag_from_parameters, bag_from_query
from terminology.providers.filters import request_deadline
from terminology.registry import Registry
from terminology.settings import Settings

log = logging.getLogger("terminology")
access_log = logging.getLogger("terminology.access")
FORM_TYPE = "application/x-www-form-urlencoded"
HTTP_ISSUE_CODES = {404: "not-found", 405: "not-supported", 406: "not-supported",
                    413: "too-costly", 414: "too-long", 415: "not-supported", 431: "too-long"}
CORS_PREFLIGHT = {
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Accept, Accept-Language, X-Request-Id, Authorization, "
                                    "If-Match, If-None-Exist, Prefer",
    "Access-Control-Max-Age": "86400",
}


def fhir_response(body: dict[str, Any], status: int = 200) -> Response:
    """A FHIR response from a resource dict, in the format the request negotiated."""
    fmt = g.get("fmt", JSON)
    return Response(serialize(body, fmt), status=status, content_type=CONTENT_TYPES[fmt])


def _check_sizes(environ: dict[str, Any], settings: Settings) -> None:
    """414 for a URL longer than max_url_bytes, 431 for headers larger than max_header_bytes."""
    url = len(environ.get("PATH_INFO", "")) + len(environ.get("QUERY_STRING", ""))
    if url > settings.max_url_bytes:
        raise UriTooLong(f"The request URL is {url} bytes long, more than the {settings.max_url_bytes} "
                         "this server accepts (setting max_url_bytes); send long requests as a POST "
                         "with a Parameters body")
    headers = sum(len(k) + len(str(v)) for k, v in environ.items() if k.startswith("HTTP_"))
    if headers > settings.max_header_bytes:
        raise HeadersTooLarge(f"The request headers are {headers} bytes, more than the "
                              f"{settings.max_header_bytes} this server accepts (setting max_header_bytes)")


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
    """The request body, decoded, within the body size limit (body.read_body)."""
    return read_body(request, current_app.config["MAX_CONTENT_LENGTH"])


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
    if (request.mimetype or "").lower() == FORM_TYPE:
        return ParamBag(query.params + _form_bag(_read_body()).params)
    body = fhir_body("a FHIR Parameters resource", allow_empty=bool(query.params))
    if body is None:
        return query
    return ParamBag(query.params + bag_from_parameters(body).params)


def fhir_body(what: str, allow_empty: bool = False) -> Any:
    """The request's FHIR JSON or XML body as a dict (None when empty and `allow_empty`);
    400/413/415 otherwise. JSON is checked for nesting depth before anything walks it."""
    fmt = body_format(request.mimetype)  # 415 for a type that is neither FHIR JSON nor XML
    length = request.content_length
    raw = _read_body()
    if not raw and not length:
        if allow_empty:
            return None
        raise BadRequest(f"The request body is empty; send {what}")
    if fmt == XML:
        return parse_body(raw, fmt)
    return parse_json(raw, current_app.extensions["tx_settings"].max_json_depth)


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> Flask:
    """The WSGI app serving `registry` (loaded from settings.content_dirs when not given)."""
    settings = settings or Settings.from_env()
    if registry is None:
        registry = load_content(settings)
    app = Flask("terminology")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["tx_registry"] = registry  # replaced whole by a reload (reload.py)
    app.extensions["tx_settings"] = settings
    # How POST /admin/reload asks for a reload; the production launcher replaces it with a
    # SIGHUP to the main process, which reloads before it replaces the workers.
    app.extensions["tx_reload"] = lambda: reload_content(app)
    # What every operation runs against; the registry is the one this request started on
    # cache-id content is shared by the workers through a file of this instance (cache_ids.py)
    server = Server(lambda: g.get("registry") or app.extensions["tx_registry"], settings,
                    CachedResources(settings.cache_id_max_ids, settings.cache_id_max_bytes,
                                    settings.cache_id_ttl, db=private_database()))
    # When the served content last changed (Last-Modified of answers without their own
    # meta.lastUpdated); whatever changes content while running must move it forward.
    app.extensions["tx_last_modified"] = time.time()
    app.register_blueprint(web_pages)  # the HTML terminology browser (terminology/web)
    authorizer = Authorizer(settings)
    routed = {f"{t}/{op}" for t, op in HANDLERS}

    def base_url() -> str:
        return request.host_url.rstrip("/") + "/fhir"

    @app.before_request
    def _start() -> Response | None:
        g.started = time.perf_counter()
        g.request_id = _request_id(request.headers.get("X-Request-Id"))
        _check_sizes(request.environ, settings)
        log_request_id.set(g.request_id)
        # The content this request runs on, even if a reload swaps it meanwhile.
        g.registry = app.extensions["tx_registry"]
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
        resp.headers.update(EVERY_ANSWER_HEADERS)
        log_access(g.get("request_id", ""), request.method, request.path, resp.status_code,
                   g.get("started", time.perf_counter()))
        return resp

    @app.teardown_request
    def _forget_request_id(_exc: BaseException | None) -> None:
        log_request_id.set("")

    def current() -> Registry:
        found: Registry = g.get("registry") or app.extensions["tx_registry"]
        return found

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness: the process answers."""
        return Response(b'{"status":"ok"}', content_type="application/json")

    @app.get("/readyz")
    def readyz() -> Response:
        """Readiness: all content is loaded (the app exists only after loading completes)."""
        body = {"status": "ready", "codeSystems": len(current().providers()),
                "valueSets": len(current().resources("ValueSet")),
                "contentVersion": app.extensions.get("tx_content_version")}
        return Response(orjson.dumps(body), content_type="application/json")

    @app.get("/fhir/metadata")
    def metadata() -> Response:
        if request.args.get("mode") == "terminology":
            # advertised when every worker finds what one was sent
            shared = server.cached.shared or settings.workers == 1
            return fhir_response(terminology_capabilities(current(), base_url(), cache_ids=shared))
        return fhir_response(capability_statement(current(), base_url(), routed,
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

    @app.route("/fhir", methods=["POST"])
    @app.route("/fhir/", methods=["POST"])
    def batch() -> Response:
        """POST /fhir with a batch Bundle of operation requests (terminology/http/batch.py)."""
        bundle = fhir_body("a FHIR Bundle of type batch")
        with request_deadline(settings.request_time_limit, settings.max_regex_length):
            return fhir_response(run_batch(server, bundle, base_url(),
                                           request.headers.get("Accept-Language"),
                                           dict(request.headers), g.get("request_id", "")))

    @app.route("/fhir/<rtype>/$<op>", methods=["GET", "POST"])
    def type_operation(rtype: str, op: str) -> Response:
        return _operation(rtype, op, None)

    @app.route("/fhir/<rtype>/<rid>/$<op>", methods=["GET", "POST"])
    def instance_operation(rtype: str, rid: str, op: str) -> Response:
        return _operation(rtype, op, instance_for(server, rtype, rid))

    def _operation(rtype: str, op: str, instance: dict[str, Any] | None) -> Response:
        handler_for(rtype, op)  # a 404 before the body is read
        bag = request_bag()
        with request_deadline(settings.request_time_limit, settings.max_regex_length):
            body = run_operation(server, rtype, op, instance, bag,
                                 request.headers.get("Accept-Language"), dict(request.headers))
        if op == "expand":
            metrics.record_expansion(body)
        return fhir_response(body)

    # Writes (POST, PUT, DELETE) are routed by http/writes.py; what is left here is refused.
    @app.route("/fhir/<rtype>", methods=["GET", "DELETE", "PATCH"])
    def type_search(rtype: str) -> Response:
        known_type(rtype)
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed(f"{request.method} on {rtype} is not supported: this server is read-only")
        # R4 search.html#errors: Prefer: handling=strict makes unknown parameters a 400.
        strict = "handling=strict" in request.headers.get("Prefer", "").replace(" ", "").lower()
        bag = bag_from_query(list(request.args.items(multi=True)))
        return fhir_response(search(current(), rtype, bag, base_url(), strict))

    @app.route("/fhir/<rtype>/<rid>", methods=["GET", "POST", "PATCH"])
    def instance_read(rtype: str, rid: str) -> Response:
        known_type(rtype)
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed(f"{request.method} on {rtype}/{rid} is not supported: this server is read-only")
        headers = read_headers(app, rtype, rid)  # a stored resource: its version; 410 when deleted
        g.resource = read(current(), rtype, rid, bag_from_query(list(request.args.items(multi=True))))
        resp = fhir_response(g.resource)
        resp.headers.update(headers)
        return resp

    @app.errorhandler(Exception)
    def _error(exc: Exception) -> Response:
        return error_response(exc)

    # Operation GETs answered in front of Flask, with the same bytes (terminology/http/dispatch.py)
    # Not when reads need a token: the read check is Flask's (http/writes.py, auth.py).
    if settings.fast_dispatch and not settings.read_requires_token:
        app.wsgi_app = OperationDispatch(  # type: ignore[method-assign]
            app.wsgi_app, lambda: app.extensions["tx_registry"], settings, _request_id,
            log_access, lambda: app.extensions["tx_last_modified"])

    if settings.metrics and not settings.metrics_port:
        @app.get("/metrics")
        def metrics_page() -> Response:
            """Prometheus metrics of every worker (metrics.py)."""
            body, ctype = metrics.exposition()
            return Response(body, content_type=ctype)

    if settings.admin_token:
        @app.post("/admin/reload")
        def admin_reload() -> Response:
            """Reload the content (reload.py); needs `Authorization: Bearer <admin_token>`."""
            _check_admin(settings.admin_token)
            done = app.extensions["tx_reload"]()
            if done is False:
                raise FhirError("The reload failed; the previous content is still served "
                                "(the server log says why)", code="conflict", status=409)
            return Response(b'{"status":"reload requested"}', status=202,
                            content_type="application/json")

    # Response cache (terminology/response_cache.py): repeated operation GETs are answered in
    # front of Flask, each with its own request id and access-log line. Not when reads need a
    # token: the cache answers before any check.
    cache = None
    if settings.response_cache_bytes > 0 and not settings.read_requires_token:
        cache = ResponseCache(settings.response_cache_bytes)
        app.extensions["tx_response_cache"] = cache
        install_response_cache(app, cache, _request_id, log_access)
    # In front of the cache: a 304 for a matching validator, then gzip on the way out.
    app.wsgi_app = ConditionalGet(app.wsgi_app)  # type: ignore[method-assign]
    if settings.gzip:
        app.wsgi_app = Gzip(app.wsgi_app, settings.gzip_min_bytes)  # type: ignore[method-assign]
    # Authored resources (http/authoring.py, http/writes.py): the store's content joins the
    # registry, and every request first follows the store's change feed (outermost).
    authoring = None
    if authorizer.writes_enabled or settings.store:
        # the store's code (SQLAlchemy) is loaded only by a server that writes
        from terminology.http.authoring import Authoring

        authoring = Authoring(settings, registry, cache)
        conninfo = authoring.store.conninfo()
        if conninfo:  # replicas share the store: they share cache-id content through it too
            server.cached.db = postgres_database(conninfo)
    install_writes(app, authoring, authorizer)
    if authoring is not None:
        app.extensions["tx_authoring"] = authoring  # a reload serves the stored resources too
        authoring.on_change = lambda: app.extensions.__setitem__("tx_last_modified", time.time())
        app.wsgi_app = authoring.middleware(app.wsgi_app)  # type: ignore[method-assign,assignment]
    return app


def signal_main_process(pid: int) -> Any:
    """A tx_reload for workers: SIGHUP to the server's main process `pid` (reload.py)."""
    return lambda: os.kill(pid, signal.SIGHUP)


def _check_admin(token: str) -> None:
    """401 unless the request carries `Authorization: Bearer <token>` (constant-time check)."""
    sent = request.headers.get("Authorization", "")
    scheme, _, value = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise FhirError("This endpoint needs the admin token as `Authorization: Bearer ...`",
                        code="login", status=401)


def log_access(request_id: str, method: str, path: str, status: int, started: float,
               cached: bool = False) -> None:
    """One JSON access-log line for a finished request (`"cache": "hit"` when the response
    cache answered it), and its metrics."""
    seconds = time.perf_counter() - started
    metrics.record_request(path, status, seconds)
    if access_log.isEnabledFor(logging.INFO):
        fields: dict[str, Any] = {
            "request_id": request_id, "method": method, "path": path, "status": status,
            "duration_ms": round(seconds * 1000, 2),
        }
        if cached:
            fields["cache"] = "hit"
        access_log.info(f"{method} {path} {status}", extra={"fields": fields})


def _request_id(sent: str | None) -> str:
    """The client's X-Request-Id when it is a sane token, else a new one."""
    if sent and len(sent) <= 200 and sent.isprintable():
        return sent
    return uuid.uuid4().hex


def error_response(exc: Exception) -> Response:
    """Any exception as an OperationOutcome response with the right status."""
    if isinstance(exc, FhirError):
        resp = fhir_response(exc.outcome(), exc.status)
        resp.headers.update(exc.headers)
        return resp
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        if status == 413:
            err: FhirError = too_large(current_app.config["MAX_CONTENT_LENGTH"])
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
