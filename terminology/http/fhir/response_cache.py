"""A bounded in-process cache of serialized operation answers for identical GET requests.

Between writes content does not change, so an operation's answer is a pure function of
the request line and the few headers the request path reads (an authored write empties the
cache of every worker, http/authoring/state.py): repeating the same GET can
reuse the bytes serialized the first time. Only successful (200) answers of the operation
routes are kept: an error may depend on time (the request time limit) and is cheap to
rebuild. Requests that carry their own content (tx-resource) or a body (POST) are never
cached. Each worker process holds its own cache; its size is the setting
`response_cache_bytes` (0 turns it off).

A hit is answered by a WSGI middleware in front of Flask: routing, request parsing, the
operation and serialization are all skipped, which is most of the cost of a small answer.
A hit replays the headers the app sent the first time (content type, length, CORS...)
except X-Request-Id: what is per request stays per request, so the hit runs the pipeline's
stages of the cache-hit path (http/pipeline.py: its own request id, access-log line and
metrics). Content
negotiation needs no re-check because the Accept header and the query (with `_format`) are
part of the key: the JSON and XML answers to one request are kept apart, and an answer is
only reused for an Accept value that the app already accepted. Conditional GET
(conditional.py) and gzip (server/compression.py) sit in front of this cache, so it holds only
identity-encoded 200 answers with their ETag.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from terminology.errors import FhirError
from terminology.http.exchange import CACHE_HIT, OPERATION_ENDPOINTS, Exchange, HeaderList, Site
from terminology.http.metrics import record_cache
from terminology.http.wsgi import Headers, StartResponse, WsgiApp, drain

# Every header the request path reads besides the query string: Accept (406 or not),
# Accept-Language (displays) and X-Too-Costly-Threshold ($expand's limit).
KEY_HEADERS = ("HTTP_ACCEPT", "HTTP_ACCEPT_LANGUAGE", "HTTP_X_TOO_COSTLY_THRESHOLD")
# Answers that depend on more than the request: its own content, or content under a cache-id.
BYPASS_PARAMS = ("tx-resource", "cache-id")
REQUEST_ID_HEADER = "x-request-id"
CACHEABLE = "terminology.response_cacheable"  # environ flag set by the app for its operation routes
CacheKey = tuple[str, ...]
Entry = tuple[Headers, bytes]  # the app's headers except X-Request-Id, and the body


class ResponseCache:
    """A thread-safe LRU of answers (headers and body), bounded by the bytes of the bodies."""

    def __init__(self, max_bytes: int, max_entry_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        # One answer may take at most 1/16 of the budget, so a few huge expansions cannot
        # evict everything else.
        self.max_entry_bytes = max_entry_bytes if max_entry_bytes is not None else max_bytes // 16
        self._entries: OrderedDict[CacheKey, Entry] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        # Bumped by clear(): an answer computed before a clear is not stored after it.
        self.generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes of bodies currently held."""
        return self._size

    def get(self, key: CacheKey) -> Entry | None:
        """The answer stored for `key`, marking it recently used; None when absent."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def clear(self) -> None:
        """Forget every answer (content changed: an authored resource was written)."""
        with self._lock:
            self._entries.clear()
            self._size = 0
            self.generation += 1

    def put(self, key: CacheKey, headers: Headers, body: bytes, generation: int | None = None) -> None:
        """Store an answer under `key`, evicting the least recently used ones to fit.

        `generation`: the cache's generation when the answer's computation began; an answer
        begun before the last clear() may come from old content and is dropped.
        """
        if len(body) > self.max_entry_bytes:
            return
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= len(old[1])
            self._entries[key] = (headers, body)
            self._size += len(body)
            while self._size > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._size -= len(evicted[1])


def cache_key(environ: dict[str, Any]) -> CacheKey | None:
    """The key of a WSGI request that may be answered from the cache, else None."""
    if environ.get("REQUEST_METHOD") != "GET":
        return None
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    if not path.startswith("/fhir/") or "/$" not in path:
        return None
    query = environ.get("QUERY_STRING", "")
    # Any mention of tx-resource or cache-id, however it is encoded, bypasses the cache.
    decoded = unquote(query) if ("%" in query or "+" in query) else query
    if any(name in query or name in decoded for name in BYPASS_PARAMS):
        return None
    return (path, query, *(environ.get(name, "") for name in KEY_HEADERS))


def mark_cacheable(x: Exchange) -> None:
    """Stage: an operation route's answer may be kept (the cache keeps only its 200s); the
    other routes' answers embed the base URL or depend on more than the request."""
    if x.endpoint in OPERATION_ENDPOINTS and not x.streamed:
        x.environ[CACHEABLE] = True


class CachedOperations:
    """WSGI middleware: answers hits without entering the wrapped app, stores its answers.

    A hit runs the pipeline's stages of the cache-hit path (request id, its header, the
    access log and metrics); the stored headers carry what the other stages set.
    """

    def __init__(self, app: WsgiApp, cache: ResponseCache, site: Site) -> None:
        self.app = app
        self.cache = cache
        self.site = site

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        key = cache_key(environ)
        if key is None:
            return self.app(environ, start_response)
        entry = self.cache.get(key)
        record_cache(entry is not None)
        if entry is None:
            return self._miss(key, environ, start_response)
        headers, body = entry
        stages = self.site.paths[CACHE_HIT]
        x = Exchange(environ, self.site, stages, {})
        x.cached = True
        try:
            try:
                for step in stages.request:
                    if step(x) is not None:
                        return self.app(environ, start_response)
            except FhirError:  # a stage refuses (e.g. a read guard): the app answers it
                return self.app(environ, start_response)
            x.headers = HeaderList(headers)
            x.body = body
            for finish in stages.response:
                finish(x)
            start_response("200 OK", x.headers.items)
            return [body]
        finally:
            for end in stages.teardown:
                end(x)

    def _miss(self, key: CacheKey, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Run the app; keep its answer when it is a 200 from an operation route."""
        sent: list[Any] = []
        generation = self.cache.generation

        def capture(status: str, headers: Headers, exc_info: Any = None) -> Any:
            sent[:] = [status, headers]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        result = self.app(environ, capture)
        if not (environ.get(CACHEABLE) and sent and sent[0].startswith("200 ")):
            return result
        body = drain(result)
        headers = [(k, v) for k, v in sent[1] if k.lower() != REQUEST_ID_HEADER]
        self.cache.put(key, headers, body, generation)
        return [body]
