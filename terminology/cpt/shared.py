"""Many CPT releases in little memory: unchanged concepts are held once for all releases.

The AMA changes about 1 % of CPT a year, so ten annual releases are mostly the same codes
with the same descriptors. A `ConceptPool` lives while the server loads its CPT databases:
each release is read through it (`read`), and a code whose rows (modifier flag,
designations, properties) equal those of the database read before gets the same
`CptConcept` — and then, through `concepts`, the same provider `Concept`, with its
designations, properties and strings. A release then costs its own dicts and indexes (code
-> position, filter bitmaps), not a copy of the descriptors.

Which codes changed, SQLite finds (terminology.cpt.compare), on two threads ahead of the
reads, and a `ChangesMemo` remembers it across restarts: a restart with the same databases
compares nothing, and each release after the first costs only its changed codes.

The pool is dropped once loading is done; what the releases share stays shared because
they hold the same objects.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from terminology.cpt.compare import ChangesMemo, Scan, changed_codes, identity, scan_database
from terminology.cpt.release import CptConcept, CptDataError, CptRelease, empty_release
from terminology.providers.base import Concept


class ConceptPool:
    """The concepts of the releases loaded so far, by code (the newest read of each).

    Given the databases it will read, in order (`ahead`), it scans them on two threads
    while the releases are read and built (terminology.cpt.compare); use it as a context
    manager, so that the threads are gone before the server forks its workers."""

    def __init__(self, ahead: Sequence[Path] = (), memo: ChangesMemo | None = None) -> None:
        # code -> [CptConcept, its provider Concept once built]
        self._entries: dict[str, list[Any]] = {}
        self.shared: dict[Any, Any] = {}  # Props, designation uses, positions: every release
        self.reused = 0  # concepts a release took from an earlier one
        self._last: Scan | None = None  # the database read last
        self._scans: dict[Path, Future[Scan]] = {}
        self._threads: ThreadPoolExecutor | None = None
        self._memo = memo
        self._remembered = memo is not None and len(ahead) > 0 and memo.knows(ahead)
        if len(ahead) > 1 and not self._remembered:
            self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cpt-scan")
            for before, path in zip([None, *ahead], ahead, strict=False):
                self._scans[path] = self._threads.submit(scan_database, path, before)

    def __enter__(self) -> ConceptPool:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close()
        if exc_type is None and self._memo is not None:
            self._memo.save()

    def close(self) -> None:
        """Stop the scans not taken (after a read that failed) and end the threads."""
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
            self._threads = None

    def read(self, conn: sqlite3.Connection, path: Path) -> CptRelease:
        """The release of an open database, sharing every concept that is unchanged since
        the database read before (use as `read_cpt_db(path, pool.read)`).

        Only the codes that SQLite found changed (about 1 % a year) come into Python, to be
        read into new concepts; every other code takes the concept held for it. Nothing
        long-lived is built among short-lived objects (they would pin the heap's arenas)."""
        release = empty_release(conn, path)
        last, self._last = self._last, None  # a read that fails leaves nothing to compare with
        order = conn.execute("SELECT code, modifier FROM Concepts ORDER BY rowid").fetchall()
        changed, scan = self._changes(path, last, {code for code, _ in order})
        entries = self._entries
        fresh = {code: CptConcept(code=code, modifier=bool(m), display="")
                 for code, m in order if changed is None or code in changed}
        _fill(conn, fresh, whole=len(fresh) > len(order) // 10)
        for code, _ in order:
            if code in fresh:
                entry = entries[code] = [fresh[code], None]
            else:
                entry = entries[code]
                self.reused += 1
            release.concepts[code] = entry[0]
        self._last = scan
        if self._memo is not None:
            self._memo.remember(scan.identity, last.identity if last else None, changed)
        return release

    def _changes(self, path: Path, last: Scan | None,
                 codes: set[str]) -> tuple[set[str] | None, Scan]:
        """The codes of `path` to read afresh (None: all), and its scan: from the memo
        when it knows every database loaded, else from SQLite, which also checks that every
        row belongs to a code of Concepts (a file the memo knows passed that check)."""
        if self._remembered and self._memo is not None:
            known, changed = self._memo.changed(path, last.path if last is not None else None)
            if known:  # a scan with no counts, so a scan after it reads afresh
                return changed, Scan(path, identity(path), {}, {}, keyed=True)
        scan = self._scan(path, last)
        for table, found in scan.counts.items():
            if stray := found.keys() - codes:
                raise CptDataError(f"{path}: {table} row for code {min(stray)!r}, "
                                   "which is not in Concepts")
        return changed_codes(scan, last), scan

    def _scan(self, path: Path, last: Scan | None) -> Scan:
        """The scan of `path` made ahead, else (or when it failed, or the file has been
        replaced since) one made now, against the database read last."""
        ahead = self._scans.pop(path, None)
        if ahead is not None:
            try:
                found = ahead.result()
                if identity(path) == found.identity:
                    return found
            except (sqlite3.Error, OSError):
                pass  # scanned again here, where the error is reported as the file's
        return scan_database(path, last.path if last is not None else None)

    def concepts(self, cpts: Iterable[CptConcept],
                 make: Callable[[CptConcept], Concept]) -> list[Concept]:
        """The provider Concepts of `cpts`: for one shared with an earlier release, the
        Concept built for that release, else `make(cpt)` (kept for the releases read after)."""
        entries = self._entries
        out: list[Concept] = []
        for cpt in cpts:
            entry = entries.get(cpt.code)
            if entry is None or entry[0] is not cpt:
                out.append(make(cpt))
                continue
            if entry[1] is None:
                entry[1] = make(cpt)
            out.append(entry[1])
        return out


def _fill(conn: sqlite3.Connection, concepts: dict[str, CptConcept], whole: bool) -> None:
    """Displays, designations and properties of `concepts`, in sequence order: scanning the
    tables (`whole`, for a first release) or code by code. Names and property values are
    interned: the same few strings recur in every concept."""
    designations: Iterable[tuple[str, str, str, Any]]
    properties: Iterable[tuple[str, str, str, Any]]
    if whole:
        designations = conn.execute(
            "SELECT code, type, value, sequence FROM Designations ORDER BY code, sequence")
        properties = conn.execute(
            "SELECT code, name, value, sequence FROM Properties ORDER BY code, sequence")
    else:
        designations = (row for code in concepts for row in conn.execute(
            "SELECT code, type, value, sequence FROM Designations WHERE code = ? ORDER BY sequence",
            (code,)))
        properties = (row for code in concepts for row in conn.execute(
            "SELECT code, name, value, sequence FROM Properties WHERE code = ? ORDER BY sequence",
            (code,)))
    seen_display: set[str] = set()
    for code, kind, value, _ in designations:
        concept = concepts.get(code)  # every row's code was checked by read
        if concept is None:
            continue
        if kind != "display":
            concept.designations.append((sys.intern(kind), value))
        elif code not in seen_display:  # the first display row is the display
            concept.display = value
            seen_display.add(code)
    for code, name, value, _ in properties:
        if code in concepts:
            concepts[code].properties.setdefault(sys.intern(name), []).append(sys.intern(value))

