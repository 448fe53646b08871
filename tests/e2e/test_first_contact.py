"""What a FHIR client library meets first, against the real server (read-only, bundled content
plus tests/data): search by POST, 405s with Allow, operation POSTs without a body, FHIR version
negotiation, CORS on a read-only server, unknown and malformed parameters, CPT $lookup answers
and what TerminologyCapabilities says about $translate.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.conftest import CPT_URL, assert_outcome, param_value

SPINE_CT = "https://terminology.cpt-imaging.org/fhir/ValueSet/spine-ct"
JSON = {"Accept": "application/fhir+json"}


def get(base: str, path: str, params: Any = None, **headers: str) -> requests.Response:
    return requests.get(base + path, params=params, headers={**JSON, **headers}, timeout=30)


def post(base: str, path: str, **kw: Any) -> requests.Response:
    return requests.post(base + path, timeout=30, **kw)


# -- HTTP conventions ---------------------------------------------------------------------


def test_post_search_with_a_form_body_is_the_same_search_as_the_get(live_server: str) -> None:
    by_get = get(live_server, "/ValueSet", {"url": SPINE_CT})
    by_post = post(live_server, "/ValueSet/_search", data={"url": SPINE_CT}, headers=JSON)
    assert by_post.status_code == 200, by_post.text
    assert by_post.json()["type"] == "searchset"
    assert by_post.json()["total"] == by_get.json()["total"] == 1
    assert by_post.json()["entry"] == by_get.json()["entry"]


def test_post_search_joins_the_query_and_the_form_body(live_server: str) -> None:
    resp = post(live_server, "/ValueSet/_search?status=active", data={"url": SPINE_CT}, headers=JSON)
    assert resp.status_code == 200 and resp.json()["total"] == 1
    none = post(live_server, "/ValueSet/_search?status=retired", data={"url": SPINE_CT}, headers=JSON)
    assert none.status_code == 200 and none.json()["total"] == 0


def test_post_search_with_a_json_body_is_415(live_server: str) -> None:
    resp = post(live_server, "/ValueSet/_search", json={"url": SPINE_CT}, headers=JSON)
    assert_outcome(resp, 415, "x-www-form-urlencoded")


def test_a_405_names_the_methods_the_url_takes(live_server: str) -> None:
    put = requests.put(f"{live_server}/ValueSet/spine-ct", json={"resourceType": "ValueSet"}, timeout=30)
    assert_outcome(put, 405, "read-only")
    assert put.headers["Allow"] == "GET, HEAD, OPTIONS"
    create = post(live_server, "/ValueSet", json={"resourceType": "ValueSet"})
    assert create.status_code == 405 and "GET" in create.headers["Allow"]
    routed = requests.put(f"{live_server}/ValueSet/$expand", timeout=30)  # a route without PUT
    assert_outcome(routed, 405)
    assert routed.headers["Allow"] == "GET, HEAD, POST, OPTIONS"
    health = requests.put(f"{live_server.removesuffix('/fhir')}/healthz", timeout=30)
    assert health.status_code == 405
    assert {m.strip() for m in health.headers["Allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}


def test_an_operation_post_without_a_body_is_an_empty_parameters(live_server: str) -> None:
    resp = post(live_server, "/ValueSet/spine-ct/$expand",
                headers={**JSON, "Content-Type": "application/fhir+json"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["resourceType"] == "ValueSet" and resp.json()["expansion"]["total"] == 9


@pytest.mark.parametrize("version", ["5.0", "3.0"])
def test_accepting_only_another_fhir_version_is_406(live_server: str, version: str) -> None:
    resp = get(live_server, "/metadata", Accept=f"application/fhir+json; fhirVersion={version}")
    assert_outcome(resp, 406, "FHIR R4")
    lookup = get(live_server, "/CodeSystem/$lookup", {"system": CPT_URL, "code": "72125"},
                 Accept=f"application/fhir+json; fhirVersion={version}")
    assert_outcome(lookup, 406, "FHIR R4")


@pytest.mark.parametrize("accept", ["application/fhir+json; fhirVersion=4.0", "application/fhir+json",
                                    "application/fhir+json; fhirVersion=5.0, application/fhir+json;q=0.5"])
def test_accepting_fhir_r4_or_no_version_is_answered(live_server: str, accept: str) -> None:
    resp = get(live_server, "/CodeSystem/$lookup", {"system": CPT_URL, "code": "72125"}, Accept=accept)
    assert resp.status_code == 200 and resp.json()["resourceType"] == "Parameters"


def test_a_cors_preflight_on_a_read_only_server_offers_no_put_or_delete(live_server: str) -> None:
    resp = requests.options(f"{live_server}/ValueSet/spine-ct", timeout=30, headers={
        "Origin": "https://app.example.org", "Access-Control-Request-Method": "PUT"})
    assert resp.status_code == 204
    methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"GET", "POST", "OPTIONS"}


# -- parameters ---------------------------------------------------------------------------


def test_a_misspelt_parameter_is_named_with_the_closest_known_name(live_server: str) -> None:
    for resp in (get(live_server, "/CodeSystem/$lookup", {"sytem": CPT_URL, "code": "72125"}),
                 post(live_server, "/CodeSystem/$lookup", headers=JSON, json={
                     "resourceType": "Parameters", "parameter": [
                         {"name": "sytem", "valueUri": CPT_URL}, {"name": "code", "valueCode": "72125"}]})):
        body = assert_outcome(resp, 400, "'system' is required", "system")
        warning = body["issue"][1]
        assert warning["severity"] == "warning" and warning["expression"] == ["sytem"]
        assert "'sytem'" in warning["diagnostics"] and "did you mean 'system'" in warning["diagnostics"]


def test_an_unknown_parameter_leaves_a_successful_answer_as_it_was(live_server: str) -> None:
    plain = get(live_server, "/CodeSystem/$lookup", {"system": CPT_URL, "code": "72125"})
    extra = get(live_server, "/CodeSystem/$lookup", {"system": CPT_URL, "code": "72125", "limit": "5"})
    assert extra.status_code == 200 and extra.json() == plain.json()


def test_the_404_for_an_unknown_value_set_names_url(live_server: str) -> None:
    resp = get(live_server, "/ValueSet/$expand", {"url": "http://example.org/nope"})
    assert_outcome(resp, 404, "http://example.org/nope", "url")


BAD_VALUES = [
    ("/ValueSet/$validate-code", {"url": SPINE_CT, "system": CPT_URL, "code": "72125",
                                  "displayLanguage": "-"}, "displayLanguage"),
    ("/CodeSystem/$lookup", {"system": CPT_URL, "code": "72125", "displayLanguage": "en_US"},
     "displayLanguage"),
    ("/ValueSet/$expand", {"url": SPINE_CT, "date": "notadate"}, "date"),
    ("/CodeSystem/$lookup", {"system": CPT_URL, "code": "72125", "date": "2026-13-01"}, "date"),
    ("/ValueSet/$expand", {"url": SPINE_CT, "count": "ten"}, "count"),
    ("/ValueSet/$expand", {"url": SPINE_CT, "activeOnly": "yes"}, "activeOnly"),
    ("/ValueSet/$expand", {"url": SPINE_CT + "|"}, "url"),
    ("/ValueSet/$expand", {"url": SPINE_CT, "system-version": f"{CPT_URL}|"}, "system-version"),
    ("/CodeSystem/$lookup", {"system": "http://www.ama-assn.org/go cpt", "code": "72125"}, "system"),
    ("/CodeSystem/$lookup", {"system": CPT_URL, "code": "72125", "property": " modality"}, "property"),
]


@pytest.mark.parametrize(("path", "params", "name"), BAD_VALUES, ids=[f"{p}-{n}" for p, _, n in BAD_VALUES])
def test_a_typed_parameter_with_the_wrong_syntax_is_a_400_naming_it(
        live_server: str, path: str, params: dict[str, str], name: str) -> None:
    assert_outcome(get(live_server, path, params), 400, f"'{name}'", name)


def test_a_malformed_accept_language_is_a_400_naming_it(live_server: str) -> None:
    resp = get(live_server, "/CodeSystem/$lookup", {"system": CPT_URL, "code": "72125"},
               **{"Accept-Language": "en;q=high"})
    assert_outcome(resp, 400, "Accept-Language", "Accept-Language")


@pytest.mark.parametrize("value", ["de", "en-AU", "en, en-AU; q=0.4", "de,*; q=0", "zh-Hant-TW", "*"])
def test_language_lists_as_tx_fhir_org_takes_them_are_accepted(live_server: str, value: str) -> None:
    resp = get(live_server, "/ValueSet/$expand", {"url": SPINE_CT, "displayLanguage": value})
    assert resp.status_code == 200, resp.text


# -- CPT $lookup and capabilities ----------------------------------------------------------


def test_lookup_with_property_keeps_the_cpt_copyright(live_server: str) -> None:
    for wanted in ("modality", "display", "designation"):
        body = get(live_server, "/CodeSystem/$lookup",
                   {"system": CPT_URL, "code": "72125", "property": wanted}).json()
        codes = [next(p["valueCode"] for p in prop["part"] if p["name"] == "code")
                 for prop in body["parameter"] if prop["name"] == "property"]
        assert "copyright" in codes, (wanted, codes)


def test_every_designation_use_of_a_cpt_lookup_can_be_looked_up_here(live_server: str) -> None:
    body = get(live_server, "/CodeSystem/$lookup", {"system": CPT_URL, "code": "72125"}).json()
    uses = [part["valueCoding"] for d in body["parameter"] if d["name"] == "designation"
            for part in d["part"] if part["name"] == "use"]
    assert len(uses) >= 2  # the display (preferredForLanguage) and the AMA short descriptor
    for use in uses:
        found = get(live_server, "/CodeSystem/$lookup", {"system": use["system"], "code": use["code"]})
        assert found.status_code == 200, (use, found.text)
        assert param_value(found.json(), "display") == use["display"]


def test_translate_needs_no_map_and_says_so(live_server: str) -> None:
    caps = get(live_server, "/metadata", {"mode": "terminology"}).json()
    assert caps["translation"]["needsMap"] is False
    resp = get(live_server, "/ConceptMap/$translate",
               {"system": CPT_URL, "code": "72126", "targetsystem": CPT_URL})
    assert resp.status_code == 200 and param_value(resp.json(), "result") is True
