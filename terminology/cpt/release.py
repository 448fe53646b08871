"""The in-memory CPT release model and the tx.fhir.org SQLite format it is stored in.

A `CptRelease` is what every CPT source becomes: the AMA distribution files (see
`terminology.cpt.ama.importer`), a tx.fhir.org-format database, or a FHIR CodeSystem resource.
The database schema is the one tx.fhir.org loads its licensed CPT from:

    Information  (name PK, value)                  ('version', V)
    Concepts     (code PK, modifier int)           modifier = 1 for modifier codes
    Designations (code, type, sequence, value)     type 'display' is the long descriptor;
                 PK (code, type, sequence)         upper, med, short, consumer, clinician
    Properties   (code, name, sequence, value)     kind (several), telemedicine, orthopox,
                 PK (code, name, sequence)         and our imaging facets modality,
                                                   body-region, contrast

Sequences run per code across all types (display 0, then 1, 2, ...) and likewise across all
property names, as in tx.fhir.org's databases; readers only rely on their order.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terminology.cpt import CPT_URL

DB_FILE_MODE = 0o644  # a new database is readable by the server's user, whoever that is

TABLES = ("Information", "Concepts", "Designations", "Properties")

# The CREATE TABLE shapes of tx.fhir.org's cpt databases (testcases/cpt/cpt-fragment.db).
SCHEMA = (
    "CREATE TABLE Information (\n`name` varchar(64) NOT NULL,\n"
    "`value` varchar(64) DEFAULT NULL,\nPRIMARY KEY (`name`))",
    "CREATE TABLE Concepts (\n`code` varchar(15) NOT NULL,\n"
    "`modifier` int DEFAULT NULL,\nPRIMARY KEY (`code`))",
    "CREATE TABLE Designations (\n`code` varchar(15) NOT NULL,\n`type` varchar(15) NOT NULL,\n"
    "`sequence` int NOT NULL,\n`value` text NOT NULL,\nPRIMARY KEY (`code`, `type`, `sequence`))",
    "CREATE TABLE Properties (\n`code` varchar(15) NOT NULL,\n`name` varchar(15) NOT NULL,\n"
    "`sequence` int NOT NULL,\n`value` varchar(15) NOT NULL,\n"
    "PRIMARY KEY (`code`, `name`, `sequence`))",
)

# CodeSystem properties that are not stored: `modifier` has its own column and `modified`
# is false for every code in a distribution (only expressions like 72126:26 are modified).
_NOT_STORED_PROPERTIES = frozenset({"modifier", "modified"})


class CptDataError(Exception):
    """A CPT source (database file or CodeSystem resource) that cannot be loaded."""


@dataclass(slots=True)
class CptConcept:
    """One CPT code or modifier with its descriptors and properties."""

    code: str
    modifier: bool
    display: str  # the long descriptor (designation type 'display')
    # (type, value) in sequence order: upper, med, short, consumer, clinician (several);
    # the display is not repeated here.
    designations: list[tuple[str, str]] = field(default_factory=list)
    # name -> values in sequence order: kind (several), telemedicine, orthopox, modality,
    # body-region, contrast.
    properties: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class CptRelease:
    """One CPT version: its concepts by code, in stored order."""

    version: str
    concepts: dict[str, CptConcept] = field(default_factory=dict)


# --- reading -----------------------------------------------------------------------------


def read_cpt_db(path: str | os.PathLike[str],
                reader: Callable[[sqlite3.Connection, Path], CptRelease] | None = None) -> CptRelease:
    """Load a tx.fhir.org-format CPT database, opened read-only (with `reader`: read by it,
    e.g. terminology.cpt.shared, which shares unchanged concepts between releases)."""
    p = Path(path)
    if not p.is_file():
        raise CptDataError(f"{p}: no such CPT database file")
    try:
        conn = sqlite3.connect(readonly_uri(p), uri=True)
    except sqlite3.Error as e:
        raise CptDataError(f"{p}: cannot open as SQLite: {e}") from e
    try:
        return (reader or _read_release)(conn, p)
    except sqlite3.DatabaseError as e:
        raise CptDataError(f"{p}: not a readable CPT database: {e}") from e
    finally:
        conn.close()


def readonly_uri(path: Path) -> str:
    """The SQLite URI that opens (or ATTACHes) the database at `path` read-only."""
    return "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"


def _read_release(conn: sqlite3.Connection, path: Path) -> CptRelease:
    """The release held by an open database connection."""
    release = empty_release(conn, path)
    for code, modifier in conn.execute("SELECT code, modifier FROM Concepts ORDER BY rowid"):
        release.concepts[code] = CptConcept(code=code, modifier=bool(modifier), display="")
    _read_designations(conn, release, path)
    _read_properties(conn, release, path)
    return release


def empty_release(conn: sqlite3.Connection, path: Path) -> CptRelease:
    """The release of an open database, its concepts not read yet: checks the tables and
    reads the version."""
    present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    missing = [t for t in TABLES if t not in present]
    if missing:
        raise CptDataError(f"{path}: not a CPT database: missing table(s) {', '.join(missing)}")
    row = conn.execute("SELECT value FROM Information WHERE name = 'version'").fetchone()
    if row is None or not row[0]:
        raise CptDataError(f"{path}: no ('version', ...) row in table Information")
    return CptRelease(version=str(row[0]))


def _concept(release: CptRelease, code: str, table: str, path: Path) -> CptConcept:
    """The concept a Designations/Properties row belongs to; an error when there is none."""
    concept = release.concepts.get(code)
    if concept is None:
        raise CptDataError(f"{path}: {table} row for code {code!r}, which is not in Concepts")
    return concept


def _read_designations(conn: sqlite3.Connection, release: CptRelease, path: Path) -> None:
    """Fill in displays and designations, in sequence order."""
    seen_display: set[str] = set()
    rows = conn.execute("SELECT code, type, value FROM Designations ORDER BY code, sequence")
    for code, dtype, value in rows:
        concept = _concept(release, code, "Designations", path)
        if dtype == "display":
            # The first display row is the display; tx.fhir.org databases have exactly one.
            if code not in seen_display:
                concept.display = value
                seen_display.add(code)
        else:
            concept.designations.append((dtype, value))


def _read_properties(conn: sqlite3.Connection, release: CptRelease, path: Path) -> None:
    """Fill in property values, in sequence order."""
    rows = conn.execute("SELECT code, name, value FROM Properties ORDER BY code, sequence")
    for code, name, value in rows:
        concept = _concept(release, code, "Properties", path)
        concept.properties.setdefault(name, []).append(value)


# --- writing -----------------------------------------------------------------------------


def write_cpt_db(release: CptRelease, path: str | os.PathLike[str]) -> None:
    """Write the release as a tx.fhir.org-format database, replacing `path` atomically.

    The database is built in a temporary file in the same directory and renamed over `path`
    only once complete and flushed to disk, so `path` is never left half-written and an
    existing database survives any failure.
    """
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # mkstemp makes the file private (0600); a replaced database keeps its mode.
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else DB_FILE_MODE)
        _write_tables(release, tmp)
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def _write_tables(release: CptRelease, path: Path) -> None:
    """Create the schema in the (empty) file at `path` and insert every row."""
    conn = sqlite3.connect(path)
    try:
        # Durability comes from the fsync + rename in write_cpt_db, so skip sqlite's journal.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        for statement in SCHEMA:
            conn.execute(statement)
        conn.execute("INSERT INTO Information (name, value) VALUES ('version', ?)",
                     (release.version,))
        conn.executemany("INSERT INTO Concepts (code, modifier) VALUES (?, ?)",
                         ((c.code, int(c.modifier)) for c in release.concepts.values()))
        conn.executemany("INSERT INTO Designations (code, type, sequence, value) "
                         "VALUES (?, ?, ?, ?)", _designation_rows(release.concepts.values()))
        conn.executemany("INSERT INTO Properties (code, name, sequence, value) "
                         "VALUES (?, ?, ?, ?)", _property_rows(release.concepts.values()))
        conn.commit()
    finally:
        conn.close()


def _designation_rows(concepts: Iterable[CptConcept]) -> Iterator[tuple[str, str, int, str]]:
    """Designations rows: the display at sequence 0, then the others in order."""
    for c in concepts:
        yield c.code, "display", 0, c.display
        for seq, (dtype, value) in enumerate(c.designations, start=1):
            yield c.code, dtype, seq, value


def _property_rows(concepts: Iterable[CptConcept]) -> Iterator[tuple[str, str, int, str]]:
    """Properties rows, numbered per code across all property names."""
    for c in concepts:
        seq = 0
        for name, values in c.properties.items():
            for value in values:
                yield c.code, name, seq, value
                seq += 1


def _fsync(path: Path) -> None:
    """Flush a file's contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry (the rename) to disk where the platform allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- from a FHIR CodeSystem --------------------------------------------------------------


def release_from_codesystem(resource: dict[str, Any]) -> CptRelease:
    """Build a release from a FHIR R4 CPT CodeSystem resource (JSON as a dict)."""
    if resource.get("resourceType", "CodeSystem") != "CodeSystem":
        raise CptDataError(f"not a CodeSystem: resourceType {resource.get('resourceType')!r}")
    if resource.get("url") != CPT_URL:
        raise CptDataError(f"CodeSystem url {resource.get('url')!r} is not {CPT_URL}")
    version = resource.get("version")
    if not version:
        raise CptDataError("CPT CodeSystem has no version")
    release = CptRelease(version=str(version))
    for item in _flatten(resource.get("concept", [])):
        concept = _concept_from_fhir(item)
        if concept.code in release.concepts:
            raise CptDataError(f"CPT CodeSystem: duplicate code {concept.code!r}")
        release.concepts[concept.code] = concept
    return release


def _flatten(concepts: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every concept, depth first (CPT is flat, but nested concepts are legal FHIR)."""
    for item in concepts:
        yield item
        yield from _flatten(item.get("concept", []))


def _concept_from_fhir(item: dict[str, Any]) -> CptConcept:
    """One CodeSystem.concept as a CptConcept."""
    code = item.get("code")
    if not code:
        raise CptDataError("CPT CodeSystem: a concept has no code")
    concept = CptConcept(code=code, modifier=False, display=item.get("display") or "")
    for d in item.get("designation", []):
        dtype = (d.get("use") or {}).get("code")
        if not dtype:
            raise CptDataError(f"CPT CodeSystem: code {code}: a designation has no use.code")
        if dtype != "display":  # the display is held once, in `display`
            concept.designations.append((dtype, d.get("value", "")))
    for prop in item.get("property", []):
        name = prop.get("code")
        value = _property_value(code, prop)
        if name == "modifier":
            concept.modifier = value == "true"
        elif name not in _NOT_STORED_PROPERTIES:
            concept.properties.setdefault(name, []).append(value)
    return concept


def _property_value(code: str, prop: dict[str, Any]) -> str:
    """A property's value[x] as the string stored in the database ('true'/'false' for booleans)."""
    for key, value in prop.items():
        if key.startswith("value"):
            if isinstance(value, bool):
                return "true" if value else "false"
            return str(value)
    raise CptDataError(f"CPT CodeSystem: code {code}: property {prop.get('code')!r} has no value")
