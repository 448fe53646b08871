"""PostgreSQL LISTEN/NOTIFY: a replica hears another's write the moment it commits.

A write's transaction sends NOTIFY on CHANNEL (delivered only if it commits). Each worker
of each replica keeps one listening connection in a daemon thread, started in the worker
itself (threads do not survive the fork), and on a notification marks its change feed due;
the next request catches up. Polling (feed.py) stays underneath: a notification lost while
the listener reconnects delays a write by at most one poll interval, never loses it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

CHANNEL = "tx_changes"
log = logging.getLogger("terminology.store")


class Listener:
    """One worker's LISTEN connection; `wake` is called on every notification."""

    def __init__(self, conninfo: str, wake: Callable[[], None]) -> None:
        self.conninfo = conninfo
        self.wake = wake
        self._pid = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        """Start the listening thread in this process if it is not running."""
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="tx-store-listen", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        import psycopg

        while True:
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.wake()  # anything committed while not listening
                    for _ in conn.notifies():
                        self.wake()
            except Exception as e:  # the database restarts: listen again shortly
                log.warning("store listener reconnecting: %s", type(e).__name__)
                time.sleep(1.0)
