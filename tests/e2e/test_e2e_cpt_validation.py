"""End to end, the order-entry scenario: is the ordered CPT code valid, and in the contrast set?"""

from __future__ import annotations

from typing import Any

import requests

from ..conftest import CPT_URL, assert_fhir_valid, param_value

CONTRAST = "https://terminology.cpt-imaging.org/fhir/ValueSet/imaging-with-contrast"


def call(base: str, path: str, **params: str) -> dict[str, Any]:
    resp = requests.get(f"{base}/{path}", params=params, timeout=10)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert_fhir_valid(body)
    return body


def tx_codes(out: dict[str, Any]) -> list[str]:
    issues = param_value(out, "issues") or {"issue": []}
    return [c["code"] for i in issues["issue"] for c in i["details"].get("coding", [])]


def test_72126_is_in_the_contrast_value_set(live_server: str) -> None:
    out = call(live_server, "ValueSet/$validate-code", url=CONTRAST, system=CPT_URL, code="72126")
    assert param_value(out, "result") is True
    assert param_value(out, "display") == "Computed tomography, cervical spine; with contrast material"


def test_72125_is_not_in_the_contrast_value_set(live_server: str) -> None:
    out = call(live_server, "ValueSet/$validate-code", url=CONTRAST, system=CPT_URL, code="72125")
    assert param_value(out, "result") is False
    assert "not-in-vs" in tx_codes(out)


def test_expression_with_professional_component_is_valid(live_server: str) -> None:
    out = call(live_server, "CodeSystem/$validate-code", url=CPT_URL, code="72126:26")
    assert param_value(out, "result") is True


def test_two_repeat_modifiers_are_invalid_with_the_rule(live_server: str) -> None:
    out = call(live_server, "CodeSystem/$validate-code", url=CPT_URL, code="72126:76:77")
    assert param_value(out, "result") is False
    assert param_value(out, "message") == "There can only be one modifier in the set 76, 77, 78, 79"


def test_wrong_display_is_invalid_display_naming_the_right_one(live_server: str) -> None:
    out = call(live_server, "CodeSystem/$validate-code", url=CPT_URL, code="72126", display="CT neck")
    assert param_value(out, "result") is False
    assert "invalid-display" in tx_codes(out)
    assert "Computed tomography, cervical spine; with contrast material" in param_value(out, "message")
