"""MODUL.txt as the AMA lays it out (terminology.cpt.ama_modul), the import report and
`import-cpt --strict`.

The layouts here are written from the AMA's published description of Appendix A (a title and
prose introduction, the general modifiers with no heading, "Anesthesia Physical Status",
"CPT Level I Modifiers", "Category II Modifiers", "Level II (HCPCS/National) Modifiers"),
with our own test text: no AMA descriptor is copied.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from terminology.cli import main as cli_main
from terminology.cpt.ama_files import AmaImportError
from terminology.cpt.ama_import import import_ama_release, import_release
from terminology.cpt.ama_modul import heading_kind, read_modul
from terminology.cpt.provider import CptProvider
from terminology.cpt.synthetic import SYNTHETIC_MODIFIERS, modifier_display, write_synthetic_release

from .test_ama_import import HEADER, LONG, import_with

# The AMA's layout: no heading before the general list, paragraphs wrapped without indent,
# blank lines between modifiers, a note paragraph, headings without "Modifiers".
AMA_MODUL = """Appendix A
Test file, not AMA content.

This list includes the test modifiers. A modifier reports that a service was
altered by a circumstance without changing its code.

22 Test Increased Procedural Services: the work required was substantially
greater than typically required.

25 Test Separate E/M Service: a significant, separately identifiable service
on the day of a procedure.

26 Test Professional Component: the physician component reported alone.

Note: this paragraph belongs to modifier 26.

50 Test Bilateral Procedure: performed on both sides.

59 Test Distinct Procedural Service: not normally reported together.

76 Test Repeat Procedure by Same Physician: repeated the same day.

77 Test Repeat Procedure by Another Physician: repeated by another.

Anesthesia Physical Status

All anesthesia services are reported with a physical status modifier (test).

P1: A normal healthy patient (test)
P2: A patient with mild systemic disease (test)

CPT Level I Modifiers

25 Test Level I text for 25.

Category II Modifiers

1P Test performance measure exclusion due to medical reasons

Level II (HCPCS/National) Modifiers

LT Left side (test)
RT Right side (test)
TC Technical component (test)
"""

EVERY_MODIFIER = ("22", "25", "26", "50", "59", "76", "77", "P1", "P2", "1P", "LT", "RT", "TC")


def modul(text: str) -> dict[str, dict[str, str]]:
    """The displays by kind read from MODUL.txt text."""
    return read_modul("MODUL.txt", text.split("\n")).displays


def modul_error(text: str) -> str:
    with pytest.raises(AmaImportError) as caught:
        read_modul("MODUL.txt", text.split("\n"))
    return str(caught.value)


def test_modifiers_before_the_first_heading_are_the_general_list() -> None:
    displays = modul(AMA_MODUL)
    assert list(displays) == list(dict.fromkeys(EVERY_MODIFIER))
    assert {code for code, kinds in displays.items() if "general" in kinds} == {
        "22", "25", "26", "50", "59", "76", "77"}
    assert displays["22"]["general"] == ("Test Increased Procedural Services: the work "
                                         "required was substantially greater than typically "
                                         "required.")


def test_introduction_in_prose_is_counted_not_imported() -> None:
    content = read_modul("MODUL.txt", AMA_MODUL.split("\n"))
    # the title, the copyright line, two lines of introduction, one after the heading
    assert content.introduction_lines == 5
    assert content.headings == ["physical-status", "cat-1", "cat-2", "hcpcs"]


def test_a_note_paragraph_belongs_to_the_modifier_above() -> None:
    assert modul(AMA_MODUL)["26"]["general"] == (
        "Test Professional Component: the physician component reported alone. Note: this "
        "paragraph belongs to modifier 26.")


def test_sections_give_kinds_and_colon_lines_are_physical_status() -> None:
    displays = modul(AMA_MODUL)
    assert displays["25"] == {"general": "Test Separate E/M Service: a significant, separately "
                                         "identifiable service on the day of a procedure.",
                              "cat-1": "Test Level I text for 25."}
    assert displays["P1"] == {"physical-status": "A normal healthy patient (test)"}
    assert displays["1P"] == {"cat-2": "Test performance measure exclusion due to medical reasons"}
    assert displays["TC"] == {"hcpcs": "Technical component (test)"}


def test_physical_status_lines_may_name_the_modifier_in_prose() -> None:
    text = "Anesthesia Physical Status\n\nPhysical status modifier P3: A patient with severe disease\n"
    assert modul(text)["P3"] == {"physical-status": "A patient with severe disease"}


def test_each_paragraph_on_one_long_line_is_read_the_same() -> None:
    one_line = "\n\n".join(p if p.strip().split("\n")[-1][:2] in ("P2", "TC")
                             else " ".join(p.split("\n"))
                             for p in AMA_MODUL.split("\n\n"))
    assert modul(one_line) == modul(AMA_MODUL)


def test_the_layout_with_headings_and_indented_continuations_is_read_the_same() -> None:
    headed = ("Appendix A (test)\n\nCPT Modifiers\n"
              "22 Test Increased Procedural Services: the work required was\n"
              "   substantially greater than typically required.\n"
              "25 Test Separate E/M Service: a significant, separately identifiable service\n"
              "   on the day of a procedure.\n")
    displays = modul(headed)
    assert displays["22"] == modul(AMA_MODUL)["22"]
    assert displays["25"]["general"] == modul(AMA_MODUL)["25"]["general"]


@pytest.mark.parametrize(("line", "kind"), [
    ("CPT Modifiers", "general"),
    ("Anesthesia Physical Status", "physical-status"),
    ("Anesthesia Physical Status Modifiers", "physical-status"),
    ("CPT Level I Modifiers", "cat-1"),
    ("Modifiers Approved for Ambulatory Surgery Center (ASC) Hospital Outpatient Use", "cat-1"),
    ("Category II Modifiers", "cat-2"),
    ("Level II (HCPCS/National) Modifiers", "hcpcs"),
    ("This list includes all of the modifiers.", None),
    ("This list includes the test modifiers. A modifier reports that a service was", None),
    ("the use of modifiers for a procedure performed on both sides", None),
    ("   CPT Modifiers", None),
    ("Appendix A", None),
])
def test_headings_are_recognised_by_their_words(line: str, kind: str | None) -> None:
    assert heading_kind(line) == kind


@pytest.mark.parametrize(("text", "expected"), [
    ("Appendix A\n\n22 Test one.\n\n1P Test wrong list\n",
     "MODUL.txt line 5: expected a general modifier code (two digits) or a section heading, "
     "found '1P'"),
    ("Appendix A\n\n22 Test one\nwrapped text\n25 Test two\n",
     "MODUL.txt line 5: ambiguous line: it looks like modifier '25' but continues the text of "
     "modifier '22'"),
    ("Level II (HCPCS/National) Modifiers\nLT Left\nLT Again\n",
     "MODUL.txt line 3: duplicate modifier 'LT' in the hcpcs section"),
    ("Appendix A\n\n26\n", "MODUL.txt line 3: modifier '26' has no description"),
    ("Appendix A\n\nOnly prose here.\n", "MODUL.txt: no modifiers found"),
])
def test_a_line_that_looks_like_a_modifier_is_imported_or_stops_the_import(
        text: str, expected: str) -> None:
    assert modul_error(text).startswith(expected)


# --- the release, served -------------------------------------------------------------------


def test_release_in_the_ama_layout_answers_every_modifier_and_ct_with_26(tmp_path: Path) -> None:
    release = import_with(tmp_path, **{"MODUL.txt": AMA_MODUL})
    provider = CptProvider(release, {"content": "complete"})
    for code in EVERY_MODIFIER:
        found = provider.locate(code)
        assert found is not None and found.display, code
    ct = [c for c in LONG if c.startswith("721")]
    assert ct
    for code in ct:
        assert provider.locate(f"{code}:26") is not None
        assert provider.explain_unknown(f"{code}:26") is None


@pytest.mark.parametrize("layout", ["ama", "headed"])
def test_synthetic_release_in_either_layout_imports_every_modifier(tmp_path: Path,
                                                                   layout: str) -> None:
    write_synthetic_release(tmp_path / layout, n_codes=120, seed=5, modul_layout=layout)
    release = import_ama_release(tmp_path / layout, "2026")
    for kind, codes in SYNTHETIC_MODIFIERS.items():
        for code in codes:
            assert kind in release.concepts[code].properties["kind"]
    assert release.concepts["26"].display == modifier_display("26", "general")
    assert release.concepts["P1"].display == modifier_display("P1", "physical-status")


def test_synthetic_ama_layout_has_no_heading_before_the_general_list(tmp_path: Path) -> None:
    write_synthetic_release(tmp_path / "r", n_codes=100, modul_layout="ama")
    lines = (tmp_path / "r" / "MODUL.txt").read_text().splitlines()
    first_modifier = next(i for i, line in enumerate(lines) if line.startswith("22 "))
    assert not any(heading_kind(line) for line in lines[:first_modifier])


# --- the import report and --strict ----------------------------------------------------------


def test_import_report_counts_codes_modifiers_designations_and_appendix_p(tmp_path: Path) -> None:
    write_synthetic_release(tmp_path / "r", n_codes=400, seed=1)
    report = import_release(tmp_path / "r", "2026")
    codes = report.codes_by_kind()
    assert sum(codes.values()) == 400
    assert set(codes) == {"code", "cat-2", "cat-3", "pla"}
    assert report.modifiers_by_kind() == {k: len(v) for k, v in SYNTHETIC_MODIFIERS.items()}
    assert report.designations_by_type()["display"] == len(report.release.concepts)
    assert report.appendix_p_codes() >= 2
    assert report.warnings() == []
    lines = report.lines()
    assert lines[1].startswith("  codes: 400 (Category I ")
    assert "PLA" in lines[1] and "hcpcs 24" in lines[2]


def test_report_warns_when_the_general_list_or_26_59_lt_rt_are_missing(tmp_path: Path) -> None:
    only_cat2 = "Appendix A\n\nCategory II Modifiers\n\n1P Test exclusion\n"
    report = import_release(_release_with(tmp_path, only_cat2), "2026")
    assert report.warnings() == [
        "MODUL.txt: no general modifiers (the list at the start of Appendix A, 22 to 99)",
        "MODUL.txt: no modifier 26, 59, LT, RT (every CPT release lists 26, 59, LT, RT)"]
    assert "warning: MODUL.txt: no general modifiers" in "\n".join(report.lines())


def test_report_warns_without_modul(tmp_path: Path) -> None:
    report = import_release(_release_with(tmp_path, None), "2026")
    assert report.warnings()[0].startswith("no MODUL.txt")


def test_import_cpt_prints_the_report_and_strict_makes_warnings_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _release_with(tmp_path, "Appendix A\n\n25 Test only one modifier\n")
    out = tmp_path / "cpt.db"
    assert cli_main(["import-cpt", str(source), "--version", "2026", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "modifiers: 1 (general 1, cat-1 0" in printed.out
    assert "warning: MODUL.txt: no modifier 26, 59, LT, RT" in printed.err
    out.unlink()
    assert cli_main(["import-cpt", str(source), "--version", "2026", "--out", str(out),
                     "--strict"]) == 2
    assert "no modifier 26, 59, LT, RT" in capsys.readouterr().err
    assert not out.exists()


def _release_with(tmp_path: Path, modul_text: str | None) -> Path:
    """A small release folder with the given MODUL.txt (None: without one)."""
    root = tmp_path / "release"
    root.mkdir()
    (root / "LONGULT.txt").write_text(HEADER + "".join(f"{c}\t{d}\n" for c, d in LONG.items()))
    if modul_text is not None:
        (root / "MODUL.txt").write_text(modul_text)
    return root
