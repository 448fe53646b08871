"""Running the production WSGI server (granian by default, or gunicorn) over the Flask app."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Any

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


def serve_granian(app: Any, settings: Settings, hooks: Hooks | None = None) -> None:
    """Serve `app` with granian's WSGI workers, forked from this process (preloaded app)."""
    import multiprocessing

    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server
    from granian.utils.proxies import wrap_wsgi_with_proxy_headers

    # Workers must inherit the loaded app: fork, not spawn (Python 3.14 defaults to
    # forkserver, which granian turns into spawn and which would pickle the app).
    multiprocessing.set_start_method("fork", force=True)
    # As gunicorn does: trust X-Forwarded-For/-Proto from FORWARDED_ALLOW_IPS (the proxy),
    # so that base urls say https behind a TLS-terminating proxy.
    trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
    wrapped = wrap_wsgi_with_proxy_headers(app, trusted)
    server = Server(
        "terminology.http.app:create_app",  # only named in logs: the loader below returns `app`
        address=settings.host,
        port=settings.port,
        interface=Interfaces.WSGI,
        workers=settings.workers,
        blocking_threads=settings.threads,
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig=dict_config(settings.log_level),
        workers_kill_timeout=20,
    )
    hooks = hooks or {}
    if "reload" in hooks:
        server.on_reload(hooks["reload"])  # SIGHUP: in the main process, then the respawns

    def load_in_worker(_target: Any) -> Any:
        if "worker_started" in hooks:
            hooks["worker_started"]()
        return wrapped

    server.serve(target_loader=load_in_worker)
