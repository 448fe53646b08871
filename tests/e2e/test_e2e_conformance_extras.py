"""End to end on the real server: batch Bundles, implicit value sets and instance-level
$validate-code, as a client such as HL7's Java validator calls them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from ..conftest import BODY_SITE, CPT_URL, assert_fhir_valid, param_value

FHIR_JSON = "application/fhir+json"


def test_batch_bundle_answers_each_entry_in_order(live_server: str) -> None:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "POST", "url": "ValueSet/$validate-code"},
         "resource": {"resourceType": "Parameters", "parameter": [
             {"name": "url", "valueUri": f"{CPT_URL}?fhir_vs"},
             {"name": "coding", "valueCoding": {"system": CPT_URL, "code": "72126"}}]}},
        {"request": {"method": "GET", "url": "ValueSet/$expand?url=http://example.test/none"}},
        {"request": {"method": "GET", "url": "CodeSystem/test-body-site/$validate-code?code=nope"}},
    ]}
    resp = requests.post(live_server, json=bundle, headers={"Content-Type": FHIR_JSON}, timeout=20)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith(FHIR_JSON)
    body = resp.json()
    assert_fhir_valid(body)
    assert [e["response"]["status"] for e in body["entry"]] == ["200 OK", "404 Not Found", "200 OK"]
    assert param_value(body["entry"][0]["resource"], "result") is True
    assert body["entry"][1]["resource"]["resourceType"] == "OperationOutcome"
    assert param_value(body["entry"][2]["resource"], "result") is False


def test_implicit_value_set_isa_expands_on_the_real_server(live_server: str) -> None:
    url = quote(f"{BODY_SITE}?fhir_vs=isa/spine", safe="")
    resp = requests.get(f"{live_server}/ValueSet/$expand?url={url}", timeout=20)
    assert resp.status_code == 200
    assert resp.json()["expansion"]["total"] == 4
