"""The forms of the AMA files the importer accepts besides the documented one (colon after
a physical-status code, quoted spreadsheet fields, BOM, CRLF, trailing spaces, the release
.zip), and what stays an error: the file and line named, no database written."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from terminology.cli import main as cli_main
from terminology.cpt.ama.importer import AmaImportError, import_ama_release, import_to_db
from terminology.cpt.release import read_cpt_db

from .test_ama_import import HEADER, LONG, import_error, import_with, release_files, write_release

CONSUMER_HEADER = "concept_id\tcpt_code\tconsumer_descriptor\n"
CLINICIAN_HEADER = "concept_id\tcpt_code\tclinician_descriptor_id\tclinician_descriptor\n"


def test_physical_status_code_followed_by_a_colon_is_accepted(tmp_path: Path) -> None:
    modul = release_files()["MODUL.txt"].replace("P1 A normal healthy patient (test)",
                                                 "P1: A normal healthy patient")
    release = import_with(tmp_path, **{"MODUL.txt": modul})
    assert release.concepts["P1"].display == "A normal healthy patient"
    assert release.concepts["P1"].properties["kind"] == ["physical-status"]
    assert release.concepts["P2"].display == "A patient with mild systemic disease (test)"


def test_quoted_consumer_fields_are_unquoted(tmp_path: Path) -> None:
    consumer = (CONSUMER_HEADER + '1\t"72125"\t"CT scan of the neck, ""plain"" (test)"\n'
                '2\t99202\t"New patient\tvisit"\n')
    release = import_with(tmp_path, **{"ConsumerDescriptor.txt": consumer})
    assert ("consumer", 'CT scan of the neck, "plain" (test)') in release.concepts["72125"].designations
    assert ("consumer", "New patient visit") in release.concepts["99202"].designations


def test_quoted_header_and_a_field_over_two_lines_keep_line_numbers(tmp_path: Path) -> None:
    clinician = ('"concept_id"\t"cpt_code"\t"clinician_descriptor_id"\t"clinician_descriptor"\n'
                 '1\t72125\t10\t"Clinician one,\nwrapped by the spreadsheet"\n'
                 "1\t55555\t11\tunknown code\n")
    release_error = import_error(tmp_path, **{"ClinicianDescriptor.txt": clinician})
    assert release_error == ("Clinician Descriptors/ClinicianDescriptor.txt line 4: code "
                             "'55555' is not in LONGULT.txt")
    ok = import_with(tmp_path / "ok", **{"ClinicianDescriptor.txt": clinician.rsplit("1\t555", 1)[0]})
    assert ("clinician", "Clinician one, wrapped by the spreadsheet") in ok.concepts["72125"].designations


def test_bom_crlf_and_trailing_spaces_in_every_file_are_accepted(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {}
    for name, text in release_files().items():
        padded = "\r\n".join(line + ("  " if line else "") for line in text.split("\n"))
        files[name] = b"\xef\xbb\xbf" + padded.encode()
    release = import_ama_release(write_release(tmp_path, files), "2026")
    assert release.concepts["72125"].display == LONG["72125"]
    assert ("consumer", "CT scan of the neck bones (test)") in release.concepts["72125"].designations
    assert release.concepts["P1"].display == "A normal healthy patient (test)"
    assert release.concepts["99202"].properties["telemedicine"] == ["true"]


def test_trailing_empty_fields_of_a_spreadsheet_row_are_ignored(tmp_path: Path) -> None:
    consumer = CONSUMER_HEADER + "1\t72125\tCT (test)\t\t\n"
    release = import_with(tmp_path, **{"ConsumerDescriptor.txt": consumer})
    assert ("consumer", "CT (test)") in release.concepts["72125"].designations


def test_unbalanced_quote_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    consumer = CONSUMER_HEADER + '1\t72125\tfine\n2\t99202\t"broken" quote\n'
    message = import_error(tmp_path, **{"ConsumerDescriptor.txt": consumer})
    assert message.startswith("Consumer Friendly Descriptors/ConsumerDescriptor.txt line 3: "
                              "malformed line")


def zip_release(tmp_path: Path, files: dict[str, str | bytes], top: str = "CPT 2026/") -> Path:
    archive = tmp_path / "cpt-2026.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, content in files.items():
            zf.writestr(top + name, content)
    return archive


def test_release_zip_is_imported_like_its_folder(tmp_path: Path) -> None:
    archive = zip_release(tmp_path, dict(release_files()))
    from_zip = import_ama_release(archive, "2026")
    from_folder = import_ama_release(write_release(tmp_path / "folder", dict(release_files())), "2026")
    assert from_zip == from_folder


def test_import_cpt_cli_takes_the_zip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = zip_release(tmp_path, dict(release_files()))
    out = tmp_path / "cpt.db"
    assert cli_main(["import-cpt", str(archive), "--version", "2026", "--out", str(out)]) == 0
    assert read_cpt_db(out).concepts["72125"].display == LONG["72125"]


def test_error_in_a_zipped_file_names_the_zip_member_and_line(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = dict(release_files())
    files["MEDU.txt"] = HEADER + "72125 OK\n7212 BROKEN\n"
    out = tmp_path / "cpt.db"
    with pytest.raises(AmaImportError) as caught:
        import_to_db(zip_release(tmp_path, files), "2026", out)
    assert str(caught.value) == ("cpt-2026.zip!CPT 2026/MEDU.txt line 5: code '7212' is not "
                                 "five characters")
    assert not out.exists()


def test_damaged_zip_is_an_error_and_nothing_is_written(tmp_path: Path) -> None:
    archive = zip_release(tmp_path, dict(release_files()))
    data = bytearray(archive.read_bytes())
    start = data.index(b"TEST: Computed")  # corrupt a stored member: the CRC no longer matches
    data[start:start + 4] = b"XXXX"
    archive.write_bytes(bytes(data))
    out = tmp_path / "cpt.db"
    with pytest.raises(AmaImportError, match="cpt-2026.zip: damaged zip"):
        import_to_db(archive, "2026", out)
    assert not out.exists()


def test_damaged_file_in_a_folder_names_file_and_line_and_writes_nothing(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = dict(release_files())
    files["LONGULT.txt"] = HEADER + "72125\tfine\n\x00\x00garbage without a tab\n"
    out = tmp_path / "cpt.db"
    with pytest.raises(AmaImportError, match="^LONGULT.txt line 5: malformed line"):
        import_to_db(write_release(tmp_path / "release", files), "2026", out)
    assert not out.exists()


def test_missing_required_file_in_a_zip_names_the_zip(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = dict(release_files())
    del files["LONGULT.txt"]
    with pytest.raises(AmaImportError) as caught:
        import_ama_release(zip_release(tmp_path, files), "2026")
    assert str(caught.value) == ("cpt-2026.zip!LONGULT.txt: required file not found in "
                                 f"{tmp_path / 'cpt-2026.zip'}")
