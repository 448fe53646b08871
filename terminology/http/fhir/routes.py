"""The FHIR REST face's routes (blueprint `fhir`): metadata, OpenAPI, batch, operations,
searches and reads. Views only parse the request, call an operation and hand its dict to
the one response writer (http/answers.py); the pipeline's stages run around them."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app, g, request

from terminology.errors import Gone, MethodNotAllowed
from terminology.http.answers import fhir_response
from terminology.http.fhir.batch import run_batch
from terminology.http.fhir.body import fhir_body, read_request_body, request_bag
from terminology.http.fhir.conditional import instant_http_date
from terminology.http.fhir.invoke import (
    RESOURCE_TYPES,
    Server,
    handler_for,
    instance_for,
    known_type,
    run_operation,
)
from terminology.http.fhir.openapi import openapi_spec
from terminology.http.fhir.post_search import search_bag
from terminology.operations import HANDLERS
from terminology.operations.metadata import capability_statement, terminology_capabilities, versions
from terminology.operations.search import read, search
from terminology.params import ParamBag, bag_from_query
from terminology.providers.filters import request_deadline
from terminology.registry import Registry
from terminology.settings import Settings

fhir = Blueprint("fhir", __name__)
ROUTED = frozenset(f"{t}/{op}" for t, op in HANDLERS)


def _server() -> Server:
    found: Server = current_app.extensions["tx_server"]
    return found


def _settings() -> Settings:
    found: Settings = current_app.extensions["tx_settings"]
    return found


def current() -> Registry:
    """The registry this request runs on."""
    found: Registry = g.get("registry") or current_app.extensions["tx_registry"]
    return found


def base_url() -> str:
    """The FHIR base of this server as the client reached it."""
    return request.host_url.rstrip("/") + "/fhir"


@fhir.get("/fhir/metadata")
def metadata() -> Response:
    settings, authorizer = _settings(), current_app.extensions["tx_authorizer"]
    if request.args.get("mode") == "terminology":
        # advertised when every worker finds what one was sent (cache_ids.py)
        shared = _server().cached.shared or settings.workers == 1
        return fhir_response(terminology_capabilities(current(), base_url(), cache_ids=shared))
    return fhir_response(capability_statement(current(), base_url(), set(ROUTED),
                                              writes=authorizer.writes_enabled,
                                              jwt=authorizer.jwt_enabled))


@fhir.get("/fhir/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 description of these endpoints (client generators, fuzzers)."""
    writes = current_app.extensions["tx_authorizer"].writes_enabled
    body = openapi_spec(HANDLERS, RESOURCE_TYPES, request.host_url, writes)
    return Response(orjson.dumps(body), content_type="application/json")


@fhir.get("/fhir/$versions")
def fhir_versions() -> Response:
    return fhir_response(versions())


@fhir.route("/fhir", methods=["POST"])
@fhir.route("/fhir/", methods=["POST"])
def batch() -> Response:
    """POST /fhir with a batch Bundle of operation requests (fhir/batch.py)."""
    bundle = fhir_body("a FHIR Bundle of type batch")
    settings = _settings()
    with request_deadline(settings.request_time_limit, settings.max_regex_length):
        return fhir_response(run_batch(_server(), bundle, base_url(),
                                       request.headers.get("Accept-Language"),
                                       dict(request.headers), g.get("request_id", "")))


@fhir.route("/fhir/<rtype>/$<op>", methods=["GET", "POST"])
def type_operation(rtype: str, op: str) -> Response:
    return _operation(rtype, op, None)


@fhir.route("/fhir/<rtype>/<rid>/$<op>", methods=["GET", "POST"])
def instance_operation(rtype: str, rid: str, op: str) -> Response:
    return _operation(rtype, op, instance_for(_server(), rtype, rid))


def _operation(rtype: str, op: str, instance: dict[str, Any] | None) -> Response:
    handler_for(rtype, op)  # a 404 before the body is read
    bag = request_bag()
    settings = _settings()
    with request_deadline(settings.request_time_limit, settings.max_regex_length):
        body = run_operation(_server(), rtype, op, instance, bag,
                             request.headers.get("Accept-Language"), dict(request.headers))
    return fhir_response(body)


# Writes (POST, PUT, DELETE) are routed by authoring/writes.py; what is left here is refused.
@fhir.route("/fhir/<rtype>", methods=["GET", "DELETE", "PATCH"])
def type_search(rtype: str) -> Response:
    known_type(rtype)
    if request.method not in ("GET", "HEAD"):
        raise MethodNotAllowed(f"{request.method} on {rtype} is not supported: this server is read-only")
    return _search(rtype, bag_from_query(list(request.args.items(multi=True))))


@fhir.route("/fhir/<rtype>/_search", methods=["GET", "POST"])
def type_search_post(rtype: str) -> Response:
    """R4 search by POST (http.html#search): the parameters of a form body and the query."""
    known_type(rtype)
    return _search(rtype, search_bag(request, read_request_body))


def _search(rtype: str, bag: ParamBag) -> Response:
    # R4 search.html#errors: Prefer: handling=strict makes unknown parameters a 400.
    strict = "handling=strict" in request.headers.get("Prefer", "").replace(" ", "").lower()
    return fhir_response(search(current(), rtype, bag, base_url(), strict))


@fhir.route("/fhir/<rtype>/<rid>", methods=["GET", "POST", "PATCH"])
def instance_read(rtype: str, rid: str) -> Response:
    known_type(rtype)
    if request.method not in ("GET", "HEAD"):
        raise MethodNotAllowed(f"{request.method} on {rtype}/{rid} is not supported: this server is read-only")
    headers = read_headers(rtype, rid)  # a stored resource: its version; 410 when deleted
    g.resource = read(current(), rtype, rid, bag_from_query(list(request.args.items(multi=True))))
    resp = fhir_response(g.resource)
    resp.headers.update(headers)
    return resp


def read_headers(rtype: str, rid: str) -> dict[str, str]:
    """ETag and Last-Modified of a stored resource being read; 410 Gone when deleted
    (the authored-content state, authoring/state.py, when the app has one)."""
    authoring = current_app.extensions.get("tx_authoring")
    if authoring is None:
        return {}
    key = (rtype, rid)
    if key in authoring.deleted:
        raise Gone(f"{rtype}/{rid} was deleted", expression="id")
    if key not in authoring.stored:
        return {}
    resource = authoring.registry.by_id(rtype, rid) or {}
    meta = resource.get("meta", {})
    if "versionId" not in meta:
        return {}
    return {"ETag": f'W/"{meta["versionId"]}"', "Last-Modified": instant_http_date(meta["lastUpdated"])}
