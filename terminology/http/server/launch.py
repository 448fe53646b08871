"""What the production launcher adds around the WSGI server: worker counts, reload, pid file.

server.py runs granian or gunicorn; this module gives it the pieces that are the same for
both: the hook that counts each worker as it starts (and whether it replaces another),
the reload hook the main process runs on SIGHUP before the workers are replaced, the
separate metrics port and the pid file `terminology reload` signals.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
from collections.abc import Callable
from typing import Any

from flask import Flask

from terminology.http import metrics
from terminology.http.server.reload import reload_content, signal_main_process
from terminology.settings import Settings


class WorkerCounter:
    """Counts worker starts across forks; starts past the first `workers` are restarts."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._started = multiprocessing.get_context("fork").Value("i", 0)

    def started(self) -> None:
        """Call in a new worker process, once."""
        with self._started.get_lock():
            self._started.value += 1
            n = self._started.value
        metrics.record_worker_start(restart=n > self.workers)


class Retirement:
    """Tells a worker that a reload has begun and it is about to be replaced.

    The main process bumps a shared generation on SIGHUP; a worker born before the bump
    then answers with `Connection: close`, so clients open their next request on a new
    connection (to a new worker) instead of reusing one the old worker is about to close:
    closing an idle keep-alive connection races with a client sending on it, which the
    client sees as a failed request.
    """

    def __init__(self) -> None:
        self._generation = multiprocessing.get_context("fork").RawValue("i", 0)
        self.born = 0

    def bump(self) -> None:
        """In the main process: every worker alive now is to be replaced."""
        self._generation.value += 1

    def worker_born(self) -> None:
        """In a new worker: it belongs to the current generation."""
        self.born = self._generation.value

    def retired(self) -> bool:
        """Whether this worker is to be replaced (a reload began after it started)."""
        return bool(self._generation.value != self.born)

    def wrap(self, wsgi_app: Any) -> Any:
        """`wsgi_app` answering `Connection: close` once this worker is retired."""

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            if not self.retired():
                return wsgi_app(environ, start_response)

            def closing(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
                return start_response(status, [*headers, ("Connection", "close")], *exc)

            return wsgi_app(environ, closing)

        return app


def prepare_production(app: Flask, settings: Settings) -> dict[str, Callable[..., Any]]:
    """Wire reload, metrics port and pid file for a served `app`; the hooks server.py runs.

    Returns {"worker_started": call in each new worker, "reload": call in the main process
    on SIGHUP before the workers are replaced}.
    """
    main_pid = os.getpid()
    app.extensions["tx_reload"] = signal_main_process(main_pid)
    if settings.metrics and settings.metrics_port:
        metrics.serve_separately(settings.host, settings.metrics_port)
    if settings.pid_file is not None:
        pid_file = settings.pid_file
        pid_file.write_text(f"{main_pid}\n")

        def _remove_pid_file() -> None:
            if os.getpid() == main_pid:
                pid_file.unlink(missing_ok=True)

        atexit.register(_remove_pid_file)
    counter = WorkerCounter(settings.workers)
    retirement = Retirement()
    app.wsgi_app = retirement.wrap(app.wsgi_app)  # type: ignore[method-assign]

    def worker_started() -> None:
        retirement.worker_born()
        counter.started()

    def reload(*_: Any) -> None:
        retirement.bump()
        reload_content(app)

    return {"worker_started": worker_started, "reload": reload}
