"""Releases loaded through a ConceptPool: the same content as read alone, unchanged concepts
held once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from terminology.cpt.provider import CptProvider
from terminology.cpt.release import CptDataError, read_cpt_db
from terminology.cpt.shared import ConceptPool
from terminology.cpt.synthetic_history import write_release_history


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("pool")
    write_release_history(base, ["2024", "2025", "2026"], n_codes=600, databases=True)
    return base


def test_pooled_releases_hold_exactly_what_each_database_holds(history: Path) -> None:
    pool = ConceptPool()
    for version in ("2024", "2025", "2026"):
        pooled = read_cpt_db(history / f"cpt-{version}.db", pool.read)
        alone = read_cpt_db(history / f"cpt-{version}.db")
        assert pooled.version == alone.version == version
        assert list(pooled.concepts) == list(alone.concepts)  # same codes, same order
        assert pooled.concepts == alone.concepts


def test_unchanged_codes_share_one_concept_object_across_releases(history: Path) -> None:
    pool = ConceptPool()
    old = CptProvider.from_database(history / "cpt-2025.db", pool=pool)
    new = CptProvider.from_database(history / "cpt-2026.db", pool=pool)
    assert old.locate("72126") is new.locate("72126")
    shared = sum(old.locate(c.code) is c for c in new.iterate())
    assert shared >= 0.95 * new.total()
    assert pool.reused == shared


def test_a_revised_code_gets_its_own_concept_in_the_new_release(history: Path) -> None:
    from terminology.cpt.synthetic_history import read_changes

    revised = read_changes(history)["changes"][-1]["revised"][0]
    pool = ConceptPool()
    old = CptProvider.from_database(history / "cpt-2025.db", pool=pool)
    new = CptProvider.from_database(history / "cpt-2026.db", pool=pool)
    before, after = old.locate(revised["code"]), new.locate(revised["code"])
    assert before is not None and after is not None
    assert (before.display, after.display) == (revised["previous"], revised["display"])


def test_a_designation_of_a_code_not_in_concepts_is_an_error_through_the_pool(
        history: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes((history / "cpt-2026.db").read_bytes())
    with sqlite3.connect(broken) as conn:
        conn.execute("INSERT INTO Designations VALUES ('99999', 'short', 9, 'x')")
    with pytest.raises(CptDataError, match="99999"):
        read_cpt_db(broken, ConceptPool().read)


def test_a_release_not_prepared_builds_its_filters_on_first_use_with_the_same_members(
        history: Path) -> None:
    lazy = CptProvider.from_database(history / "cpt-2025.db", pool=ConceptPool())
    prepared = CptProvider.from_database(history / "cpt-2025.db")
    prepared.prepare_indexes()
    for prop, op, value in (("kind", "=", "code"), ("modifier", "=", "true"),
                            ("telemedicine", "=", "false"), ("code", "in", "70000-79999")):
        assert lazy.filter(prop, op, value).bitmap() == prepared.filter(prop, op, value).bitmap()
    assert lazy.filter("kind", "=", "code").bitmap() != 0
