"""Content negotiation: which format (FHIR JSON or FHIR XML) a request asks for and sends.

R4 http.html#mime-type: `_format` in the query overrides the Accept header; its value is
`json`, `xml` or a MIME type. The Accept header is weighed by quality value (werkzeug's
parser: `*/*`, `application/*`, `q=0` meaning "not this"); on a tie JSON wins. When nothing
offered is acceptable the answer is 406. Request bodies are FHIR JSON, FHIR XML or a form;
anything else is 415.
"""

from __future__ import annotations

from typing import Any

import orjson
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from terminology.errors import BadRequest, NotAcceptable, UnsupportedMediaType
from terminology.http.exchange import Early, Exchange

JSON = "json"
XML = "xml"
FHIR_JSON = "application/fhir+json; charset=utf-8"
CONTENT_TYPES = {JSON: FHIR_JSON, XML: "application/fhir+xml; charset=utf-8"}
# CORS for browser-based FHIR apps (SMART apps, form builders): any origin, no credentials.
CORS_HEADERS = {"Access-Control-Allow-Origin": "*",
                "Access-Control-Expose-Headers": "X-Request-Id, ETag, Location, Last-Modified, WWW-Authenticate"}
# On every answer, whoever writes it (Flask's routes, the operation dispatch): CORS, and
# browsers never guess a content type.
EVERY_ANSWER_HEADERS = {**CORS_HEADERS, "X-Content-Type-Options": "nosniff"}
VARY = "Accept, Accept-Encoding, Accept-Language"  # FHIR answers differ by format, encoding, language
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir", "text/json")
XML_TYPES = ("application/fhir+xml", "application/xml", "text/xml", "application/xml+fhir")
# Offered in this order: on equal quality the first wins, so JSON stays the default.
OFFERED = (*JSON_TYPES, *XML_TYPES)
FORMAT_PARAM = {JSON: JSON, "fhir+json": JSON, XML: XML, "fhir+xml": XML,
                **{t: JSON for t in JSON_TYPES}, **{t: XML for t in XML_TYPES}}


def format_of_param(value: str) -> str:
    """The format a `_format` value names; 406 for one we do not write."""
    # '+' in an unencoded query string arrives as a space (application/fhir+xml).
    wanted = value.strip().lower().replace(" ", "+").split(";")[0].strip()
    fmt = FORMAT_PARAM.get(wanted)
    if fmt is None:
        raise NotAcceptable(f"_format '{value}' is not supported; this server writes json "
                            "(application/fhir+json) and xml (application/fhir+xml)",
                            expression="_format")
    return fmt


def negotiate(format_param: str | None, accept: MIMEAccept, accept_raw: str | None) -> str:
    """JSON or XML for a request's `_format` and Accept header; NotAcceptable (406) if neither."""
    if format_param is not None:
        return format_of_param(format_param)
    if not accept_raw or not accept_raw.strip():
        return JSON
    # Media-type parameters (fhirVersion=4.0, charset) do not change the format; werkzeug
    # would match them exactly, so weigh the bare types. A type naming another FHIR version
    # (fhirVersion=5.0, 3.0) is one this server cannot write (R4 http.html#version-parameter).
    kept = [(value.split(";")[0].strip(), q) for value, q in accept if serves_version(value)]
    best = MIMEAccept(kept).best_match(OFFERED)
    if best is None and len(kept) < len(accept):
        raise NotAcceptable(
            "This server speaks FHIR R4 (fhirVersion=4.0) only; the request accepts only "
            f"'{accept_raw}'")
    if best is None:
        raise NotAcceptable(
            "This server writes application/fhir+json and application/fhir+xml; the request "
            f"accepts only '{accept_raw}'")
    return XML if best in XML_TYPES else JSON


def serves_version(media_type: str) -> bool:
    """Whether a media type's `fhirVersion` parameter (if any) names FHIR R4 (4.0 or 4.0.x)."""
    for param in media_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "fhirversion":
            version = value.strip().strip('"')
            return version == "4.0" or version.startswith("4.0.")
    return True


def body_format(mimetype: str | None) -> str | None:
    """JSON or XML for a request body's media type; None when the type is absent."""
    ctype = (mimetype or "").lower()
    if not ctype:
        return None
    if ctype in JSON_TYPES:
        return JSON
    if ctype in XML_TYPES:
        return XML
    raise UnsupportedMediaType(
        f"Content-Type '{mimetype}' is not supported; send application/fhir+json or "
        "application/fhir+xml")


def parse_body(raw: bytes, fmt: str | None) -> Any:
    """A FHIR resource body (JSON when the type is not given) as a dict; 400 when malformed."""
    if fmt == XML:
        from terminology.http.fhir.fhir_xml import from_xml  # only when XML is asked for

        return from_xml(raw)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"The request body is not valid JSON: {e}") from e
    return body


def serialize(body: dict[str, Any], fmt: str) -> bytes:
    """A resource dict as bytes in the negotiated format."""
    if fmt == XML:
        from terminology.http.fhir.fhir_xml import to_xml

        return to_xml(body)
    return orjson.dumps(body)


def negotiation(x: Exchange) -> Early | None:
    """Stage: the answer's format (JSON or XML) for a /fhir request; 406 when neither is
    acceptable. First, so that later errors are written in that format."""
    if x.path.startswith("/fhir"):
        accept = x.environ.get("HTTP_ACCEPT")
        param = x.args.get("_format")
        if param is not None or accept:  # else JSON, the exchange's default
            x.fmt = negotiate(param, parse_accept_header(accept, MIMEAccept), accept)
    return None


def vary(x: Exchange) -> None:
    """Stage: FHIR answers differ by format, encoding and language."""
    if x.path.startswith("/fhir"):
        x.headers["Vary"] = VARY


def common_headers(x: Exchange) -> None:
    """Stage: CORS and nosniff on every answer."""
    x.headers.update(EVERY_ANSWER_HEADERS)
