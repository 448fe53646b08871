"""Request bodies: read within the size limit, gzip decoded, JSON parsed and its nesting bounded.

Everything a client sends in a body passes here before any other code sees it (operations,
batch Bundles, writes, XML), so the limits hold for every request: the byte limit applies to the decoded size (a zip bomb stops at
the limit), and no JSON deeper than the nesting limit reaches recursive code (model
validation, parameter parsing, compose walking), which would otherwise exhaust the stack.
"""

from __future__ import annotations

import zlib
from typing import Any
from urllib.parse import parse_qsl

import orjson
from flask import Request, current_app, request

from terminology.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from terminology.http.fhir.negotiation import XML, body_format, parse_body
from terminology.params import ParamBag, bag_from_parameters, bag_from_query

FORM_TYPE = "application/x-www-form-urlencoded"
CHUNK = 64 * 1024
# orjson refuses documents nested deeper than this itself ("depth limit exceeded")
ORJSON_MAX_DEPTH = 1024


def read_body(request: Request, limit: int) -> bytes:
    """The request body, decoded from its Content-Encoding, never more than `limit` bytes
    in memory (compressed or not); 413 past it, 415 for an encoding other than gzip.

    Werkzeug refuses a too-long Content-Length up front, but on a chunked body its limited
    stream stops silently at the limit, so a truncated body would be parsed: read one byte
    more than the limit ourselves and refuse.
    """
    encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise UnsupportedMediaType(
            f"Content-Encoding '{encoding}' is not supported; send the body as is or gzip-encoded",
            expression="Content-Encoding")
    if request.content_length is not None or "wsgi.input_terminated" not in request.environ:
        raw = request.get_data(cache=False)
    else:
        raw = _read_chunked(request.environ["wsgi.input"], limit)
    if encoding == "identity":
        return raw
    return gunzip(raw, limit)


def _read_chunked(stream: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(min(CHUNK, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
    return b"".join(chunks)


def too_large(limit: int) -> PayloadTooLarge:
    """The 413 naming the body size limit."""
    return PayloadTooLarge(f"The request body is larger than the {limit} bytes the server accepts "
                           "(setting max_body_bytes)")


def gunzip(raw: bytes, limit: int) -> bytes:
    """`raw` gzip-decoded; 413 as soon as the decoded size passes `limit`, 400 if not gzip."""
    decoder = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
    try:
        out = decoder.decompress(raw, limit + 1)  # never more than limit + 1 bytes produced
        if len(out) > limit:
            raise too_large(limit)
        if not decoder.eof:
            raise BadRequest("The gzip-encoded request body is truncated", expression="Content-Encoding")
    except zlib.error as e:
        raise BadRequest(f"The request body is not valid gzip: {e}", expression="Content-Encoding") from e
    return out


def parse_json(raw: bytes, max_depth: int) -> Any:
    """The JSON document in `raw`; 400 when it is not JSON or nests deeper than `max_depth`."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if "depth limit" in str(e):
            raise too_deep(max_depth) from e
        raise BadRequest(f"The request body is not valid JSON: {e}") from e
    if json_depth_exceeds(value, max_depth):
        raise too_deep(max_depth)
    return value


def too_deep(max_depth: int) -> BadRequest:
    """The 400 naming the nesting limit."""
    return BadRequest(
        f"The request body nests JSON objects and arrays more than {max_depth} levels deep, the "
        f"limit this server accepts (setting max_json_depth)", code="too-costly")


def json_depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether `value` holds objects/arrays nested more than `max_depth` levels (the document
    itself is level 1). Iterative, with an explicit stack: safe at any depth."""
    if not isinstance(value, (dict, list)):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > max_depth:
            return True
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def read_request_body() -> bytes:
    """The Flask request's body, decoded, within the body size limit (read_body)."""
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
        return ParamBag(query.params + _form_bag(read_request_body()).params)
    # an empty body is an empty Parameters (FHIR clients POST operations without one)
    body = fhir_body("a FHIR Parameters resource", allow_empty=True)
    if body is None:
        return query
    return ParamBag(query.params + bag_from_parameters(body).params)


def fhir_body(what: str, allow_empty: bool = False) -> Any:
    """The request's FHIR JSON or XML body as a dict (None when empty and `allow_empty`);
    400/413/415 otherwise. JSON is checked for nesting depth before anything walks it."""
    fmt = body_format(request.mimetype)  # 415 for a type that is neither FHIR JSON nor XML
    length = request.content_length
    raw = read_request_body()
    if not raw and not length:
        if allow_empty:
            return None
        raise BadRequest(f"The request body is empty; send {what}")
    max_depth = current_app.extensions["tx_settings"].max_json_depth
    if fmt == XML:
        value = parse_body(raw, fmt)
        if json_depth_exceeds(value, max_depth):  # the same bound, whatever the format
            raise too_deep(max_depth)
        return value
    return parse_json(raw, max_depth)
