"""The authored-content state of one app: the store, the change feed, what is protected.

Opened by create_app when writes are enabled (or a store is named): migrates the schema,
serves the current version of every stored resource from the registry, and wraps the WSGI
app so each request first follows the change feed (store/feed.py). A change applied here
re-indexes only the changed resource and empties this worker's response cache, so no
cached answer outlives the version it was computed from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from terminology.content import apply_stored
from terminology.http.fhir.response_cache import ResponseCache
from terminology.http.wsgi import StartResponse, WsgiApp
from terminology.registry import Registry
from terminology.settings import Settings
from terminology.store import StoredVersion, store_url
from terminology.store.feed import Bell, ChangeFeed, bell_path
from terminology.store.notify import Listener
from terminology.store.store import Store

log = logging.getLogger("terminology.store")


class Authoring:
    """The store and what this worker serves from it."""

    def __init__(self, settings: Settings, registry: Registry, cache: ResponseCache | None) -> None:
        self.settings = settings
        self.registry = registry
        self.cache = cache
        data_dir = settings.store_dir()
        self.store = Store(store_url(settings.store, data_dir))
        self.store.migrate()
        # What files and hosted code systems hold, before any stored resource is added:
        # a write may never replace or shadow it.
        self.protected_ids = {(t, str(r.get("id"))) for t in ("CodeSystem", "ValueSet", "ConceptMap")
                              for r in registry.resources(t)}
        self.protected_urls = {(t, str(r.get("url"))) for t in ("ValueSet", "ConceptMap")
                               for r in registry.resources(t)}
        self.protected_urls |= {("CodeSystem", p.url) for p in registry.providers()}
        self.reserved_urls = {url for _, url in self.protected_urls}  # whatever the type written
        self.deleted: set[tuple[str, str]] = set()
        self.stored: set[tuple[str, str]] = set()
        self.on_change: Callable[[], None] | None = None  # answers may differ from now on
        seq, current = self.store.current()
        self._apply(list(current), clear=False)
        self.feed = ChangeFeed(self.store, seq, self._apply, Bell(bell_path(data_dir, self.store)),
                               settings.store_poll_ms)
        conninfo = self.store.conninfo()
        self.listener = Listener(conninfo, self.feed.wake) if conninfo else None
        self.feed.wake()  # each worker's first request catches up and starts its listener
        self.store.close()  # no connection open when the server forks its workers

    def _apply(self, changed: list[StoredVersion], clear: bool = True) -> None:
        """Serve the current version of each changed resource (or stop serving it)."""
        for v in changed:
            key = (v.resource_type, v.id)
            if key in self.protected_ids or (
                    v.resource is not None and (v.resource_type, str(v.resource.get("url"))) in self.protected_urls):
                log.warning("stored %s/%s is shadowed by bundled content; not served", *key)
                continue
            try:
                apply_stored(self.registry, v.resource_type, v.id, None if v.deleted else v.resource)
            except Exception:  # one bad stored resource must not stop every request
                log.exception("could not serve stored %s/%s version %s", *key, v.version_id)
                continue
            if v.deleted:
                self.deleted.add(key)
                self.stored.discard(key)
            else:
                self.deleted.discard(key)
                self.stored.add(key)
        if clear and self.cache is not None:
            self.cache.clear()
        if changed and self.on_change is not None:
            self.on_change()

    def rebase(self, registry: Registry) -> None:
        """Serve the stored resources over `registry` (a reload built it from files alone)."""
        self.registry = registry
        _, current = self.store.current()
        self._apply(list(current))
        self.store.close()  # the reload runs before the server forks new workers

    def follow(self) -> None:
        """Catch up with the store if it changed; a store that is down leaves reads as they are."""
        try:
            if self.listener is not None:
                self.listener.ensure_running()  # in this worker, after the fork
            self.feed.check()
        except Exception:
            log.exception("could not read the store's change feed; serving what is loaded")

    def middleware(self, app: WsgiApp) -> WsgiApp:
        """`app` behind a check of the change feed (outermost: before the response cache)."""

        feed = self.feed
        view = feed.bell.view if feed.bell is not None else None
        clock = time.monotonic

        def fresh(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            # inline, on every request: two comparisons unless something changed
            if (view is not None and view[:8] != feed.bell_bytes) or clock() >= feed.next_poll:
                self.follow()
            return app(environ, start_response)

        return fresh
