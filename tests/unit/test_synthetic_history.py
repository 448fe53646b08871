"""Successive synthetic CPT releases: the changes listed are the changes made."""

from __future__ import annotations

from pathlib import Path

import pytest

from terminology.cpt.ama.importer import import_ama_release
from terminology.cpt.synthetic_history import parse_range, read_changes, write_release_history


def test_release_range_lists_every_year() -> None:
    assert parse_range("2017..2020") == ["2017", "2018", "2019", "2020"]


@pytest.mark.parametrize("bad", ["2017", "2020..2017", "a..b", "2017-2020"])
def test_a_bad_release_range_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="FIRST..LAST"):
        parse_range(bad)


def test_changes_json_lists_exactly_what_each_release_changes(tmp_path: Path) -> None:
    write_release_history(tmp_path, ["2024", "2025", "2026"], n_codes=800)
    changes = read_changes(tmp_path)
    assert changes["releases"] == ["2024", "2025", "2026"]
    releases = {v: import_ama_release(tmp_path / v, v).concepts for v in changes["releases"]}
    for step in changes["changes"]:
        old, new = releases[step["from"]], releases[step["to"]]
        assert [c["code"] for c in step["added"]] == sorted(set(new) - set(old))
        assert [c["code"] for c in step["deleted"]] == sorted(set(old) - set(new))
        revised = sorted(c for c in set(old) & set(new) if old[c].display != new[c].display)
        assert [c["code"] for c in step["revised"]] == revised
        assert all(new[c["code"]].display == c["display"] for c in step["added"] + step["revised"])
        assert all(old[c["code"]].display == c["display"] for c in step["deleted"])
        assert all(old[c["code"]].display == c["previous"] for c in step["revised"])


def test_about_one_percent_changes_a_year_and_anchors_and_deleted_numbers_stay_put(
        tmp_path: Path) -> None:
    history = write_release_history(tmp_path, ["2024", "2025", "2026"], n_codes=2000)
    for step in history:
        churn = len(step.added) + len(step.deleted) + len(step.revised)
        assert 15 <= churn <= 25  # 0.4 % + 0.4 % + 0.3 % of 2,000
        assert "72126" not in {c.code for c in step.deleted + [n for _, n in step.revised]}
    gone = {c.code for c in history[0].deleted}
    assert not gone & {c.code for c in history[1].added}  # a deleted number is never reused


def test_the_same_seed_writes_the_same_history(tmp_path: Path) -> None:
    write_release_history(tmp_path / "a", ["2025", "2026"], n_codes=500, seed=3)
    write_release_history(tmp_path / "b", ["2025", "2026"], n_codes=500, seed=3)
    assert read_changes(tmp_path / "a") == read_changes(tmp_path / "b")
    assert (tmp_path / "a/2026/LONGULT.txt").read_bytes() == (tmp_path / "b/2026/LONGULT.txt").read_bytes()
