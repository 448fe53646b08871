"""What an import of the AMA's CPT files found, and what every CPT release has that it lacks.

`terminology import-cpt` prints the report after every import: codes by kind, modifiers by
kind, designations by type, Appendix P codes and MODUL.txt's introduction lines, then the
warnings. `--strict` makes the warnings errors (nothing is written).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from terminology.cpt.release import CptRelease

CODE_KINDS = (("code", "Category I"), ("cat-2", "Category II"), ("cat-3", "Category III"),
              ("pla", "PLA"))
MODIFIER_KINDS = ("general", "cat-1", "physical-status", "cat-2", "hcpcs")
DESIGNATION_TYPES = ("upper", "med", "short", "consumer", "clinician")
# Modifiers every CPT release lists: 26 (professional component) and 59 (distinct
# procedural service) in the general list, LT and RT among the Level II (HCPCS) modifiers.
ESSENTIAL_MODIFIERS = ("26", "59", "LT", "RT")


@dataclass(slots=True)
class ImportReport:
    """The release imported, with what the import read besides its concepts."""

    release: CptRelease
    modul_read: bool = False  # whether the release has a MODUL.txt
    introduction_lines: int = 0  # MODUL.txt prose before the first modifier of a section

    def codes_by_kind(self) -> Counter[str]:
        """Codes (not modifiers) by kind: code (Category I), cat-2, cat-3, pla."""
        return Counter(k for c in self.release.concepts.values() if not c.modifier
                       for k in c.properties.get("kind", ["code"])[:1])

    def modifiers_by_kind(self) -> Counter[str]:
        """Modifiers by kind; a modifier of two kinds counts in each."""
        return Counter(k for c in self.release.concepts.values() if c.modifier
                       for k in c.properties.get("kind", []))

    def designations_by_type(self) -> Counter[str]:
        """Designations by type; `display` is the long descriptor every concept has."""
        out: Counter[str] = Counter()
        for c in self.release.concepts.values():
            out["display"] += 1
            out.update(t for t, _ in c.designations)
        return out

    def appendix_p_codes(self) -> int:
        """Codes Appendix P marks usable with modifier 95."""
        return sum(1 for c in self.release.concepts.values()
                   if c.properties.get("telemedicine") == ["true"])

    def warnings(self) -> list[str]:
        """What every CPT release has and this one lacks."""
        if not self.modul_read:
            return ["no MODUL.txt: the release has no modifiers (every CPT release lists "
                    "them in Appendix A)"]
        out = []
        if not self.modifiers_by_kind()["general"]:
            out.append("MODUL.txt: no general modifiers (the list at the start of Appendix A, "
                       "22 to 99)")
        missing = [m for m in ESSENTIAL_MODIFIERS
                   if not (c := self.release.concepts.get(m)) or not c.modifier]
        if missing:
            out.append(f"MODUL.txt: no modifier {', '.join(missing)} (every CPT release lists "
                       f"{', '.join(ESSENTIAL_MODIFIERS)})")
        return out

    def lines(self) -> list[str]:
        """The report as printed by `terminology import-cpt`."""
        codes, modifiers = self.codes_by_kind(), self.modifiers_by_kind()
        designations = self.designations_by_type()
        total_modifiers = sum(1 for c in self.release.concepts.values() if c.modifier)
        out = [f"CPT {self.release.version}: {len(self.release.concepts)} concepts",
               f"  codes: {sum(codes.values())} ("
               + ", ".join(f"{label} {codes[k]}" for k, label in CODE_KINDS) + ")",
               f"  modifiers: {total_modifiers} ("
               + ", ".join(f"{k} {modifiers[k]}" for k in MODIFIER_KINDS) + ")",
               "  designations: " + ", ".join(
                   f"{t} {designations[t]}" for t in ("display", *DESIGNATION_TYPES)),
               f"  Appendix P (telemedicine) codes: {self.appendix_p_codes()}"]
        if self.modul_read:
            out.append(f"  MODUL.txt introduction lines (not modifiers): "
                       f"{self.introduction_lines}")
        out += [f"warning: {w}" for w in self.warnings()]
        return out
