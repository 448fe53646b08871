"""The OpenAPI description at /fhir/openapi.json follows the HANDLERS table and the routes."""

from __future__ import annotations

from typing import Any

from terminology.operations import HANDLERS


def test_openapi_lists_every_operation_at_type_and_instance_level(client: Any) -> None:
    resp = client.get("/fhir/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    doc = resp.get_json()
    assert doc["openapi"].startswith("3.")
    for rtype, op in HANDLERS:
        for path in (f"/fhir/{rtype}/${op}", f"/fhir/{rtype}/{{id}}/${op}"):
            assert set(doc["paths"][path]) == {"get", "post"}, path
            assert doc["paths"][path]["post"]["requestBody"]["content"]["application/fhir+json"]


def test_openapi_documents_read_only_writes_and_error_outcomes(client: Any) -> None:
    doc = client.get("/fhir/openapi.json").get_json()
    instance = doc["paths"]["/fhir/CodeSystem/{id}"]
    assert set(instance) == {"get", "put", "delete"}
    assert set(instance["put"]["responses"]) == {"405"}
    expand = doc["paths"]["/fhir/ValueSet/$expand"]["get"]
    count = next(p for p in expand["parameters"] if p["name"] == "count")
    assert count["schema"] == {"type": "integer", "minimum": 0}
    default = expand["responses"]["default"]["content"]["application/fhir+json"]["schema"]
    assert default == {"$ref": "#/components/schemas/OperationOutcome"}
