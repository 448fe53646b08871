"""Import an AMA CPT distribution (the licensed data files) into a `CptRelease`.

The release is a folder or the release .zip itself (extracted to a temporary folder; errors
name the file as `release.zip!path`). Files are found by name anywhere under the release
(case-insensitive); a name found twice is an error. Every file is UTF-8 (a BOM is allowed),
or else cp1252; lines may end in CRLF and carry trailing spaces. Line numbers in errors
count physical lines from 1. Anything else unexpected is an error naming the file and line,
and nothing is written.

Descriptor files, one code per record
    LONGULT.txt   required. Long descriptors, mixed case: the display.
    LONGUT.txt    long descriptors, upper case         -> designation type `upper`
    MEDU.txt      medium descriptors (up to 48 chars)   -> `med`
    SHORTU.txt    short descriptors (up to 28 chars)    -> `short`

    Each starts with a header block (the copyright notice) ended by the first blank line,
    unless its first line is already a record. LONGULT/LONGUT records are `code<TAB>text`;
    MEDU/SHORTU records are fixed width: the 5-character code, one space, the descriptor
    (trailing padding removed). Blank lines among the records are skipped.

Tab-separated files with a header row (lines before the header row are ignored; fields may
be quoted as spreadsheets export them, "a ""quoted"" word", even over several lines;
empty trailing fields beyond the header's are ignored)
    ConsumerDescriptor.txt   concept_id, cpt_code, consumer_descriptor  -> `consumer`
    ClinicianDescriptor.txt  concept_id, cpt_code, clinician_descriptor_id,
                             clinician_descriptor -> `clinician` (several per code, in
                             file order; a clinician_descriptor_id may appear once)

Appendix P (optional): AppendixP.txt, or any .txt file whose name contains "Appendix P".
    After the header block, every CPT code found in the text (one per line or within
    prose) gets `telemedicine` = 'true'.

MODUL.txt (optional): CPT Appendix A, the modifiers, read as the AMA lays it out (the
    general list before the first heading, then the physical-status, cat-1, cat-2 and hcpcs
    sections): the layout and its rules are in terminology/cpt/ama_modul.py.

Kinds of codes, by the fifth character
    digit   code    (Category I)
    F       cat-2   (Category II performance measurement)
    T       cat-3   (Category III emerging technology)
    U       pla     (Proprietary Laboratory Analyses)
    A       code    (Category I vaccine product administration, e.g. 0001A)
    M       code    (Category I multianalyte assay with algorithmic analysis, e.g. 0002M)

Orthopox: the codes in ORTHOPOX_CODES that are in the release get `orthopox` = 'true'.
Imaging facets: `derive_facets` (terminology.cpt.facets) on the long descriptor of
radiology codes 70010-79999 adds `modality`, `body-region`, `contrast`.
"""

from __future__ import annotations

import csv
import re
import sqlite3
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from terminology.cpt.ama_files import AmaImportError, Source, read_lines

__all__ = ["AmaImportError", "import_ama_release", "import_release", "import_release_to_db",
           "import_to_db"]
from terminology.cpt.ama_modul import read_modul
from terminology.cpt.facets import derive_facets
from terminology.cpt.import_report import ImportReport
from terminology.cpt.release import CptConcept, CptRelease, write_cpt_db

LONG = "LONGULT.txt"
UPPER = "LONGUT.txt"
MEDIUM = "MEDU.txt"
SHORT = "SHORTU.txt"
CONSUMER = "ConsumerDescriptor.txt"
CLINICIAN = "ClinicianDescriptor.txt"
MODIFIERS = "MODUL.txt"

KIND_BY_LAST_CHARACTER = {"F": "cat-2", "T": "cat-3", "U": "pla", "A": "code", "M": "code"}

# The CPT orthopoxvirus codes (public code numbers, CPT 2023 and later): 87593 orthopoxvirus
# nucleic acid detection; 90611 smallpox and monkeypox vaccine; 90622 vaccinia vaccine.
ORTHOPOX_CODES = frozenset({"87593", "90611", "90622"})

_CODE = re.compile(r"[0-9]{4}[0-9AFMTU]")
_CODE_IN_TEXT = re.compile(r"\b[0-9]{4}[0-9AFMTU]\b")
_TAB_RECORD = re.compile(r"\S{1,10}\t")
_FIXED_RECORD = re.compile(r"[0-9]{4}[0-9A-Z] ")
_APPENDIX_RECORD = re.compile(r"\s*[0-9]{4}[0-9A-Z]\b")
_APPENDIX_P_NAME = re.compile(r"appendix[\s_-]*p(?![a-z])")
MAX_ZIP_BYTES = 4 * 1024**3  # uncompressed; a CPT release is a few hundred MB


# --- entry points ------------------------------------------------------------------------


def import_ama_release(source_dir: Path, version: str) -> CptRelease:
    """Read an AMA CPT release (a folder or the release .zip) into a CptRelease."""
    return import_release(source_dir, version).release


def import_release(source_dir: Path, version: str) -> ImportReport:
    """Read an AMA CPT release (a folder or the release .zip): the release and its report."""
    source_dir = Path(source_dir)
    if source_dir.is_file() and zipfile.is_zipfile(source_dir):
        return _import_zip(source_dir, version)
    if not source_dir.is_dir():
        raise AmaImportError(str(source_dir), None, "not a folder or a .zip of the release")
    return _import_folder(source_dir, version, str(source_dir))


def _import_zip(archive: Path, version: str) -> ImportReport:
    """Extract the release .zip to a temporary folder and import that."""
    with tempfile.TemporaryDirectory(prefix="cpt-release-") as tmp:
        try:
            with zipfile.ZipFile(archive) as zf:
                if sum(info.file_size for info in zf.infolist()) > MAX_ZIP_BYTES:
                    raise AmaImportError(str(archive), None, "more than 4 GiB uncompressed: "
                                         "not a CPT release")
                zf.extractall(tmp)  # member names are sanitised: nothing lands outside tmp
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise AmaImportError(str(archive), None, f"damaged zip: {e}") from e
        try:
            return _import_folder(Path(tmp), version, str(archive))
        except AmaImportError as e:
            file = e.file if e.file == str(archive) else f"{archive.name}!{e.file}"
            raise AmaImportError(file, e.line, e.message) from None


def _import_folder(source_dir: Path, version: str, label: str) -> ImportReport:
    """Read a release folder (`label` names it in messages)."""
    if not version.strip():
        raise AmaImportError(label, None, "the CPT version is empty")
    files = _FileIndex(source_dir, label)
    release = CptRelease(version=version.strip())
    report = ImportReport(release)
    _read_long(files.required(LONG), release)
    for name, dtype in ((UPPER, "upper"), (MEDIUM, "med"), (SHORT, "short")):
        if (src := files.optional(name)) is not None:
            _read_descriptors(src, dtype, release)
    if (src := files.optional(CONSUMER)) is not None:
        _read_consumer(src, release)
    if (src := files.optional(CLINICIAN)) is not None:
        _read_clinician(src, release)
    if (src := files.appendix_p()) is not None:
        _read_appendix_p(src, release)
    _mark_orthopox(release)
    _add_facets(release)
    if (src := files.optional(MODIFIERS)) is not None:
        _read_modifiers(src, report)
    return report


def import_to_db(source_dir: Path, version: str, out: Path, *, strict: bool = False) -> CptRelease:
    """Import a release folder and write it to the SQLite file `out`, atomically."""
    return import_release_to_db(source_dir, version, out, strict=strict).release


def import_release_to_db(source_dir: Path, version: str, out: Path, *,
                         strict: bool = False) -> ImportReport:
    """Import a release and write it to the SQLite file `out`, atomically; its report.

    `strict`: what every CPT release has and this one lacks (the report's warnings) is an
    error, and nothing is written."""
    report = import_release(source_dir, version)
    if strict and (warnings := report.warnings()):
        raise AmaImportError(str(source_dir), None, "; ".join(warnings) + " (--strict)")
    out = Path(out)
    try:
        write_cpt_db(report.release, out)
    except (OSError, sqlite3.Error) as e:
        raise AmaImportError(str(out), None, f"cannot write the CPT database: {e}") from e
    return report


# --- finding and reading files -----------------------------------------------------------


class _FileIndex:
    """The files of a release folder, by lower-cased name."""

    def __init__(self, root: Path, label: str) -> None:
        self.root = root
        self.label = label
        self.by_name: dict[str, list[Path]] = {}
        for path in sorted(root.rglob("*")):
            if path.is_file():
                self.by_name.setdefault(path.name.lower(), []).append(path)

    def _source(self, name: str, paths: list[Path]) -> Source:
        """The one file among `paths`; an error naming them all when there are several."""
        if len(paths) > 1:
            listed = ", ".join(self._relative(p) for p in paths)
            raise AmaImportError(name, None, f"found more than once: {listed}")
        return Source(paths[0], self._relative(paths[0]))

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def optional(self, name: str) -> Source | None:
        """The file called `name` (any case, any folder), or None."""
        paths = self.by_name.get(name.lower())
        return self._source(name, paths) if paths else None

    def required(self, name: str) -> Source:
        """The file called `name`; an error when the release does not have it."""
        src = self.optional(name)
        if src is None:
            raise AmaImportError(name, None, f"required file not found in {self.label}")
        return src

    def appendix_p(self) -> Source | None:
        """The Appendix P list: AppendixP.txt or a .txt whose name contains 'Appendix P'."""
        paths = [p for name, ps in self.by_name.items() for p in ps
                 if name.endswith(".txt") and _APPENDIX_P_NAME.search(name)]
        return self._source("Appendix P", sorted(paths)) if paths else None


def _records(lines: list[str], is_record: Callable[[str], bool]) -> Iterator[tuple[int, str]]:
    """(line number, line) of each non-blank line after the header block.

    The header block runs to the first blank line, unless the first line is already a
    record (a file without a header).
    """
    start = 0
    if lines and not is_record(lines[0]):
        start = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    for i in range(start, len(lines)):
        if lines[i].strip():
            yield i + 1, lines[i]


def _starts_with(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    """A test of whether a line starts with the pattern."""
    return lambda line: pattern.match(line) is not None


def _check_code(src: Source, line: int, code: str) -> None:
    """An error unless `code` is a five-character CPT code."""
    if len(code) != 5:
        raise AmaImportError(src.name, line, f"code {code!r} is not five characters")
    if not _CODE.fullmatch(code):
        raise AmaImportError(src.name, line, f"code {code!r} is not a CPT code (four digits "
                             "then a digit or one of A, F, M, T, U)")


def _known(src: Source, line: int, code: str, release: CptRelease) -> CptConcept:
    """The concept read from LONGULT.txt for `code`; an error when there is none."""
    concept = release.concepts.get(code)
    if concept is None:
        raise AmaImportError(src.name, line, f"code {code!r} is not in {LONG}")
    return concept


class _Seen:
    """Keys already read from one file, to report duplicates with the first line."""

    def __init__(self, src: Source, what: str) -> None:
        self.src = src
        self.what = what
        self.lines: dict[str, int] = {}

    def add(self, key: str, line: int) -> None:
        first = self.lines.setdefault(key, line)
        if first != line:
            raise AmaImportError(self.src.name, line,
                                 f"duplicate {self.what} {key!r} (first on line {first})")


# --- descriptor files --------------------------------------------------------------------


def _tab_record(src: Source, line_no: int, line: str) -> tuple[str, str]:
    """(code, descriptor) of a `code<TAB>descriptor` line."""
    code, tab, text = line.partition("\t")
    if not tab:
        raise AmaImportError(src.name, line_no,
                             "malformed line: no TAB between the code and the descriptor")
    code, text = code.strip(), text.strip()
    _check_code(src, line_no, code)
    if not text:
        raise AmaImportError(src.name, line_no, f"code {code!r} has an empty descriptor")
    return code, text


def _fixed_record(src: Source, line_no: int, line: str) -> tuple[str, str]:
    """(code, descriptor) of a fixed-width `code<space>descriptor` line."""
    token = line.split(maxsplit=1)[0]
    if len(token) != 5:
        raise AmaImportError(src.name, line_no, f"code {token!r} is not five characters")
    text = line[6:].strip()
    if line[:5] != token or not text:
        raise AmaImportError(src.name, line_no, "malformed line: too short for a "
                             "5-character code, a space and a descriptor")
    _check_code(src, line_no, token)
    return token, text


def _read_long(src: Source, release: CptRelease) -> None:
    """LONGULT.txt: every code, its display and its kind."""
    seen = _Seen(src, "code")
    for line_no, line in _records(read_lines(src), _starts_with(_TAB_RECORD)):
        code, text = _tab_record(src, line_no, line)
        seen.add(code, line_no)
        kind = KIND_BY_LAST_CHARACTER.get(code[-1], "code")
        release.concepts[code] = CptConcept(code=code, modifier=False, display=text,
                                            properties={"kind": [kind]})
    if not release.concepts:
        raise AmaImportError(src.name, None, "no codes: expected a header block, a blank line, "
                             "then code<TAB>descriptor lines")


def _read_descriptors(src: Source, dtype: str, release: CptRelease) -> None:
    """LONGUT/MEDU/SHORTU.txt: one designation of type `dtype` per code."""
    tabbed = dtype == "upper"
    pattern = _TAB_RECORD if tabbed else _FIXED_RECORD
    parse = _tab_record if tabbed else _fixed_record
    seen = _Seen(src, "code")
    for line_no, line in _records(read_lines(src), _starts_with(pattern)):
        code, text = parse(src, line_no, line)
        seen.add(code, line_no)
        _known(src, line_no, code, release).designations.append((dtype, text))


def _tsv(src: Source, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: value}) for each row after the header row naming `columns`."""
    lines = read_lines(src)
    header_at, header = _tsv_header(src, lines, columns)
    for line_no, cells in _tsv_rows(src, lines, header_at + 1):
        while len(cells) > len(header) and not cells[-1].strip():
            cells.pop()  # spreadsheets pad rows with empty trailing fields
        if len(cells) != len(header):
            raise AmaImportError(src.name, line_no, f"malformed line: {len(cells)} "
                                 f"tab-separated fields where the header row has {len(header)}")
        row = dict(zip(header, (" ".join(c.split()) for c in cells), strict=True))
        yield line_no, {c: row[c] for c in columns}


def _tsv_rows(src: Source, lines: list[str], start: int) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of each non-blank row from index `start`: tab-separated,
    fields optionally quoted (a quoted field may hold tabs and line breaks)."""
    reader = csv.reader((line + "\n" for line in lines[start:]), delimiter="\t",
                        quotechar='"', strict=True)
    first = start + 1
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                yield first, cells
            first = start + reader.line_num + 1
    except csv.Error as e:
        raise AmaImportError(src.name, start + reader.line_num,
                             f"malformed line: {e} (quoted fields are \"text\", with \"\" "
                             "for a quote inside)") from e


def _tsv_header(src: Source, lines: list[str], columns: tuple[str, ...]) -> tuple[int, list[str]]:
    """The index and normalised cells of the header row (the first naming every column)."""
    for i, line in enumerate(lines):
        cells = [c.strip().strip('"').strip().lower().replace(" ", "_") for c in line.split("\t")]
        if all(c in cells for c in columns):
            return i, cells
    raise AmaImportError(src.name, None, f"no header row with the columns {', '.join(columns)}")


def _read_consumer(src: Source, release: CptRelease) -> None:
    """ConsumerDescriptor.txt: one `consumer` designation per code."""
    seen = _Seen(src, "code")
    for line_no, row in _tsv(src, ("concept_id", "cpt_code", "consumer_descriptor")):
        code, text = row["cpt_code"], row["consumer_descriptor"]
        _check_code(src, line_no, code)
        seen.add(code, line_no)
        if not text:
            raise AmaImportError(src.name, line_no, f"code {code!r} has an empty descriptor")
        _known(src, line_no, code, release).designations.append(("consumer", text))


def _read_clinician(src: Source, release: CptRelease) -> None:
    """ClinicianDescriptor.txt: `clinician` designations, several per code, in file order."""
    columns = ("concept_id", "cpt_code", "clinician_descriptor_id", "clinician_descriptor")
    seen = _Seen(src, "clinician_descriptor_id")
    for line_no, row in _tsv(src, columns):
        code, text = row["cpt_code"], row["clinician_descriptor"]
        _check_code(src, line_no, code)
        seen.add(row["clinician_descriptor_id"], line_no)
        if not text:
            raise AmaImportError(src.name, line_no, f"code {code!r} has an empty descriptor")
        _known(src, line_no, code, release).designations.append(("clinician", text))


# --- properties --------------------------------------------------------------------------


def _read_appendix_p(src: Source, release: CptRelease) -> None:
    """Appendix P: every code named in the text is usable with modifier 95 (telemedicine)."""
    for line_no, line in _records(read_lines(src), _starts_with(_APPENDIX_RECORD)):
        for code in _CODE_IN_TEXT.findall(line):
            _known(src, line_no, code, release).properties["telemedicine"] = ["true"]


def _mark_orthopox(release: CptRelease) -> None:
    """`orthopox` = 'true' on the orthopoxvirus codes of the release."""
    for code in sorted(ORTHOPOX_CODES):
        if (concept := release.concepts.get(code)) is not None:
            concept.properties["orthopox"] = ["true"]


def _add_facets(release: CptRelease) -> None:
    """The project's imaging facets on radiology codes (terminology.cpt.facets)."""
    for concept in release.concepts.values():
        for name, value in derive_facets(concept.code, concept.display).items():
            concept.properties[name] = [value]


# --- MODUL.txt ---------------------------------------------------------------------------


def _read_modifiers(src: Source, report: ImportReport) -> None:
    """MODUL.txt (Appendix A, terminology.cpt.ama_modul): modifiers with display and kinds."""
    content = read_modul(src.name, read_lines(src))
    report.modul_read = True
    report.introduction_lines = content.introduction_lines
    for code, displays in content.displays.items():
        kinds = content.kinds(code)
        report.release.concepts[code] = CptConcept(
            code=code, modifier=True, display=displays[kinds[0]], properties={"kind": kinds})
