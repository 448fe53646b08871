"""The default `cpt` rule set for CPT expressions: rules from CPT and CMS guidance that let
ordinary imaging orders through (73721:RT) and reject contradictory modifiers."""

from __future__ import annotations

import pytest

from terminology.cpt import rules as cpt_rules
from terminology.cpt.release import CptConcept


def code(c: str) -> CptConcept:
    return CptConcept(c, False, f"Test code {c}", [], {"kind": ["code"]})


def modifier(c: str, *kinds: str) -> CptConcept:
    return CptConcept(c, True, f"Test modifier {c}", [], {"kind": list(kinds or ("general",))})


CONCEPTS = {c.code: c for c in [
    code("73721"), code("72126"), code("00100"), code("99202"),
    modifier("26"), modifier("50", "general", "cat-1"), modifier("59", "general", "cat-1"),
    modifier("25"), modifier("57"), modifier("76"), modifier("77"),
    modifier("P1", "physical-status"), modifier("LT", "hcpcs"), modifier("RT", "hcpcs"),
    modifier("TC", "hcpcs"), modifier("XE", "hcpcs"), modifier("XP", "hcpcs"),
    modifier("XS", "hcpcs"), modifier("XU", "hcpcs"), modifier("F1", "hcpcs"),
]}


def outcome(expression: str, rule_set: str = cpt_rules.CPT_RULES) -> str | None:
    """None when valid, else the message."""
    checked = cpt_rules.validate(expression, CONCEPTS, rule_set)
    return checked if isinstance(checked, str) else None


@pytest.mark.parametrize("expression", [
    "73721:RT", "73721:LT", "73721:50", "72126:26", "72126:TC", "72126:XU", "72126:59",
    "72126:26:RT", "99202:F1", "00100:P1", "72126:26:59:LT",
])
def test_routine_orders_are_valid_under_the_default_rules(expression: str) -> None:
    assert outcome(expression) is None


@pytest.mark.parametrize(("expression", "message"), [
    ("73721:LT:RT", "The modifiers LT and RT cannot be used together: a procedure on both "
                    "sides is reported with modifier 50 (bilateral procedure)"),
    ("73721:50:RT", "The modifier 50 (bilateral procedure) cannot be used together with RT: "
                    "bilateral already names both sides"),
    ("73721:LT:50", "The modifier 50 (bilateral procedure) cannot be used together with LT: "
                    "bilateral already names both sides"),
    ("72126:59:XU", "The modifier 59 cannot be used together with XU: XE, XP, XS and XU are "
                    "the more specific forms of 59 and are reported instead of it"),
    ("72126:26:TC", "The modifiers 26 and TC cannot be used together: the professional and "
                    "technical components together are the global service, reported with "
                    "neither modifier"),
    ("72126:26:26", "The modifier 26 is used more than once in the expression: each modifier "
                    "is used once"),
    ("99202:P1", "The modifier P1 is a physical status modifier that can only be used with "
                 "codes in the range 00100 - 01999"),
    ("99202:25:57", "There can only be one modifier in the set 25, 57, 59"),
    ("72126:76:77", "There can only be one modifier in the set 76, 77, 78, 79"),
])
def test_contradictory_modifiers_are_invalid_naming_the_rule(expression: str, message: str) -> None:
    assert outcome(expression) == message


@pytest.mark.parametrize("x", ["XE", "XP", "XS", "XU"])
def test_59_is_invalid_with_each_x_epsu_modifier(x: str) -> None:
    message = outcome(f"72126:{x}:59")
    assert message is not None and f"59 cannot be used together with {x}" in message


def test_thousands_of_repeated_modifiers_give_one_message() -> None:
    expression = "72126" + ":26" * 3400
    assert outcome(expression) == ("The modifier 26 is used more than once in the expression: "
                                   "each modifier is used once")


def test_repeated_modifier_in_an_exclusive_set_is_reported_as_repetition_only() -> None:
    assert outcome("72126:59:59") == ("The modifier 59 is used more than once in the "
                                      "expression: each modifier is used once")


def test_tx_fhir_org_rule_set_keeps_hcpcs_only_with_59() -> None:
    assert outcome("73721:RT", cpt_rules.TX_FHIR_ORG_RULES) == (
        "The modifier RT is an hcpcs code that can only be used if the modifier 59 is also used")
    assert outcome("73721:RT:59", cpt_rules.TX_FHIR_ORG_RULES) is None
    assert outcome("73721:LT:RT:59", cpt_rules.TX_FHIR_ORG_RULES) is None  # no pair rules there
    assert outcome("72126:26:26", cpt_rules.TX_FHIR_ORG_RULES) is None


def test_unknown_rule_set_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="use one of cpt, tx.fhir.org"):
        cpt_rules.check_rule_set("cms")
