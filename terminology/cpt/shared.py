"""Many CPT releases in little memory: unchanged concepts are held once for all releases.

The AMA changes about 1 % of CPT a year, so ten annual releases are mostly the same codes
with the same descriptors. A `ConceptPool` lives while the server loads its CPT databases:
each release is read through it (`read`), and a code whose row set (modifier flag,
designations, properties) equals the one the pool already holds for that code gets the same
`CptConcept` — and then, through `concept`, the same provider `Concept`, with its
designations, properties and strings. A release then costs its own dicts and indexes (code
-> concept, code -> position, filter bitmaps), not a copy of the descriptors.

The pool is dropped once loading is done; what the releases share stays shared because
they hold the same objects.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterable
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

from terminology.cpt.release import CptConcept, CptDataError, CptRelease, empty_release
from terminology.providers.base import Concept


class ConceptPool:
    """The concepts of the releases loaded so far, by code (the newest read of each)."""

    def __init__(self) -> None:
        # code -> [CptConcept, its provider Concept once built]
        self._entries: dict[str, list[Any]] = {}
        self.shared: dict[Any, Any] = {}  # Props, designation uses, positions: every release
        self.reused = 0  # concepts a release took from an earlier one

    def read(self, conn: sqlite3.Connection, path: Path) -> CptRelease:
        """The release of an open database, sharing every concept that is unchanged since
        the releases read before (use as `read_cpt_db(path, pool.read)`).

        The rows are first compared, code by code, with the concepts held, without building
        anything that lives on; only then are the changed codes (about 1 % a year) read into
        new concepts. Long-lived objects made among short-lived ones would pin the heap's
        arenas and cost each release megabytes it does not use."""
        release = empty_release(conn, path)
        order = conn.execute("SELECT code, modifier FROM Concepts ORDER BY rowid").fetchall()
        modifiers: dict[str, bool] = {code: bool(m) for code, m in order}
        entries = self._entries
        changed = {code for code, m in modifiers.items()
                   if code not in entries or entries[code][0].modifier != m}
        for table, query, rows_of in _TABLES:
            _compare(conn.execute(query), modifiers, changed, entries, rows_of, table, path)
        fresh = {code: CptConcept(code=code, modifier=modifiers[code], display="")
                 for code in modifiers if code in changed}
        _fill(conn, fresh, whole=len(fresh) > len(modifiers) // 10)
        for code in modifiers:
            if code in fresh:
                entry = entries[code] = [fresh[code], None]
            else:
                entry = entries[code]
                self.reused += 1
            release.concepts[entry[0].code] = entry[0]
        return release

    def concept(self, cpt: CptConcept, make: Callable[[], Concept]) -> Concept:
        """The provider Concept of `cpt`: the one built for an earlier release when `cpt` is
        shared with it, else `make()` (kept for the releases read after)."""
        entry = self._entries.get(cpt.code)
        if entry is None or entry[0] is not cpt:
            return make()
        if entry[1] is None:
            entry[1] = make()
        found: Concept = entry[1]
        return found


def _designation_rows(c: CptConcept) -> list[tuple[str, str]]:
    """The (type, value) rows a concept was read from, as our databases order them."""
    return [("display", c.display), *c.designations]


def _property_rows(c: CptConcept) -> list[tuple[str, str]]:
    """The (name, value) rows a concept was read from."""
    return [(name, v) for name, values in c.properties.items() for v in values]


_TABLES = (
    ("Designations", "SELECT code, type, value FROM Designations ORDER BY code, sequence",
     _designation_rows),
    ("Properties", "SELECT code, name, value FROM Properties ORDER BY code, sequence",
     _property_rows),
)


def _compare(rows: Iterable[tuple[str, str, str]], known: dict[str, bool], changed: set[str],
             entries: dict[str, list[Any]], rows_of: Callable[[CptConcept], list[Any]],
             table: str, path: Path) -> None:
    """Add to `changed` every code whose rows differ from its held concept's (a concept
    stored in another order only loses its sharing: it is read afresh)."""
    seen: set[str] = set()
    for code, group in groupby(rows, key=itemgetter(0)):
        if code not in known:
            raise CptDataError(f"{path}: {table} row for code {code!r}, which is not in Concepts")
        seen.add(code)
        if code not in changed and [(k, v) for _, k, v in group] != rows_of(entries[code][0]):
            changed.add(code)
    for code in known:
        if code not in seen and code not in changed and rows_of(entries[code][0]):
            changed.add(code)


def _fill(conn: sqlite3.Connection, concepts: dict[str, CptConcept], whole: bool) -> None:
    """Displays, designations and properties of `concepts`, in sequence order: scanning the
    tables (`whole`, for a first release) or code by code. Names and property values are
    interned: the same few strings recur in every concept."""
    designations: Iterable[tuple[str, str, str]]
    properties: Iterable[tuple[str, str, str]]
    if whole:
        designations = conn.execute(
            "SELECT code, type, value FROM Designations ORDER BY code, sequence")
        properties = conn.execute("SELECT code, name, value FROM Properties ORDER BY code, sequence")
    else:
        designations = (row for code in concepts for row in conn.execute(
            "SELECT code, type, value FROM Designations WHERE code = ? ORDER BY sequence", (code,)))
        properties = (row for code in concepts for row in conn.execute(
            "SELECT code, name, value FROM Properties WHERE code = ? ORDER BY sequence", (code,)))
    seen_display: set[str] = set()
    for code, kind, value in designations:
        concept = concepts.get(code)  # every row's code was checked by _compare
        if concept is None:
            continue
        if kind != "display":
            concept.designations.append((sys.intern(kind), value))
        elif code not in seen_display:  # the first display row is the display
            concept.display = value
            seen_display.add(code)
    for code, name, value in properties:
        if code in concepts:
            concepts[code].properties.setdefault(sys.intern(name), []).append(sys.intern(value))
