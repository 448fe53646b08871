"""ValueSet/$expand over HTTP: GET and POST, type and instance level, tx-resource, errors."""

from __future__ import annotations

from typing import Any

import pytest

from terminology.http.app import create_app
from terminology.providers.fhir import FhirCodeSystemProvider
from terminology.registry import Registry
from terminology.settings import Settings

from ..conftest import assert_fhir_valid, assert_outcome

CS = "http://example.test/http-cs"
VS = "http://example.test/http-vs"
EXPAND = "/fhir/ValueSet/$expand"


@pytest.fixture(scope="module")
def client() -> Any:
    reg = Registry()
    reg.add_code_system(FhirCodeSystemProvider({
        "resourceType": "CodeSystem", "id": "http-cs", "url": CS, "version": "1", "status": "active",
        "content": "complete", "concept": [
            {"code": "a", "display": "Alpha", "concept": [{"code": "a1", "display": "Alpha one"}]},
            {"code": "b", "display": "Beta"}, {"code": "c", "display": "Gamma"}]}))
    reg.add_value_set({"resourceType": "ValueSet", "id": "http-vs", "url": VS, "version": "1",
                       "status": "active", "compose": {"include": [{"system": CS}]}})
    return create_app(Settings(max_expansion_size=3), reg).test_client()


def ok(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"].startswith("application/fhir+json")
    body: dict[str, Any] = resp.get_json()
    assert_fhir_valid(body)
    return body


def test_get_expand_by_url_pages_with_count_and_offset(client: Any) -> None:
    body = ok(client.get(f"{EXPAND}?url={VS}&count=2&offset=1"))
    exp = body["expansion"]
    assert exp["total"] == 4 and exp["offset"] == 1
    assert [c["code"] for c in exp["contains"]] == ["a1", "b"]
    assert {"name": "count", "valueInteger": 2} in exp["parameter"]


def test_unpaged_expansion_over_limit_is_422_too_costly(client: Any) -> None:
    body = assert_outcome(client.get(f"{EXPAND}?url={VS}"), 422, "too many codes")
    assert body["issue"][0]["code"] == "too-costly"


def test_client_may_lower_the_cost_threshold_header(client: Any) -> None:
    resp = client.get(f"{EXPAND}?url={VS}&filter=alpha", headers={"X-TOO-COSTLY-THRESHOLD": "1"})
    assert_outcome(resp, 422, "too many codes")


def test_instance_level_expand_uses_the_stored_value_set(client: Any) -> None:
    body = ok(client.get("/fhir/ValueSet/http-vs/$expand?count=10"))
    assert body["url"] == VS and body["expansion"]["total"] == 4


def test_post_inline_value_set_with_tx_resource_code_system(client: Any) -> None:
    other = {"resourceType": "CodeSystem", "url": "http://example.test/extra", "status": "active",
             "content": "complete", "concept": [{"code": "x", "display": "Ex"}]}
    vs = {"resourceType": "ValueSet", "status": "active",
          "compose": {"include": [{"system": "http://example.test/extra"}]}}
    body = ok(client.post(EXPAND, json={"resourceType": "Parameters", "parameter": [
        {"name": "valueSet", "resource": vs}, {"name": "tx-resource", "resource": other}]},
        headers={"Content-Type": "application/fhir+json"}))
    assert [c["code"] for c in body["expansion"]["contains"]] == ["x"]


def test_bad_count_is_400_naming_the_parameter(client: Any) -> None:
    assert_outcome(client.get(f"{EXPAND}?url={VS}&count=abc"), 400, "count", "count")


def test_unknown_value_set_is_404(client: Any) -> None:
    assert_outcome(client.get(f"{EXPAND}?url=http://example.test/none"), 404, "could not be found")


def test_unsupported_filter_names_the_filter(client: Any) -> None:
    vs = {"resourceType": "ValueSet", "status": "active", "compose": {"include": [
        {"system": CS, "filter": [{"property": "concept", "op": "sounds-like", "value": "a"}]}]}}
    resp = client.post(EXPAND, json={"resourceType": "Parameters", "parameter": [
        {"name": "valueSet", "resource": vs}]}, headers={"Content-Type": "application/fhir+json"})
    body = assert_outcome(resp, 400, "concept sounds-like a")
    assert body["issue"][0]["code"] == "not-supported"


def test_circular_import_is_an_error_outcome(client: Any) -> None:
    one = {"resourceType": "ValueSet", "url": "http://example.test/one", "status": "active",
           "compose": {"include": [{"valueSet": ["http://example.test/two"]}]}}
    two = {"resourceType": "ValueSet", "url": "http://example.test/two", "status": "active",
           "compose": {"include": [{"valueSet": ["http://example.test/one"]}]}}
    resp = client.post(EXPAND, json={"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": "http://example.test/one"},
        {"name": "tx-resource", "resource": one}, {"name": "tx-resource", "resource": two}]},
        headers={"Content-Type": "application/fhir+json"})
    body = assert_outcome(resp, 422, "circularity")
    assert body["issue"][0]["extension"][0]["valueString"] == "VALUESET_CIRCULAR_REFERENCE"
