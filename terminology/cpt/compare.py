"""Which codes of a CPT database differ from the database read before it, found by SQLite.

Ten annual releases are mostly the same rows. Reading every row into Python to compare it
costs a tenth of a second a release; SQLite compares them without making a Python object
for each, and it lets go of the GIL while it works, so `terminology.cpt.shared.ConceptPool`
runs these scans on threads, ahead of the reads, while Python builds the releases.

A code is unchanged when the database before has the same concept row (modifier flag) and,
in each of Designations and Properties, an equal row for every row of the code, and as many
rows. With no key (code, type or name, sequence) repeated in the database, its rows are
then exactly the rows before, so the concept read before is the concept of this database.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from terminology.cpt.release import SCHEMA, readonly_uri

Identity = tuple[int, ...]

ROW_TABLES = (("Designations", "type"), ("Properties", "name"))
_TABLES = ("Concepts", "Designations", "Properties")
# The CREATE TABLE statements of tx.fhir.org's databases (and ours): their primary keys
# mean no key is repeated.
_KEYED_SCHEMA = {statement.split()[2]: statement for statement in SCHEMA
                 if statement.split()[2] in _TABLES}

# Codes of the database scanned (main) that are new since the database before (previous),
# or whose modifier flag differs, or that have a row that database lacks for the code.
# COLLATE BINARY: a column declared with another collation must not make 'A' equal 'a'.
_UNMATCHED = (
    "SELECT c.code FROM main.Concepts c LEFT JOIN previous.Concepts p "
    "ON p.code = c.code COLLATE BINARY WHERE p.code IS NULL OR p.modifier IS NOT c.modifier",
    *(f"SELECT DISTINCT a.code FROM main.{table} a WHERE NOT EXISTS (SELECT 1 FROM "
      f"previous.{table} b WHERE b.code = a.code COLLATE BINARY AND b.{kind} = a.{kind} "
      "COLLATE BINARY AND b.sequence IS a.sequence AND b.value IS a.value COLLATE BINARY)"
      for table, kind in ROW_TABLES),
)


@dataclass(slots=True)
class Scan:
    """What SQLite found in one database before it is read."""

    path: Path
    identity: Identity  # the file as it was scanned
    counts: dict[str, dict[str, int]]  # table -> code -> how many rows
    declared: dict[str, str]  # table -> its CREATE TABLE statement
    keyed: bool  # no (code, type or name, sequence) twice in Designations or Properties
    before: Path | None = None  # the database compared with
    before_identity: Identity | None = None
    unmatched: set[str] | None = None  # codes with a concept or row the database before lacks


def identity(path: Path) -> Identity:
    """What tells a database file apart from another put in its place since."""
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def scan_database(path: Path, before: Path | None) -> Scan:
    """Scan the database at `path`, comparing it with the database `before` when given."""
    found = identity(path)
    conn = sqlite3.connect(readonly_uri(path), uri=True)
    try:
        declared = _declared(conn, "main")
        keyed = all(declared.get(t) == _KEYED_SCHEMA[t] for t in _TABLES) or not any(
            conn.execute(f"SELECT 1 FROM {table} GROUP BY code, {kind}, sequence "
                         "HAVING count(*) > 1 LIMIT 1").fetchall() for table, kind in ROW_TABLES)
        counts = {table: dict(conn.execute(
            f"SELECT code, count(*) FROM {table} GROUP BY code").fetchall()) for table, _ in ROW_TABLES}
        scan = Scan(path, found, counts, declared, keyed)
        if before is not None:
            scan.before, scan.before_identity = before, identity(before)
            conn.execute("ATTACH DATABASE ? AS previous", (readonly_uri(before),))
            try:
                scan.unmatched = {code for query in _UNMATCHED for (code,) in conn.execute(query)}
            finally:
                conn.execute("DETACH DATABASE previous")
        return scan
    finally:
        conn.close()


def changed_codes(scan: Scan, last: Scan | None) -> set[str] | None:
    """The codes of the database of `scan` that differ from the database read before it
    (scanned as `last`); None when they cannot be told apart that way (every code is then
    read afresh): no database before, a scan against another file or one since replaced,
    tables declared otherwise (other column types could read equal rows differently), or a
    repeated key."""
    if last is None or scan.unmatched is None or scan.before != last.path:
        return None
    if scan.before_identity != last.identity or identity(scan.path) != scan.identity:
        return None
    if scan.declared != last.declared or not (scan.keyed and last.keyed):
        return None
    changed = set(scan.unmatched)
    for table, now in scan.counts.items():
        before = last.counts[table]
        changed.update(code for code in now.keys() | before.keys() if now.get(code) != before.get(code))
    return changed


def _declared(conn: sqlite3.Connection, db: str) -> dict[str, str]:
    """The CREATE TABLE statements of a database's CPT tables."""
    return dict(conn.execute(f"SELECT name, sql FROM {db}.sqlite_master WHERE type = 'table' "
                             "AND name IN ('Concepts', 'Designations', 'Properties')").fetchall())


MEMO_ENTRIES = 256  # pairs of databases a ChangesMemo remembers


class ChangesMemo:
    """The codes found changed between consecutive databases, remembered on disk across
    restarts, by the identity (device, inode, size, modification and change times) of both
    files: a restart with the same databases scans none of them. A file written since has
    another change time, so it is scanned again; a memo that cannot be read or written only
    costs the scans."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._known: dict[str, list[str] | None] = {}
        self._seen: dict[str, list[str] | None] = {}
        if path is not None:
            try:
                known = orjson.loads(path.read_bytes())
                if isinstance(known, dict):
                    self._known = known
            except (OSError, orjson.JSONDecodeError):
                pass

    def changed(self, path: Path, before: Path | None) -> tuple[bool, set[str] | None]:
        """Whether the memo knows `path` against `before`, and the codes changed since
        (None: every code, as for a first release)."""
        try:
            key = _key(path, before)
        except OSError:
            return False, None
        if key not in self._known:
            return False, None
        found = self._known[key]
        if found is not None and not isinstance(found, list):
            return False, None
        return True, None if found is None else set(found)

    def knows(self, paths: Sequence[Path]) -> bool:
        """Whether the memo knows every database of `paths` against the one before it."""
        return all(self.changed(path, before)[0]
                   for before, path in zip([None, *paths], paths, strict=False))

    def remember(self, scan_identity: Identity, before: Identity | None,
                 changed: set[str] | None) -> None:
        """Note what a read found (kept for `save`)."""
        key = _key_of(scan_identity, before)
        self._seen[key] = None if changed is None else sorted(changed)

    def save(self) -> None:
        """Add the changes of this load to those known (the newest MEMO_ENTRIES kept: other
        servers on this host may load other databases), atomically."""
        if self.path is None or all(self._known.get(k, False) == v for k, v in self._seen.items()):
            return
        kept = {k: v for k, v in self._known.items() if k not in self._seen} | self._seen
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(orjson.dumps(dict(list(kept.items())[-MEMO_ENTRIES:])))
            os.replace(tmp, self.path)
        except OSError:
            pass


def _key(path: Path, before: Path | None) -> str:
    return _key_of(identity(path), identity(before) if before is not None else None)


def _key_of(now: Identity, before: Identity | None) -> str:
    return " ".join(":".join(map(str, ident)) if ident else "-" for ident in (now, before))
