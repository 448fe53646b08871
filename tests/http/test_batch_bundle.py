"""POST /fhir with a batch Bundle: one response entry per request entry, in order, each its own."""

from __future__ import annotations

from typing import Any

from terminology.content import load_registry
from terminology.http.app import create_app
from terminology.settings import BUNDLED_CONTENT, Settings
from tests.conftest import BODY_SITE, CPT_URL, DATA, assert_fhir_valid, assert_outcome, param_value


def bundle(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "batch", "entry": list(entries)}


def get(url: str) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}}


def post(url: str, *params: dict[str, Any]) -> dict[str, Any]:
    return {"request": {"method": "POST", "url": url},
            "resource": {"resourceType": "Parameters", "parameter": list(params)}}


def test_batch_answers_each_entry_in_order_with_its_own_status(client: Any) -> None:
    resp = client.post("/fhir", json=bundle(
        get(f"CodeSystem/$validate-code?url={CPT_URL}&code=72126"),
        post("ValueSet/$validate-code", {"name": "url", "valueUri": "http://example.test/none"},
             {"name": "system", "valueUri": BODY_SITE}, {"name": "code", "valueCode": "knee"}),
        post("/fhir/CodeSystem/$lookup", {"name": "system", "valueUri": BODY_SITE},
             {"name": "code", "valueCode": "knee"}),
        get(f"ValueSet/$validate-code?url={BODY_SITE}?fhir_vs"),  # nothing to validate
        get("http://other.example/fhir/CodeSystem/test-body-site/$validate-code?code=knee"),
    ))
    assert resp.status_code == 200
    body = resp.get_json()
    assert_fhir_valid(body)
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["200 OK", "404 Not Found", "200 OK", "400 Bad Request", "200 OK"]
    first, missing, lookup, bad, instance = (e["resource"] for e in body["entry"])
    assert param_value(first, "result") is True and param_value(first, "code") == "72126"
    assert missing["resourceType"] == "OperationOutcome"
    assert "could not be found" in missing["issue"][0]["details"]["text"]
    assert param_value(lookup, "display") == "Knee joint"
    assert bad["resourceType"] == "OperationOutcome"
    assert param_value(instance, "result") is True and param_value(instance, "system") == BODY_SITE


def test_batch_entries_read_search_and_refuse_writes(client: Any) -> None:
    body = client.post("/fhir", json=bundle(
        get("CodeSystem/test-body-site"), get(f"CodeSystem?url={BODY_SITE}"),
        {"request": {"method": "PUT", "url": "CodeSystem/test-body-site"}},
        get("Patient/1"), {"resource": {"resourceType": "Parameters"}},
    )).get_json()
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["200 OK", "200 OK", "405 Method Not Allowed", "404 Not Found", "400 Bad Request"]
    assert body["entry"][0]["resource"]["url"] == BODY_SITE
    assert body["entry"][1]["resource"]["total"] == 1
    assert body["entry"][4]["resource"]["issue"][0]["expression"] == ["Bundle.entry[4].request"]


def test_batch_entry_tx_resource_is_scoped_to_that_entry(client: Any) -> None:
    cs = {"resourceType": "CodeSystem", "url": "http://example.test/batch-cs", "status": "active",
          "content": "complete", "concept": [{"code": "a", "display": "A"}]}
    body = client.post("/fhir", json=bundle(
        post("CodeSystem/$validate-code", {"name": "url", "valueUri": cs["url"]},
             {"name": "code", "valueCode": "a"}, {"name": "tx-resource", "resource": cs}),
        post("CodeSystem/$validate-code", {"name": "url", "valueUri": cs["url"]},
             {"name": "code", "valueCode": "a"}),
    )).get_json()
    assert param_value(body["entry"][0]["resource"], "result") is True
    assert param_value(body["entry"][1]["resource"], "result") is False  # unknown there


def test_batch_with_more_entries_than_the_limit_is_too_costly() -> None:
    settings = Settings(content_dirs=[BUNDLED_CONTENT, DATA], max_batch_entries=3)
    client = create_app(settings, load_registry([BUNDLED_CONTENT, DATA])).test_client()
    entry = get(f"CodeSystem/$validate-code?url={CPT_URL}&code=72126")
    assert client.post("/fhir", json=bundle(*[entry] * 3)).status_code == 200
    body = assert_outcome(client.post("/fhir", json=bundle(*[entry] * 4)), 422, "at most 3",
                          expression="Bundle.entry")
    assert body["issue"][0]["code"] == "too-costly"


def test_post_to_base_needs_a_batch_bundle(client: Any) -> None:
    assert_outcome(client.post("/fhir", json={"resourceType": "Parameters"}), 400, "bundle",
                   expression="resourceType")
    assert_outcome(client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction"}),
                   400, "batch", expression="Bundle.type")
    assert_outcome(client.post("/fhir", data="{", content_type="application/fhir+json"), 400, "not valid JSON")


def test_capability_statement_lists_batch_and_batch_validate_code(client: Any) -> None:
    body = client.get("/fhir/metadata").get_json()
    rest = body["rest"][0]
    assert {"code": "batch"} in rest["interaction"]
    vs = next(r for r in rest["resource"] if r["type"] == "ValueSet")
    assert "batch-validate-code" in [o["name"] for o in vs["operation"]]
