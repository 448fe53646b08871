"""MODUL.txt (CPT Appendix A): the modifiers, read the way the AMA lays the file out.

The AMA's file is a title and prose with the modifier lists in it. The first list, the
general modifiers, has no heading of its own: it follows the introduction directly.

    Appendix A                                 title and introduction, in prose
    This list includes all of the modifiers applicable to CPT codes.

    22 Increased Procedural Services: When the work required to provide a service is
    substantially greater than typically required, it may be identified by adding ...
                                               general modifiers: one paragraph each,
    26 Professional Component: Certain ...     text wrapped or on one long line
    Anesthesia Physical Status                 a heading, then its introduction
    All anesthesia services are reported by use of the anesthesia five-digit codes ...
    P1: A normal healthy patient               one line each
    CPT Level I Modifiers                      then the cat-1 (hospital outpatient),
    Category II Modifiers                      cat-2 and
    Level II (HCPCS/National) Modifiers        hcpcs lists
    E1 Upper left, eyelid

The layout with a heading before every list, continuation lines indented and no blank lines
between modifiers (`CPT Modifiers` / `25 text` / `   more text`) is read by the same rules:

* Sections. Modifiers before the first heading are the general list. A heading is a line
  at column 0 of at most 14 words in title case (every word of four letters or more
  capitalised), with no sentence end in it, naming "modifiers" or "physical status", that
  starts a paragraph or follows a modifier's line. Its kind is
  the first that applies: "physical status" physical-status; "category ii" cat-2;
  "level ii" or "hcpcs" hcpcs; "level i", "ambulatory surgery", "asc" or "hospital
  outpatient" cat-1; any other general.
* Modifiers. A column-0 line `CODE text` or `CODE: text` whose code has the form of the
  section's kind (general and cat-1 two digits, physical-status P1 to P6, cat-2 a digit
  and P, hcpcs two capital letters or digits) opens a modifier; in the physical-status
  section `... P1: text` does too. A line that starts a paragraph (or follows a modifier
  line) and looks like a modifier of another form (`1P text` among the general modifiers)
  stops the import, naming file and line; so do a modifier without text, a code listed
  twice in one section, and a modifier line inside another's unindented text without a
  blank line before it (it could be either).
* Text. A modifier's text is its line's text and every line after it up to the next
  modifier or heading, indented or not, over blank lines (a note paragraph belongs to the
  modifier above it), whitespace collapsed.
* Introduction. The lines of a section before its first modifier are introduction: counted
  in the import report, never dropped silently.

A code listed in several sections (typically general and cat-1) is one concept with each
kind, in the order of KIND_ORDER, and the display of the earliest of those sections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from terminology.cpt.ama_files import AmaImportError

KIND_ORDER = ("general", "cat-1", "physical-status", "cat-2", "hcpcs")
CODE_FORMS = {
    "general": re.compile(r"[0-9]{2}"),
    "cat-1": re.compile(r"[0-9]{2}"),
    "physical-status": re.compile(r"P[1-6]"),
    "cat-2": re.compile(r"[0-9]P"),
    "hcpcs": re.compile(r"[A-Z0-9]{2}"),
}
FORM_NAMES = {"general": "two digits", "cat-1": "two digits", "physical-status": "P1 to P6",
              "cat-2": "a digit and P", "hcpcs": "two capital letters or digits"}
MAX_HEADING_WORDS = 14

_ENTRY = re.compile(r"(?P<code>[0-9A-Z]{2})(?::|(?=\s)|$)\s*(?P<text>.*)$")
_PHYSICAL_ENTRY = re.compile(r"\S.*?\s(?P<code>P[0-9]):\s*(?P<text>.*)$")
_HEADING_WORDS = re.compile(r"\bmodifiers\b|\bphysical status\b", re.IGNORECASE)
_HEADINGS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"physical status", re.IGNORECASE), "physical-status"),
    (re.compile(r"\bcategory ii\b", re.IGNORECASE), "cat-2"),
    (re.compile(r"\blevel ii\b|hcpcs", re.IGNORECASE), "hcpcs"),
    (re.compile(r"\blevel i\b|ambulatory surgery|\basc\b|hospital outpatient", re.IGNORECASE),
     "cat-1"),
    (re.compile(r""), "general"),
)


@dataclass(slots=True)
class ModulContent:
    """What MODUL.txt holds: each modifier's display by kind, and what else was read."""

    displays: dict[str, dict[str, str]] = field(default_factory=dict)  # code -> kind -> text
    introduction_lines: int = 0  # lines of prose before the first modifier of a section
    headings: list[str] = field(default_factory=list)  # the kinds of the headings, in order

    def kinds(self, code: str) -> list[str]:
        """The kinds of a modifier, in KIND_ORDER."""
        return [k for k in KIND_ORDER if k in self.displays[code]]


def heading_kind(line: str) -> str | None:
    """The section kind a heading line opens, or None when the line is not a heading."""
    text = line.strip()
    if (line[:1].isspace() or not text or text[-1] in ".,;:" or ". " in text
            or not _HEADING_WORDS.search(text) or len(text.split()) > MAX_HEADING_WORDS
            or not _title_case(text)):
        return None
    return next(kind for pattern, kind in _HEADINGS if pattern.search(text))


def _title_case(text: str) -> bool:
    """Whether every word of four letters or more starts with a capital (a heading, not a
    line of prose that mentions modifiers)."""
    words = (w.strip("()[]/,-") for w in text.replace("/", " ").split())
    return all(w[:1].isupper() for w in words if len(w) >= 4 and w.isalpha())


def read_modul(name: str, lines: list[str]) -> ModulContent:
    """The modifiers of MODUL.txt's lines (`name` names the file in errors)."""
    parser = _ModulParser(name)
    for number, line in enumerate(lines, start=1):
        parser.feed(number, line)
    parser.close()
    if not parser.content.displays:
        raise AmaImportError(name, None, "no modifiers found (see the layout in "
                             "terminology/cpt/ama_modul.py)")
    return parser.content


class _ModulParser:
    """Reads MODUL.txt line by line: headings, modifier lines, their text, introductions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.content = ModulContent()
        self.section = "general"  # modifiers before the first heading are the general list
        self.current: str | None = None  # the code whose text is being read
        self.parts: list[str] = []
        self.entry_position = True  # a paragraph start, or right after a modifier's line

    def feed(self, number: int, line: str) -> None:
        """Take one line."""
        if not line.strip():
            self.entry_position = True
            return
        entry_position, self.entry_position = self.entry_position, False
        if line[:1].isspace():
            self._text(line)
            self.entry_position = self.current is not None  # the indented layout
            return
        entry = self._entry(line)
        if entry is not None and CODE_FORMS[self.section].fullmatch(entry[0]):
            if not entry_position and self.current is not None:
                raise AmaImportError(self.name, number, (
                    f"ambiguous line: it looks like modifier {entry[0]!r} but continues the "
                    f"text of modifier {self.current!r} (separate modifiers by a blank line, "
                    "or indent continuation lines)"))
            self._open(number, *entry)
            self.entry_position = True
        elif entry_position and (kind := heading_kind(line)) is not None:
            self.close()
            self.section = kind
            self.content.headings.append(kind)
            self.entry_position = True
        elif entry_position and entry is not None:
            raise AmaImportError(self.name, number, (
                f"expected a {self.section} modifier code ({FORM_NAMES[self.section]}) or a "
                f"section heading, found {entry[0]!r}: the line looks like a modifier of "
                "another kind"))
        else:
            self._text(line)

    def _entry(self, line: str) -> tuple[str, str] | None:
        """(code, text) when the line has the shape of a modifier line."""
        found = _ENTRY.match(line)
        if found is None and self.section == "physical-status":
            found = _PHYSICAL_ENTRY.match(line)
        return None if found is None else (found["code"], found["text"])

    def _open(self, number: int, code: str, text: str) -> None:
        """A modifier line: the previous modifier is complete, this one starts."""
        self.close()
        if not text.strip():
            raise AmaImportError(self.name, number, f"modifier {code!r} has no description")
        displays = self.content.displays.setdefault(code, {})
        if self.section in displays:
            raise AmaImportError(self.name, number, f"duplicate modifier {code!r} in the "
                                 f"{self.section} section")
        displays[self.section] = ""  # filled in when its last line has been read
        self.current, self.parts = code, [text]

    def _text(self, line: str) -> None:
        """More text: of the current modifier, or the introduction of the section."""
        if self.current is None:
            self.content.introduction_lines += 1
        else:
            self.parts.append(line)

    def close(self) -> None:
        """Finish the modifier being read: its display is its text, whitespace collapsed."""
        if self.current is not None:
            self.content.displays[self.current][self.section] = " ".join(
                " ".join(self.parts).split())
        self.current, self.parts = None, []
