"""The CPT expression grammar under the `tx.fhir.org` rule set: each tx.fhir.org rule with an
expression that keeps it and one that breaks it, over a small release shaped like
tx.fhir.org's cpt-fragment.db. The default `cpt` rule set: tests/unit/test_cpt_rules_default.py."""

from __future__ import annotations

import pytest

from terminology.cpt import rules as cpt_rules
from terminology.cpt.release import CptConcept


def code(c: str, *kinds: str, telemedicine: bool = False) -> CptConcept:
    props: dict[str, list[str]] = {"kind": list(kinds or ("code",))}
    if telemedicine:
        props["telemedicine"] = ["true"]
    return CptConcept(c, False, f"Test code {c}", [], props)


def modifier(c: str, *kinds: str) -> CptConcept:
    return CptConcept(c, True, f"Test modifier {c}", [], {"kind": list(kinds or ("general",))})


CONCEPTS = {c.code: c for c in [
    code("99202", telemedicine=True), code("99252"), code("0001A", "cat-2"), code("00100"),
    code("20100"), code("92920"), code("86701"), code("87389"), code("72126"),
    modifier("25", "general", "cat-1"), modifier("95"), modifier("P1", "physical-status"),
    modifier("1P", "cat-2"), modifier("F1", "hcpcs"), modifier("26"), modifier("50"),
    modifier("51"), modifier("52"), modifier("53"), modifier("57"), modifier("59"),
    modifier("63"), modifier("73"), modifier("74"), modifier("76"), modifier("77"),
    modifier("78"), modifier("79"), modifier("92"), modifier("93"),
]}


def outcome(expression: str) -> str | None:
    """None when valid, else the message."""
    checked = cpt_rules.validate(expression, CONCEPTS, cpt_rules.TX_FHIR_ORG_RULES)
    return checked if isinstance(checked, str) else None


@pytest.mark.parametrize("expression", [
    "99202:25", "72126:26", "72126:26:59", "0001A:1P", "99202:95", "99202:F1:59", "00100:P1",
    "20100:63", "92920:63", "86701:92", "87389:92", "99202:50", "99202:51", "99202:76",
    "99202:52", "99202:93",
])
def test_valid_expressions_pass_every_rule(expression: str) -> None:
    assert outcome(expression) is None


@pytest.mark.parametrize(("expression", "message"), [
    ("99998:25", "Base CPT Code '99998' not found"),
    ("99202:XX", "Modifier CPT code 'XX' not found"),
    ("99202:99252", "The code 99252 cannot be used as a modifier"),
    ("25:26", "The modifier 25 cannot be used as the base code of an expression"),
    ("99202:1P", "The modifier 1P is a cat-2 modifier that can only be used with cat-2 codes"),
    ("99202:P1", "The modifier P1 is a physical status modifier that can only be used with "
                 "codes in the range 00100 - 01999"),
    ("99202:F1", "The modifier F1 is an hcpcs code that can only be used if the modifier 59 "
                 "is also used"),
    ("0001A:50", "The modifier 50 cannot be used with cat-2 codes"),
    ("0001A:51", "The modifier 51 cannot be used with cat-2 codes"),
    ("99202:63", "The modifier 63 cannot be used with the code 99202"),
    ("99202:92", "The modifier 92 cannot be used with the code 99202"),
    ("99252:95", "The modifier 95 cannot be used with the code 99252 as it is not designated "
                 "for telemedicine"),
    ("99202:25:57", "There can only be one modifier in the set 25, 57, 59"),
    ("99202:52:74", "There can only be one modifier in the set 52, 53, 73, 74"),
    ("72126:76:77", "There can only be one modifier in the set 76, 77, 78, 79"),
    ("99202:93:95", "There can only be one modifier in the set 93, 95"),
])
def test_invalid_expression_names_the_rule_it_breaks(expression: str, message: str) -> None:
    assert outcome(expression) == message


@pytest.mark.parametrize("expression", ["72126-26", "72126.26", "72126:26-59"])
def test_dash_and_dot_separators_are_rejected_saying_colon_is_the_separator(expression: str) -> None:
    message = outcome(expression)
    assert message is not None
    assert "':'" in message and expression in message


def test_every_broken_rule_is_reported_joined_with_commas() -> None:
    assert outcome("99252:95:93") == (
        "The modifier 95 cannot be used with the code 99252 as it is not designated for "
        "telemedicine, There can only be one modifier in the set 93, 95")


def test_parsed_expression_keeps_base_and_modifiers_in_written_order() -> None:
    parsed = cpt_rules.validate("72126:59:26", CONCEPTS)
    assert isinstance(parsed, cpt_rules.CptExpression)
    assert parsed.base.code == "72126"
    assert [m.code for m in parsed.modifiers] == ["59", "26"]
    assert parsed.text == "72126:59:26" and parsed.has_modifier("26")


def test_only_colon_marks_an_expression() -> None:
    assert cpt_rules.is_expression("72126:26")
    assert not cpt_rules.is_expression("72126")
    assert cpt_rules.wrong_separator("72126-26") == "-"
    assert cpt_rules.wrong_separator("72126") is None
