"""Bad input sent to the real server: every answer is the right status and an OperationOutcome
with a useful message (and the parameter's name as `expression` where there is one), in time.

The last test checks that none of it damaged what the server holds.
"""

from __future__ import annotations

from typing import Any

import pytest

from ..conftest import BODY_SITE, CPT_URL
from .conftest import (
    DISPLAY_72126,
    FHIR_JSON,
    check_outcome,
    lookup_72126_is_intact,
    parameters,
    send,
)

LOOKUP = "/CodeSystem/$lookup"
EXPAND = "/ValueSet/$expand"
VS_VALIDATE = "/ValueSet/$validate-code"
CS_VALIDATE = "/CodeSystem/$validate-code"
CPT_ALL = "http://terminology.hl7.org/ValueSet/cpt-all"
JSON_HEADERS = {"Content-Type": FHIR_JSON}
SYSTEM = {"name": "system", "valueUri": CPT_URL}
CODE = {"name": "code", "valueCode": "72126"}


def body(*params: dict[str, Any]) -> dict[str, Any]:
    """Request kwargs for a POST of a Parameters resource."""
    return {"data": parameters(*params), "headers": JSON_HEADERS}


def raw(data: bytes | str, ctype: str = FHIR_JSON) -> dict[str, Any]:
    return {"data": data, "headers": {"Content-Type": ctype}}


def self_importing() -> dict[str, Any]:
    return {"resourceType": "ValueSet", "url": "http://example.test/vs/self", "status": "active",
            "compose": {"include": [{"valueSet": ["http://example.test/vs/self"]}]}}


# (id, method, path, request kwargs, status, text fragment, expression)
CASES: list[tuple[str, str, str, dict[str, Any], int, str, str | None]] = [
    # -- the body --------------------------------------------------------------------------
    ("broken-json", "POST", LOOKUP, raw(b'{"resourceType": "Parameters",'), 400, "not valid JSON", None),
    # an empty body is an empty Parameters: $lookup then misses its code
    ("empty-body", "POST", LOOKUP, raw(b""), 400, "'code' (or 'coding') is required", "code"),
    ("json-array", "POST", LOOKUP, raw(b"[]"), 400, "Parameters resource", None),
    ("json-string", "POST", LOOKUP, raw(b'"Parameters"'), 400, "Parameters resource", None),
    ("not-parameters", "POST", LOOKUP, raw(b'{"resourceType": "Patient"}'), 400, "not 'Patient'",
     "resourceType"),
    ("parameter-not-a-list", "POST", LOOKUP, raw(b'{"resourceType": "Parameters", "parameter": {}}'),
     400, "must be a list", "Parameters.parameter"),
    ("parameter-without-name", "POST", LOOKUP,
     raw(b'{"resourceType": "Parameters", "parameter": [{"valueCode": "x"}]}'), 400, "has no name",
     "Parameters.parameter[0].name"),
    ("parameter-without-value", "POST", LOOKUP, body(SYSTEM, {"name": "code"}), 400,
     "neither a value", "code"),
    ("two-values", "POST", LOOKUP, body(SYSTEM, {"name": "code", "valueCode": "1", "valueString": "2"}),
     400, "more than one value", "code"),
    ("integer-for-code", "POST", LOOKUP, body(SYSTEM, {"name": "code", "valueInteger": 72126}), 400,
     "must be a string", "code"),
    ("boolean-for-system", "POST", LOOKUP, body(CODE, {"name": "system", "valueBoolean": True}), 400,
     "must be a string", "system"),
    ("repeated-code-post", "POST", LOOKUP, body(SYSTEM, CODE, CODE), 400, "only once", "code"),
    ("repeated-code-get", "GET", f"{LOOKUP}?system={CPT_URL}&code=72126&code=72125", {}, 400,
     "only once", "code"),
    ("code-and-coding", "POST", LOOKUP,
     body(SYSTEM, CODE, {"name": "coding", "valueCoding": {"system": CPT_URL, "code": "72126"}}), 400,
     "not both", "coding"),
    ("coding-code-is-a-number", "POST", LOOKUP, body({"name": "coding", "valueCoding": {"code": 5}}),
     400, "must be a string", "coding.code"),
    ("coding-is-a-string", "POST", CS_VALIDATE, body({"name": "coding", "valueCoding": "72126"}), 400,
     "must be a Coding", "coding"),
    ("codeable-concept-coding-not-list", "POST", VS_VALIDATE,
     body({"name": "url", "valueUri": CPT_ALL},
          {"name": "codeableConcept", "valueCodeableConcept": {"coding": {"code": "x"}}}),
     400, "list of Codings", "codeableConcept.coding"),
    ("codeable-concept-text-number", "POST", VS_VALIDATE,
     body({"name": "url", "valueUri": CPT_ALL},
          {"name": "codeableConcept", "valueCodeableConcept": {"text": 5}}),
     400, "must be a string", "codeableConcept.text"),
    ("nothing-to-validate", "POST", VS_VALIDATE, body({"name": "url", "valueUri": CPT_ALL}), 400,
     "Unable to find code to validate", None),
    ("value-set-param-holds-code-system", "POST", EXPAND,
     body({"name": "valueSet", "resource": {"resourceType": "CodeSystem"}}), 400, "must carry a ValueSet",
     "valueSet"),
    ("value-set-compose-is-a-string", "POST", EXPAND,
     body({"name": "valueSet", "resource": {"resourceType": "ValueSet", "status": "active",
                                            "compose": "x"}}), 400, "Invalid valueSet", "valueSet"),
    ("value-set-system-is-a-number", "POST", VS_VALIDATE,
     body({"name": "valueSet", "resource": {"resourceType": "ValueSet", "status": "active",
                                            "compose": {"include": [{"system": 5}]}}},
          SYSTEM, CODE), 400, "Invalid valueSet", "valueSet"),
    ("unknown-code-system", "GET", f"{LOOKUP}?system=http://example.test/none&code=1", {}, 404,
     "could not be found", "system"),
    ("unknown-value-set", "GET", f"{EXPAND}?url=http://example.test/none", {}, 404,
     "could not be found", None),
    ("unknown-operation", "GET", "/CodeSystem/$explode", {}, 404, "not supported", "operation"),
    ("unknown-resource-type", "GET", "/Patient/1", {}, 404, "not served here", "resourceType"),
    # -- paging parameters -----------------------------------------------------------------
    ("count-abc", "GET", f"{EXPAND}?url={CPT_ALL}&count=abc", {}, 400, "must be an integer", "count"),
    ("count-minus-one", "GET", f"{EXPAND}?url={CPT_ALL}&count=-1", {}, 400, "at least 0", "count"),
    ("offset-minus-five", "GET", f"{EXPAND}?url={CPT_ALL}&offset=-5", {}, 400, "at least 0", "offset"),
    ("count-past-32-bits", "GET", f"{EXPAND}?url={CPT_ALL}&count=100000000000000000000000000000", {},
     400, "at most 2147483647", "count"),
    ("count-5000-digits", "GET", f"{EXPAND}?url={CPT_ALL}&count={'9' * 5000}", {}, 400, "at most",
     "count"),
    ("count-superscript-two", "GET", f"{EXPAND}?url={CPT_ALL}&count=%C2%B2", {}, 400,
     "must be an integer", "count"),
    ("count-decimal-in-body", "POST", EXPAND,
     body({"name": "url", "valueUri": CPT_ALL}, {"name": "count", "valueDecimal": 1.5}), 400,
     "must be an integer", "count"),
    ("search-count-abc", "GET", "/ValueSet?_count=abc", {}, 400, "must be an integer", "_count"),
    ("search-count-minus-one", "GET", "/CodeSystem?_count=-1", {}, 400, "at least 0", "_count"),
    ("search-unknown-parameter-strict", "GET", "/CodeSystem?colour=red", {"headers": {"Prefer": "handling=strict"}}, 400, "colour", "colour"),
    # -- query strings ---------------------------------------------------------------------
    ("invalid-utf8-code", "GET", f"{LOOKUP}?system={CPT_URL}&code=%FF%FE", {}, 400, "not valid UTF-8",
     "code"),
    ("invalid-utf8-system", "GET", f"{LOOKUP}?system=http://x%C3%28&code=1", {}, 400,
     "not valid UTF-8", "system"),
    ("nul-in-code", "GET", f"{LOOKUP}?system={CPT_URL}&code=72%0026", {}, 400, "control character",
     "code"),
    ("nul-in-body-code", "POST", LOOKUP, body(SYSTEM, {"name": "code", "valueCode": "72\x0026"}), 400,
     "control character", "code"),
    ("escape-in-display", "POST", CS_VALIDATE,
     body({"name": "url", "valueUri": CPT_URL}, CODE, {"name": "display", "valueString": "a\x1bb"}),
     400, "control character", "display"),
    ("code-10000-chars-get", "GET", f"{LOOKUP}?system={CPT_URL}&code={'7' * 10_000}", {}, 404,
     "Unknown code", "code"),
    ("code-10000-chars-post", "POST", LOOKUP, body(SYSTEM, {"name": "code", "valueCode": "7" * 10_000}),
     404, "Unknown code", "code"),
    ("value-set-imports-itself-expand", "POST", EXPAND,
     body({"name": "url", "valueUri": "http://example.test/vs/self"},
          {"name": "tx-resource", "resource": self_importing()}), 422, "circularity", None),
    ("value-set-imports-itself-validate", "POST", VS_VALIDATE,
     body({"name": "url", "valueUri": "http://example.test/vs/self"}, SYSTEM, CODE,
          {"name": "tx-resource", "resource": self_importing()}), 422, "circularity", None),
    # -- content negotiation ---------------------------------------------------------------
    ("content-type-text-plain", "POST", LOOKUP, raw(parameters(SYSTEM, CODE), "text/plain"), 415,
     "not supported", None),
    ("content-type-xml-without-namespace", "POST", LOOKUP, raw(b"<Parameters/>", "application/xml"), 400,
     "not in the FHIR namespace", None),
    ("content-type-xml-malformed", "POST", LOOKUP, raw(b"<Parameters", "application/fhir+xml"), 400,
     "not well-formed", None),
    ("accept-html-only-get", "GET", f"{LOOKUP}?system={CPT_URL}&code=72126",
     {"headers": {"Accept": "text/html"}}, 406, "application/fhir+json", None),
    ("accept-json-and-xml-refused-by-q0", "GET", f"{LOOKUP}?system={CPT_URL}&code=72126",
     {"headers": {"Accept": "application/fhir+json;q=0, application/json;q=0, application/fhir+xml;q=0, "
                            "application/xml;q=0, text/xml;q=0, */*;q=0"}}, 406, "application/fhir+json", None),
    ("format-html", "GET", f"{LOOKUP}?system={CPT_URL}&code=72126&_format=html", {}, 406,
     "not supported", "_format"),
    # -- the server is read-only -----------------------------------------------------------
    *[(f"{method.lower()}-{path.strip('/').replace('/', '-').lower()}", method, path,
       raw(b'{"resourceType": "CodeSystem", "status": "active", "content": "complete"}'),
       405, "read-only", None)
      for method in ("PUT", "POST", "DELETE")
      for path in ("/CodeSystem", "/ValueSet", "/CodeSystem/cpt", "/ValueSet/cpt-all")],
    ("patch-valueset", "PATCH", "/ValueSet/cpt-all", raw(b"[]"), 405, "read-only", None),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "fragment", "expression"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_request_is_answered_with_an_operation_outcome(
    live_server: str, method: str, path: str, kwargs: dict[str, Any], status: int, fragment: str,
    expression: str | None,
) -> None:
    check_outcome(send(live_server, method, path, **kwargs), status, fragment, expression)


def test_unknown_parameters_are_ignored(live_server: str) -> None:
    answer = send(live_server, "POST", LOOKUP,
                  **body(SYSTEM, CODE, {"name": "colour", "valueString": "red"}))
    assert answer.status == 200
    display = [p for p in answer.json()["parameter"] if p["name"] == "display"]
    assert display[0]["valueString"] == DISPLAY_72126


def test_codeable_concept_with_only_text_is_not_valid(live_server: str) -> None:
    for path, url in ((VS_VALIDATE, CPT_ALL), (CS_VALIDATE, CPT_URL)):
        answer = send(live_server, "POST", path,
                      **body({"name": "url", "valueUri": url},
                             {"name": "codeableConcept", "valueCodeableConcept": {"text": "CT neck"}}))
        assert answer.status == 200, answer.body
        result = [p for p in answer.json()["parameter"] if p["name"] == "result"]
        assert result == [{"name": "result", "valueBoolean": False}]


def test_code_system_validate_of_text_only_concept_says_why(live_server: str) -> None:
    answer = send(live_server, "POST", CS_VALIDATE,
                  **body({"name": "url", "valueUri": CPT_URL},
                         {"name": "codeableConcept", "valueCodeableConcept": {"text": "CT neck"}}))
    names = {p["name"] for p in answer.json()["parameter"]}
    assert {"message", "issues"} <= names


def test_a_thousand_codings_are_validated_in_time(live_server: str) -> None:
    codings = [{"system": CPT_URL, "code": str(71000 + i)} for i in range(999)]
    codings.append({"system": CPT_URL, "code": "72126"})
    answer = send(live_server, "POST", VS_VALIDATE,
                  **body({"name": "url", "valueUri": CPT_ALL},
                         {"name": "codeableConcept", "valueCodeableConcept": {"coding": codings}}))
    assert answer.status == 200 and answer.seconds < 5
    params = {p["name"]: p for p in answer.json()["parameter"]}
    # the bundled CPT is a fragment: an unknown code there is a warning, so the first coding wins
    assert params["result"]["valueBoolean"] is True
    assert len(params["codeableConcept"]["valueCodeableConcept"]["coding"]) == 1000


def test_import_chain_fifty_deep_expands_and_validates(live_server: str) -> None:
    chain = [{"resourceType": "ValueSet", "url": f"http://example.test/vs/d{i}", "status": "active",
              "compose": {"include": [{"valueSet": [f"http://example.test/vs/d{i + 1}"]}]}}
             for i in range(50)]
    chain.append({"resourceType": "ValueSet", "url": "http://example.test/vs/d50", "status": "active",
                  "compose": {"include": [{"system": BODY_SITE}]}})
    tx = [{"name": "tx-resource", "resource": vs} for vs in chain]
    url = {"name": "url", "valueUri": "http://example.test/vs/d0"}
    expanded = send(live_server, "POST", EXPAND, **body(url, *tx))
    assert expanded.status == 200, expanded.body[:300]
    assert expanded.json()["expansion"]["total"] == 7
    checked = send(live_server, "POST", VS_VALIDATE,
                   **body(url, {"name": "system", "valueUri": BODY_SITE},
                          {"name": "code", "valueCode": "c-spine"}, *tx))
    assert {"name": "result", "valueBoolean": True} in checked.json()["parameter"]


def test_huge_count_is_just_everything(live_server: str) -> None:
    answer = send(live_server, "GET", f"{EXPAND}?url={CPT_ALL}&count=1000000000")
    assert answer.status == 200
    expansion = answer.json()["expansion"]
    assert len(expansion["contains"]) == expansion["total"]


def test_search_count_zero_gives_only_the_total(live_server: str) -> None:
    answer = send(live_server, "GET", "/ValueSet?_count=0")
    assert answer.status == 200
    bundle = answer.json()
    assert bundle["total"] > 0 and bundle["entry"] == []


def test_server_content_is_intact_after_bad_input(live_server: str) -> None:
    lookup_72126_is_intact(live_server)
