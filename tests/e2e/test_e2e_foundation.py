"""End to end: the real server (`terminology serve`) on 127.0.0.1, called with requests and fhirpy."""

from __future__ import annotations

from typing import Any

import requests
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

from terminology.cpt.provider import LOOKUP_COPYRIGHT

from ..conftest import CPT_URL, assert_fhir_valid, param_value, properties

FHIR_JSON = "application/fhir+json"


def test_lookup_72126_returns_display_version_and_imaging_facets(live_server: str) -> None:
    resp = requests.get(f"{live_server}/CodeSystem/$lookup",
                        params={"system": CPT_URL, "code": "72126"}, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith(FHIR_JSON)
    body = resp.json()
    assert_fhir_valid(body)
    assert param_value(body, "display") == "Computed tomography, cervical spine; with contrast material"
    assert param_value(body, "version") == "2026"
    props = properties(body)
    assert props["modality"] == ["CT"]
    assert props["body-region"] == ["cervical-spine"]
    assert props["contrast"] == ["with"]


def test_lookup_property_parameter_selects_properties(live_server: str) -> None:
    resp = requests.get(f"{live_server}/CodeSystem/$lookup", timeout=10,
                        params=[("system", CPT_URL), ("code", "72127"), ("property", "contrast")])
    # the AMA copyright comes with every CPT answer, whatever `property` asks for
    assert properties(resp.json()) == {"contrast": ["without-then-with"],
                                       "copyright": [LOOKUP_COPYRIGHT]}


def test_lookup_post_parameters(live_server: str) -> None:
    body: dict[str, Any] = {"resourceType": "Parameters", "parameter": [
        {"name": "coding", "valueCoding": {"system": CPT_URL, "code": "70551"}}]}
    resp = requests.post(f"{live_server}/CodeSystem/$lookup", json=body, timeout=10,
                         headers={"Content-Type": FHIR_JSON})
    assert resp.status_code == 200
    assert properties(resp.json())["modality"] == ["MR"]


def test_unknown_code_is_404_operation_outcome(live_server: str) -> None:
    resp = requests.get(f"{live_server}/CodeSystem/$lookup",
                        params={"system": CPT_URL, "code": "99999"}, timeout=10)
    assert resp.status_code == 404
    body = resp.json()
    assert_fhir_valid(body)
    assert body["issue"][0]["expression"] == ["code"]
    assert "99999" in body["issue"][0]["details"]["text"]


def test_malformed_body_never_gives_html_or_500(live_server: str) -> None:
    resp = requests.post(f"{live_server}/CodeSystem/$lookup", data=b"{oops", timeout=10,
                         headers={"Content-Type": FHIR_JSON})
    assert resp.status_code == 400
    assert resp.headers["Content-Type"].startswith(FHIR_JSON)
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_metadata_and_health(live_server: str) -> None:
    meta = requests.get(f"{live_server}/metadata", timeout=10).json()
    assert_fhir_valid(meta)
    assert meta["fhirVersion"] == "4.0.1"
    root = live_server.removesuffix("/fhir")
    assert requests.get(f"{root}/healthz", timeout=10).json() == {"status": "ok"}


def test_fhirpy_reads_searches_and_calls_lookup(live_server: str) -> None:
    client = SyncFHIRClient(live_server, extra_headers={"Accept": FHIR_JSON})
    cpt = client.reference("CodeSystem", "cpt").to_resource()
    assert cpt["url"] == CPT_URL and cpt["content"] == "fragment"
    found = client.resources("CodeSystem").search(url=CPT_URL).fetch()
    assert [r["id"] for r in found] == ["cpt"]
    out: dict[str, Any] = client.execute("CodeSystem/$lookup", method="get",
                                         params={"system": CPT_URL, "code": "72125"})
    assert param_value(out, "display") == "Computed tomography, cervical spine; without contrast material"


def test_fhirpy_sees_operation_outcome_for_unknown_system(live_server: str) -> None:
    client = SyncFHIRClient(live_server)
    try:
        client.execute("CodeSystem/$lookup", method="get", params={"system": "http://nowhere.test", "code": "1"})
    except ResourceNotFound as e:  # fhirpy's exception for a 404 answer
        assert "could not be found" in str(e)
        assert '"resourceType":"OperationOutcome"' in str(e)
    else:
        raise AssertionError("an unknown system must be an error")
