"""The app factory: wiring only. It opens the content, makes the state every request runs
against, registers the blueprints of each concern and runs the pipeline (pipeline.py).

Blueprints: `fhir` (fhir/routes.py: operations, reads, searches, batch, metadata), `writes`
(authoring/writes.py: create, update, delete, history, vread), `admin` (server/admin.py:
health, metrics, reload) and `web` (web/: the HTML browser and editor).
"""

from __future__ import annotations

import time

from flask import Flask, g

from terminology.cache_ids import CachedResources, postgres_database, private_database
from terminology.content import load_content
from terminology.http.answers import error_response, fhir_response
from terminology.http.authoring.auth import Authorizer
from terminology.http.authoring.writes import writes
from terminology.http.exchange import Site
from terminology.http.fhir.invoke import Server
from terminology.http.fhir.response_cache import ResponseCache
from terminology.http.fhir.routes import fhir
from terminology.http.licensed import licensed_texts
from terminology.http.pipeline import build
from terminology.http.server.admin import admin_blueprint
from terminology.http.server.reload import reload_content
from terminology.http.web import web as web_pages
from terminology.registry import Registry
from terminology.settings import Settings

__all__ = ["create_app", "error_response", "fhir_response"]


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> Flask:
    """The WSGI app serving `registry` (loaded from settings.content_dirs when not given)."""
    settings = settings or Settings.from_env()
    if registry is None:
        registry = load_content(settings)
    app = Flask("terminology")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["tx_registry"] = registry  # replaced whole by a reload (server/reload.py)
    app.extensions["tx_settings"] = settings
    # How POST /admin/reload asks for a reload; the production launcher replaces it with a
    # SIGHUP to the main process, which reloads before it replaces the workers.
    app.extensions["tx_reload"] = lambda: reload_content(app)
    # What every operation runs against; the registry is the one this request started on.
    # cache-id content is shared by the workers through a file of this instance (cache_ids.py)
    app.extensions["tx_server"] = Server(
        lambda: g.get("registry") or app.extensions["tx_registry"], settings,
        CachedResources(settings.cache_id_max_ids, settings.cache_id_max_bytes, settings.cache_id_ttl,
                        db=private_database()))
    # When the served content last changed (Last-Modified of answers without their own
    # meta.lastUpdated); whatever changes content while running must move it forward.
    app.extensions["tx_last_modified"] = time.time()
    authorizer = app.extensions["tx_authorizer"] = Authorizer(settings)
    app.extensions["tx_writes"] = authorizer.writes_enabled  # the editor offers Save only then
    for blueprint in (web_pages, fhir, writes, admin_blueprint(settings)):
        app.register_blueprint(blueprint)
    app.register_error_handler(Exception, error_response)
    site = Site(settings, lambda: app.extensions["tx_registry"],
                lambda: app.extensions["tx_last_modified"], authorizer)
    _open_state(app, site, registry)
    build(app, site)
    # The set of licensed descriptors the licensed-text stage counts against, built here,
    # before the workers fork, so that they share it instead of each building its own.
    licensed_texts(registry)
    return app


def _open_state(app: Flask, site: Site, registry: Registry) -> None:
    """The response cache and the authored-content state, when the settings ask for them."""
    settings = site.settings
    # Repeated operation GETs answered from memory (fhir/response_cache.py); a hit runs the
    # read guard too. Not while CPT text needs a token (pipeline._cached_reads says why).
    if settings.response_cache_bytes > 0 and not settings.cpt_text_requires_token:
        site.cache = app.extensions["tx_response_cache"] = ResponseCache(settings.response_cache_bytes)
    # Authored resources (authoring/state.py): the store's content joins the registry.
    app.extensions["tx_authoring"] = None
    if site.authorizer.writes_enabled or settings.store:
        # the store's code (SQLAlchemy) is loaded only by a server that writes
        from terminology.http.authoring.state import Authoring

        authoring = Authoring(settings, registry, site.cache)
        conninfo = authoring.store.conninfo()
        if conninfo:  # replicas share the store: they share cache-id content through it too
            app.extensions["tx_server"].cached.db = postgres_database(conninfo)
        app.extensions["tx_authoring"] = site.authoring = authoring  # a reload serves them too
        authoring.on_change = lambda: app.extensions.__setitem__("tx_last_modified", time.time())
