"""Following the store's change feed: every worker of every replica applies each write.

Each worker remembers the last change number it applied. On a request it looks at two cheap
signals: the *bell*, an 8-byte counter in a shared memory-mapped file under the data
directory that a writer rings after it commits (so every worker on the host sees a write
before the writer's HTTP answer leaves), and a clock: at most every `poll_ms` it asks the
database for the last change number. Replicas on other hosts share only PostgreSQL: its
LISTEN/NOTIFY (notify.py) makes the feed due the moment another replica commits, and the
poll catches a missed notification. The first worker of a host to find such a write rings
the bell for the others, so once one worker serves it, every worker does. When a signal
moved, the worker reads the changes after its number and applies the current version of
each changed resource, and only those.
"""

from __future__ import annotations

import mmap
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from terminology.store.store import Store, StoredVersion

_FORMAT = "<Q"


class Bell:
    """A change number shared by the processes of one host through a memory-mapped file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as f:
            if f.tell() < 8:
                f.write(b"\0" * (8 - f.tell()))
        self._file = path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), 8)  # MAP_SHARED: forked workers share it

    def read(self) -> int:
        """The last number rung (any writer on this host)."""
        return int(struct.unpack_from(_FORMAT, self._map, 0)[0])

    @property
    def view(self) -> mmap.mmap:
        """The shared 8 bytes themselves (a request compares them to what it last saw)."""
        return self._map

    def ring(self, seq: int) -> None:
        """Tell every process on the host that change `seq` is committed."""
        struct.pack_into(_FORMAT, self._map, 0, seq)


class ChangeFeed:
    """One worker's follower of the store: `check()` per request, `apply` per changed batch."""

    def __init__(self, store: Store, seen: int, apply: Callable[[list[StoredVersion]], None],
                 bell: Bell | None, poll_ms: int) -> None:
        self.store = store
        self.seen = seen
        self.apply = apply
        self.bell = bell
        self.poll = poll_ms / 1000.0
        self._bell_seen = bell.read() if bell else 0
        # What the per-request check compares: the bell's bytes when last caught up, and
        # when the next poll is due (public so the WSGI wrapper can test them inline).
        self.bell_bytes = struct.pack(_FORMAT, self._bell_seen)
        self.next_poll = time.monotonic() + self.poll
        self._lock = threading.Lock()

    def wake(self) -> None:
        """Make the next request catch up (a notification arrived; any thread may call it)."""
        self.next_poll = 0.0

    def due(self) -> bool:
        """Whether the bell rang or a poll is due since the last catch-up."""
        rung = self.bell.view[:8] if self.bell else self.bell_bytes
        return rung != self.bell_bytes or time.monotonic() >= self.next_poll

    def check(self) -> None:
        """Catch up when the bell rang or a poll is due; nearly free otherwise."""
        if self.due():
            self.catch_up()

    def catch_up(self, rung: int | None = None) -> None:
        """Apply every change committed after the last one applied (one thread at a time)."""
        with self._lock:
            if rung is None:
                rung = self.bell.read() if self.bell else 0
            self.next_poll = time.monotonic() + self.poll
            if self.store.change_number() <= self.seen:
                self._bell_seen = rung
                self.bell_bytes = struct.pack(_FORMAT, rung)
                return
            last, changed = self.store.changes_since(self.seen)
            if changed:
                self.apply(changed)
            self.seen = max(self.seen, last)
            if self.bell is not None and last > rung:
                # a write of another replica, found by polling: ring it for this host's
                # other workers, so that once one worker serves it, all of them do
                self.bell.ring(last)
                rung = last
            self._bell_seen = rung
            self.bell_bytes = struct.pack(_FORMAT, rung)

    def published(self, seq: int) -> None:
        """After this worker committed change `seq`: apply it here, then ring the bell."""
        self.catch_up()
        if self.bell is not None:
            self.bell.ring(max(seq, self.bell.read()))
