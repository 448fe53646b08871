"""The Flask app: routes, content negotiation and the one error handler.

Views only parse the request, call an operation and serialize its dict with orjson. Every
error, ours, Werkzeug's or unexpected, leaves as an OperationOutcome in application/fhir+json.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from terminology.content import load_registry, overlay_registry
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
from terminology.operations import HANDLERS, OperationContext
from terminology.operations.metadata import capability_statement, terminology_capabilities, versions
from terminology.operations.search import read, search
from terminology.params import ParamBag, bag_from_parameters, bag_from_query
from terminology.registry import Registry
from terminology.settings import Settings
from terminology.web import web as web_pages

log = logging.getLogger("terminology")
access_log = logging.getLogger("terminology.access")
FHIR_JSON = "application/fhir+json; charset=utf-8"
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir", "text/json")
FORM_TYPE = "application/x-www-form-urlencoded"
RESOURCE_TYPES = ("CodeSystem", "ValueSet", "ConceptMap")
HTTP_ISSUE_CODES = {404: "not-found", 405: "not-supported", 406: "not-supported",
                    413: "too-costly", 415: "not-supported"}


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


def request_bag() -> ParamBag:
    """The request's parameters: the query string, plus a Parameters body or a form."""
    query = bag_from_query(list(request.args.items(multi=True)))
    if request.method != "POST":
        return query
    ctype = (request.mimetype or "").lower()
    length = request.content_length
    if ctype == FORM_TYPE:
        form = bag_from_query(list(request.form.items(multi=True)))
        return ParamBag(query.params + form.params)
    if ctype and ctype not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type '{request.mimetype}' is not supported; send application/fhir+json"
        )
    raw = request.get_data(cache=False)
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
    routed = {f"{t}/{op}" for t, op in HANDLERS}

    def base_url() -> str:
        return request.host_url.rstrip("/") + "/fhir"

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        g.request_id = _request_id(request.headers.get("X-Request-Id"))
        if request.path.startswith("/fhir"):
            _check_accept()

    @app.after_request
    def _finish(resp: Response) -> Response:
        resp.headers["X-Request-Id"] = g.get("request_id", "")
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(orjson.dumps({
                "request_id": g.get("request_id", ""), "method": request.method,
                "path": request.path, "status": resp.status_code,
                "duration_ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2),
            }).decode())
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
        scoped = overlay_registry(registry, bag.resources("tx-resource"))
        ctx = OperationContext(scoped, bag, settings, instance,
                               request.headers.get("Accept-Language"), dict(request.headers))
        return fhir_response(handler(ctx))

    @app.route("/fhir/<rtype>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def type_search(rtype: str) -> Response:
        _known_type(rtype)
        if request.method != "GET":
            raise MethodNotAllowed(f"{request.method} on {rtype} is not supported: this server is read-only")
        return fhir_response(search(registry, rtype, bag_from_query(list(request.args.items(multi=True))), base_url()))

    @app.route("/fhir/<rtype>/<rid>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def instance_read(rtype: str, rid: str) -> Response:
        _known_type(rtype)
        if request.method != "GET":
            raise MethodNotAllowed(f"{request.method} on {rtype}/{rid} is not supported: this server is read-only")
        return fhir_response(read(registry, rtype, rid))

    @app.errorhandler(Exception)
    def _error(exc: Exception) -> Response:
        return error_response(exc)

    return app


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
