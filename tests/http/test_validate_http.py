"""$validate-code, $subsumes and $translate over HTTP (Flask test client)."""

from __future__ import annotations

from typing import Any

from tests.conftest import BODY_SITE, assert_fhir_valid, assert_outcome, param_value


def test_cs_validate_code_get_answers_parameters_with_result(client: Any) -> None:
    resp = client.get(f"/fhir/CodeSystem/$validate-code?url={BODY_SITE}&code=knee")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/fhir+json")
    body = resp.get_json()
    assert_fhir_valid(body)
    assert param_value(body, "result") is True
    assert param_value(body, "display") == "Knee joint"


def test_cs_validate_code_bad_code_is_200_result_false_with_issue(client: Any) -> None:
    resp = client.get(f"/fhir/CodeSystem/$validate-code?url={BODY_SITE}&code=elbowx")
    body = resp.get_json()
    assert resp.status_code == 200
    assert_fhir_valid(body)
    assert param_value(body, "result") is False
    codes = [i["details"]["coding"][0]["code"] for i in param_value(body, "issues")["issue"]]
    assert "invalid-code" in codes  # (with a status-check note: the code system is experimental)


def test_vs_validate_code_unknown_value_set_is_404_outcome(client: Any) -> None:
    resp = client.post("/fhir/ValueSet/$validate-code", json={"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": "http://example.test/ValueSet/none"},
        {"name": "code", "valueCode": "knee"}, {"name": "system", "valueUri": BODY_SITE}]})
    assert_outcome(resp, 404, "could not be found")


def test_vs_validate_code_inline_value_set_by_post(client: Any) -> None:
    vs = {"resourceType": "ValueSet", "status": "active", "compose": {"include": [{"system": BODY_SITE}]}}
    resp = client.post("/fhir/ValueSet/$validate-code", json={"resourceType": "Parameters", "parameter": [
        {"name": "valueSet", "resource": vs},
        {"name": "coding", "valueCoding": {"system": BODY_SITE, "code": "knee", "display": "Knee"}}]})
    body = resp.get_json()
    assert resp.status_code == 200
    assert param_value(body, "result") is False
    issue = next(i for i in param_value(body, "issues")["issue"]
                 if i["details"]["coding"][0]["code"] == "invalid-display")
    assert issue["expression"] == ["Coding.display"]


def test_subsumes_get_gives_outcome(client: Any) -> None:
    resp = client.get(f"/fhir/CodeSystem/$subsumes?system={BODY_SITE}&codeA=spine&codeB=c-spine")
    assert resp.status_code == 200
    assert param_value(resp.get_json(), "outcome") == "subsumes"


def test_validate_code_without_code_is_400(client: Any) -> None:
    assert_outcome(client.get(f"/fhir/CodeSystem/$validate-code?url={BODY_SITE}"), 400, "Unable to find code")


def _inline_cs_body(content: str = "complete", code: str = "a") -> dict[str, Any]:
    cs: dict[str, Any] = {"resourceType": "CodeSystem", "url": "http://example.test/inline", "status": "active",
                          "content": content, "concept": [{"code": "a", "display": "A"}]}
    if content == "supplement":
        cs["supplements"] = "http://example.test/base"
    return {"resourceType": "Parameters", "parameter": [
        {"name": "codeSystem", "resource": cs}, {"name": "code", "valueCode": code}]}


def test_cs_validate_code_with_inline_code_system_needs_no_url(client: Any) -> None:
    good = client.post("/fhir/CodeSystem/$validate-code", json=_inline_cs_body()).get_json()
    assert {p["name"]: p.get("valueBoolean", p.get("valueUri")) for p in good["parameter"]}["result"] is True
    bad = client.post("/fhir/CodeSystem/$validate-code", json=_inline_cs_body(code="zz")).get_json()
    message = next(p["valueString"] for p in bad["parameter"] if p["name"] == "message")
    assert "Unknown code 'zz'" in message and "http://example.test/inline" in message


def test_cs_validate_code_with_inline_supplement_is_400(client: Any) -> None:
    resp = client.post("/fhir/CodeSystem/$validate-code", json=_inline_cs_body(content="supplement"))
    assert resp.status_code == 400
    assert resp.get_json()["issue"][0]["expression"] == ["codeSystem"]
