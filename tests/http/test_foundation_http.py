"""HTTP layer (Flask test client): metadata, read/search, $lookup, and every error shape."""

from __future__ import annotations

from typing import Any

import pytest

from ..conftest import BODY_SITE, assert_fhir_valid, assert_outcome, param_value, properties

LOOKUP = "/fhir/CodeSystem/$lookup"


def ok_json(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    body = resp.get_json()
    assert_fhir_valid(body)
    return body


def test_metadata_is_a_terminology_capability_statement(client: Any) -> None:
    body = ok_json(client.get("/fhir/metadata"))
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    assert body["kind"] == "instance"
    assert body["instantiates"] == ["http://hl7.org/fhir/CapabilityStatement/terminology-server"]
    cs = next(r for r in body["rest"][0]["resource"] if r["type"] == "CodeSystem")
    assert "lookup" in [op["name"] for op in cs["operation"]]


def test_metadata_terminology_mode_lists_code_systems_and_tx_resource(client: Any) -> None:
    body = ok_json(client.get("/fhir/metadata?mode=terminology"))
    assert body["resourceType"] == "TerminologyCapabilities"
    systems = {c["uri"]: c for c in body["codeSystem"]}
    assert systems[BODY_SITE]["version"][0]["code"] == "1.0.0"
    assert "tx-resource" in [p["name"] for p in body["expansion"]["parameter"]]


def test_read_code_system_returns_its_concepts(client: Any) -> None:
    body = ok_json(client.get("/fhir/CodeSystem/test-body-site"))
    assert body["url"] == BODY_SITE
    assert [c["code"] for c in body["concept"]] == ["spine", "limb"]
    assert [c["code"] for c in body["concept"][0]["concept"]] == ["c-spine", "t-spine", "l-spine"]


def test_read_unknown_id_is_404(client: Any) -> None:
    assert_outcome(client.get("/fhir/CodeSystem/nope"), 404, "CodeSystem/nope", "id")


def test_search_by_url_returns_searchset_with_total_and_self_link(client: Any) -> None:
    body = ok_json(client.get(f"/fhir/CodeSystem?url={BODY_SITE}"))
    assert body["type"] == "searchset" and body["total"] == 1
    assert body["entry"][0]["resource"]["id"] == "test-body-site"
    assert body["link"][0]["relation"] == "self"


def test_search_summary_count_and_name_prefix(client: Any) -> None:
    body = ok_json(client.get("/fhir/CodeSystem?name=testbody&_summary=count"))
    assert body["total"] == 1 and "entry" not in body
    summary = ok_json(client.get("/fhir/CodeSystem?name=TestBody&_summary=true"))
    assert "concept" not in summary["entry"][0]["resource"]
    none = ok_json(client.get("/fhir/CodeSystem?status=retired"))
    assert none["total"] == 0 and none["entry"] == []


def test_search_count_limits_entries_but_not_total(client: Any) -> None:
    body = ok_json(client.get("/fhir/CodeSystem?_count=0"))
    assert body["total"] >= 1 and body["entry"] == []


def test_search_unknown_parameter_is_400_under_prefer_strict(client: Any) -> None:
    resp = client.get("/fhir/ValueSet?colour=red", headers={"Prefer": "handling=strict"})
    assert_outcome(resp, 400, "colour", "colour")


def test_lookup_get_returns_display_hierarchy_and_properties(client: Any) -> None:
    body = ok_json(client.get(f"{LOOKUP}?system={BODY_SITE}&code=c-spine"))
    assert param_value(body, "display") == "Cervical spine"
    assert param_value(body, "version") == "1.0.0"
    assert param_value(body, "name") == "TestBodySite"
    assert param_value(body, "abstract") is False
    props = properties(body)
    assert props["parent"] == ["spine"] and props["region"] == ["axial"] and props["inactive"] == [False]


def test_lookup_post_parameters_with_coding(client: Any) -> None:
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "coding", "valueCoding": {"system": BODY_SITE, "code": "spine"}},
        {"name": "property", "valueCode": "child"}]}
    out = ok_json(client.post(LOOKUP, json=body, content_type="application/fhir+json"))
    assert param_value(out, "abstract") is True
    assert properties(out) == {"child": ["c-spine", "t-spine", "l-spine"]}


def test_lookup_display_language_picks_designation(client: Any) -> None:
    out = ok_json(client.get(f"{LOOKUP}?system={BODY_SITE}&code=c-spine&displayLanguage=de"))
    assert param_value(out, "display") == "Halswirbelsäule"


def test_lookup_retired_concept_is_inactive(client: Any) -> None:
    out = ok_json(client.get(f"{LOOKUP}?system={BODY_SITE}&code=old-joint"))
    assert properties(out)["inactive"] == [True]


def test_lookup_instance_level_uses_the_code_system(client: Any) -> None:
    out = ok_json(client.get("/fhir/CodeSystem/test-body-site/$lookup?code=knee"))
    assert param_value(out, "display") == "Knee joint"


def test_lookup_form_post_is_accepted(client: Any) -> None:
    out = ok_json(client.post(LOOKUP, data={"system": BODY_SITE, "code": "knee"}))
    assert param_value(out, "display") == "Knee joint"


def test_lookup_format_json_is_honoured(client: Any) -> None:
    ok_json(client.get(f"{LOOKUP}?system={BODY_SITE}&code=knee&_format=json"))


@pytest.mark.parametrize(("query", "status", "text", "expression"), [
    ("system=http://nowhere.test/cs&code=x", 404, "could not be found", "system"),
    (f"system={BODY_SITE}&code=elbow", 404, "Unknown code 'elbow'", "code"),
    (f"system={BODY_SITE}&code=knee&version=9.9", 404, "version '9.9'", "version"),
    (f"system={BODY_SITE}", 400, "'code'", "code"),
    ("code=knee", 400, "'system'", "system"),
    (f"system={BODY_SITE}&code=knee&code=spine", 400, "only once", "code"),
])
def test_lookup_errors_name_the_parameter(client: Any, query: str, status: int, text: str, expression: str) -> None:
    assert_outcome(client.get(f"{LOOKUP}?{query}"), status, text, expression)


def test_lookup_both_code_and_coding_is_400(client: Any) -> None:
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "system", "valueUri": BODY_SITE}, {"name": "code", "valueCode": "knee"},
        {"name": "coding", "valueCoding": {"system": BODY_SITE, "code": "knee"}}]}
    assert_outcome(client.post(LOOKUP, json=body), 400, "not both", "coding")


def test_malformed_json_is_400(client: Any) -> None:
    resp = client.post(LOOKUP, data=b'{"resourceType": "Parameters",', content_type="application/fhir+json")
    assert_outcome(resp, 400, "not valid JSON")


def test_body_that_is_not_parameters_is_400(client: Any) -> None:
    resp = client.post(LOOKUP, json={"resourceType": "Patient"}, content_type="application/fhir+json")
    assert_outcome(resp, 400, "must be a Parameters resource", "resourceType")


def test_json_array_body_is_400(client: Any) -> None:
    assert_outcome(client.post(LOOKUP, data=b"[1,2]", content_type="application/json"), 400, "Parameters")


def test_an_empty_body_is_an_empty_parameters(client: Any) -> None:
    # FHIR clients (fhir-kit-client's operation()) POST an operation without a body: the
    # operation then runs on the query's parameters, here none, so $lookup misses its code
    assert_outcome(client.post(LOOKUP, data=b"", content_type="application/fhir+json"), 400,
                   "'code' (or 'coding') is required", "code")


def test_parameter_without_value_is_400(client: Any) -> None:
    body = {"resourceType": "Parameters", "parameter": [{"name": "code"}]}
    assert_outcome(client.post(LOOKUP, json=body), 400, "neither a value", "code")


def test_wrong_value_type_is_400(client: Any) -> None:
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "system", "valueUri": BODY_SITE}, {"name": "code", "valueInteger": 7}]}
    assert_outcome(client.post(LOOKUP, json=body), 400, "must be a string", "code")


def test_unsupported_media_type_is_415(client: Any) -> None:
    resp = client.post(LOOKUP, data=b"system=x", content_type="text/plain")
    assert_outcome(resp, 415, "text/plain")


def test_accept_html_only_is_406(client: Any) -> None:
    resp = client.get(f"{LOOKUP}?system={BODY_SITE}&code=knee", headers={"Accept": "text/html"})
    assert_outcome(resp, 406, "text/html")


def test_unknown_route_is_404_outcome(client: Any) -> None:
    assert_outcome(client.get("/nothing/here"), 404, "No route")


def test_unknown_operation_is_404(client: Any) -> None:
    assert_outcome(client.get("/fhir/CodeSystem/$frobnicate"), 404, "$frobnicate", "operation")


@pytest.mark.parametrize("method", ["put", "post", "delete"])
def test_writes_are_405(client: Any, method: str) -> None:
    resp = getattr(client, method)("/fhir/CodeSystem/test-body-site", json={"resourceType": "CodeSystem"})
    assert_outcome(resp, 405, "read-only")


def test_body_over_limit_is_413(app: Any) -> None:
    client = app.test_client()
    limit = app.config["MAX_CONTENT_LENGTH"]
    resp = client.post(LOOKUP, data=b" " * (limit + 1), content_type="application/fhir+json")
    assert_outcome(resp, 413, "larger")


def test_unexpected_exception_is_500_outcome_with_request_id(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from terminology import operations

    def boom(_ctx: Any) -> dict[str, Any]:
        raise RuntimeError("secret internal detail")

    monkeypatch.setitem(operations.HANDLERS, ("CodeSystem", "lookup"), boom)
    resp = app.test_client().get(f"{LOOKUP}?system=x&code=y", headers={"X-Request-Id": "req-42"})
    body = assert_outcome(resp, 500, "request id req-42")
    assert "secret" not in resp.get_data(as_text=True)
    assert body["issue"][0]["code"] == "exception"


def test_request_id_is_echoed_or_generated(client: Any) -> None:
    assert client.get("/fhir/metadata", headers={"X-Request-Id": "abc"}).headers["X-Request-Id"] == "abc"
    assert len(client.get("/fhir/metadata").headers["X-Request-Id"]) == 32


def test_health_endpoints(client: Any) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["codeSystems"] >= 1


def test_tx_resource_code_system_is_used_for_that_request_only(client: Any) -> None:
    cs = {"resourceType": "CodeSystem", "url": "http://example.test/tmp", "version": "1",
          "status": "active", "content": "complete", "concept": [{"code": "a", "display": "A"}]}
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "system", "valueUri": "http://example.test/tmp"}, {"name": "code", "valueCode": "a"},
        {"name": "tx-resource", "resource": cs}]}
    out = ok_json(client.post(LOOKUP, json=body))
    assert param_value(out, "display") == "A"
    assert_outcome(client.get(f"{LOOKUP}?system=http://example.test/tmp&code=a"), 404, "could not be found")


def test_tx_resource_cannot_replace_a_loaded_code_system(client: Any) -> None:
    fake = {"resourceType": "CodeSystem", "url": BODY_SITE, "version": "1.0.0", "status": "active",
            "content": "complete", "concept": [{"code": "knee", "display": "HIJACKED"}]}
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "system", "valueUri": BODY_SITE}, {"name": "code", "valueCode": "knee"},
        {"name": "tx-resource", "resource": fake}]}
    assert param_value(ok_json(client.post(LOOKUP, json=body)), "display") == "Knee joint"
    again = ok_json(client.get(f"{LOOKUP}?system={BODY_SITE}&code=knee"))
    assert param_value(again, "display") == "Knee joint"


def test_invalid_tx_resource_is_400(client: Any) -> None:
    bad = {"resourceType": "CodeSystem", "url": "http://example.test/bad", "status": "whatever", "content": "complete"}
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "system", "valueUri": "http://example.test/bad"}, {"name": "code", "valueCode": "a"},
        {"name": "tx-resource", "resource": bad}]}
    assert_outcome(client.post(LOOKUP, json=body), 400, "publication-status")
