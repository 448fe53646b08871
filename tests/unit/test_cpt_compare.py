"""SQLite finds the codes that differ between consecutive CPT databases; the changes are
remembered across restarts by file identity, and what is read never depends on how the
changes were found."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from terminology.cpt.compare import ChangesMemo, changed_codes, scan_database
from terminology.cpt.release import read_cpt_db
from terminology.cpt.shared import ConceptPool
from terminology.cpt.synthetic_history import read_changes, write_release_history

VERSIONS = ("2024", "2025", "2026")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("compare")
    write_release_history(base, list(VERSIONS), n_codes=600, databases=True)
    return base


def databases(base: Path) -> list[Path]:
    return [base / f"cpt-{v}.db" for v in VERSIONS]


def read_all(pool: ConceptPool, paths: list[Path]) -> list[dict[str, object]]:
    with pool:
        return [dict(read_cpt_db(p, pool.read).concepts) for p in paths]


def test_the_scan_finds_the_added_and_revised_codes_and_no_unchanged_one(history: Path) -> None:
    old, new = databases(history)[1:]
    change = read_changes(history)["changes"][-1]
    found = changed_codes(scan_database(new, old), scan_database(old, None))
    assert found is not None
    expected = {c["code"] for c in change["added"]} | {c["code"] for c in change["revised"]}
    assert expected <= found
    alone_old, alone_new = read_cpt_db(old).concepts, read_cpt_db(new).concepts
    assert all(alone_old.get(code) != alone_new[code] for code in found if code in alone_new)


@pytest.mark.parametrize("ahead", [False, True], ids=["one by one", "scanned ahead"])
def test_releases_read_through_the_pool_hold_what_each_database_holds(
        history: Path, ahead: bool) -> None:
    paths = databases(history)
    pooled = read_all(ConceptPool(paths if ahead else ()), paths)
    assert pooled == [dict(read_cpt_db(p).concepts) for p in paths]


def test_a_restart_takes_the_changes_from_the_memo_and_shares_as_much(
        history: Path, tmp_path: Path) -> None:
    paths, memo_file = databases(history), tmp_path / "changes.json"
    first = ConceptPool(paths, ChangesMemo(memo_file))
    cold = read_all(first, paths)
    assert memo_file.is_file()
    again = ConceptPool(paths, ChangesMemo(memo_file))
    assert ChangesMemo(memo_file).knows(paths) and not again._scans  # nothing to scan
    assert read_all(again, paths) == cold
    assert again.reused == first.reused > 0


def test_a_database_written_since_is_scanned_again_not_taken_from_the_memo(
        history: Path, tmp_path: Path) -> None:
    paths = [tmp_path / p.name for p in databases(history)]
    for source, copy in zip(databases(history), paths, strict=True):
        shutil.copyfile(source, copy)
    memo_file = tmp_path / "changes.json"
    cold = read_all(ConceptPool(paths, ChangesMemo(memo_file)), paths)
    code = next(c for c in cold[1] if cold[2].get(c) is cold[1][c])  # shared 2025-2026
    with sqlite3.connect(paths[2]) as conn:
        conn.execute("UPDATE Designations SET value = 'Revised since' "
                     "WHERE code = ? AND type = 'display'", (code,))
    conn.close()
    assert not ChangesMemo(memo_file).knows(paths)
    pooled = read_all(ConceptPool(paths, ChangesMemo(memo_file)), paths)
    assert pooled[2][code].display == "Revised since"  # type: ignore[attr-defined]
    assert pooled[1][code].display != "Revised since"  # type: ignore[attr-defined]


def test_tables_declared_otherwise_are_read_afresh_with_the_same_content(
        history: Path, tmp_path: Path) -> None:
    old, new = databases(history)[1:]
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:  # no primary keys, other column types
        conn.execute(f"ATTACH DATABASE '{new}' AS src")
        for table in ("Information", "Concepts", "Designations", "Properties"):
            conn.execute(f"CREATE TABLE {table} AS SELECT * FROM src.{table}")
    conn.close()
    pool = ConceptPool()
    with pool:
        read_cpt_db(old, pool.read)
        before = pool.reused
        release = read_cpt_db(other, pool.read)
    assert pool.reused == before  # nothing shared: every code read afresh
    assert release.concepts == read_cpt_db(new).concepts


def test_a_memo_that_cannot_be_read_only_costs_the_scans(history: Path, tmp_path: Path) -> None:
    memo_file = tmp_path / "changes.json"
    memo_file.write_text("{not json")
    paths = databases(history)
    assert read_all(ConceptPool(paths, ChangesMemo(memo_file)), paths) == [
        dict(read_cpt_db(p).concepts) for p in paths]
    assert ChangesMemo(memo_file).knows(paths)  # rewritten whole


def test_a_load_of_other_databases_keeps_what_the_memo_knows(history: Path, tmp_path: Path) -> None:
    paths, memo_file = databases(history), tmp_path / "changes.json"
    read_all(ConceptPool(paths, ChangesMemo(memo_file)), paths)
    read_all(ConceptPool(paths[-1:], ChangesMemo(memo_file)), paths[-1:])  # the newest alone
    assert ChangesMemo(memo_file).knows(paths) and ChangesMemo(memo_file).knows(paths[-1:])
