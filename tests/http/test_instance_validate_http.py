"""Instance-level CodeSystem/{id}/$validate-code: the instance supplies the code's system."""

from __future__ import annotations

from typing import Any

from tests.conftest import BODY_SITE, CPT_URL, assert_fhir_valid, assert_outcome, param_value


def test_instance_validate_code_uses_the_instance_as_system(client: Any) -> None:
    resp = client.get("/fhir/CodeSystem/cpt/$validate-code?code=72126")
    body = resp.get_json()
    assert resp.status_code == 200
    assert_fhir_valid(body)
    assert param_value(body, "result") is True
    assert param_value(body, "system") == CPT_URL


def test_instance_validate_code_unknown_code_is_result_false_in_that_system(client: Any) -> None:
    body = client.get("/fhir/CodeSystem/test-body-site/$validate-code?code=nope").get_json()
    assert param_value(body, "result") is False
    assert param_value(body, "system") == BODY_SITE
    codes = [i["details"]["coding"][0]["code"] for i in param_value(body, "issues")["issue"]]
    assert "invalid-code" in codes


def test_instance_validate_code_checks_display_by_post(client: Any) -> None:
    resp = client.post("/fhir/CodeSystem/test-body-site/$validate-code", json={
        "resourceType": "Parameters", "parameter": [
            {"name": "code", "valueCode": "knee"}, {"name": "display", "valueString": "Knee joint"}]})
    body = resp.get_json()
    assert param_value(body, "result") is True
    assert param_value(body, "display") == "Knee joint"


def test_instance_validate_code_unknown_instance_is_404(client: Any) -> None:
    assert_outcome(client.get("/fhir/CodeSystem/nothing-here/$validate-code?code=x"), 404,
                   "not known", expression="id")
