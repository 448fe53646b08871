"""The CPT expression grammar: a base code followed by modifiers, separated by ':'.

"72126:26" is CT of the cervical spine with contrast, professional component only;
"72125:26:59" adds the distinct-procedural-service modifier. The HL7 CPT page
(terminology.hl7.org/CPT.html) defines the form; the validity rules below are the ones
tx.fhir.org applies (its CPT provider), restated here over the release model:

* every part exists: the base code and each modifier;
* the base code is not a modifier, and each modifier is a modifier;
* cat-2 modifiers only on cat-2 codes; 50 and 51 never on cat-2 codes;
* physical-status modifiers (P1..P6) only on anaesthesia codes 00100-01999;
* an HCPCS (Level II) modifier only together with 59;
* 63 only on 20100-69990 and a listed set of cardiac codes; 92 only on 86701-86703, 87389;
* 95 only on codes designated for telemedicine (Appendix P);
* at most one modifier from each of {25, 57, 59}, {52, 53, 73, 74}, {76, 77, 78, 79},
  {93, 95}.

Every rule that fails is reported, in tx.fhir.org's order and wording, joined with ", ".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from terminology.cpt.release import CptConcept

SEPARATOR = ":"
WRONG_SEPARATORS = ("-", ".")

EXCLUSIVE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("25", "57", "59"),
    ("52", "53", "73", "74"),
    ("76", "77", "78", "79"),
    ("93", "95"),
)

# Modifier 63 (procedure on infants under 4 kg): surgery 20100-69990 plus these codes
# (CPT Appendix F lists the exemptions; tx.fhir.org's list).
MODIFIER_63_RANGE = ("20100", "69990")
MODIFIER_63_CODES = frozenset({
    "92920", "92928", "92953", "92960", "92986", "92987", "92990", "92997", "92998", "93312",
    "93313", "93314", "93315", "93316", "93317", "93318", "93452", "93505", "93563", "93564",
    "93568", "93569", "93573", "93574", "93575", "93580", "93581", "93582", "93590", "93591",
    "93592", "93593", "93594", "93595", "93596", "93597", "93598", "93615", "93616",
})
# Modifier 92 (alternative laboratory platform testing): HIV testing codes only.
MODIFIER_92_CODES = frozenset({"86701", "86702", "86703", "87389"})
# Physical-status modifiers describe the patient for anaesthesia services only.
ANESTHESIA_RANGE = ("00100", "01999")
PHYSICAL_STATUS_KINDS = frozenset({"physical-status", "physical"})


@dataclass(frozen=True, slots=True)
class CptExpression:
    """A parsed expression: the base code and its modifiers, in the order written."""

    base: CptConcept
    modifiers: tuple[CptConcept, ...]

    @property
    def text(self) -> str:
        """The expression in its canonical form (base:mod:mod)."""
        return SEPARATOR.join([self.base.code, *(m.code for m in self.modifiers)])

    def has_modifier(self, code: str) -> bool:
        """Whether `code` is one of the expression's modifiers."""
        return any(m.code == code for m in self.modifiers)


def is_expression(code: str) -> bool:
    """Whether `code` is written as an expression (base code plus modifiers)."""
    return SEPARATOR in code


def wrong_separator(code: str) -> str | None:
    """The separator character wrongly used in `code` ('-' or '.'), if any."""
    return next((s for s in WRONG_SEPARATORS if s in code), None)


def parse(code: str, concepts: Mapping[str, CptConcept]) -> CptExpression | str:
    """The expression written as `code`, or the message saying why it is not one."""
    bad = wrong_separator(code)
    if bad is not None:
        return (f"The CPT expression '{code}' uses '{bad}' as a separator: modifiers are "
                f"separated from the code and from each other by '{SEPARATOR}' "
                f"(e.g. 72126{SEPARATOR}26)")
    base_code, *modifier_codes = code.split(SEPARATOR)
    base = concepts.get(base_code)
    if base is None:
        return f"Base CPT Code '{base_code}' not found"
    modifiers = []
    for m in modifier_codes:
        found = concepts.get(m)
        if found is None:
            return f"Modifier CPT code '{m}' not found"
        modifiers.append(found)
    return CptExpression(base, tuple(modifiers))


def problems(expression: CptExpression) -> list[str]:
    """Every rule the expression breaks (empty when it is valid)."""
    out: list[str] = []
    if expression.base.modifier:
        out.append(f"The modifier {expression.base.code} cannot be used as the base code "
                   "of an expression")
    for modifier in expression.modifiers:
        out.extend(_modifier_problems(expression, modifier))
    for group in EXCLUSIVE_GROUPS:
        if sum(1 for m in expression.modifiers if m.code in group) > 1:
            out.append(f"There can only be one modifier in the set {', '.join(group)}")
    return out


def validate(code: str, concepts: Mapping[str, CptConcept]) -> CptExpression | str:
    """The valid expression written as `code`, or the message naming the rules it breaks."""
    parsed = parse(code, concepts)
    if isinstance(parsed, str):
        return parsed
    found = problems(parsed)
    return ", ".join(found) if found else parsed


def _kinds(concept: CptConcept) -> list[str]:
    return concept.properties.get("kind", [])


def _in_range(code: str, bounds: tuple[str, str]) -> bool:
    # CPT codes are five characters, so string order is code order within a range
    return len(code) == len(bounds[0]) and bounds[0] <= code <= bounds[1]


def _modifier_problems(exp: CptExpression, modifier: CptConcept) -> list[str]:
    """The rules one modifier breaks in the context of its expression."""
    out: list[str] = []
    base, code = exp.base, modifier.code
    kinds = _kinds(modifier)
    if not modifier.modifier or "code" in kinds:
        out.append(f"The code {code} cannot be used as a modifier")
    if "cat-2" in kinds and "cat-2" not in _kinds(base):
        out.append(f"The modifier {code} is a cat-2 modifier that can only be used with "
                   "cat-2 codes")
    if PHYSICAL_STATUS_KINDS.intersection(kinds) and not _in_range(base.code, ANESTHESIA_RANGE):
        out.append(f"The modifier {code} is a physical status modifier that can only be used "
                   f"with codes in the range {ANESTHESIA_RANGE[0]} - {ANESTHESIA_RANGE[1]}")
    if "hcpcs" in kinds and not exp.has_modifier("59"):
        out.append(f"The modifier {code} is an hcpcs code that can only be used if the "
                   "modifier 59 is also used")
    if code in ("50", "51") and "cat-2" in _kinds(base):
        out.append(f"The modifier {code} cannot be used with cat-2 codes")
    if code == "63" and not (_in_range(base.code, MODIFIER_63_RANGE)
                             or base.code in MODIFIER_63_CODES):
        out.append(f"The modifier {code} cannot be used with the code {base.code}")
    if code == "92" and base.code not in MODIFIER_92_CODES:
        out.append(f"The modifier {code} cannot be used with the code {base.code}")
    if code == "95" and "true" not in base.properties.get("telemedicine", []):
        out.append(f"The modifier {code} cannot be used with the code {base.code} as it is "
                   "not designated for telemedicine")
    return out
