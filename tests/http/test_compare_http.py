"""ValueSet/$compare over HTTP: GET and POST, type and instance level, tx-resource, errors,
and its place in the CapabilityStatement, TerminologyCapabilities and OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest

from terminology.http.app import create_app
from terminology.providers.fhir import FhirCodeSystemProvider
from terminology.registry import Registry
from terminology.settings import Settings

from ..conftest import assert_fhir_valid, assert_outcome

CS = "http://example.test/compare-cs"
BIG = "http://example.test/ValueSet/compare-big"
SMALL = "http://example.test/ValueSet/compare-small"
COMPARE = "/fhir/ValueSet/$compare"
DEFINITION = "http://hl7.org/fhir/tools/OperationDefinition/ValueSet-compare"


@pytest.fixture(scope="module")
def client() -> Any:
    reg = Registry()
    reg.add_code_system(FhirCodeSystemProvider({
        "resourceType": "CodeSystem", "id": "compare-cs", "url": CS, "version": "1",
        "status": "active", "content": "complete",
        "concept": [{"code": "a", "concept": [{"code": "a1"}]}, {"code": "b"}]}))
    reg.add_value_set({"resourceType": "ValueSet", "id": "compare-big", "url": BIG, "version": "1",
                       "status": "active", "compose": {"include": [{"system": CS}]}})
    reg.add_value_set({"resourceType": "ValueSet", "id": "compare-small", "url": SMALL,
                       "version": "1", "status": "active",
                       "compose": {"include": [{"system": CS, "concept": [{"code": "a1"}]}]}})
    return create_app(Settings(), reg).test_client()


def answer(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"].startswith("application/fhir+json")
    body: dict[str, Any] = resp.get_json()
    assert_fhir_valid(body)
    return {p["name"]: next(v for k, v in p.items() if k != "name") for p in body["parameter"]}


def test_get_compares_two_stored_value_sets_by_url(client: Any) -> None:
    got = answer(client.get(f"{COMPARE}?thisUrl={SMALL}&otherUrl={BIG}&diagnostics=true"))
    assert (got["result"], got["performed-expansion"], got["extra-codes"]) == ("subset", True, "a,b")
    assert got["message"] == f"The valueSet {SMALL}|1 is a sub-set of the valueSet {BIG}|1"


def test_post_compares_inline_value_sets_over_a_tx_resource_code_system(client: Any) -> None:
    sent = "http://example.test/sent-cs"
    cs = {"resourceType": "CodeSystem", "url": sent, "status": "active", "content": "complete",
          "concept": [{"code": "x"}, {"code": "y"}]}

    def vs(*codes: str) -> dict[str, Any]:
        return {"resourceType": "ValueSet", "status": "active", "url": f"http://example.test/vs-{''.join(codes)}",
                "compose": {"include": [{"system": sent, "concept": [{"code": c} for c in codes]}]}}

    got = answer(client.post(COMPARE, json={"resourceType": "Parameters", "parameter": [
        {"name": "thisValueSet", "resource": vs("x", "y")}, {"name": "otherValueSet", "resource": vs("y")},
        {"name": "tx-resource", "resource": cs}]}))
    assert (got["result"], got["performed-expansion"]) == ("superset", False)
    assert "missing-codes" not in got  # only with diagnostics


def test_instance_level_compares_the_stored_value_set_as_this(client: Any) -> None:
    got = answer(client.get(f"/fhir/ValueSet/compare-big/$compare?otherUrl={SMALL}"))
    assert got["result"] == "superset"


def test_missing_other_value_set_is_a_400_outcome(client: Any) -> None:
    assert_outcome(client.get(f"{COMPARE}?thisUrl={SMALL}"), 400, "otherValueSet")


def test_unknown_value_set_is_a_404_outcome(client: Any) -> None:
    assert_outcome(client.get(f"{COMPARE}?thisUrl={SMALL}&otherUrl=http://example.test/none"), 404,
                   "could not be found")


def test_inline_value_set_of_another_type_is_a_400_outcome(client: Any) -> None:
    resp = client.post(COMPARE, json={"resourceType": "Parameters", "parameter": [
        {"name": "thisValueSet", "resource": {"resourceType": "CodeSystem", "status": "active",
                                              "content": "complete"}},
        {"name": "otherUrl", "valueUri": BIG}]})
    assert_outcome(resp, 400, "thisValueSet")


def test_compare_is_listed_in_the_capability_statements_and_openapi(client: Any) -> None:
    caps = client.get("/fhir/metadata").get_json()
    vs_ops = next(r for r in caps["rest"][0]["resource"] if r["type"] == "ValueSet")["operation"]
    assert {"name": "compare", "definition": DEFINITION} in vs_ops
    terms = client.get("/fhir/metadata?mode=terminology").get_json()
    assert any(e["extension"][0].get("valueCanonical") == DEFINITION for e in terms["extension"])
    paths = client.get("/fhir/openapi.json").get_json()["paths"]
    assert "/ValueSet/$compare" in {p.removeprefix("/fhir") for p in paths}
