"""End to end: ValueSet/$compare on the real server, called with requests."""

from __future__ import annotations

from typing import Any

import requests

from ..conftest import CPT_URL, assert_fhir_valid

ORDER_SETS = "https://terminology.cpt-imaging.org/fhir/ValueSet/"


def _answer(resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("application/fhir+json")
    body = resp.json()
    assert_fhir_valid(body)
    return {p["name"]: next(v for k, v in p.items() if k != "name") for p in body["parameter"]}


def test_a_shipped_order_set_against_an_edited_copy_names_the_dropped_code(live_server: str) -> None:
    edited = {"resourceType": "ValueSet", "url": "http://example.test/ValueSet/ct-cervical-edited",
              "status": "draft", "compose": {"include": [
                  {"system": CPT_URL, "concept": [{"code": "72125"}, {"code": "72126"}]}]}}
    body: dict[str, Any] = {"resourceType": "Parameters", "parameter": [
        {"name": "thisUrl", "valueUri": ORDER_SETS + "ct-cervical-spine"},
        {"name": "otherValueSet", "resource": edited},
        {"name": "diagnostics", "valueBoolean": True}]}
    got = _answer(requests.post(f"{live_server}/ValueSet/$compare", json=body, timeout=30))
    assert (got["result"], got["missing-codes"], got["common-codes"]) == ("superset", "72127", "72125,72126")
    assert got["performed-expansion"] is False


def test_get_compares_a_value_set_with_itself(live_server: str) -> None:
    url = ORDER_SETS + "spine-ct"
    got = _answer(requests.get(f"{live_server}/ValueSet/$compare",
                               params={"thisUrl": url, "otherUrl": url}, timeout=30))
    assert (got["result"], got["performed-expansion"]) == ("same", False)


def test_missing_parameters_are_an_operation_outcome(live_server: str) -> None:
    resp = requests.get(f"{live_server}/ValueSet/$compare", params={"thisUrl": ORDER_SETS + "spine-ct"},
                        timeout=30)
    assert resp.status_code == 400
    assert resp.json()["resourceType"] == "OperationOutcome"
