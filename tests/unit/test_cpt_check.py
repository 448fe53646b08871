"""`terminology check --cpt DB`: a CPT database checked without serving it (exit 0, or 2 with
a message naming the database and what is wrong)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from terminology.cli import main as cli_main
from terminology.cpt.ama_import import import_to_db
from terminology.cpt.synthetic import modifier_count, write_synthetic_release

CODES = 200


@pytest.fixture(scope="module")
def good_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("check-cpt")
    write_synthetic_release(tmp / "release", n_codes=CODES, seed=3)
    import_to_db(tmp / "release", "2025", tmp / "cpt.db")
    return tmp / "cpt.db"


def check(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, str, str]:
    args = ["check", "--no-bundled"]
    for p in paths:
        args += ["--cpt", str(p)]
    code = cli_main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_good_database_passes_with_its_counts_and_lookups(
        good_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(capsys, good_db)
    assert code == 0, err
    assert f"{good_db}: CPT 2025: {CODES + modifier_count()} concepts" in out
    assert f"codes: {CODES} (Category I " in out
    assert f"modifiers: {modifier_count()} (general " in out
    assert "lookups: 50 codes and modifiers found with their display" in out
    assert err == ""


def test_a_folder_checks_every_database_in_it(good_db: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = check(capsys, good_db.parent)
    assert code == 0
    assert "CPT 2025" in out


def _damage(sql: str) -> Callable[[Path], None]:
    def run(path: Path) -> None:
        conn = sqlite3.connect(path)
        conn.executescript(sql)
        conn.commit()
        conn.close()
    return run


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database" * 100)


DAMAGES = [
    ("not-sqlite", _garbage, "not a readable CPT database"),
    ("missing-table", _damage("DROP TABLE Properties"), "missing table(s) Properties"),
    ("no-version", _damage("DELETE FROM Information"), "no ('version', ...) row"),
    ("orphan-designation", _damage(
        "INSERT INTO Designations VALUES ('55555', 'med', 1, 'orphan')"),
     "Designations row for code '55555', which is not in Concepts"),
    ("no-display", _damage("DELETE FROM Designations WHERE code = '72126' AND type = 'display'"),
     "code '72126' has no display"),
    ("impossible-code", _damage("INSERT INTO Concepts VALUES ('hello', 0); "
                                "INSERT INTO Designations VALUES ('hello', 'display', 0, 'x')"),
     "'hello' does not have the form of a CPT code"),
    ("empty", _damage("DELETE FROM Designations; DELETE FROM Properties; DELETE FROM Concepts"),
     "no concepts in table Concepts"),
]


@pytest.mark.parametrize(("damage", "expected"), [(d, e) for _, d, e in DAMAGES],
                         ids=[name for name, _, _ in DAMAGES])
def test_a_damaged_database_exits_2_naming_it_and_the_problem(
        good_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        damage: Callable[[Path], None], expected: str) -> None:
    broken = tmp_path / "broken.db"
    shutil.copy(good_db, broken)
    damage(broken)
    code, _, err = check(capsys, broken)
    assert code == 2
    assert err.startswith(f"error: CPT database {broken}: ")
    assert expected in err


def test_a_missing_database_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(capsys, tmp_path / "nowhere.db")
    assert code == 2
    assert "nowhere.db" in err and "does not exist" in err


def test_the_tx_fhir_org_fragment_database_passes(capsys: pytest.CaptureFixture[str]) -> None:
    fragment = Path(__file__).resolve().parents[3] / "shared" / "cpt" / "cpt-fragment.db"
    if not fragment.exists():
        pytest.skip("tx.fhir.org's cpt-fragment.db is not present")
    code, out, err = check(capsys, fragment)
    assert code == 0, err
    assert "CPT 2023: 9 concepts" in out
