"""The CPT expression grammar: a base code followed by modifiers, separated by ':'.

"72126:26" is CT of the cervical spine with contrast, professional component only;
"72125:26:59" adds the distinct-procedural-service modifier. The HL7 CPT page
(terminology.hl7.org/CPT.html) defines the form. Which expressions are valid is decided by
one of two rule sets (setting `cpt_rules`, env TX_CPT_RULES):

`cpt` (the default): rules that follow CPT and CMS guidance, so routine imaging orders such
as 73721:RT (MRI of the right knee) are valid:

* every part exists: the base code and each modifier;
* the base code is not a modifier, and each modifier is a modifier;
* cat-2 modifiers only on cat-2 codes; 50 and 51 never on cat-2 codes;
* physical-status modifiers (P1..P6) only on anaesthesia codes 00100-01999;
* 63 only on 20100-69990 and a listed set of cardiac codes; 92 only on 86701-86703, 87389;
* 95 only on codes designated for telemedicine (Appendix P);
* LT and RT not together; 50 not with LT or RT; 59 not with XE, XP, XS or XU;
  26 not with TC; no modifier twice;
* at most one modifier from each of {25, 57, 59}, {52, 53, 73, 74}, {76, 77, 78, 79},
  {93, 95}.

Each rule's source is in the docstring of the function that checks it. A rule about one
modifier is checked once per distinct modifier, so 72126 followed by 3,400 ':26' costs one
check and gives one message.

`tx.fhir.org`: the rules tx.fhir.org applies (its CPT provider), exactly, for operators who
need identical answers: the first six rules above, plus "an HCPCS (Level II) modifier only
together with 59", and the mutually exclusive sets; none of the pair or repetition rules.

Every rule that fails is reported, joined with ", " (tx.fhir.org's order and wording for
the rules it has).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from terminology.cpt.release import CptConcept

SEPARATOR = ":"
WRONG_SEPARATORS = ("-", ".")

# The forms of CPT (whatever release is loaded): a code is four digits and a digit or one of
# F (Category II), T (Category III), U (PLA), A (vaccine administration), M (multianalyte
# assays); a modifier is two characters: two digits (general, cat-1: 26), a digit and P
# (cat-2: 1P), or a capital letter and a capital letter or digit (P1..P6, HCPCS: LT, F1).
CODE_FORM = re.compile(r"[0-9]{4}[0-9AFMTU]")
MODIFIER_FORM = re.compile(r"[0-9]{2}|[0-9]P|[A-Z][0-9A-Z]")
CODE_FORM_TEXT = ("a CPT code is four digits followed by a digit or one of F, T, U, A, M "
                  "(e.g. 72126, 0001F)")
MODIFIER_FORM_TEXT = ("a CPT modifier is two digits (26), a digit and P (1P), or a capital "
                      "letter followed by a capital letter or digit (LT, P1)")

CPT_RULES = "cpt"
TX_FHIR_ORG_RULES = "tx.fhir.org"
RULE_SETS = (CPT_RULES, TX_FHIR_ORG_RULES)

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
# The HCPCS Level II modifiers CMS made the more specific forms of 59 (CR 8863, 2014).
X_EPSU = ("XE", "XP", "XS", "XU")
SIDES = ("LT", "RT")


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


def check_rule_set(name: str) -> str:
    """`name` when it is a known rule set; a ValueError listing the known ones otherwise."""
    if name not in RULE_SETS:
        raise ValueError(f"unknown CPT rule set {name!r}: use one of {', '.join(RULE_SETS)}")
    return name


def is_expression(code: str) -> bool:
    """Whether `code` is written as an expression (base code plus modifiers)."""
    return SEPARATOR in code


def wrong_separator(code: str) -> str | None:
    """The separator character wrongly used in `code` ('-' or '.'), if any."""
    return next((s for s in WRONG_SEPARATORS if s in code), None)


def syntax_error(code: str) -> str | None:
    """Why `code` has no form CPT allows (a code, or a code with `:modifier` parts), so no
    release holds it; None when it has one. A wrong separator is `parse`'s to explain."""
    if SEPARATOR not in code:
        if CODE_FORM.fullmatch(code):
            return None
        return f"The code '{code}' is not a valid CPT code: {CODE_FORM_TEXT}"
    base, *modifiers = code.split(SEPARATOR)
    if not base or not all(modifiers):
        return (f"The CPT expression '{code}' has an empty part: an expression is a code "
                f"followed by modifiers, each after one '{SEPARATOR}' (e.g. 72126{SEPARATOR}26)")
    if not CODE_FORM.fullmatch(base):
        return (f"The CPT expression '{code}' has the base code '{base}', which is not a valid "
                f"CPT code: {CODE_FORM_TEXT}")
    bad = next((m for m in modifiers if not MODIFIER_FORM.fullmatch(m)), None)
    if bad is not None:
        return (f"The CPT expression '{code}' has the modifier '{bad}', which is not a valid "
                f"CPT modifier: {MODIFIER_FORM_TEXT}")
    return None


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


def problems(expression: CptExpression, rule_set: str = CPT_RULES) -> list[str]:
    """Every rule of `rule_set` the expression breaks (empty when it is valid)."""
    if rule_set == TX_FHIR_ORG_RULES:
        return _tx_fhir_org_problems(expression)
    out: list[str] = []
    if expression.base.modifier:
        out.append(_base_is_modifier(expression.base))
    distinct = list({m.code: m for m in expression.modifiers}.values())
    for modifier in distinct:
        out.extend(_modifier_problems(expression, modifier))
    codes = frozenset(m.code for m in distinct)
    out.extend(_sides(codes))
    out.extend(_bilateral_with_side(codes))
    out.extend(_59_with_x_epsu(codes))
    out.extend(_professional_with_technical(codes))
    out.extend(_repeated(expression))
    for group in EXCLUSIVE_GROUPS:
        if len(codes.intersection(group)) > 1:
            out.append(_exclusive(group))
    return out


def validate(code: str, concepts: Mapping[str, CptConcept],
             rule_set: str = CPT_RULES) -> CptExpression | str:
    """The valid expression written as `code`, or the message naming the rules it breaks."""
    parsed = parse(code, concepts)
    if isinstance(parsed, str):
        return parsed
    found = problems(parsed, rule_set)
    return ", ".join(found) if found else parsed


# -- tx.fhir.org's rule set ---------------------------------------------------------------------


def _tx_fhir_org_problems(expression: CptExpression) -> list[str]:
    """tx.fhir.org's rules, in its order and wording (every modifier as written)."""
    out: list[str] = []
    if expression.base.modifier:
        out.append(_base_is_modifier(expression.base))
    missing_59 = not expression.has_modifier("59")  # once: 100,000 modifiers cost linear time
    for modifier in expression.modifiers:
        out.extend(_modifier_problems(expression, modifier, hcpcs_without_59=missing_59))
    for group in EXCLUSIVE_GROUPS:
        if sum(1 for m in expression.modifiers if m.code in group) > 1:
            out.append(_exclusive(group))
    return out


# -- rules shared by both sets ---------------------------------------------------------------


def _kinds(concept: CptConcept) -> list[str]:
    return concept.properties.get("kind", [])


def _in_range(code: str, bounds: tuple[str, str]) -> bool:
    # CPT codes are five characters, so string order is code order within a range
    return len(code) == len(bounds[0]) and bounds[0] <= code <= bounds[1]


def _base_is_modifier(base: CptConcept) -> str:
    """HL7 CPT page: an expression is a CPT code followed by modifiers."""
    return f"The modifier {base.code} cannot be used as the base code of an expression"


def _exclusive(group: tuple[str, ...]) -> str:
    """CPT Appendix A (tx.fhir.org's sets): 25/57/59 distinguish one E/M or procedure from
    another, 52/53/73/74 are alternative reductions or discontinuations, 76-79 alternative
    repeat/return circumstances, 93/95 alternative telemedicine forms (audio only, video)."""
    return f"There can only be one modifier in the set {', '.join(group)}"


def _modifier_problems(exp: CptExpression, modifier: CptConcept,
                       hcpcs_without_59: bool = False) -> list[str]:
    """The rules one modifier breaks in the context of its expression.

    Sources: HL7 CPT page (modifier kinds); CPT Appendix A (cat-2 modifiers report
    performance measures of cat-2 codes; 50/51 are not used on cat-2 codes); CPT Anesthesia
    Guidelines (physical-status modifiers qualify anesthesia services, 00100-01999); CPT
    Appendix F (63 on 20100-69990 and the listed cardiac codes); CPT Appendix A (92 on the
    HIV testing codes); CPT Appendix P (95 on codes designated for telemedicine).
    `hcpcs_without_59` (tx.fhir.org's rule set, when the expression lacks 59): an HCPCS
    modifier needs 59. No CPT or CMS source says so, and it makes 73721:RT (MRI of the right
    knee) invalid, so the `cpt` rule set leaves it out.
    """
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
    if hcpcs_without_59 and "hcpcs" in kinds:
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


# -- the `cpt` rule set's own rules ------------------------------------------------------------


def _sides(codes: frozenset[str]) -> Iterator[str]:
    """LT and RT together are invalid: a procedure on both sides is one bilateral procedure.

    Source: CMS Medicare Claims Processing Manual (Pub. 100-04), Chapter 12, §40.7.B
    (bilateral surgery is reported once, with modifier 50) and the CMS MPFS bilateral
    surgery indicator; CPT Appendix A, modifier 50.
    """
    if all(s in codes for s in SIDES):
        yield ("The modifiers LT and RT cannot be used together: a procedure on both sides is "
               "reported with modifier 50 (bilateral procedure)")


def _bilateral_with_side(codes: frozenset[str]) -> Iterator[str]:
    """50 with LT or RT is invalid: bilateral already says both sides.

    Source: CMS Medicare Claims Processing Manual (Pub. 100-04), Chapter 12, §40.7.B
    (do not report RT and LT when modifier 50 applies).
    """
    if "50" in codes:
        for side in SIDES:
            if side in codes:
                yield (f"The modifier 50 (bilateral procedure) cannot be used together with "
                       f"{side}: bilateral already names both sides")


def _59_with_x_epsu(codes: frozenset[str]) -> Iterator[str]:
    """59 with any of XE, XP, XS, XU is invalid: X{EPSU} replace 59, they do not add to it.

    Source: CMS Change Request 8863 (Transmittal 1422, 2014) and the CMS MLN fact sheet
    "Proper Use of Modifiers 59 & -X{EPSU}": the X{EPSU} modifiers are more selective
    versions of 59, and it is incorrect to report both on the same line.
    """
    if "59" in codes:
        for x in X_EPSU:
            if x in codes:
                yield (f"The modifier 59 cannot be used together with {x}: XE, XP, XS and XU "
                       "are the more specific forms of 59 and are reported instead of it")


def _professional_with_technical(codes: frozenset[str]) -> Iterator[str]:
    """26 with TC is invalid (only possible when the release lists TC): both components
    together are the global service, reported with neither modifier.

    Source: CMS Medicare Claims Processing Manual (Pub. 100-04), Chapter 13, §20 (the
    professional component is billed with 26, the technical component with TC, the global
    service without a modifier); CPT Appendix A, modifier 26.
    """
    if "26" in codes and "TC" in codes:
        yield ("The modifiers 26 and TC cannot be used together: the professional and "
               "technical components together are the global service, reported with neither "
               "modifier")


def _repeated(exp: CptExpression) -> Iterator[str]:
    """No modifier twice: a modifier states a circumstance of the service once.

    Source: CPT Appendix A (each modifier reports one circumstance of the service); the
    CMS-1500 item 24D and X12 837P SV101 carry up to four modifiers per line, each once
    (CMS Medicare Claims Processing Manual, Chapter 26, §10.4).
    """
    seen: set[str] = set()
    reported: set[str] = set()
    for m in exp.modifiers:
        if m.code in seen and m.code not in reported:
            reported.add(m.code)
            yield (f"The modifier {m.code} is used more than once in the expression: each "
                   "modifier is used once")
        seen.add(m.code)
