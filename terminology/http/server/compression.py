"""gzip for the standalone server: bodies over a threshold, when the client accepts gzip.

Behind nginx (deploy/nginx.conf.template) the proxy compresses and this stays off. The
strong ETag of a compressed body gets a "-gzip" marker (conditional.py strips it when
comparing), since the bytes on the wire differ from the identity answer's.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from typing import Any

from werkzeug.datastructures import Accept
from werkzeug.http import parse_accept_header

from terminology.http.wsgi import GZIP_SUFFIX, Headers, StartResponse, WsgiApp, drain

COMPRESSIBLE = ("application/fhir+json", "application/fhir+xml", "application/json",
                "application/xml", "text/")


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header accepts gzip (q > 0)."""
    if not accept_encoding or "gzip" not in accept_encoding and "*" not in accept_encoding:
        return False
    parsed = parse_accept_header(accept_encoding, Accept)
    return parsed["gzip"] > 0 or ("gzip" not in parsed and parsed["*"] > 0)


class Gzip:
    """WSGI middleware compressing 200 answers larger than `min_bytes` for gzip clients."""

    def __init__(self, app: WsgiApp, min_bytes: int = 1024, level: int = 5) -> None:
        self.app = app
        self.min_bytes = min_bytes
        self.level = level

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING")):
            return self.app(environ, start_response)
        sent: list[Any] = []

        def capture(status: str, headers: Headers, exc_info: Any = None) -> Any:
            sent[:] = [status, headers, exc_info]
            return lambda data: None

        result = self.app(environ, capture)
        body = drain(result)
        status, headers, exc_info = sent
        if self._compressible(status, headers, body):
            body = gzip.compress(body, self.level, mtime=0)
            headers = [(k, _gzip_etag(v) if k.lower() == "etag" else v) for k, v in headers
                       if k.lower() != "content-length"]
            headers += [("Content-Encoding", "gzip"), ("Content-Length", str(len(body)))]
        start_response(status, headers, exc_info) if exc_info else start_response(status, headers)
        return [body]

    def _compressible(self, status: str, headers: Headers, body: bytes) -> bool:
        if len(body) <= self.min_bytes or status[:3] in ("204", "206", "304"):
            return False
        found = {k.lower(): v for k, v in headers}
        ctype = found.get("content-type", "")
        return "content-encoding" not in found and ctype.startswith(COMPRESSIBLE)


def _gzip_etag(tag: str) -> str:
    """The ETag of the gzipped body: the identity tag with the gzip marker."""
    return tag[:-1] + GZIP_SUFFIX + '"' if tag.endswith('"') and not tag.startswith("W/") else tag
