"""The one response writer of FHIR answers, and the one error handler.

Every FHIR answer of the Flask routes leaves through `fhir_response`: its resource dict passes
the pipeline's RESOURCE stages (pipeline.py), then is serialized in the negotiated format.
Every error, ours, Werkzeug's or unexpected, leaves as an OperationOutcome.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from terminology.errors import FhirError, Issue, operation_outcome
from terminology.http.fhir.body import too_large
from terminology.http.fhir.negotiation import CONTENT_TYPES, JSON, serialize

log = logging.getLogger("terminology")
HTTP_ISSUE_CODES = {404: "not-found", 405: "not-supported", 406: "not-supported",
                    413: "too-costly", 414: "too-long", 415: "not-supported", 431: "too-long"}


def screened(body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    """`body` after the pipeline's RESOURCE stages for this request (as is outside a request
    the pipeline began, e.g. a bare Flask test app)."""
    x = g.get("x")
    return body if x is None else x.screened(body, status)


def fhir_response(body: dict[str, Any], status: int = 200) -> Response:
    """A FHIR response from a resource dict, in the format the request negotiated."""
    fmt = g.get("fmt", JSON)
    return Response(serialize(screened(body, status), fmt), status=status, content_type=CONTENT_TYPES[fmt])


def error_response(exc: Exception) -> Response:
    """Any exception as an OperationOutcome response with the right status."""
    if isinstance(exc, FhirError):
        resp = fhir_response(exc.outcome(), exc.status)
        resp.headers.update(exc.headers)
        if exc.status == 405 and request.path.rsplit("/", 1)[-1].startswith("$"):
            resp.headers["Allow"] = "GET, HEAD, POST, OPTIONS"  # an operation's URL, not a resource's
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
            resp = fhir_response(operation_outcome([Issue("error", "not-supported", text)]), 405)
            resp.headers.update({k: v for k, v in exc.get_headers() if k == "Allow"})
            return resp
        else:
            text = exc.description or exc.name
        issue = Issue("error", HTTP_ISSUE_CODES.get(status, "invalid" if status < 500 else "exception"), text)
        return fhir_response(operation_outcome([issue]), status)
    request_id = g.get("request_id", "")
    log.exception("unexpected error handling request %s", request_id)
    issue = Issue("error", "exception",
                  f"An unexpected error occurred handling this request (request id {request_id})")
    return fhir_response(operation_outcome([issue]), 500)
