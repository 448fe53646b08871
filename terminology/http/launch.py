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
from terminology.http.app import signal_main_process
from terminology.http.reload import reload_content
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
    return {"worker_started": counter.started, "reload": lambda *_: reload_content(app)}
