"""Following the store's change feed: every worker of every replica applies each write.

Each worker remembers the last change number it applied. On a request it looks at two cheap
signals: the *bell*, an 8-byte counter in a shared memory-mapped file that a writer rings
after it commits (so every worker on the host sees a write before the writer's HTTP answer
leaves), and a clock: at most every `poll_ms` it asks the database for the last change
number. Replicas on other hosts share only PostgreSQL: its LISTEN/NOTIFY (notify.py) makes
the feed due the moment another replica commits, and the poll catches a missed notification.
The first worker of a host to find such a write rings the bell for the others, so once one
worker serves it, every worker does. When a signal moved, the worker reads the changes after
its number and applies the current version of each changed resource, and only those.

The bell belongs to the store, not to a folder: its file is named by the store's identity
(`bell_path`: a UUID the store's first migration writes into the database, and for SQLite the
file's real path), so two instances with different stores on one host never share a bell,
and instances that share a store and a data directory share it. Ringing adds one to the
counter (under a file lock) instead of writing the store's change number: any ring changes
the bytes every reader compares, so even two stores that did share a bell (a copied
database) could only wake each other for nothing, never hide a write.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from terminology.store.store import Store, StoredVersion

_FORMAT = "<Q"


def bell_path(data_dir: Path, store: Store) -> Path:
    """The bell of `store` under `data_dir`: named by the store's identity, not the folder."""
    key = hashlib.sha256(f"{store.identity()}\0{store.location()}".encode()).hexdigest()[:32]
    return data_dir / "bells" / f"store-{key}.bell"


class Bell:
    """A counter shared by the processes of one host through a memory-mapped file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as f:
            if f.tell() < 8:
                f.write(b"\0" * (8 - f.tell()))
        self.path = path
        self._file = path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), 8)  # MAP_SHARED: forked workers share it

    def read(self) -> int:
        """The counter now."""
        return int(struct.unpack_from(_FORMAT, self._map, 0)[0])

    @property
    def view(self) -> mmap.mmap:
        """The shared 8 bytes themselves (a request compares them to what it last saw)."""
        return self._map

    def ring(self) -> tuple[int, int]:
        """Tell every process on the host that a change is committed; (before, after)."""
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)  # rings are rare: one per write
        try:
            before = self.read()
            after = (before + 1) & 0xFFFF_FFFF_FFFF_FFFF
            struct.pack_into(_FORMAT, self._map, 0, after)
        finally:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        return before, after


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

    def catch_up(self, rung: int | None = None, announce: bool = True) -> None:
        """Apply every change committed after the last one applied (one thread at a time).

        announce: ring the bell when this found changes the bell had not announced (another
        replica's writes, found by the poll or a notification).
        """
        with self._lock:
            if rung is None:
                rung = self.bell.read() if self.bell else 0
            self.next_poll = time.monotonic() + self.poll
            announced = rung != self._bell_seen
            if self.store.change_number() > self.seen:
                last, changed = self.store.changes_since(self.seen)
                if changed and announce and not announced and self.bell is not None:
                    # rung before this worker serves it: once one worker of this host serves
                    # it, every request that starts later on any of them does too
                    before, after = self.bell.ring()
                    rung = after if before == rung else rung
                if changed:
                    self.apply(changed)
                self.seen = max(self.seen, last)
            self._bell_seen = rung
            self.bell_bytes = struct.pack(_FORMAT, rung)

    def published(self, seq: int) -> None:
        """After this worker committed change `seq`: apply it here, then ring the bell."""
        self.catch_up(announce=False)
        if self.bell is None:
            return
        before, after = self.bell.ring()
        with self._lock:
            if before == self._bell_seen and self.seen >= seq:
                # nobody else rang since this worker caught up: it is current
                self._bell_seen = after
                self.bell_bytes = struct.pack(_FORMAT, after)
