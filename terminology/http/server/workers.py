"""Running the production WSGI server (granian by default, or gunicorn) over the Flask app."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson
from werkzeug.test import EnvironBuilder

from terminology.content import prepare_request_models
from terminology.http import metrics
from terminology.http.server.slow_clients import BodyDeadline
from terminology.logs import dict_config
from terminology.settings import Settings

Hooks = dict[str, Callable[..., Any]]  # launch.prepare_production: worker_started, reload

SERVERS = ("granian", "gunicorn")  # settings.server; granian measured fastest (benchmarks/)


def serve_production(app: Any, settings: Settings, hooks: Hooks | None = None) -> None:
    """Serve `app` with settings.server: granian (default) or gunicorn (threaded workers).

    Either way the content is loaded once, before the workers fork, and SIGTERM stops
    accepting, lets requests in flight finish (20 s at most), then exits. Every log line is
    JSON (logs.py). `hooks` (launch.py): "worker_started" runs in each new worker, "reload"
    in the main process on SIGHUP, before the workers are gracefully replaced.
    """
    given: Hooks = dict(hooks or {})
    # Built here, before the workers fork: a worker's first POST of an inline resource is
    # then as fast as its first GET, respawned and reloaded workers too (content.py).
    prepare_request_models()
    # The loaded content moves to the GC's permanent generation: collections in the workers
    # then never write to its pages, which stay shared copy-on-write with the parent
    # (measured: about 40% less memory per worker with a full-size CPT; benchmarks/README.md).
    gc.collect()
    gc.freeze()
    if settings.server == "granian":
        serve_granian(app, settings, given)
        return
    if settings.server != "gunicorn":
        raise ValueError(f"unknown server '{settings.server}' (one of {', '.join(SERVERS)})")
    from gunicorn.app.base import BaseApplication

    class _Gunicorn(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", settings.workers)
            self.cfg.set("threads", settings.threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("preload_app", True)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("keepalive", 5)
            self.cfg.set("loglevel", settings.log_level)
            self.cfg.set("logconfig_dict", dict_config(settings.log_level))
            if "worker_started" in given:
                self.cfg.set("post_fork", lambda _arbiter, _worker: given["worker_started"]())
            if "reload" in given:
                self.cfg.set("on_reload", lambda _arbiter: given["reload"]())
            # gunicorn >= 25.1 opens a management socket at ~/.gunicorn/gunicorn.ctl: one
            # path shared by every replica on a host, and unwritable in a read-only image.
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            return app

    _Gunicorn().run()


# A worker that dies again this soon after being respawned is respawned after a pause, not
# given up on: granian's own crash-loop check would stop the whole server instead.
CRASH_LOOP_SECONDS = 5.5
CRASH_LOOP_PAUSE = 1.0


def respawning_server_class() -> type[Any]:
    """granian's Server, made to replace a dead worker always and never exit because one died.

    granian (2.x) respawns failed workers when asked (`respawn_failed_workers`), but when the
    same worker dies twice within 5.5 s it concludes a crash loop and shuts the server down:
    one client repeating a request that kills a worker would stop the service. Here a
    repeated death is respawned after a short pause instead (so a loop costs a fork a second).
    """
    from granian.server import Server

    class RespawningServer(Server):  # type: ignore[misc,valid-type]
        def _respawn_workers(self, workers: list[int], spawn_target: Any, target_loader: Any,
                             delay: float = 0) -> None:
            now = time.monotonic()
            recent = getattr(self, "_tx_recent", {})
            if any(now - recent.get(idx, -CRASH_LOOP_SECONDS) < CRASH_LOOP_SECONDS for idx in workers):
                time.sleep(CRASH_LOOP_PAUSE)
            super()._respawn_workers(workers, spawn_target, target_loader, delay)
            # granian's loop exits when respawned_wrks says a worker was respawned recently
            recent.update(self.respawned_wrks)
            self._tx_recent = recent
            self.respawned_wrks.clear()

    return RespawningServer


def serve_granian(app: Any, settings: Settings, hooks: Hooks | None = None) -> None:
    """Serve `app` with granian's WSGI workers, forked from this process (preloaded app).

    A worker that dies (a signal, a crash in native code) is replaced at once; the others go
    on serving (respawning_server_class).
    """
    import multiprocessing

    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.utils.proxies import wrap_wsgi_with_proxy_headers

    # Workers must inherit the loaded app: fork, not spawn (Python 3.14 defaults to
    # forkserver, which granian turns into spawn and which would pickle the app).
    multiprocessing.set_start_method("fork", force=True)
    # As gunicorn does: trust X-Forwarded-For/-Proto from FORWARDED_ALLOW_IPS (the proxy),
    # so that base urls say https behind a TLS-terminating proxy.
    trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
    wrapped = guarded(forwarded_only(app, wrap_wsgi_with_proxy_headers(app, trusted)), settings)
    server = respawning_server_class()(
        "terminology.http.app:create_app",  # only named in logs: the loader below returns `app`
        address=settings.host,
        port=settings.port,
        interface=Interfaces.WSGI,
        workers=settings.workers,
        # `threads` compute answers; `body_threads` more may wait for slow bodies (slow_clients.py)
        blocking_threads=settings.threads + settings.body_threads,
        http1_settings=HTTP1Settings(header_read_timeout=int(settings.header_timeout * 1000)),
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig=dict_config(settings.log_level),
        workers_kill_timeout=20,
        respawn_failed_workers=True,
    )
    hooks = hooks or {}
    if "reload" in hooks:
        server.on_reload(hooks["reload"])  # SIGHUP: in the main process, then the respawns

    def load_in_worker(_target: Any) -> Any:
        if "worker_started" in hooks:
            hooks["worker_started"]()
        warm_up(app)  # runs in each worker, after the fork, before it accepts requests
        return wrapped

    server.serve(target_loader=load_in_worker)


def guarded(app: Any, settings: Settings) -> Any:
    """`app` behind the body deadline (slow_clients.py): bodies read whole within
    body_timeout by body_threads readers, at most `threads` requests computing at once."""
    from terminology.http.stages import log_access

    def log_timeout(environ: dict[str, Any], seconds: float) -> None:
        log_access(environ.get("HTTP_X_REQUEST_ID", ""), environ.get("REQUEST_METHOD", ""),
                   environ.get("PATH_INFO", ""), 408, time.perf_counter() - seconds)

    return BodyDeadline(app, settings.body_timeout, settings.body_threads, settings.threads,
                        settings.max_body_bytes, log_timeout)


def forwarded_only(app: Any, proxied: Any) -> Any:
    """`proxied` (granian's X-Forwarded-* handling) for requests that carry X-Forwarded-For,
    `app` for the others: granian's wrapper parses the client address of every request
    (ipaddress, ~15 us) even when there is no forwarded header to trust or ignore."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if "HTTP_X_FORWARDED_FOR" in environ:
            return proxied(environ, start_response)
        return app(environ, start_response)

    return wsgi


WARM_UP_HEADERS = [("X-Request-Id", "warm-up")]


def warm_up_paths(registry: Any) -> list[str]:
    """A few operation GETs over the biggest code system: a lookup, a validate-code, and the
    count of a value set that includes it, so a worker's first real request does not pay for
    the first touch of that code (measured: 5-15 ms on a fresh worker, then 0.6 ms)."""
    providers = [p for p in registry.providers() if p.total()]
    if not providers:
        return []
    big = max(providers, key=lambda p: p.total())
    first = next(big.iterate()).code
    system, code = quote(big.url, safe=""), quote(first, safe="")
    paths = [f"/fhir/CodeSystem/$lookup?system={system}&code={code}",
             f"/fhir/CodeSystem/$validate-code?url={system}&code={code}"]
    for vs in registry.resources("ValueSet"):
        if any(i.get("system") == big.url for i in (vs.get("compose") or {}).get("include", [])):
            url = quote(vs.get("url", ""), safe="")
            paths += [f"/fhir/ValueSet/$expand?url={url}&count=0",
                      f"/fhir/ValueSet/$validate-code?url={url}&system={system}&code={code}"]
            break
    return paths


def warm_up_posts(registry: Any) -> list[tuple[str, bytes]]:
    """POSTs of an inline value set over the biggest code system ($expand count=0, and a
    $validate-code of its first code): the body parsing, the inline-resource validation and
    the compose evaluation a worker's first POST would otherwise pay for (5-200 ms)."""
    providers = [p for p in registry.providers() if p.total()]
    if not providers:
        return []
    big = max(providers, key=lambda p: p.total())
    value_set = {"resourceType": "ValueSet", "url": "urn:tx:warm-up", "status": "active",
                 "compose": {"include": [{"system": big.url}]}}
    first = next(big.iterate()).code
    expand = {"resourceType": "Parameters", "parameter": [
        {"name": "valueSet", "resource": value_set}, {"name": "count", "valueInteger": 0}]}
    validate = {"resourceType": "Parameters", "parameter": [
        {"name": "valueSet", "resource": value_set},
        {"name": "coding", "valueCoding": {"system": big.url, "code": first}}]}
    return [("/fhir/ValueSet/$expand", orjson.dumps(expand)),
            ("/fhir/ValueSet/$validate-code", orjson.dumps(validate))]


def warm_up(app: Any) -> None:
    """Answer warm_up_paths() and warm_up_posts() once in this process, without access-log
    lines or request counts; never fails."""
    access = logging.getLogger("terminology.access")
    was = access.disabled
    access.disabled = True
    try:
        registry = app.extensions["tx_registry"]
        requests = [EnvironBuilder(path=route, query_string=query, headers=WARM_UP_HEADERS)
                    for route, _, query in (p.partition("?") for p in warm_up_paths(registry))]
        requests += [EnvironBuilder(path=path, method="POST", data=body, headers=WARM_UP_HEADERS,
                                    content_type="application/fhir+json")
                     for path, body in warm_up_posts(registry)]
        for request in requests:
            for _ in app(request.get_environ(), lambda *args: None):
                pass
    except Exception:  # noqa: BLE001  (a warm-up that fails leaves the worker as it was)
        logging.getLogger("terminology").debug("worker warm-up failed", exc_info=True)
    finally:
        access.disabled = was
        metrics.PENDING.discard()  # nor are they counted in the metrics
