"""The displays a concept may carry, and the display checks $validate-code makes against them.

The rules, as tx.fhir.org's engine applies them (FHIR R4 "Display, Designations and
Languages"; tests/unit/test_display_language_matrix.py checks every combination):

1. Candidates. A concept's valid displays are its `display`, whose language is the code
   system's `language` (a code system with no declared language gives it no language), its
   designations with a display use (none, `preferredForLanguage`, SNOMED preferred term),
   the designations of supplements in use, and what a value set's `compose.include.concept`
   adds. Inactive designations (withdrawn, retired, ...) are known but no longer correct.
2. Requested languages: `displayLanguage`, else the value set's own displayLanguage
   expansion parameter, else `Accept-Language`, else the value set's `language`. Each is a
   list of tags with optional quality values: q=0 drops a tag, the rest go best first
   (equal q keep their order). The list is echoed as sent in messages ("--" when none).
3. Matching. A candidate suits the request when nothing was requested, when the candidate
   has no language, or when its primary language subtag equals that of a requested tag
   (`en` suits `en-AU`; `*` suits all).
4. A given display is right when it equals a suitable candidate ignoring case. Otherwise:
   - some suitable candidate exists: "Wrong Display Name 'X' for system#code. Valid display
     is 'A' (en)" or "... is one of N choices: 'A' (en) or 'B' (de)", listing the suitable
     candidates (every candidate when none suits), each labelled with its language, a
     candidate with no language unlabelled; then "(for the language(s) 'REQUEST')". An
     error (so result=false), a warning with lenient-display-validation. When only
     whitespace differs the message says so ("Wrong whitespace in Display Name").
   - no suitable candidate (the concept has nothing in the requested languages): if X is
     a candidate in the code system's own language (ignoring case; any candidate when the
     code system declares none), an information issue NO_VALID_DISPLAY_FOUND_NONE_FOR_LANG_OK
     ("... which is a valid display for the default language") and result stays true;
     otherwise NO_VALID_DISPLAY_FOUND_NONE_FOR_LANG_ERR, an error (a warning when lenient).
   - a concept with no display at all: NO_VALID_DISPLAY_AT_ALL, a warning.
5. The `display` returned is the first display (full tag, then language-region, then
   language match) in the first requested language that has one; else the candidate with
   no language; else (nothing requested, or nothing in the requested languages) the first
   active display: tx.fhir.org returns a display even then (the shared case
   validation-simple-code-good-language-none shows it).
6. A code valid in its code system but not in the value set is checked the same way, except
   that a display in the code system's own language is then right whatever was requested.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from terminology.providers.base import CodeSystemProvider, Concept
from terminology.valuesets.languages import parse_languages

DISPLAY_USES = (
    ("http://terminology.hl7.org/CodeSystem/hl7TermMaintInfra", "preferredForLanguage"),
    ("http://snomed.info/sct", "900000000000548007"),
)
_WS = re.compile(r"\s+")
INACTIVE_DESIGNATION_STATUSES = frozenset({"withdrawn", "inactive", "retired", "deprecated"})


@dataclass(slots=True)
class Display:
    """One candidate display: value, language (None: unstated), whether it is a display use."""

    value: str
    language: str | None
    is_display: bool = True
    status: str = "active"

    @property
    def active(self) -> bool:
        """Inactive designations (a retired old display) no longer count as correct."""
        return self.status not in INACTIVE_DESIGNATION_STATUSES


def _lang_matches(wanted: str, have: str, depth: str) -> bool:
    """Language tag match at `depth`: 'full' (whole tag), 'region' (lang-region), 'lang'."""
    if wanted == "*":
        return True
    w, h = wanted.lower().split("-"), have.lower().split("-")
    if depth == "full":
        return w == h
    if depth == "region":
        return w[:2] == h[:2]
    return w[0] == h[0]


@dataclass
class DisplayList:
    """The displays of one concept, with tx.fhir.org's matching rules."""

    def_lang: str | None = None
    items: list[Display] = field(default_factory=list)

    def add_concept(self, provider: CodeSystemProvider, concept: Concept,
                    supplements: list[dict[str, Any]] | None = None) -> None:
        """The concept's display (in the code system's language), its designations and the
        designations supplements give it."""
        lang = provider.language  # a code system with no language gives its displays none
        if self.def_lang is None:
            self.def_lang = lang
        if concept.display:
            self.items.append(Display(concept.display.strip(), lang))
        statuses: dict[tuple[str, str], str] = getattr(provider, "designation_status", {})
        for d in concept.designations:
            use = d.use or {}
            is_display = not d.use or (use.get("system"), use.get("code")) in DISPLAY_USES
            status = statuses.get((concept.code, d.value), "active")
            self.items.append(Display(d.value.strip(), d.language, is_display, status))
        for supplement in supplements or []:
            self._add_supplement(supplement, concept.code)

    def _add_supplement(self, supplement: dict[str, Any], code: str) -> None:
        stack = list(supplement.get("concept", []))
        while stack:
            raw = stack.pop()
            if raw.get("code") == code:
                for d in raw.get("designation", []):
                    if d.get("value"):
                        use = d.get("use") or {}
                        is_display = not use or (use.get("system"), use.get("code")) in DISPLAY_USES
                        self.items.append(Display(str(d["value"]).strip(), d.get("language"), is_display))
                return
            stack.extend(raw.get("concept", []))

    def add_include_concept(self, raw: dict[str, Any], vs_language: str | None) -> None:
        """Displays a value set's compose concept adds (its display and designations)."""
        if raw.get("display"):
            self.items.append(Display(str(raw["display"]).strip(), vs_language or self.def_lang))
        for d in raw.get("designation", []):
            if d.get("value"):
                self.items.append(Display(str(d["value"]).strip(), d.get("language"), not d.get("use")))

    def _langs_match(self, langs: list[str], stated: str | None, depth: str,
                     use_default: bool = False) -> bool:
        # A display in the code system's own language is acceptable whatever was asked for
        # (only where the caller says so: the not-in-value-set path of tx.fhir.org).
        if use_default and self.def_lang and stated and _lang_matches(self.def_lang, stated, "full"):
            return True
        if not stated or not langs:
            return True
        return any(_lang_matches(w, stated, depth) for w in langs)

    def has_display(self, langs: list[str], value: str, active_only: bool = False,
                    use_default: bool = False) -> tuple[bool, str]:
        """(found, difference): found case-insensitively; else 'normalized' when only whitespace differs."""
        low = value.lower()
        candidates = [d for d in self.items if self._langs_match(langs, d.language, "lang", use_default)
                      and (not active_only or d.active) and d.value]
        if any(d.value.lower() == low for d in candidates):
            return True, "none"
        norm = _WS.sub(" ", value).strip().lower()
        if any(_WS.sub(" ", d.value).strip().lower() == norm for d in candidates):
            return False, "normalized"
        return False, "none"

    def display_count(self, langs: list[str], display_only: bool = True) -> int:
        """How many displays suit the languages (full match, then region, then language)."""
        for depth in ("full", "region", "lang"):
            n = sum(1 for d in self.items if (not display_only or d.is_display) and d.value
                    and self._langs_match(langs, d.language, depth))
            if n:
                return n
        return 0

    def present(self, langs: list[str]) -> str:
        """The acceptable displays as a message lists them: "'a' (en) or 'b' (de)"."""
        chosen = [d for d in self.items if d.is_display and d.value
                  and self._langs_match_no_default(langs, d.language)]
        if not chosen:
            chosen = [d for d in self.items if d.is_display and d.value]
        parts = [f"'{d.value}' ({d.language})" if d.language else f"'{d.value}'" for d in chosen]
        return join_with_or(parts)

    def _langs_match_no_default(self, langs: list[str], stated: str | None) -> bool:
        if not stated or not langs:
            return True
        return any(_lang_matches(w, stated, "lang") for w in langs)

    def preferred(self, langs: list[str]) -> str | None:
        """The display to return: the first display in the first requested language that has one."""
        if not self.items:
            return None
        if not langs:
            for d in self.items:
                if d.is_display and d.active:
                    return d.value
            return self.items[0].value
        for wanted in langs:
            for depth in ("full", "region", "lang"):
                for d in self.items:
                    lang = d.language or self.def_lang
                    if lang and _lang_matches(wanted, lang, depth) and d.is_display:
                        return d.value
        for d in self.items:
            if d.language is None and d.is_display:
                return d.value
        return None

    def allowed_displays(self) -> list[str]:
        """Distinct active display values (for the inactive-display message)."""
        out: list[str] = []
        for d in self.items:
            if d.active and d.is_display and d.value and d.value not in out:
                out.append(d.value)
        return out

    def status_of(self, value: str) -> str:
        """The status of the designation with this exact value."""
        for d in self.items:
            if d.value == value:
                return d.status
        return ""


def join_with_or(items: list[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} or {items[1]}"
    return ", ".join(items[:-1]) + " or " + items[-1]


def working_languages(raw: str | None) -> list[str]:
    """Language tags from a displayLanguage / Accept-Language value, best first."""
    return parse_languages(raw)
