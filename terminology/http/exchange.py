"""One request as the pipeline's stages see it, on every path (terminology/http/pipeline.py).

The thin dispatch, a response-cache hit and a Flask route each make an `Exchange` for the
request and hand it to the same stage functions, which read the request from it and write
what they decide (request id, format, registry, headers...) into it. Nothing here knows Flask.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from terminology.registry import Registry
    from terminology.settings import Settings

# The request paths (pipeline.PATHS): a stage may be skipped on one only where the list says so.
FLASK = "flask"
DISPATCH = "dispatch"
CACHE_HIT = "cache-hit"
# The Flask endpoints of the operation routes (the dispatch stands in for the first).
OPERATION_ENDPOINTS = frozenset({"fhir.type_operation", "fhir.instance_operation"})
Early = tuple[int, Mapping[str, str]]  # a request stage's own answer: status, headers (no body)
RequestStage = Callable[["Exchange"], "Early | None"]
ResourceStage = Callable[["Exchange", dict[str, Any]], dict[str, Any]]
ResponseStage = Callable[["Exchange"], None]


@dataclass(frozen=True)
class PathStages:
    """The stage functions one path runs, in order, by phase (built once per app)."""

    path: str
    request: tuple[RequestStage, ...] = ()
    resource: tuple[ResourceStage, ...] = ()
    response: tuple[ResponseStage, ...] = ()
    teardown: tuple[ResponseStage, ...] = ()


@dataclass
class Site:
    """What the stages need of the running server: settings, content and the helpers."""

    settings: Settings
    current: Callable[[], Registry]  # the content served now (a reload swaps it)
    last_modified: Callable[[], float]  # when the served content last changed
    authorizer: Any = None  # authoring.auth.Authorizer (the read guard)
    cache: Any = None  # fhir.response_cache.ResponseCache, when on
    authoring: Any = None  # authoring.state.Authoring, when writes or a store are on
    paths: dict[str, PathStages] = field(default_factory=dict)  # filled by pipeline.build


class HeaderList:
    """Response headers as a list in sending order, set by name as werkzeug's Headers are
    (a name set again replaces its line in place). Names compare exactly: our code spells
    each header one way, and the hot path saves the case folding."""

    __slots__ = ("items", "_names")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self.items = list(items)
        self._names = {k for k, _ in self.items}

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __setitem__(self, name: str, value: str) -> None:
        if name not in self._names:  # the usual case: a header not sent yet
            self._names.add(name)
            self.items.append((name, value))
            return
        self.items = [(k, value if k == name else v) for k, v in self.items]

    def update(self, values: Mapping[str, str]) -> None:
        """Set each header of `values`."""
        names = self._names
        for name, value in values.items():
            if name in names:
                self[name] = value
            else:
                names.add(name)
                self.items.append((name, value))


class Exchange:
    """One request and what the stages decided about it."""

    __slots__ = ("environ", "site", "stages", "method", "path", "args", "endpoint", "view_args",
                 "started", "request_id", "fmt", "registry", "who", "status", "headers", "body",
                 "response", "resource", "streamed", "cached", "licensed", "cpt_shown", "one_answer",
                 "_json")

    def __init__(self, environ: dict[str, Any], site: Site, stages: PathStages,
                 args: Mapping[str, str], endpoint: str | None = None,
                 view_args: Mapping[str, Any] | None = None) -> None:
        self.environ = environ
        self.site = site
        self.stages = stages
        self.method: str = environ.get("REQUEST_METHOD", "GET")
        self.path: str = environ.get("PATH_INFO", "")
        self.args = args  # the query parameters (first value of each name)
        self.endpoint = endpoint  # the route's endpoint name (Flask's, or the one the dispatch stands in for)
        self.view_args = view_args or {}
        self.started = time.perf_counter()
        self.request_id = ""
        self.fmt = "json"
        self.registry: Registry | None = None
        self.who = "anonymous"
        self.status = 200
        self.headers: Any = None  # HeaderList, or a Flask response's Headers
        self.body: bytes | None = None  # the answer's bytes (else read from `response`)
        self.response: Any = None  # the Flask response, on the Flask path
        self.resource: dict[str, Any] | None = None  # a read resource (its version validators)
        self.streamed = False
        self.cached = False
        self.licensed = True  # may see licensed text (http/licensed.py; off: no token, when one is needed)
        self.cpt_shown: set[str] = set()  # the licensed descriptors this request's answer carries
        self.one_answer = False  # the request has one resource answer (the thin dispatch's)
        self._json: tuple[dict[str, Any], bytes] | None = None

    def answer_bytes(self) -> bytes:
        """The body being sent."""
        if self.body is not None:
            return self.body
        data: bytes = self.response.get_data()
        return data

    def json(self, body: dict[str, Any]) -> bytes:
        """`body` serialized, once: a stage that needs the bytes and the path that sends them
        share one serialization, as long as nobody changed the dict in between (the stages
        after the one that serialized only read it)."""
        if self._json is None or self._json[0] is not body:
            self._json = (body, orjson.dumps(body))
        return self._json[1]

    def screened(self, body: dict[str, Any], status: int) -> dict[str, Any]:
        """`body` after the resource stages: what will be serialized as this answer."""
        self.status = status
        for stage in self.stages.resource:
            body = stage(self, body)
        return body
