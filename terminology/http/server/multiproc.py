"""The folder where every worker process writes its Prometheus counts (multiprocess mode).

It must be named in PROMETHEUS_MULTIPROC_DIR before prometheus_client is first imported
(the client picks its value store at import) and before the workers fork, so this module
imports nothing of it. An operator's own PROMETHEUS_MULTIPROC_DIR is used and emptied of
the last run's files; otherwise a fresh temporary folder is made and removed at exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_dir() -> Path:
    """Set PROMETHEUS_MULTIPROC_DIR to an empty folder for this server run; return it."""
    if "prometheus_client" in sys.modules and ENV not in os.environ:
        raise RuntimeError("prometheus_client was imported before the metrics folder was set")
    given = os.environ.get(ENV)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):  # counts of a previous run would be added in
            stale.unlink(missing_ok=True)
        return folder
    folder = Path(tempfile.mkdtemp(prefix="tx-metrics-"))
    os.environ[ENV] = str(folder)
    owner = os.getpid()

    def _remove() -> None:
        if os.getpid() == owner:  # never from a forked worker
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(_remove)
    return folder
