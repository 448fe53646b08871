"""The request pipeline, declared once: every stage a request passes, in order.

`STAGES` is the one list. Each entry names one small function with one job and the phase
it runs in:

- AROUND: WSGI layers around everything, outermost first (they see every request, whatever
  path then answers it);
- REQUEST: before the handler (may refuse with a FhirError, or answer by itself);
- HANDLER: the route's work (documentation only: the route or the dispatch calls it);
- RESOURCE: the answer's resource dict, before it is serialized (every FHIR answer: the
  operations, reads, batch Bundles, errors, write answers and the HTML pages' operation calls);
- RESPONSE: the answer's status and headers, after the handler;
- TEARDOWN: after the answer, whatever happened.

A request is answered by one of three paths: the thin dispatch (fhir/dispatch.py, operation
GETs in front of Flask), a response-cache hit (fhir/response_cache.py), or the Flask routes.
Each runs the REQUEST, RESOURCE, RESPONSE and TEARDOWN functions of this list, in this order,
except where an entry's `skips` names the path, with the reason. `build` turns the list into
plain tuples of functions per path once per app, so the hot path is a loop of calls.
A new stage is one entry here; tests/http/test_pipeline.py proves each entry runs on every
path it does not skip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, g, request

from terminology.http import licensed, metrics, stages
from terminology.http.authoring.auth import read_guard
from terminology.http.exchange import CACHE_HIT, DISPATCH, FLASK, Exchange, PathStages, Site
from terminology.http.fhir.conditional import ConditionalGet, validators
from terminology.http.fhir.dispatch import OperationDispatch
from terminology.http.fhir.negotiation import common_headers, negotiation, vary
from terminology.http.fhir.response_cache import CachedOperations, mark_cacheable
from terminology.http.server.compression import Gzip
from terminology.http.wsgi import WsgiApp

AROUND, REQUEST, HANDLER, RESOURCE, RESPONSE, TEARDOWN = (
    "around", "request", "handler", "resource", "response", "teardown")
PATHS = (DISPATCH, CACHE_HIT, FLASK)
REPLAYED = "a hit replays the headers stored with the first answer, which this stage set"


@dataclass(frozen=True)
class Stage:
    """One entry of the pipeline."""

    name: str
    phase: str
    run: Callable[..., Any] | None  # AROUND: (wsgi app, site) -> wsgi app; else (exchange, ...)
    when: Callable[[Site], bool] = lambda site: True  # whether this server runs it at all
    skips: Mapping[str, str] = field(default_factory=dict)  # path -> why it does not run there


def follow_change_feed(app: WsgiApp, site: Site) -> WsgiApp:
    """Around: every request first follows the store's change feed (authoring/state.py)."""
    wrapped: WsgiApp = site.authoring.middleware(app)
    return wrapped


def gzip_answers(app: WsgiApp, site: Site) -> WsgiApp:
    """Around: gzip on the way out (server/compression.py)."""
    return Gzip(app, site.settings.gzip_min_bytes)


def conditional_get(app: WsgiApp, site: Site) -> WsgiApp:
    """Around: a 304 for a matching validator, also for cached answers (fhir/conditional.py)."""
    return ConditionalGet(app)


def response_cache(app: WsgiApp, site: Site) -> WsgiApp:
    """Around: repeated operation GETs answered from the cache (fhir/response_cache.py)."""
    return CachedOperations(app, site.cache, site)


def thin_dispatch(app: WsgiApp, site: Site) -> WsgiApp:
    """Around: type-level operation GETs answered in front of Flask (fhir/dispatch.py)."""
    return OperationDispatch(app, site)


def _cached_reads(site: Site) -> bool:
    """Whether answers may be kept and replayed by the response cache. The read guard runs
    on every path, a cache hit included, so a token for reads no longer turns it off; but
    while CPT text needs a token, one request's answer may hold text another may not see
    (the cache key does not hold who asks), so the cache is off then."""
    return not site.settings.cpt_text_requires_token


STAGES: tuple[Stage, ...] = (
    Stage("follow the store's change feed", AROUND, follow_change_feed,
          when=lambda site: site.authoring is not None),
    Stage("gzip", AROUND, gzip_answers, when=lambda site: site.settings.gzip),
    Stage("conditional GET", AROUND, conditional_get),
    Stage("response cache", AROUND, response_cache,
          when=lambda site: site.cache is not None and _cached_reads(site)),
    Stage("thin dispatch", AROUND, thin_dispatch,
          when=lambda site: site.settings.fast_dispatch,
          skips={CACHE_HIT: "the cache, in front of it, answered"}),
    Stage("request id", REQUEST, stages.request_id),
    Stage("size limits", REQUEST, stages.size_limits,
          skips={CACHE_HIT: "the cache answers before it; the stored answer's URL passed it"}),
    Stage("pin the registry", REQUEST, stages.pin_registry,
          skips={CACHE_HIT: "no content is read"}),
    Stage("CORS preflight", REQUEST, stages.preflight,
          skips={DISPATCH: "it answers GET only", CACHE_HIT: "it answers GET only"}),
    Stage("negotiation", REQUEST, negotiation,
          skips={CACHE_HIT: "Accept and the query (_format) are part of the key"}),
    Stage("query encoding", REQUEST, stages.query_encoding,
          skips={CACHE_HIT: "the query is part of the key; a bad one was answered 400, never stored"}),
    Stage("read guard", REQUEST, read_guard, when=lambda site: site.settings.read_requires_token),
    Stage("licensed reader", REQUEST, licensed.licensed_reader,
          when=lambda site: site.settings.cpt_text_requires_token,
          skips={CACHE_HIT: "the response cache is off while CPT text needs a token"}),
    Stage("handler", HANDLER, None),
    Stage("licensed text", RESOURCE, licensed.licensed_text,
          skips={CACHE_HIT: "the stored answer passed it when it was computed"}),
    Stage("count expansions", RESOURCE, metrics.count_expansion,
          skips={CACHE_HIT: "counted when the answer was computed"}),
    Stage("mark cacheable", RESPONSE, mark_cacheable,
          when=lambda site: site.cache is not None and _cached_reads(site),
          skips={CACHE_HIT: "already stored"}),
    Stage("Vary", RESPONSE, vary, skips={CACHE_HIT: REPLAYED}),
    Stage("validators", RESPONSE, validators, skips={CACHE_HIT: REPLAYED}),
    Stage("request id header", RESPONSE, stages.request_id_header),
    Stage("common headers", RESPONSE, common_headers, skips={CACHE_HIT: REPLAYED}),
    Stage("access log", RESPONSE, stages.access_log),
    Stage("metrics", RESPONSE, metrics.request_metrics),
    Stage("forget the request id", TEARDOWN, stages.forget_request_id),
)


def path_stages(site: Site, path: str, declared: tuple[Stage, ...]) -> PathStages:
    """The functions `path` runs, by phase, in the declared order."""
    def of(phase: str) -> tuple[Any, ...]:
        return tuple(s.run for s in declared
                     if s.phase == phase and s.run is not None and path not in s.skips and s.when(site))

    return PathStages(path, of(REQUEST), of(RESOURCE), of(RESPONSE), of(TEARDOWN))


def build(app: Flask, site: Site, declared: tuple[Stage, ...] | None = None) -> None:
    """Run `declared` (STAGES) on every request of `app`: the per-path functions, the Flask
    hooks and the AROUND layers, outermost first."""
    declared = STAGES if declared is None else declared
    site.paths = {path: path_stages(site, path, declared) for path in PATHS}
    app.extensions["tx_site"] = site
    _install_flask_hooks(app, site)
    wsgi: WsgiApp = app.wsgi_app
    for stage in reversed([s for s in declared if s.phase == AROUND and s.when(site)]):
        assert stage.run is not None
        wsgi = stage.run(wsgi, site)
    app.wsgi_app = wsgi  # type: ignore[method-assign,assignment]


def _install_flask_hooks(app: Flask, site: Site) -> None:
    """The Flask path: REQUEST stages before the route, RESPONSE after, TEARDOWN at the end.

    Flask code reads the exchange as `g.x`, and `g.request_id`, `g.registry`, `g.fmt`."""
    flask = site.paths[FLASK]

    @app.before_request
    def _begin() -> Response | None:
        x = Exchange(request.environ, site, flask, request.args, request.endpoint, request.view_args)
        g.x = x
        try:
            for step in flask.request:
                early = step(x)
                if early is not None:
                    return Response(status=early[0], headers=dict(early[1]))
            return None
        finally:
            g.request_id, g.registry, g.fmt = x.request_id, x.registry, x.fmt

    @app.after_request
    def _finish(resp: Response) -> Response:
        x: Exchange = g.x
        x.status, x.headers, x.response = resp.status_code, resp.headers, resp
        x.streamed, x.resource = resp.is_streamed, g.get("resource")
        for finish in flask.response:
            finish(x)
        return resp

    @app.teardown_request
    def _teardown(_exc: BaseException | None) -> None:
        x = g.get("x")
        if x is not None:
            for end in flask.teardown:
                end(x)
