"""Every operation the HL7 suite exercises, on the bundled CPT imaging fragment."""

from __future__ import annotations

from typing import Any

import pytest

from ..conftest import CPT_URL, assert_fhir_valid, param_value

ORDER_SETS = "https://terminology.cpt-imaging.org/fhir/ValueSet"
CONTRAST = f"{ORDER_SETS}/imaging-with-contrast"
SPINE_CT = [f"{c}" for c in range(72125, 72134)]
SPINE_MRI = ["72141", "72142", "72146", "72147", "72148", "72149", "72156", "72157", "72158"]
WITH_CONTRAST = ["70460", "70470", "70552", "70553", "71260", "71270", "72126", "72127", "72129",
                 "72130", "72132", "72133", "72142", "72147", "72149", "72156", "72157", "72158",
                 "73722", "73723", "74177", "74178"]
ALL_RADIOLOGY = ["70450", "70460", "70470", "70551", "70552", "70553", "71045", "71046", "71047",
                 "71048", "71250", "71260", "71270", *SPINE_CT, *SPINE_MRI[:6], "72156", "72157",
                 "72158", "73721", "73722", "73723", "74176", "74177", "74178", "76700", "76705",
                 "77065", "77066", "77067"]
MODIFIERS = ["26", "50", "52", "53", "59", "76", "77", "LT", "RT"]


def ok(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert_fhir_valid(body)
    return body


def codes(client: Any, **params: Any) -> list[str]:
    body = ok(client.get("/fhir/ValueSet/$expand", query_string=params))
    contains = body["expansion"].get("contains", [])
    assert body["expansion"]["total"] == len(contains)
    return sorted(c["code"] for c in contains)


@pytest.mark.parametrize(("vs", "expected"), [
    ("ct-cervical-spine", ["72125", "72126", "72127"]),
    ("spine-ct", SPINE_CT),
    ("spine-mri", SPINE_MRI),
    ("imaging-with-contrast", WITH_CONTRAST),
    ("all-radiology", sorted(ALL_RADIOLOGY)),
])
def test_shipped_order_sets_expand_to_exact_codes(client: Any, vs: str, expected: list[str]) -> None:
    assert codes(client, url=f"{ORDER_SETS}/{vs}") == expected


def test_hl7_cpt_value_sets_on_the_fragment(client: Any) -> None:
    hl7 = "http://terminology.hl7.org/ValueSet"
    assert codes(client, url=f"{hl7}/cpt-modifiers") == sorted(MODIFIERS)
    assert codes(client, url=f"{hl7}/cpt-base") == sorted(ALL_RADIOLOGY)
    assert len(codes(client, url=f"{hl7}/cpt-all")) == len(ALL_RADIOLOGY) + len(MODIFIERS)


def test_expansion_of_cpt_reports_used_codesystem_and_is_unclosed(client: Any) -> None:
    body = ok(client.get("/fhir/ValueSet/$expand", query_string={"url": f"{ORDER_SETS}/spine-ct", "count": 0}))
    expansion = body["expansion"]
    assert expansion["total"] == 9 and "contains" not in expansion
    used = [p["valueUri"] for p in expansion["parameter"] if p["name"] == "used-codesystem"]
    assert used == [f"{CPT_URL}|2026"]
    urls = {e["url"] for e in body.get("extension", [])} | {e["url"] for e in expansion.get("extension", [])}
    assert any(u.endswith("valueset-unclosed") for u in urls)


@pytest.mark.parametrize(("prop", "op", "value", "expected"), [
    ("modality", "=", "MG", ["77065", "77066", "77067"]),
    ("body-region", "in", "brain,head", ["70450", "70460", "70470", "70551", "70552", "70553"]),
    ("contrast", "=", "without-then-with", ["70470", "70553", "71270", "72127", "72130", "72133",
                                             "72156", "72157", "72158", "73723", "74178"]),
    ("kind", "=", "hcpcs", ["LT", "RT"]),
    ("kind", "in", "general,hcpcs", sorted(MODIFIERS)),
    ("modifier", "=", "true", sorted(MODIFIERS)),
    ("code", "in", "71045-71048,76705", ["71045", "71046", "71047", "71048", "76705"]),
    ("telemedicine", "=", "true", []),
])
def test_cpt_filters_in_an_inline_value_set(client: Any, prop: str, op: str, value: str,
                                           expected: list[str]) -> None:
    vs = {"resourceType": "ValueSet", "status": "active", "compose": {"include": [
        {"system": CPT_URL, "filter": [{"property": prop, "op": op, "value": value}]}]}}
    body = {"resourceType": "Parameters", "parameter": [{"name": "valueSet", "resource": vs}]}
    out = ok(client.post("/fhir/ValueSet/$expand", json=body))
    assert sorted(c["code"] for c in out["expansion"].get("contains", [])) == expected


def test_unsupported_cpt_filter_is_an_error_naming_it(client: Any) -> None:
    vs = {"resourceType": "ValueSet", "status": "active", "compose": {"include": [
        {"system": CPT_URL, "filter": [{"property": "colour", "op": "=", "value": "red"}]}]}}
    resp = client.post("/fhir/ValueSet/$expand", json={"resourceType": "Parameters", "parameter": [
        {"name": "valueSet", "resource": vs}]})
    assert resp.status_code == 400
    assert "colour" in resp.get_json()["issue"][0]["details"]["text"]


def test_text_filter_searches_word_prefixes(client: Any) -> None:
    # "spi" is a prefix of "spine" (CT) and of "spinal" (MRI: "spinal canal and contents")
    assert codes(client, url=f"{ORDER_SETS}/all-radiology", filter="cerv spi") == [
        "72125", "72126", "72127", "72141", "72142", "72156"]
    # 72141's display says "cervical" and its short descriptor "MRI NECK SPINE W/O DYE"
    assert codes(client, url=f"{ORDER_SETS}/all-radiology", filter="cerv spine") == [
        "72125", "72126", "72127", "72141"]
    assert codes(client, url=f"{ORDER_SETS}/all-radiology", filter="MAMMO") == ["77065", "77066", "77067"]


def test_paged_order_set_pages_concatenate(client: Any) -> None:
    whole = ok(client.get("/fhir/ValueSet/$expand", query_string={"url": CONTRAST}))["expansion"]["contains"]
    pages = []
    for offset in range(0, 22, 5):
        page = ok(client.get("/fhir/ValueSet/$expand", query_string={"url": CONTRAST, "offset": offset, "count": 5}))
        assert page["expansion"]["total"] == 22
        pages.extend(page["expansion"].get("contains", []))
    assert [c["code"] for c in pages] == [c["code"] for c in whole]


def vs_validate(client: Any, code: str, display: str | None = None, url: str = CONTRAST) -> dict[str, Any]:
    params = {"url": url, "system": CPT_URL, "code": code}
    if display:
        params["display"] = display
    return ok(client.get("/fhir/ValueSet/$validate-code", query_string=params))


def issue_codes(out: dict[str, Any]) -> list[str]:
    issues = param_value(out, "issues") or {"issue": []}
    return [c["code"] for i in issues["issue"] for c in i["details"].get("coding", [])]


def test_contrast_value_set_membership(client: Any) -> None:
    assert param_value(vs_validate(client, "72126"), "result") is True
    out = vs_validate(client, "72125")
    assert param_value(out, "result") is False
    assert "not-in-vs" in issue_codes(out)


def test_wrong_display_names_the_right_one(client: Any) -> None:
    out = vs_validate(client, "72126", display="CT neck")
    assert param_value(out, "result") is False
    assert "invalid-display" in issue_codes(out)
    assert "Computed tomography, cervical spine; with contrast material" in param_value(out, "message")


def test_code_system_validate_of_expressions(client: Any) -> None:
    def cs(code: str) -> dict[str, Any]:
        return ok(client.get("/fhir/CodeSystem/$validate-code", query_string={"url": CPT_URL, "code": code}))

    assert param_value(cs("72126:26"), "result") is True
    bad = cs("72126:76:77")
    assert param_value(bad, "result") is False
    assert "There can only be one modifier in the set 76, 77, 78, 79" in param_value(bad, "message")
    assert "invalid-code" in issue_codes(bad)


def test_lookup_of_an_expression_gives_base_code_and_modifiers(client: Any) -> None:
    out = ok(client.get("/fhir/CodeSystem/$lookup", query_string={"system": CPT_URL, "code": "72126:26"}))
    assert param_value(out, "display") is None
    props = [(p["part"][0]["valueCode"], p["part"][1]) for p in out["parameter"] if p["name"] == "property"]
    assert ("modifier", {"name": "value", "valueCode": "26"}) in props


def test_subsumes_on_flat_cpt(client: Any) -> None:
    def outcome(a: str, b: str) -> str:
        out = ok(client.get("/fhir/CodeSystem/$subsumes", query_string={"system": CPT_URL, "codeA": a, "codeB": b}))
        return str(param_value(out, "outcome"))

    assert outcome("72126", "72126") == "equivalent"
    assert outcome("72125", "72126") == "not-subsumed"


def test_batch_validate_of_cpt_codes(client: Any) -> None:
    def validation(code: str) -> dict[str, Any]:
        return {"name": "validation", "resource": {"resourceType": "Parameters", "parameter": [
            {"name": "url", "valueUri": CONTRAST},
            {"name": "coding", "valueCoding": {"system": CPT_URL, "code": code}}]}}

    body = {"resourceType": "Parameters", "parameter": [validation("72126"), validation("72125")]}
    out = ok(client.post("/fhir/ValueSet/$batch-validate-code", json=body))
    results = [param_value(p["resource"], "result") for p in out["parameter"] if p["name"] == "validation"]
    assert results == [True, False]
