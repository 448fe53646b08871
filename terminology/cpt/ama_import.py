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

MODUL.txt (optional): CPT Appendix A, in this layout (our own; the AMA's file is prose):

    <header block>                     copyright lines, then a blank line
    CPT Modifiers                      section heading, at column 0
    25 Significant, Separately ...: It may be necessary to indicate that on the day
       a procedure ... was performed, ...    continuation lines are indented
    26 Professional Component: ...
    Anesthesia Physical Status Modifiers
    P1 A normal healthy patient
    CPT Level I Modifiers for Ambulatory Surgery Center (ASC) Hospital Outpatient Use
    25 Significant, Separately ...
    Category II Modifiers
    1P Performance Measure Exclusion Modifier due to Medical Reasons ...
    Level II (HCPCS/National) Modifiers
    E1 Upper left, eyelid

    A heading is a column-0 line containing the word "modifiers" (case-insensitive) that
    does not start with a code of the current section; the first matching row classifies it:

        "physical status"       -> physical-status   codes P1..P6
        "category ii"           -> cat-2             codes 1P, 2P, ... (digit + P)
        "level ii" or "hcpcs"   -> hcpcs             two upper-case letters/digits
        "level i"               -> cat-1             two digits
        anything else           -> general           two digits

    A column-0 line starting with a code of the current section, or the code and a colon
    (`P1: A normal healthy patient`, as the AMA's own pipeline writes it), opens a modifier; its
    display is that line's text plus its indented continuation lines, whitespace collapsed
    (the file writes "Title: text"). Lines before the first heading are introduction and
    ignored; blank lines are ignored. A code listed in several sections (typically general
    and cat-1) is one concept with each kind, in the order general, cat-1, physical-status,
    cat-2, hcpcs, and the display of the earliest of those sections.

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
from dataclasses import dataclass, field
from pathlib import Path

from terminology.cpt.facets import derive_facets
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

MODIFIER_KIND_ORDER = ("general", "cat-1", "physical-status", "cat-2", "hcpcs")

_CODE = re.compile(r"[0-9]{4}[0-9AFMTU]")
_CODE_IN_TEXT = re.compile(r"\b[0-9]{4}[0-9AFMTU]\b")
_TAB_RECORD = re.compile(r"\S{1,10}\t")
_FIXED_RECORD = re.compile(r"[0-9]{4}[0-9A-Z] ")
_APPENDIX_RECORD = re.compile(r"\s*[0-9]{4}[0-9A-Z]\b")
_APPENDIX_P_NAME = re.compile(r"appendix[\s_-]*p(?![a-z])")
_HEADING_WORD = re.compile(r"\bmodifiers\b", re.IGNORECASE)
_HEADINGS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"physical status", re.IGNORECASE), "physical-status"),
    (re.compile(r"\bcategory ii\b", re.IGNORECASE), "cat-2"),
    (re.compile(r"\blevel ii\b|hcpcs", re.IGNORECASE), "hcpcs"),
    (re.compile(r"\blevel i\b", re.IGNORECASE), "cat-1"),
    (re.compile(r""), "general"),  # any other heading naming modifiers
)
_MODIFIER_CODES = {
    "general": re.compile(r"[0-9]{2}"),
    "cat-1": re.compile(r"[0-9]{2}"),
    "physical-status": re.compile(r"P[1-6]"),
    "cat-2": re.compile(r"[0-9]P"),
    "hcpcs": re.compile(r"[A-Z0-9]{2}"),
}
_UNDEFINED_IN_CP1252 = "0x81, 0x8D, 0x8F, 0x90, 0x9D"
MAX_ZIP_BYTES = 4 * 1024**3  # uncompressed; a CPT release is a few hundred MB


class AmaImportError(Exception):
    """A problem in the AMA distribution files, with the file and line it was found at."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        super().__init__(file, line, message)
        self.file = file
        self.line = line
        self.message = message

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file} line {self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class _Source:
    """A distribution file: where it is and the name used for it in messages."""

    path: Path
    name: str  # the path relative to the release folder


@dataclass(slots=True)
class _Modifier:
    """A modifier being collected from MODUL.txt."""

    code: str
    displays: dict[str, str] = field(default_factory=dict)  # kind -> display


# --- entry points ------------------------------------------------------------------------


def import_ama_release(source_dir: Path, version: str) -> CptRelease:
    """Read an AMA CPT release (a folder or the release .zip) into a CptRelease."""
    source_dir = Path(source_dir)
    if source_dir.is_file() and zipfile.is_zipfile(source_dir):
        return _import_zip(source_dir, version)
    if not source_dir.is_dir():
        raise AmaImportError(str(source_dir), None, "not a folder or a .zip of the release")
    return _import_folder(source_dir, version, str(source_dir))


def _import_zip(archive: Path, version: str) -> CptRelease:
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


def _import_folder(source_dir: Path, version: str, label: str) -> CptRelease:
    """Read a release folder (`label` names it in messages)."""
    if not version.strip():
        raise AmaImportError(label, None, "the CPT version is empty")
    files = _FileIndex(source_dir, label)
    release = CptRelease(version=version.strip())
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
        _read_modifiers(src, release)
    return release


def import_to_db(source_dir: Path, version: str, out: Path) -> CptRelease:
    """Import a release folder and write it to the SQLite file `out`, atomically."""
    release = import_ama_release(source_dir, version)
    out = Path(out)
    try:
        write_cpt_db(release, out)
    except (OSError, sqlite3.Error) as e:
        raise AmaImportError(str(out), None, f"cannot write the CPT database: {e}") from e
    return release


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

    def _source(self, name: str, paths: list[Path]) -> _Source:
        """The one file among `paths`; an error naming them all when there are several."""
        if len(paths) > 1:
            listed = ", ".join(self._relative(p) for p in paths)
            raise AmaImportError(name, None, f"found more than once: {listed}")
        return _Source(paths[0], self._relative(paths[0]))

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def optional(self, name: str) -> _Source | None:
        """The file called `name` (any case, any folder), or None."""
        paths = self.by_name.get(name.lower())
        return self._source(name, paths) if paths else None

    def required(self, name: str) -> _Source:
        """The file called `name`; an error when the release does not have it."""
        src = self.optional(name)
        if src is None:
            raise AmaImportError(name, None, f"required file not found in {self.label}")
        return src

    def appendix_p(self) -> _Source | None:
        """The Appendix P list: AppendixP.txt or a .txt whose name contains 'Appendix P'."""
        paths = [p for name, ps in self.by_name.items() for p in ps
                 if name.endswith(".txt") and _APPENDIX_P_NAME.search(name)]
        return self._source("Appendix P", sorted(paths)) if paths else None


def _read_lines(src: _Source) -> list[str]:
    """The file's lines: UTF-8 (BOM dropped), else cp1252; an error when neither decodes."""
    data = src.path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise AmaImportError(
                src.name, line,
                f"byte 0x{data[e.start]:02X} is neither UTF-8 nor cp1252 (cp1252 leaves "
                f"{_UNDEFINED_IN_CP1252} undefined): unreadable encoding") from e
    return [line.rstrip("\r") for line in text.split("\n")]


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


def _check_code(src: _Source, line: int, code: str) -> None:
    """An error unless `code` is a five-character CPT code."""
    if len(code) != 5:
        raise AmaImportError(src.name, line, f"code {code!r} is not five characters")
    if not _CODE.fullmatch(code):
        raise AmaImportError(src.name, line, f"code {code!r} is not a CPT code (four digits "
                             "then a digit or one of A, F, M, T, U)")


def _known(src: _Source, line: int, code: str, release: CptRelease) -> CptConcept:
    """The concept read from LONGULT.txt for `code`; an error when there is none."""
    concept = release.concepts.get(code)
    if concept is None:
        raise AmaImportError(src.name, line, f"code {code!r} is not in {LONG}")
    return concept


class _Seen:
    """Keys already read from one file, to report duplicates with the first line."""

    def __init__(self, src: _Source, what: str) -> None:
        self.src = src
        self.what = what
        self.lines: dict[str, int] = {}

    def add(self, key: str, line: int) -> None:
        first = self.lines.setdefault(key, line)
        if first != line:
            raise AmaImportError(self.src.name, line,
                                 f"duplicate {self.what} {key!r} (first on line {first})")


# --- descriptor files --------------------------------------------------------------------


def _tab_record(src: _Source, line_no: int, line: str) -> tuple[str, str]:
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


def _fixed_record(src: _Source, line_no: int, line: str) -> tuple[str, str]:
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


def _read_long(src: _Source, release: CptRelease) -> None:
    """LONGULT.txt: every code, its display and its kind."""
    seen = _Seen(src, "code")
    for line_no, line in _records(_read_lines(src), _starts_with(_TAB_RECORD)):
        code, text = _tab_record(src, line_no, line)
        seen.add(code, line_no)
        kind = KIND_BY_LAST_CHARACTER.get(code[-1], "code")
        release.concepts[code] = CptConcept(code=code, modifier=False, display=text,
                                            properties={"kind": [kind]})
    if not release.concepts:
        raise AmaImportError(src.name, None, "no codes: expected a header block, a blank line, "
                             "then code<TAB>descriptor lines")


def _read_descriptors(src: _Source, dtype: str, release: CptRelease) -> None:
    """LONGUT/MEDU/SHORTU.txt: one designation of type `dtype` per code."""
    tabbed = dtype == "upper"
    pattern = _TAB_RECORD if tabbed else _FIXED_RECORD
    parse = _tab_record if tabbed else _fixed_record
    seen = _Seen(src, "code")
    for line_no, line in _records(_read_lines(src), _starts_with(pattern)):
        code, text = parse(src, line_no, line)
        seen.add(code, line_no)
        _known(src, line_no, code, release).designations.append((dtype, text))


def _tsv(src: _Source, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: value}) for each row after the header row naming `columns`."""
    lines = _read_lines(src)
    header_at, header = _tsv_header(src, lines, columns)
    for line_no, cells in _tsv_rows(src, lines, header_at + 1):
        while len(cells) > len(header) and not cells[-1].strip():
            cells.pop()  # spreadsheets pad rows with empty trailing fields
        if len(cells) != len(header):
            raise AmaImportError(src.name, line_no, f"malformed line: {len(cells)} "
                                 f"tab-separated fields where the header row has {len(header)}")
        row = dict(zip(header, (" ".join(c.split()) for c in cells), strict=True))
        yield line_no, {c: row[c] for c in columns}


def _tsv_rows(src: _Source, lines: list[str], start: int) -> Iterator[tuple[int, list[str]]]:
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


def _tsv_header(src: _Source, lines: list[str], columns: tuple[str, ...]) -> tuple[int, list[str]]:
    """The index and normalised cells of the header row (the first naming every column)."""
    for i, line in enumerate(lines):
        cells = [c.strip().strip('"').strip().lower().replace(" ", "_") for c in line.split("\t")]
        if all(c in cells for c in columns):
            return i, cells
    raise AmaImportError(src.name, None, f"no header row with the columns {', '.join(columns)}")


def _read_consumer(src: _Source, release: CptRelease) -> None:
    """ConsumerDescriptor.txt: one `consumer` designation per code."""
    seen = _Seen(src, "code")
    for line_no, row in _tsv(src, ("concept_id", "cpt_code", "consumer_descriptor")):
        code, text = row["cpt_code"], row["consumer_descriptor"]
        _check_code(src, line_no, code)
        seen.add(code, line_no)
        if not text:
            raise AmaImportError(src.name, line_no, f"code {code!r} has an empty descriptor")
        _known(src, line_no, code, release).designations.append(("consumer", text))


def _read_clinician(src: _Source, release: CptRelease) -> None:
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


def _read_appendix_p(src: _Source, release: CptRelease) -> None:
    """Appendix P: every code named in the text is usable with modifier 95 (telemedicine)."""
    for line_no, line in _records(_read_lines(src), _starts_with(_APPENDIX_RECORD)):
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


def _heading_kind(line: str) -> str | None:
    """The section kind a heading line opens, or None when the line is not a heading."""
    if line[:1].isspace() or not _HEADING_WORD.search(line):
        return None
    return next(kind for pattern, kind in _HEADINGS if pattern.search(line))


def _read_modifiers(src: _Source, release: CptRelease) -> None:
    """MODUL.txt (Appendix A): modifiers with their display and kinds."""
    parser = _ModifierParser(src)
    for line_no, line in _records(_read_lines(src), lambda s: _heading_kind(s) is not None):
        parser.feed(line_no, line)
    parser.close()
    if not parser.modifiers:
        raise AmaImportError(src.name, None, "no modifiers found (see the layout in "
                             "terminology/cpt/ama_import.py)")
    for modifier in parser.modifiers.values():
        release.concepts[modifier.code] = _modifier_concept(modifier)


class _ModifierParser:
    """Reads MODUL.txt line by line: headings, modifier lines, continuation lines."""

    def __init__(self, src: _Source) -> None:
        self.src = src
        self.modifiers: dict[str, _Modifier] = {}
        self.section: str | None = None  # the kind of the current section
        self.current: _Modifier | None = None  # the modifier whose lines are being read
        self.parts: list[str] = []

    def feed(self, line_no: int, line: str) -> None:
        """Take one non-blank line."""
        if line[:1].isspace():
            self._continue(line_no, line)
            return
        token, *more = line.split(maxsplit=1)
        rest = more[0] if more else ""
        if token.endswith(":") and self.section is not None and (
                _MODIFIER_CODES[self.section].fullmatch(token[:-1])):
            token = token[:-1]  # `P1: A normal healthy patient`
        if self.section is not None and _MODIFIER_CODES[self.section].fullmatch(token):
            self.close()
            self.current = _open_modifier(self.src, line_no, token, self.section, rest,
                                          self.modifiers)
            self.parts = [rest]
        elif (heading := _heading_kind(line)) is not None:
            self.close()
            self.section = heading
        elif self.section is not None:
            raise AmaImportError(self.src.name, line_no, f"expected a {self.section} modifier "
                                 f"code or a section heading, found {token!r} (continuation "
                                 "lines are indented)")
        # else: introduction before the first heading

    def _continue(self, line_no: int, line: str) -> None:
        """An indented line: more text of the current modifier."""
        if self.current is not None:
            self.parts.append(line)
        elif self.section is not None:
            raise AmaImportError(self.src.name, line_no, "indented continuation line without "
                                 "a modifier line before it")

    def close(self) -> None:
        """Finish the modifier being read: its display is its text, whitespace collapsed."""
        if self.current is not None and self.section is not None:
            self.current.displays[self.section] = " ".join(" ".join(self.parts).split())
        self.current, self.parts = None, []


def _open_modifier(src: _Source, line_no: int, code: str, kind: str, rest: str,
                   modifiers: dict[str, _Modifier]) -> _Modifier:
    """The modifier a code line opens, checking it is new to its section."""
    if not rest.strip():
        raise AmaImportError(src.name, line_no, f"modifier {code!r} has no description")
    modifier = modifiers.setdefault(code, _Modifier(code))
    if kind in modifier.displays:
        raise AmaImportError(src.name, line_no, f"duplicate modifier {code!r} in the {kind} "
                             "section")
    modifier.displays[kind] = ""  # filled in when its last line has been read
    return modifier


def _modifier_concept(modifier: _Modifier) -> CptConcept:
    """The concept of a modifier: kinds in canonical order, display from the first of them."""
    kinds = [k for k in MODIFIER_KIND_ORDER if k in modifier.displays]
    return CptConcept(code=modifier.code, modifier=True, display=modifier.displays[kinds[0]],
                      properties={"kind": kinds})
