"""Loading everything the settings name, and running the production WSGI server."""

from __future__ import annotations

from typing import Any

from terminology.content import ContentError, load_registry
from terminology.registry import Registry
from terminology.settings import Settings


def load_content(settings: Settings) -> Registry:
    """The registry of the content folders plus any CPT databases."""
    registry = load_registry(settings.content_dirs, settings.validation_cache())
    for path in settings.cpt_databases:
        # A named but missing database stops the start: a mistyped path (or a volume the
        # operator forgot to mount) must never be served silently as the bundled fragment.
        if not path.is_file():
            raise ContentError(str(path), "(file)", "CPT database does not exist")
        from terminology.providers.cpt import CptProvider

        registry.add_code_system(CptProvider.from_database(path))
    return registry


def serve_production(app: Any, settings: Settings) -> None:
    """Serve `app` with gunicorn (threaded workers), content loaded once before forking."""
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
            # gunicorn >= 25.1 opens a management socket at ~/.gunicorn/gunicorn.ctl: one
            # path shared by every replica on a host, and unwritable in a read-only image.
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            return app

    _Gunicorn().run()
