"""The CPT release model and its tx.fhir.org SQLite format (terminology.cpt.release)."""

from __future__ import annotations

import json
import sqlite3
import stat
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from terminology.cpt.release import (
    CPT_URL,
    CptConcept,
    CptDataError,
    CptRelease,
    read_cpt_db,
    release_from_codesystem,
    write_cpt_db,
)

REPO = Path(__file__).resolve().parents[2]
FRAGMENT_DB = Path(__file__).resolve().parents[3] / "shared" / "cpt" / "cpt-fragment.db"
SHIPPED_FRAGMENT = REPO / "codesystems" / "cpt-2026-imaging.json"
needs_fragment = pytest.mark.skipif(not FRAGMENT_DB.exists(),
                                    reason=f"tx.fhir.org test fragment not present at {FRAGMENT_DB}")


def small_release() -> CptRelease:
    """A hand-made release with a code, a telemedicine code and a modifier."""
    return CptRelease("2026", {
        "72126": CptConcept("72126", False, "Test display for 72126",
                            [("upper", "TEST DISPLAY FOR 72126"), ("short", "CT NECK W"),
                             ("clinician", "first"), ("clinician", "second")],
                            {"kind": ["code"], "modality": ["CT"],
                             "body-region": ["cervical-spine"], "contrast": ["with"]}),
        "99202": CptConcept("99202", False, "Test visit", [],
                            {"kind": ["code"], "telemedicine": ["true"]}),
        "25": CptConcept("25", True, "Test modifier: text", [],
                         {"kind": ["general", "cat-1"]}),
    })


def rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    """Every row of a table, sorted."""
    with closing(sqlite3.connect(path)) as conn:
        return sorted(conn.execute(f"SELECT * FROM {table}"))


def execute(path: Path, *statements: str) -> None:
    """Run SQL statements against a database file and commit."""
    with closing(sqlite3.connect(path)) as conn:
        for sql in statements:
            conn.execute(sql)
        conn.commit()


# --- the tx.fhir.org fragment --------------------------------------------------------------


@needs_fragment
def test_fragment_db_loads_version_and_concepts_in_stored_order() -> None:
    release = read_cpt_db(FRAGMENT_DB)
    assert release.version == "2023"
    assert list(release.concepts) == ["99202", "99203", "99252", "0001A",
                                      "25", "95", "P1", "1P", "F1"]
    assert [c.code for c in release.concepts.values() if c.modifier] == [
        "25", "95", "P1", "1P", "F1"]


@needs_fragment
def test_fragment_db_displays_designations_and_properties() -> None:
    release = read_cpt_db(FRAGMENT_DB)
    visit = release.concepts["99202"]
    assert visit.display.startswith("Office or other outpatient visit for the evaluation")
    assert [t for t, _ in visit.designations] == [
        "upper", "med", "short", "consumer", "clinician", "clinician", "clinician"]
    assert dict(visit.designations)["short"] == "OFFICE O/P NEW SF 15-29 MIN"
    assert visit.properties == {"kind": ["code"], "telemedicine": ["true"]}
    assert "telemedicine" not in release.concepts["99252"].properties
    assert len([t for t, _ in release.concepts["99252"].designations if t == "clinician"]) == 12
    assert release.concepts["25"].properties == {"kind": ["general", "cat-1"]}
    assert release.concepts["P1"].display == "A normal healthy patient"
    assert release.concepts["F1"].properties == {"kind": ["hcpcs"]}


@needs_fragment
def test_fragment_db_is_reproduced_row_for_row(tmp_path: Path) -> None:
    out = tmp_path / "copy.db"
    write_cpt_db(read_cpt_db(FRAGMENT_DB), out)
    for table in ("Information", "Concepts", "Designations", "Properties"):
        assert rows(out, table) == rows(FRAGMENT_DB, table), table


@needs_fragment
def test_written_schema_matches_the_fragment(tmp_path: Path) -> None:
    out = tmp_path / "copy.db"
    write_cpt_db(read_cpt_db(FRAGMENT_DB), out)

    def shapes(path: Path) -> list[tuple[str, str]]:
        with closing(sqlite3.connect(path)) as conn:
            found = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
            return sorted((name, " ".join(sql.split())) for name, sql in found)

    assert shapes(out) == shapes(FRAGMENT_DB)


# --- writing and reading -------------------------------------------------------------------


def test_round_trip_keeps_every_field_and_order(tmp_path: Path) -> None:
    release = small_release()
    write_cpt_db(release, tmp_path / "cpt.db")
    assert read_cpt_db(tmp_path / "cpt.db") == release


def test_sequences_number_designations_and_properties_per_code(tmp_path: Path) -> None:
    write_cpt_db(small_release(), tmp_path / "cpt.db")
    designations = [r for r in rows(tmp_path / "cpt.db", "Designations") if r[0] == "72126"]
    assert sorted(designations, key=lambda r: r[2]) == [
        ("72126", "display", 0, "Test display for 72126"),
        ("72126", "upper", 1, "TEST DISPLAY FOR 72126"),
        ("72126", "short", 2, "CT NECK W"),
        ("72126", "clinician", 3, "first"),
        ("72126", "clinician", 4, "second")]
    properties = [r for r in rows(tmp_path / "cpt.db", "Properties") if r[0] in ("72126", "25")]
    assert sorted(properties, key=lambda r: (r[0], r[2])) == [
        ("25", "kind", 0, "general"), ("25", "kind", 1, "cat-1"),
        ("72126", "kind", 0, "code"), ("72126", "modality", 1, "CT"),
        ("72126", "body-region", 2, "cervical-spine"), ("72126", "contrast", 3, "with")]
    assert rows(tmp_path / "cpt.db", "Concepts") == [("25", 1), ("72126", 0), ("99202", 0)]
    assert rows(tmp_path / "cpt.db", "Information") == [("version", "2026")]


def test_failed_write_leaves_the_existing_database_intact(tmp_path: Path) -> None:
    out = tmp_path / "cpt.db"
    write_cpt_db(small_release(), out)
    before = out.read_bytes()
    broken = small_release()
    broken.concepts["99202"].designations.append(("short", None))  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        write_cpt_db(broken, out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["cpt.db"]  # no temporary file left


def test_new_database_is_world_readable_and_a_replaced_one_keeps_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "cpt.db"
    write_cpt_db(small_release(), out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    out.chmod(0o640)
    write_cpt_db(small_release(), out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_reading_does_not_modify_the_file(tmp_path: Path) -> None:
    out = tmp_path / "cpt.db"
    write_cpt_db(small_release(), out)
    before = (out.read_bytes(), out.stat().st_mtime_ns)
    read_cpt_db(out)
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before
    assert [p.name for p in tmp_path.iterdir()] == ["cpt.db"]  # no journal or wal files


# --- bad database files --------------------------------------------------------------------


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CptDataError, match="nope.db"):
        read_cpt_db(tmp_path / "nope.db")


def test_a_text_file_is_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "notes.db"
    bad.write_text("this is not SQLite\n" * 100)
    with pytest.raises(CptDataError, match="notes.db"):
        read_cpt_db(bad)


def test_missing_tables_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "partial.db"
    execute(bad, "CREATE TABLE Information (name, value)", "CREATE TABLE Concepts (code, modifier)")
    with pytest.raises(CptDataError, match=r"partial.db.*Designations, Properties"):
        read_cpt_db(bad)


def test_missing_version_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "cpt.db"
    write_cpt_db(small_release(), out)
    execute(out, "DELETE FROM Information")
    with pytest.raises(CptDataError, match="version"):
        read_cpt_db(out)


def test_designation_for_an_unknown_code_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "cpt.db"
    write_cpt_db(small_release(), out)
    execute(out, "INSERT INTO Designations VALUES ('11111', 'short', 1, 'x')")
    with pytest.raises(CptDataError, match="11111"):
        read_cpt_db(out)


# --- from a FHIR CodeSystem ----------------------------------------------------------------


def codesystem(concepts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A CPT CodeSystem resource with the given concepts."""
    return {"resourceType": "CodeSystem", "url": CPT_URL, "version": "2026",
            "content": "fragment", "concept": concepts, **extra}


def test_codesystem_concepts_become_a_release() -> None:
    resource = codesystem([
        {"code": "72126", "display": "Test CT", "designation": [
            {"use": {"system": CPT_URL, "code": "short"}, "value": "CT NECK W"},
            {"use": {"system": CPT_URL, "code": "clinician"}, "value": "one"},
            {"use": {"system": CPT_URL, "code": "clinician"}, "value": "two"}],
         "property": [
            {"code": "modifier", "valueBoolean": False},
            {"code": "modified", "valueBoolean": False},
            {"code": "kind", "valueCode": "code"},
            {"code": "telemedicine", "valueBoolean": True},
            {"code": "orthopox", "valueBoolean": False},
            {"code": "modality", "valueCode": "CT"}]},
        {"code": "50", "display": "Bilateral", "property": [
            {"code": "modifier", "valueBoolean": True},
            {"code": "kind", "valueCode": "general"},
            {"code": "kind", "valueCode": "cat-1"}]},
    ])
    release = release_from_codesystem(resource)
    assert release.version == "2026"
    assert release.concepts["72126"] == CptConcept(
        "72126", False, "Test CT",
        [("short", "CT NECK W"), ("clinician", "one"), ("clinician", "two")],
        {"kind": ["code"], "telemedicine": ["true"], "orthopox": ["false"], "modality": ["CT"]})
    assert release.concepts["50"] == CptConcept("50", True, "Bilateral", [],
                                                {"kind": ["general", "cat-1"]})


def test_codesystem_with_another_url_is_refused() -> None:
    with pytest.raises(CptDataError, match="url"):
        release_from_codesystem(codesystem([], url="http://example.org/cs"))


def test_codesystem_without_version_is_refused() -> None:
    resource = codesystem([])
    del resource["version"]
    with pytest.raises(CptDataError, match="version"):
        release_from_codesystem(resource)


def test_codesystem_duplicate_code_is_refused() -> None:
    with pytest.raises(CptDataError, match="72126"):
        release_from_codesystem(codesystem([{"code": "72126", "display": "a"},
                                            {"code": "72126", "display": "b"}]))


@pytest.mark.skipif(not SHIPPED_FRAGMENT.exists(), reason="codesystems/cpt-2026-imaging.json "
                    "is not in this checkout")
def test_shipped_imaging_fragment_converts_and_round_trips(tmp_path: Path) -> None:
    resource = json.loads(SHIPPED_FRAGMENT.read_text(encoding="utf-8"))
    release = release_from_codesystem(resource)
    assert len(release.concepts) == len(resource["concept"])
    ct = release.concepts["72126"]
    assert ct.properties["modality"] == ["CT"]
    assert ct.properties["contrast"] == ["with"]
    assert release.concepts["26"].modifier is True
    write_cpt_db(release, tmp_path / "imaging.db")
    assert read_cpt_db(tmp_path / "imaging.db") == release
