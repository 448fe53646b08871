"""Importing an AMA CPT distribution (terminology.cpt.ama_import) and the synthetic generator."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from terminology.cpt.ama_import import AmaImportError, import_ama_release, import_to_db
from terminology.cpt.release import CptRelease, read_cpt_db
from terminology.cpt.synthetic import (
    SYNTHETIC_MODIFIERS,
    main,
    modifier_count,
    modifier_display,
    write_synthetic_release,
)

HEADER = "CPT-format unit test file\nCopyright (c) test data, not AMA content.\n\n"

LONG = {
    "72125": "TEST: Computed tomography, cervical spine; without contrast material",
    "72126": "TEST: Computed tomography, cervical spine; with contrast material",
    "76700": "TEST: Ultrasound, abdominal, real time with image documentation; complete",
    "99202": "TEST: Office visit, new patient, 15 minutes",
    "99203": "TEST: Office visit, new patient, 30 minutes – résumé",
    "99252": "TEST: Consultation, 35 minutes",
    "90611": "TEST: Orthopoxvirus vaccine",
    "0001A": "TEST: Vaccine administration, first dose",
    "0001F": "TEST: Performance measure",
    "0042T": "TEST: Emerging technology",
    "0001U": "TEST: Proprietary laboratory analysis",
    "0002M": "TEST: Multianalyte assay",
}

MODUL = """Appendix A, unit test file. Copyright (c) test data, not AMA content.

Introduction: this prose precedes the first heading.

CPT Modifiers

25 Test Separate E/M Service: It may be necessary to indicate
   that on the day of a procedure,   the patient's condition
   required more.
26 Test Professional Component: Professional part only.
95 Test Telemedicine: Synchronous service.

Anesthesia Physical Status Modifiers
P1 A normal healthy patient (test)
P2 A patient with mild systemic disease (test)

CPT Level I Modifiers for Ambulatory Surgery Center (ASC) Hospital Outpatient Use
25 Level I text for 25 (test)
50 Test Bilateral Procedure: Both sides.

Category II Modifiers
1P Test performance measure exclusion due to medical reasons

Level II (HCPCS/National) Modifiers
LT Left side (test)
F1 Left hand, second digit (test)
"""


def release_files() -> dict[str, str]:
    """The text of every file of a small, valid release, by relative path."""
    codes = list(LONG)
    return {
        "LONGULT.txt": HEADER + "".join(f"{c}\t{d}\n" for c, d in LONG.items()),
        "LONGUT.txt": HEADER + "".join(f"{c}\t{d.upper()}\n" for c, d in LONG.items()),
        "MEDU.txt": HEADER + "".join(f"{c} {'MED ' + c:<48}\n" for c in codes),
        "SHORTU.txt": HEADER + "".join(f"{c} {'SHORT ' + c:<28}\n" for c in codes[:3]),
        "Consumer Friendly Descriptors/ConsumerDescriptor.txt":
            "concept_id\tcpt_code\tconsumer_descriptor\n"
            "1\t72125\tCT scan of the neck bones (test)\n1\t99202\tNew patient visit (test)\n",
        "Clinician Descriptors/ClinicianDescriptor.txt":
            "concept_id\tcpt_code\tclinician_descriptor_id\tclinician_descriptor\n"
            "1\t72125\t10\tClinician one (test)\n1\t72125\t11\tClinician two (test)\n"
            "2\t99252\t12\tClinician three (test)\n",
        "AppendixP.txt": "Appendix P (test)\n\n99202\nThe codes 99203 and 0001A are listed too.\n",
        "MODUL.txt": MODUL,
    }


def write_release(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write the files (text as UTF-8) under root; the root."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return root


def import_with(tmp_path: Path, **changes: str | bytes | None) -> CptRelease:
    """Import the small release with some files replaced (None removes a file)."""
    files: dict[str, str | bytes] = dict(release_files())
    for name, content in changes.items():
        key = next((k for k in files if k.endswith(name)), name)
        if content is None:
            files.pop(key, None)
        else:
            files[key] = content
    return import_ama_release(write_release(tmp_path / "release", files), "2026")


def import_error(tmp_path: Path, **changes: str | bytes | None) -> str:
    """The message of the AmaImportError the import raises."""
    with pytest.raises(AmaImportError) as caught:
        import_with(tmp_path, **changes)
    return str(caught.value)


@pytest.fixture()
def release(tmp_path: Path) -> CptRelease:
    """The small release, imported."""
    return import_with(tmp_path)


# --- a valid release -----------------------------------------------------------------------


def test_codes_come_first_in_file_order_then_modifiers(release: CptRelease) -> None:
    assert release.version == "2026"
    assert list(release.concepts) == [*LONG, "25", "26", "95", "P1", "P2", "50", "1P", "LT", "F1"]


def test_long_descriptor_is_the_display_and_utf8_is_decoded(release: CptRelease) -> None:
    assert release.concepts["72125"].display == LONG["72125"]
    assert release.concepts["99203"].display.endswith("– résumé")


def test_designations_by_type_in_order(release: CptRelease) -> None:
    assert release.concepts["72125"].designations == [
        ("upper", LONG["72125"].upper()), ("med", "MED 72125"), ("short", "SHORT 72125"),
        ("consumer", "CT scan of the neck bones (test)"),
        ("clinician", "Clinician one (test)"), ("clinician", "Clinician two (test)")]
    assert [t for t, _ in release.concepts["99252"].designations] == ["upper", "med", "clinician"]


@pytest.mark.parametrize(("code", "kind"), [
    ("72125", "code"), ("0001A", "code"), ("0002M", "code"), ("0001F", "cat-2"),
    ("0042T", "cat-3"), ("0001U", "pla")])
def test_kind_follows_the_last_character(release: CptRelease, code: str, kind: str) -> None:
    assert release.concepts[code].properties["kind"] == [kind]


def test_appendix_p_marks_telemedicine_from_lines_and_prose(release: CptRelease) -> None:
    marked = [c for c, concept in release.concepts.items()
              if concept.properties.get("telemedicine") == ["true"]]
    assert marked == ["99202", "99203", "0001A"]


def test_orthopox_vaccine_is_marked(release: CptRelease) -> None:
    assert release.concepts["90611"].properties == {"kind": ["code"], "orthopox": ["true"]}
    assert "orthopox" not in release.concepts["99202"].properties


def test_radiology_codes_get_imaging_facets(release: CptRelease) -> None:
    assert release.concepts["72126"].properties == {
        "kind": ["code"], "modality": ["CT"], "body-region": ["cervical-spine"],
        "contrast": ["with"]}
    assert release.concepts["76700"].properties["modality"] == ["US"]
    assert "modality" not in release.concepts["99202"].properties


def test_modifiers_have_kinds_and_collapsed_displays(release: CptRelease) -> None:
    m25 = release.concepts["25"]
    assert m25.modifier is True
    assert m25.display == ("Test Separate E/M Service: It may be necessary to indicate that on "
                           "the day of a procedure, the patient's condition required more.")
    assert m25.properties == {"kind": ["general", "cat-1"]}
    assert release.concepts["50"].properties == {"kind": ["cat-1"]}
    assert release.concepts["P1"].properties == {"kind": ["physical-status"]}
    assert release.concepts["1P"].properties == {"kind": ["cat-2"]}
    assert release.concepts["LT"].properties == {"kind": ["hcpcs"]}
    assert release.concepts["F1"].display == "Left hand, second digit (test)"
    assert all(not c.modifier for code, c in release.concepts.items() if len(code) == 5)


def test_optional_files_may_be_absent(tmp_path: Path) -> None:
    release = import_with(tmp_path, **{n: None for n in (
        "LONGUT.txt", "MEDU.txt", "SHORTU.txt", "ConsumerDescriptor.txt",
        "ClinicianDescriptor.txt", "AppendixP.txt", "MODUL.txt")})
    assert list(release.concepts) == list(LONG)
    assert release.concepts["72125"].designations == []


def test_files_are_found_in_any_folder_and_any_case(tmp_path: Path) -> None:
    files = release_files()
    moved: dict[str, str | bytes] = {f"2026/data/{name.lower()}": text
                                     for name, text in files.items()}
    release = import_ama_release(write_release(tmp_path, moved), "2026")
    assert len(release.concepts) == len(LONG) + 9
    assert release.concepts["99202"].properties["telemedicine"] == ["true"]


def test_appendix_p_may_be_named_with_spaces(tmp_path: Path) -> None:
    release = import_with(tmp_path, **{"AppendixP.txt": None,
                                       "Appendix P - Telemedicine.txt": HEADER + "99252\n"})
    assert release.concepts["99252"].properties["telemedicine"] == ["true"]


def test_bom_and_cp1252_are_accepted(tmp_path: Path) -> None:
    long = release_files()["LONGULT.txt"].replace("– résumé", "résumé")
    release = import_with(tmp_path, **{"LONGULT.txt": long.encode("cp1252"),
                                       "LONGUT.txt": b"\xef\xbb\xbf"
                                       + release_files()["LONGUT.txt"].encode()})
    assert release.concepts["99203"].display.endswith("résumé")
    assert release.concepts["72125"].designations[0] == ("upper", LONG["72125"].upper())


def test_crlf_line_ends_are_accepted(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        name: text.replace("\n", "\r\n") for name, text in release_files().items()}
    release = import_ama_release(write_release(tmp_path, files), "2026")
    assert release.concepts["72125"].display == LONG["72125"]
    assert release.concepts["25"].display.endswith("required more.")


# --- malformed releases --------------------------------------------------------------------


def test_missing_longult_is_named(tmp_path: Path) -> None:
    assert import_error(tmp_path, **{"LONGULT.txt": None}).startswith("LONGULT.txt: required file")


def test_short_code_is_reported_with_file_and_line(tmp_path: Path) -> None:
    bad = HEADER + "72125\tfine\n7212\tCT of something\n"
    assert import_error(tmp_path, **{"LONGULT.txt": bad}) == (
        "LONGULT.txt line 5: code '7212' is not five characters")


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("LONGULT.txt", HEADER + "72125 no tab here\n", "LONGULT.txt line 4: malformed line: no TAB"),
    ("LONGULT.txt", HEADER + "ABCDE\tletters\n", "LONGULT.txt line 4: code 'ABCDE' is not a CPT"),
    ("LONGULT.txt", HEADER + "72125\t\n", "LONGULT.txt line 4: code '72125' has an empty"),
    ("LONGULT.txt", HEADER + "72125\tone\n72125\ttwo\n",
     "LONGULT.txt line 5: duplicate code '72125' (first on line 4)"),
    ("LONGULT.txt", HEADER, "LONGULT.txt: no codes"),
    ("LONGULT.txt", "", "LONGULT.txt: no codes"),
    ("MEDU.txt", HEADER + "72125\n", "MEDU.txt line 4: malformed line: too short"),
    ("MEDU.txt", HEADER + "7212 CT\n", "MEDU.txt line 4: code '7212' is not five characters"),
    ("SHORTU.txt", HEADER + "72125 A\n72125 B\n", "SHORTU.txt line 5: duplicate code '72125'"),
    ("SHORTU.txt", HEADER + "11111 NOT IN LONG\n",
     "SHORTU.txt line 4: code '11111' is not in LONGULT.txt"),
    ("LONGUT.txt", HEADER + "72125\tA\n11111\tB\n", "LONGUT.txt line 5: code '11111' is not in"),
    ("ConsumerDescriptor.txt", "concept_id\tcpt_code\tconsumer_descriptor\n1\t72125\n",
     "Consumer Friendly Descriptors/ConsumerDescriptor.txt line 2: malformed line: 2 "),
    ("ConsumerDescriptor.txt", "concept_id\tcode\tdescriptor\n1\t72125\tx\n",
     "ConsumerDescriptor.txt: no header row"),
    ("ConsumerDescriptor.txt",
     "concept_id\tcpt_code\tconsumer_descriptor\n1\t72125\ta\n2\t72125\tb\n",
     "ConsumerDescriptor.txt line 3: duplicate code '72125'"),
    ("ClinicianDescriptor.txt",
     "concept_id\tcpt_code\tclinician_descriptor_id\tclinician_descriptor\n"
     "1\t72125\t7\ta\n1\t72125\t7\tb\n",
     "ClinicianDescriptor.txt line 3: duplicate clinician_descriptor_id '7'"),
    ("ClinicianDescriptor.txt",
     "concept_id\tcpt_code\tclinician_descriptor_id\tclinician_descriptor\n9\t55555\t1\tx\n",
     "ClinicianDescriptor.txt line 2: code '55555' is not in LONGULT.txt"),
    ("AppendixP.txt", HEADER + "99202\n55555\n", "AppendixP.txt line 5: code '55555' is not in"),
    ("MODUL.txt", "header\n\nCPT Modifiers\n25 One\n\nLT Left side\n",
     "MODUL.txt line 6: expected a general modifier code (two digits) or a section heading, "
     "found 'LT'"),
    ("MODUL.txt", "header\n\nCPT Modifiers\n25 One\n25 Two\n",
     "MODUL.txt line 5: duplicate modifier '25' in the general section"),
    ("MODUL.txt", "header\n\nCategory II Modifiers\n25 Wrong section\n",
     "MODUL.txt line 4: expected a cat-2 modifier code (a digit and P)"),
    ("MODUL.txt", "header\n\nCPT Modifiers\n25\n", "MODUL.txt line 4: modifier '25' has no"),
    ("MODUL.txt", "header\n\njust prose\n", "MODUL.txt: no modifiers found"),
])
def test_malformed_files_are_reported(tmp_path: Path, name: str, content: str,
                                      expected: str) -> None:
    assert expected in import_error(tmp_path, **{name: content})


def test_error_carries_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(AmaImportError) as caught:
        import_with(tmp_path, **{"MEDU.txt": HEADER + "72125 OK\n99999 UNKNOWN\n"})
    assert (caught.value.file, caught.value.line) == ("MEDU.txt", 5)
    assert caught.value.message == "code '99999' is not in LONGULT.txt"


@pytest.mark.parametrize("byte", [b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d"])
def test_bytes_neither_utf8_nor_cp1252_are_an_unreadable_encoding(tmp_path: Path,
                                                                   byte: bytes) -> None:
    content = HEADER.encode() + b"72125\tfine\n72126\tbad " + byte + b" byte\n"
    message = import_error(tmp_path, **{"LONGULT.txt": content})
    assert message.startswith(f"LONGULT.txt line 5: byte 0x{byte[0]:02X} is neither UTF-8 nor")
    assert "unreadable encoding" in message


def test_a_file_found_twice_is_ambiguous(tmp_path: Path) -> None:
    message = import_error(tmp_path, **{"old/MEDU.txt": HEADER + "72125 X\n"})
    assert message.startswith("MEDU.txt: found more than once: ")
    assert "old/MEDU.txt" in message


def test_source_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(AmaImportError, match="not a folder"):
        import_ama_release(tmp_path / "missing", "2026")


# --- import_to_db --------------------------------------------------------------------------


def test_import_to_db_writes_a_database_that_reads_back(tmp_path: Path) -> None:
    source = write_release(tmp_path / "release", dict(release_files()))
    out = tmp_path / "cpt.db"
    release = import_to_db(source, "2026", out)
    assert read_cpt_db(out) == release


def test_failed_import_keeps_the_previous_database(tmp_path: Path) -> None:
    source = write_release(tmp_path / "release", dict(release_files()))
    out = tmp_path / "cpt.db"
    import_to_db(source, "2026", out)
    before = out.read_bytes()
    (source / "SHORTU.txt").write_text(HEADER + "7212 BROKEN\n")
    with pytest.raises(AmaImportError, match="SHORTU.txt line 4"):
        import_to_db(source, "2027", out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpt.db", "release"]


def test_unwritable_destination_is_an_import_error(tmp_path: Path) -> None:
    source = write_release(tmp_path / "release", dict(release_files()))
    with pytest.raises(AmaImportError, match="cannot write"):
        import_to_db(source, "2026", tmp_path / "no-such-folder" / "cpt.db")


# --- the synthetic release -----------------------------------------------------------------


def test_synthetic_release_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_synthetic_release(tmp_path / name, n_codes=300, seed=seed)
    a, b, c = ((tmp_path / n / "LONGULT.txt").read_bytes() for n in "abc")
    assert a == b
    assert a != c


def test_small_synthetic_release_imports_every_file_type(tmp_path: Path) -> None:
    write_synthetic_release(tmp_path / "syn", n_codes=400, seed=1)
    release = import_ama_release(tmp_path / "syn", "2026")
    codes = [c for c in release.concepts.values() if not c.modifier]
    assert len(codes) == 400
    assert all(c.display.startswith("SYNTHETIC TEST DESCRIPTOR (not AMA content)") for c in codes)
    types = {t for c in codes for t, _ in c.designations}
    assert types == {"upper", "med", "short", "consumer", "clinician"}
    kinds = {k for c in codes for k in c.properties["kind"]}
    assert kinds == {"code", "cat-2", "cat-3", "pla"}
    assert release.concepts["72126"].properties == {
        "kind": ["code"], "modality": ["CT"], "body-region": ["cervical-spine"],
        "contrast": ["with"]}
    assert release.concepts["99202"].properties["telemedicine"] == ["true"]
    assert "telemedicine" not in release.concepts["99252"].properties
    assert release.concepts["90622"].properties["orthopox"] == ["true"]
    assert release.concepts["25"].display == modifier_display("25", "general")
    assert release.concepts["25"].properties["kind"] == ["general", "cat-1"]
    radiology = [c for c in codes if "70010" <= c.code <= "79999" and c.code.isdigit()]
    assert radiology
    assert all("modality" in c.properties and "body-region" in c.properties for c in radiology)


def test_synthetic_modifiers_include_the_common_ones() -> None:
    everything = {c for codes in SYNTHETIC_MODIFIERS.values() for c in codes}
    wanted = {"25", "26", "50", "51", "52", "53", "57", "59", "63", "73", "74", "76", "77", "78",
              "79", "92", "93", "95", "P1", "P2", "P3", "P4", "P5", "P6", "1P", "2P", "3P", "8P",
              "LT", "RT", "TC", "F1", "E1"}
    assert wanted <= everything
    assert modifier_count() == len(everything)


def test_synthetic_cli_writes_a_release(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "cli"), "--codes", "150", "--seed", "2"]) == 0
    assert "150 codes" in capsys.readouterr().out
    release = import_ama_release(tmp_path / "cli", "2026")
    assert len(release.concepts) == 150 + modifier_count()


def test_full_size_synthetic_release_imports_in_a_few_seconds(tmp_path: Path) -> None:
    started = time.perf_counter()
    write_synthetic_release(tmp_path / "full")
    release = import_to_db(tmp_path / "full", "2026", tmp_path / "cpt.db")
    elapsed = time.perf_counter() - started
    assert len(release.concepts) == 11000 + modifier_count()
    assert sum(1 for c in release.concepts.values() if c.modifier) == modifier_count()
    assert elapsed < 20  # about 2 s on a laptop; a generous bound against slow CI machines
