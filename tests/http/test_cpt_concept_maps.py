"""The ConceptMaps derived from the bundled CPT fragment (contrast alternatives, DICOM
modality) through the FHIR API: $translate, read and search, and the `cpt_rules` setting."""

from __future__ import annotations

from typing import Any

import pytest

from terminology.cpt.concept_maps import CONTRAST_MAP_URL, DICOM_MAP_URL, DICOM_URL
from terminology.http.app import create_app
from terminology.settings import BUNDLED_CONTENT, Settings

from ..conftest import CPT_URL, assert_fhir_valid, param_value

# Every CT/MR study family of the fragment, written out by hand from the descriptors.
FAMILIES = [
    ["70450", "70460", "70470"], ["70551", "70552", "70553"], ["71250", "71260", "71270"],
    ["72125", "72126", "72127"], ["72128", "72129", "72130"], ["72131", "72132", "72133"],
    ["72141", "72142", "72156"], ["72146", "72147", "72157"], ["72148", "72149", "72158"],
    ["73721", "73722", "73723"], ["74176", "74177", "74178"],
]
CONTRAST = {"72125": "none", "72126": "with", "72127": "without-then-with"}
IMAGING = [*(c for f in FAMILIES for c in f), "71045", "71046", "71047", "71048", "76700",
           "76705", "77065", "77066", "77067"]


def translate(client: Any, code: str, **params: Any) -> dict[str, Any]:
    resp = client.get("/fhir/ConceptMap/$translate",
                      query_string={"system": CPT_URL, "code": code, **params})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert_fhir_valid(body)
    return body


def matches(body: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in body["parameter"]:
        if p["name"] == "match":
            out.append({part["name"]: part for part in p["part"]})
    return out


def targets(body: dict[str, Any]) -> list[str]:
    return [m["concept"]["valueCoding"]["code"] for m in matches(body)]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f[0])
def test_every_ct_mr_family_maps_to_its_contrast_siblings_only(client: Any, family: list[str]) -> None:
    for code in family:
        body = translate(client, code, url=CONTRAST_MAP_URL)
        assert param_value(body, "result") is True
        assert sorted(targets(body)) == sorted(c for c in family if c != code)


def test_translate_of_72126_names_each_target_contrast_as_product(client: Any) -> None:
    body = translate(client, "72126", targetsystem=CPT_URL)
    found = {m["concept"]["valueCoding"]["code"]: m for m in matches(body)}
    assert sorted(found) == ["72125", "72127"]
    for code, match in found.items():
        assert match["equivalence"]["valueCode"] == "relatedto"
        assert match["originMap"]["valueCanonical"] == f"{CONTRAST_MAP_URL}|2026"
        element, concept = match["product"]["part"]
        assert element["valueUri"] == "urn:cpt-imaging:property:contrast"
        assert concept["valueCoding"]["code"] == CONTRAST[code]
        assert CONTRAST[code] in match["message"]["valueString"]


@pytest.mark.parametrize("code", ["71045", "76700", "77067"])
def test_code_without_a_contrast_family_translates_to_nothing(client: Any, code: str) -> None:
    body = translate(client, code, url=CONTRAST_MAP_URL)
    assert param_value(body, "result") is False
    assert targets(body) == []


@pytest.mark.parametrize(("code", "modalities"), [
    ("72126", ["CT"]), ("70551", ["MR"]), ("76700", ["US"]), ("77067", ["MG"]),
    ("71045", ["DX", "CR"]),
])
def test_dicom_map_gives_the_worklist_modality(client: Any, code: str, modalities: list[str]) -> None:
    body = translate(client, code, targetsystem=DICOM_URL)
    assert param_value(body, "result") is True
    assert targets(body) == modalities
    assert all(m["equivalence"]["valueCode"] == "wider" for m in matches(body))


def test_dicom_map_covers_every_imaging_code_of_the_fragment(client: Any) -> None:
    cm = client.get("/fhir/ConceptMap/cpt-to-dicom-modality-2026").get_json()
    assert sorted(e["code"] for e in cm["group"][0]["element"]) == sorted(IMAGING)


def test_derived_maps_are_readable_and_searchable_as_valid_concept_maps(client: Any) -> None:
    for url, rid in ((CONTRAST_MAP_URL, "cpt-contrast-alternatives-2026"),
                     (DICOM_MAP_URL, "cpt-to-dicom-modality-2026")):
        resp = client.get(f"/fhir/ConceptMap/{rid}")
        assert resp.status_code == 200
        cm = resp.get_json()
        assert_fhir_valid(cm)
        assert (cm["url"], cm["version"]) == (url, "2026")
        bundle = client.get("/fhir/ConceptMap", query_string={"url": url}).get_json()
        assert [e["resource"]["id"] for e in bundle.get("entry", [])] == [rid]


def validate(client: Any, code: str) -> dict[str, Any]:
    resp = client.get("/fhir/CodeSystem/$validate-code", query_string={"url": CPT_URL, "code": code})
    assert resp.status_code == 200
    return resp.get_json()


@pytest.mark.parametrize("code", ["73721:RT", "73721:LT", "73721:50", "72126:26:RT"])
def test_imaging_orders_with_a_side_are_valid_by_default(client: Any, code: str) -> None:
    assert param_value(validate(client, code), "result") is True


@pytest.mark.parametrize(("code", "rule"), [
    ("73721:LT:RT", "LT and RT cannot be used together"),
    ("73721:50:RT", "50 (bilateral procedure) cannot be used together with RT"),
    ("72126:26:26", "26 is used more than once"),
])
def test_contradictory_modifiers_are_invalid_by_default(client: Any, code: str, rule: str) -> None:
    body = validate(client, code)
    assert param_value(body, "result") is False
    assert rule in param_value(body, "message")


@pytest.fixture(scope="module")
def tx_client() -> Any:
    """A client of an app loaded with cpt_rules = tx.fhir.org."""
    return create_app(Settings(content_dirs=[BUNDLED_CONTENT], cpt_rules="tx.fhir.org")).test_client()


def test_tx_fhir_org_rules_setting_reproduces_its_hcpcs_rule(tx_client: Any) -> None:
    body = validate(tx_client, "73721:RT")
    assert param_value(body, "result") is False
    assert "RT is an hcpcs code that can only be used if the modifier 59" in param_value(body, "message")
    assert param_value(validate(tx_client, "73721:RT:59"), "result") is True
