"""Conditional GET: ETag and Last-Modified on FHIR answers, 304 for If-None-Match / If-Modified-Since.

Loaded content is immutable while a process runs, so an answer is a pure function of the
request: its strong ETag is a hash of the bytes sent (the same on every worker and replica
serving the same content). A resource with meta.versionId (authored resources) gets the FHIR
version ETag W/"versionId" instead (R4 http.html#versioning). Last-Modified is the
resource's meta.lastUpdated when it has one, else the time the content was loaded.

The 304 is decided by a WSGI middleware in front of the response cache, so a cached answer
is revalidated without a body too; requests without a validator pass straight through.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from werkzeug.http import http_date, parse_date

from terminology.http.exchange import OPERATION_ENDPOINTS, Exchange
from terminology.http.wsgi import GZIP_SUFFIX, Headers, StartResponse, WsgiApp, close

# Headers a 304 keeps (RFC 9110 15.4.5): the validators and what caches need.
KEPT_ON_304 = frozenset({"etag", "last-modified", "cache-control", "vary", "expires",
                         "x-request-id", "access-control-allow-origin",
                         "access-control-expose-headers", "content-location"})


def strong_etag(body: bytes) -> str:
    """A strong ETag for exactly these bytes: 96 bits of SHA-1, which this machine's CPU
    hashes about twice as fast as BLAKE2b (1.7 against 3.0 us for a 3 kB answer). Not a
    security boundary: it only tells one answer's bytes from another's."""
    return '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest()[:24] + '"'


def version_etag(resource: dict[str, Any]) -> str | None:
    """W/"versionId" for a resource that carries meta.versionId, else None."""
    meta = resource.get("meta")
    vid = meta.get("versionId") if isinstance(meta, dict) else None
    return f'W/"{vid}"' if isinstance(vid, str) and vid and '"' not in vid else None


def last_updated(resource: dict[str, Any]) -> str | None:
    """The HTTP date of meta.lastUpdated, when the resource has a valid one."""
    meta = resource.get("meta")
    value = meta.get("lastUpdated") if isinstance(meta, dict) else None
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    try:
        return http_date(when if when.tzinfo else when.replace(tzinfo=UTC))
    except (ValueError, OverflowError):
        return None


def instant_http_date(instant: str) -> str:
    """A FHIR instant as an HTTP date (Last-Modified of a stored version)."""
    return format_datetime(datetime.fromisoformat(instant.replace("Z", "+00:00")), usegmt=True)


def _opaque(tag: str) -> str:
    """An entity tag without W/ and without the gzip marker, for weak comparison."""
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    if tag.endswith(GZIP_SUFFIX + '"'):
        tag = tag[: -len(GZIP_SUFFIX) - 1] + '"'
    return tag


def etag_matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match against an ETag, by weak comparison (RFC 9110 13.1.2)."""
    if if_none_match.strip() == "*":
        return True
    mine = _opaque(etag)
    return any(_opaque(t) == mine for t in if_none_match.split(",") if t.strip())


def not_modified(environ: dict[str, Any], headers: Headers) -> bool:
    """Whether a 200 answer with these headers is a 304 for this request's validators."""
    found = {k.lower(): v for k, v in headers}
    inm = environ.get("HTTP_IF_NONE_MATCH")
    if inm is not None:  # If-None-Match takes precedence over If-Modified-Since
        etag = found.get("etag")
        return etag is not None and etag_matches(inm, etag)
    ims = parse_date(environ.get("HTTP_IF_MODIFIED_SINCE"))
    modified = parse_date(found.get("last-modified"))
    return ims is not None and modified is not None and modified <= ims


class ConditionalGet:
    """WSGI middleware: a GET whose validators match the 200 answer gets a bodiless 304."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD") or not (
                "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MODIFIED_SINCE" in environ):
            return self.app(environ, start_response)
        sent: list[Any] = []

        def capture(status: str, headers: Headers, exc_info: Any = None) -> Any:
            sent[:] = [status, headers]
            if not (status.startswith("200 ") and not_modified(environ, headers)):
                return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)
            return lambda data: None

        result = self.app(environ, capture)
        if sent and sent[0].startswith("200 ") and not_modified(environ, sent[1]):
            close(result)
            start_response("304 Not Modified", [(k, v) for k, v in sent[1] if k.lower() in KEPT_ON_304])
            return [b""]
        return result




_content_date: list[tuple[float, str]] = [(-1.0, "")]


def content_http_date(when: float) -> str:
    """`when` (the content's last change) as an HTTP date, formatted once per change: it
    moves only on a reload or an authored write, and formatting took ~4 us a request."""
    last = _content_date[0]
    if last[0] != when:
        last = _content_date[0] = (when, http_date(when))
    return last[1]


def validators(x: Exchange) -> None:
    """Stage: ETag, Last-Modified (and for operations Cache-Control) on a 200 FHIR answer to a GET."""
    if (x.status != 200 or x.streamed or x.method not in ("GET", "HEAD")
            or not x.path.startswith("/fhir")):
        return
    settings = x.site.settings
    set_validators(x.headers, x.answer_bytes, x.resource, x.site.last_modified(),
                   settings.operation_cache_control if x.endpoint in OPERATION_ENDPOINTS else None)


def set_validators(headers: Any, body: Callable[[], bytes], resource: dict[str, Any] | None,
                   last_modified: float, cache_control: str | None) -> None:
    """ETag, Last-Modified and Cache-Control on a 200 FHIR answer to a GET.

    `headers`: a Flask response's headers or an exchange.HeaderList; `body`: the answer's
    bytes, read only when a strong ETag is needed. A resource with meta.versionId keeps its
    version ETag; anything else gets a strong ETag of its bytes. `cache_control` is sent as
    given (operation answers); None sends none.
    """
    if resource is not None:
        etag = version_etag(resource)
        if etag is not None:
            headers["ETag"] = etag
        updated = last_updated(resource)
        if updated is not None:
            headers["Last-Modified"] = updated
    if "ETag" not in headers:
        headers["ETag"] = strong_etag(body())
    if "Last-Modified" not in headers:
        headers["Last-Modified"] = content_http_date(last_modified)
    if cache_control:
        headers["Cache-Control"] = cache_control
