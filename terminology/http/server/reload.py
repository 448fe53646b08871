"""Live reload: new content built and validated beside the old, then swapped in one step.

`reload_content(app)` loads every content folder, package and CPT database named by the
app's settings into a new registry. Only when that succeeded does it replace the app's
registry (one reference assignment) and drop the response cache; a failure logs why and
leaves the old content serving. Requests take the registry once when they start
(`g.registry`), so a request in flight finishes on the content it started with.

In production the launcher runs `reload_content` in the main process on SIGHUP, before the
WSGI server replaces its workers one by one (granian's and gunicorn's graceful reload);
each new worker forks with the new content and each old one finishes its requests first,
so every worker swaps atomically. `terminology reload` sends that SIGHUP (pid file) or
calls POST /admin/reload, which is off unless the setting admin_token is set.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask

from terminology.content import ContentError, content_files, cpt_database_files, load_content
from terminology.http import metrics
from terminology.http.licensed import licensed_texts
from terminology.registry import Registry
from terminology.settings import Settings

log = logging.getLogger("terminology.reload")
_LOCK = threading.Lock()  # one reload at a time


def content_version(settings: Settings) -> str:
    """A short digest of the content files' names, sizes and modification times."""
    digest = hashlib.sha256()
    try:
        paths: list[Path] = [*content_files(settings.content_dirs), *settings.packages,
                             *cpt_database_files(settings.cpt_databases)]
    except ContentError:
        return "unknown"
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        digest.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


def resource_counts(registry: Registry) -> dict[str, int]:
    """How many code systems, value sets and concept maps a registry serves."""
    return {"CodeSystem": len(registry.providers()),
            "ValueSet": len(registry.resources("ValueSet")),
            "ConceptMap": len(registry.resources("ConceptMap"))}


def record_loaded(app: Flask, seconds: float) -> None:
    """Note the app's current content in its metrics and log (start-up and each reload)."""
    settings: Settings = app.extensions["tx_settings"]
    previous = app.extensions.get("tx_content_version")
    version = content_version(settings)
    app.extensions["tx_content_version"] = version
    counts = resource_counts(app.extensions["tx_registry"])
    metrics.record_content(version, seconds, counts, previous)
    log.info("content loaded", extra={"fields": {
        "content_version": version, "load_seconds": round(seconds, 3), **counts}})


def reload_content(app: Flask) -> bool:
    """Build the content anew and swap it into `app`; False (old content kept) on failure."""
    settings: Settings = app.extensions["tx_settings"]
    with _LOCK:
        started = time.monotonic()
        try:
            registry = load_content(settings)
        except ContentError as e:
            metrics.record_failed_load()
            log.error("reload failed; still serving the previous content: %s", e,
                      extra={"fields": {"problem": str(e)}})
            return False
        except Exception as e:  # a reload must never take a serving process down
            metrics.record_failed_load()
            log.exception("reload failed; still serving the previous content: %s", e)
            return False
        authoring = app.extensions.get("tx_authoring")
        if authoring is not None:
            try:
                authoring.rebase(registry)  # authored resources join the new content
            except Exception as e:  # the store is down: keep serving what is loaded
                metrics.record_failed_load()
                log.exception("reload failed; the store could not be read: %s", e)
                return False
        licensed_texts(registry)  # as at start-up, before workers fork from here (app.py)
        app.extensions["tx_registry"] = registry  # the swap: requests after it see the new one
        app.extensions["tx_last_modified"] = time.time()  # answers may differ from now on
        cache = app.extensions.get("tx_response_cache")
        if cache is not None:
            cache.clear()
        # As at start-up: the content moves to the permanent generation so that workers
        # forked from here share its pages (server.py).
        gc.collect()
        gc.freeze()
        record_loaded(app, time.monotonic() - started)
        return True


def reload_in_background(app: Flask) -> None:
    """Start reload_content(app) in a thread (from a signal handler in a single process)."""
    threading.Thread(target=reload_content, args=(app,), name="tx-reload", daemon=True).start()


def install_sighup(app: Flask) -> Any:
    """In a process that serves by itself (`serve --dev`): SIGHUP reloads in place."""
    return signal.signal(signal.SIGHUP, lambda _sig, _frame: reload_in_background(app))


def signal_main_process(pid: int) -> Any:
    """A tx_reload for workers: SIGHUP to the server's main process `pid`."""
    return lambda: os.kill(pid, signal.SIGHUP)
