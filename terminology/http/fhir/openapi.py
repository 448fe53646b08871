"""An OpenAPI 3 description of the FHIR endpoints, served at /fhir/openapi.json.

Built from the HANDLERS table (one path per operation, type and instance level, GET and POST)
plus the fixed routes (metadata, read, search, the read-only interactions that answer 405).
It documents what a client may send; every error is an OperationOutcome. The schemathesis
fuzz tests (tests/reliability/test_fuzz.py) generate requests from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

STRING: dict[str, Any] = {"type": "string"}
BOOLEAN: dict[str, Any] = {"type": "boolean"}
COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}

# The query parameters each operation reads (R4 operation definitions, plus tx.fhir.org's
# extras such as tx-resource, which a GET cannot carry). Unlisted names are ignored.
OPERATION_PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "lookup": {"system": STRING, "code": STRING, "version": STRING, "coding": STRING,
               "displayLanguage": STRING, "property": STRING, "date": STRING,
               "useSupplement": STRING},
    "expand": {"url": STRING, "valueSetVersion": STRING, "filter": STRING, "count": COUNT,
               "offset": COUNT, "activeOnly": BOOLEAN, "includeDesignations": BOOLEAN,
               "designation": STRING, "includeDefinition": BOOLEAN, "displayLanguage": STRING,
               "excludeNested": BOOLEAN, "excludeNotForUI": BOOLEAN, "property": STRING,
               "system-version": STRING, "check-system-version": STRING,
               "force-system-version": STRING, "default-valueset-version": STRING},
    "validate-code": {"url": STRING, "valueSetVersion": STRING, "code": STRING, "system": STRING,
                      "systemVersion": STRING, "version": STRING, "display": STRING,
                      "coding": STRING, "displayLanguage": STRING, "abstract": BOOLEAN,
                      "activeOnly": BOOLEAN, "inferSystem": BOOLEAN,
                      "lenient-display-validation": BOOLEAN},
    "subsumes": {"codeA": STRING, "codeB": STRING, "system": STRING, "version": STRING},
    "translate": {"url": STRING, "code": STRING, "system": STRING, "version": STRING,
                  "coding": STRING, "targetsystem": STRING, "reverse": BOOLEAN},
    "compare": {"thisUrl": STRING, "thisVersion": STRING, "otherUrl": STRING,
                "otherVersion": STRING, "valueSetVersion": STRING, "diagnostics": BOOLEAN,
                "version-policy": {"type": "string", "enum": ["as-needed", "always", "never"]}},
}
SEARCH_PARAMS: dict[str, dict[str, Any]] = {
    "url": STRING, "version": STRING, "name": STRING, "title": STRING, "status": STRING,
    "_count": COUNT, "_offset": COUNT,
    "_summary": {"type": "string", "enum": ["true", "text", "data", "count", "false"]},
    "_elements": STRING, "_total": {"type": "string", "enum": ["none", "estimate", "accurate"]},
}


def _schemas() -> dict[str, Any]:
    """Loose JSON schemas: enough shape for generated bodies to reach the parsers."""
    coding = {"type": "object", "properties": {k: STRING for k in ("system", "version", "code", "display")}}
    value_props: dict[str, Any] = {
        "name": STRING, "valueString": STRING, "valueCode": STRING, "valueUri": STRING,
        "valueCanonical": STRING, "valueBoolean": BOOLEAN, "valueInteger": {"type": "integer"},
        "valueCoding": {"$ref": "#/components/schemas/Coding"},
        "valueCodeableConcept": {"type": "object", "properties": {
            "coding": {"type": "array", "items": {"$ref": "#/components/schemas/Coding"}},
            "text": STRING}},
        "resource": {"type": "object", "properties": {"resourceType": STRING}},
    }
    return {
        "Coding": coding,
        "Parameters": {
            "type": "object", "required": ["resourceType"],
            "properties": {
                "resourceType": {"type": "string", "enum": ["Parameters"]},
                "parameter": {"type": "array", "items": {
                    "type": "object", "required": ["name"], "properties": value_props}},
            },
        },
        "Resource": {"type": "object", "required": ["resourceType"],
                     "properties": {"resourceType": STRING}},
        "OperationOutcome": {
            "type": "object", "required": ["resourceType", "issue"],
            "properties": {"resourceType": {"type": "string", "enum": ["OperationOutcome"]},
                           "issue": {"type": "array", "minItems": 1}},
        },
    }


def _content(schema: str) -> dict[str, Any]:
    return {"application/fhir+json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _responses(ok: str | None = "Resource") -> dict[str, Any]:
    out: dict[str, Any] = {"default": {"description": "An error (OperationOutcome)",
                                       "content": _content("OperationOutcome")}}
    if ok is not None:
        out["200"] = {"description": "The answer", "content": _content(ok)}
    return out


def _query(params: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "required": False, "schema": s} for n, s in params.items()]


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"}}


def _operation_item(rtype: str, op: str, instance: bool) -> dict[str, Any]:
    params = _query(OPERATION_PARAMS.get(op, {}))
    path_params = [_path_param("id")] if instance else []
    summary = f"{rtype}{'/{id}' if instance else ''}/${op}"
    return {
        "get": {"operationId": f"{rtype}-{op}-{'instance' if instance else 'type'}-get",
                "summary": summary, "parameters": path_params + params,
                "responses": _responses()},
        "post": {"operationId": f"{rtype}-{op}-{'instance' if instance else 'type'}-post",
                 "summary": summary, "parameters": path_params,
                 "requestBody": {"required": True, "content": _content("Parameters")},
                 "responses": _responses()},
    }


def _read_only(rtype: str, methods: Iterable[str], instance: bool) -> dict[str, Any]:
    """The write interactions, documented as the 405 they answer (the server is read-only)."""
    out = {}
    for method in methods:
        out[method] = {
            "operationId": f"{rtype}-{method}-{'instance' if instance else 'type'}",
            "summary": f"{method.upper()} is not supported: this server is read-only",
            "parameters": [_path_param("id")] if instance else [],
            "responses": {"405": {"description": "Not allowed", "content": _content("OperationOutcome")}},
        }
        if method in ("post", "put"):
            out[method]["requestBody"] = {"required": False, "content": _content("Resource")}
    return out


def _write(rtype: str, method: str, instance: bool, ok: dict[str, str]) -> dict[str, Any]:
    """A write interaction (writes enabled): its answers, each error an OperationOutcome."""
    outcome = {"description": "OperationOutcome", "content": _content("OperationOutcome")}
    responses: dict[str, Any] = {code: {"description": text, "content": _content("Resource")}
                                 for code, text in ok.items()}
    responses.update({code: outcome for code in ("400", "401", "403", "412", "422")})
    item: dict[str, Any] = {
        "operationId": f"{rtype}-{method}-{'instance' if instance else 'type'}",
        "summary": f"{method.upper()} {rtype}{'/{id}' if instance else ''} (needs a bearer token)",
        "parameters": [_path_param("id")] if instance else [],
        "security": [{"bearer": []}],
        "responses": responses,
    }
    if method in ("post", "put"):
        item["requestBody"] = {"required": True, "content": _content("Resource")}
    return item


def _writes(rtype: str, instance: bool) -> dict[str, Any]:
    if not instance:
        return {"post": _write(rtype, "post", False, {"201": "Created", "200": "Matched If-None-Exist"}),
                "put": _write(rtype, "put", False, {"200": "Updated", "201": "Created"})}
    return {"put": _write(rtype, "put", True, {"200": "Updated", "201": "Created"}),
            "delete": _write(rtype, "delete", True, {"204": "Deleted"})}


def openapi_spec(handlers: Iterable[tuple[str, str]], resource_types: Iterable[str],
                 server_url: str = "/", writes: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.0 document for the operations in `handlers` and the resource routes
    (`writes`: the write interactions are enabled, else they are documented as 405)."""
    paths: dict[str, Any] = {
        "/fhir/metadata": {"get": {
            "operationId": "metadata", "summary": "CapabilityStatement or TerminologyCapabilities",
            "parameters": _query({"mode": {"type": "string", "enum": ["full", "terminology"]}}),
            "responses": _responses()}},
    }
    paths["/fhir"] = {"post": {
        "operationId": "batch", "summary": "A batch Bundle of operation requests, answered as a batch-response",
        "requestBody": {"required": True, "content": _content("Resource")},
        "responses": _responses()}}
    for rtype, op in sorted(handlers):
        paths[f"/fhir/{rtype}/${op}"] = _operation_item(rtype, op, instance=False)
        paths[f"/fhir/{rtype}/{{id}}/${op}"] = _operation_item(rtype, op, instance=True)
    for rtype in resource_types:
        paths[f"/fhir/{rtype}"] = {
            "get": {"operationId": f"{rtype}-search", "summary": f"Search {rtype}",
                    "parameters": _query(SEARCH_PARAMS), "responses": _responses("Resource")},
            **(_writes(rtype, False) if writes else _read_only(rtype, ("post",), instance=False)),
        }
        paths[f"/fhir/{rtype}/{{id}}"] = {
            "get": {"operationId": f"{rtype}-read", "summary": f"Read a {rtype}",
                    "parameters": [_path_param("id")], "responses": _responses()},
            **(_writes(rtype, True) if writes else _read_only(rtype, ("put", "delete"), instance=True)),
        }
        if writes:
            paths[f"/fhir/{rtype}/{{id}}/_history"] = {"get": {
                "operationId": f"{rtype}-history", "summary": f"Every version of a stored {rtype}",
                "parameters": [_path_param("id")], "responses": _responses()}}
            paths[f"/fhir/{rtype}/{{id}}/_history/{{vid}}"] = {"get": {
                "operationId": f"{rtype}-vread", "summary": f"One version of a stored {rtype}",
                "parameters": [_path_param("id"), _path_param("vid")], "responses": _responses()}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "CPT terminology server (FHIR R4)", "version": "1.0.0",
                 "description": "Terminology operations; every error is an OperationOutcome."},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {"schemas": _schemas(),
                       **({"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
                          if writes else {})},
    }
