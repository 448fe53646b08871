"""$expand as a pure function: paging, nesting, text filter, languages, designations, echo."""

from __future__ import annotations

from typing import Any

import pytest

from terminology.errors import BadRequest, NotFound, TooCostly
from terminology.operations.expand import expand
from terminology.params import ExpandRequest, bag_from_parameters, expand_request
from terminology.providers.fhir import FhirCodeSystemProvider
from terminology.registry import Registry
from terminology.settings import Settings

CS = "http://example.test/cs"
VS = "http://example.test/vs"


def _concept(code: str, display: str, *children: dict[str, Any], **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "display": display, **extra}
    if children:
        out["concept"] = list(children)
    return out


@pytest.fixture()
def registry() -> Registry:
    reg = Registry()
    reg.add_code_system(FhirCodeSystemProvider({
        "resourceType": "CodeSystem", "url": CS, "version": "2", "status": "active",
        "content": "complete", "language": "en", "caseSensitive": True,
        "property": [{"code": "status", "uri": "http://hl7.org/fhir/concept-properties#status", "type": "code"},
                     {"code": "colour", "uri": "http://example.test/colour", "type": "code"}],
        "concept": [
            _concept("heart", "Heart disease",
                     _concept("mi", "Myocardial infarction", designation=[{"language": "de", "value": "Herzinfarkt"}]),
                     _concept("af", "Atrial fibrillation", property=[{"code": "colour", "valueCode": "red"}])),
            _concept("lung", "Lung disease", property=[{"code": "status", "valueCode": "retired"}]),
        ],
    }))
    reg.add_value_set({"resourceType": "ValueSet", "url": VS, "version": "1", "status": "active",
                       "compose": {"include": [{"system": CS}]}})
    return reg


def run(registry: Registry, **kw: Any) -> dict[str, Any]:
    kw.setdefault("url", VS)
    return expand(registry, ExpandRequest(**kw), Settings())


def codes(items: list[dict[str, Any]]) -> list[str]:
    out = []
    for item in items:
        out.append(item["code"])
        out.extend(codes(item.get("contains", [])))
    return out


def test_expand_nests_children_under_parents_by_default(registry: Registry) -> None:
    exp = run(registry)["expansion"]
    assert exp["total"] == 4
    assert [c["code"] for c in exp["contains"]] == ["heart", "lung"]
    assert [c["code"] for c in exp["contains"][0]["contains"]] == ["mi", "af"]


def test_exclude_nested_lists_every_code_flat(registry: Registry) -> None:
    exp = run(registry, exclude_nested=True)["expansion"]
    assert [c["code"] for c in exp["contains"]] == ["heart", "mi", "af", "lung"]


def test_count_zero_returns_only_total(registry: Registry) -> None:
    exp = run(registry, count=0)["expansion"]
    assert exp["total"] == 4 and "contains" not in exp and exp["offset"] == 0


def test_offset_and_count_page_without_changing_total(registry: Registry) -> None:
    exp = run(registry, count=2, offset=1)["expansion"]
    assert exp["total"] == 4 and exp["offset"] == 1
    assert codes(exp["contains"]) == ["mi", "af"]


def test_unpaged_expansion_over_the_limit_is_too_costly(registry: Registry) -> None:
    with pytest.raises(TooCostly) as err:
        expand(registry, ExpandRequest(url=VS), Settings(max_expansion_size=3))
    assert err.value.issues[0].message_id == "VALUESET_TOO_COSTLY"
    assert "too many codes" in err.value.text


def test_paged_expansion_over_the_limit_still_works(registry: Registry) -> None:
    exp = expand(registry, ExpandRequest(url=VS, count=2), Settings(max_expansion_size=3))["expansion"]
    assert exp["total"] == 4 and len(exp["contains"]) == 2


def test_text_filter_matches_word_prefixes_case_insensitively(registry: Registry) -> None:
    exp = run(registry, text_filter="myo INF")["expansion"]
    assert exp["total"] == 1 and codes(exp["contains"]) == ["mi"]


def test_text_filter_searches_designations(registry: Registry) -> None:
    assert codes(run(registry, text_filter="herz")["expansion"]["contains"]) == ["mi"]


def test_active_only_drops_retired_concepts(registry: Registry) -> None:
    assert "lung" not in codes(run(registry, active_only=True)["expansion"]["contains"])


def test_display_language_picks_designation_and_keeps_original(registry: Registry) -> None:
    exp = run(registry, display_language="de", include_designations=True, exclude_nested=True)["expansion"]
    mi = next(c for c in exp["contains"] if c["code"] == "mi")
    assert mi["display"] == "Herzinfarkt"
    assert mi["designation"][0]["language"] == "en" and mi["designation"][0]["value"] == "Myocardial infarction"


def test_requested_property_is_declared_and_given(registry: Registry) -> None:
    exp = run(registry, properties=["colour"], exclude_nested=True)["expansion"]
    declared = [e for e in exp["extension"] if e["url"].endswith("expansion.property")]
    assert {"url": "code", "valueCode": "colour"} in declared[0]["extension"]
    af = next(c for c in exp["contains"] if c["code"] == "af")
    assert af["extension"][0]["extension"][1] == {"url": "value", "valueCode": "red"}


def test_expansion_reports_used_codesystem_identifier_and_timestamp(registry: Registry) -> None:
    exp = run(registry)["expansion"]
    assert {"name": "used-codesystem", "valueUri": f"{CS}|2"} in exp["parameter"]
    assert exp["identifier"].startswith("urn:uuid:") and exp["timestamp"].endswith("+00:00")


def test_inline_value_set_is_expanded(registry: Registry) -> None:
    inline = {"resourceType": "ValueSet", "status": "active",
              "compose": {"include": [{"system": CS, "concept": [{"code": "af"}]}]}}
    out = expand(registry, ExpandRequest(value_set=inline), Settings())
    assert codes(out["expansion"]["contains"]) == ["af"] and "compose" not in out


def test_unknown_value_set_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFound):
        run(registry, url="http://example.test/nope")


def test_request_without_value_set_is_bad_request(registry: Registry) -> None:
    with pytest.raises(BadRequest):
        expand(registry, ExpandRequest(), Settings())


def test_expand_request_echoes_parameters_and_rejects_bad_count() -> None:
    bag = bag_from_parameters({"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": VS}, {"name": "count", "valueInteger": 5},
        {"name": "activeOnly", "valueBoolean": True}]})
    req = expand_request(bag)
    assert req.count == 5 and req.active_only
    assert {"name": "count", "valueInteger": 5} in req.echo
    bad = bag_from_parameters({"resourceType": "Parameters", "parameter": [
        {"name": "count", "valueString": "abc"}]})
    with pytest.raises(BadRequest):
        expand_request(bad)


def test_cpt_expansions_have_their_own_cap() -> None:
    from terminology.cpt import CPT_URL

    reg = Registry()
    reg.add_code_system(FhirCodeSystemProvider({
        "resourceType": "CodeSystem", "url": CPT_URL, "version": "2026", "status": "active",
        "content": "fragment", "concept": [{"code": f"7{i:04d}", "display": f"Code {i}"} for i in range(5)]}))
    vs = {"resourceType": "ValueSet", "status": "active", "compose": {"include": [{"system": CPT_URL}]}}
    with pytest.raises(TooCostly):
        expand(reg, ExpandRequest(value_set=vs), Settings(max_cpt_expansion=4))
    paged = expand(reg, ExpandRequest(value_set=vs, count=2), Settings(max_cpt_expansion=4))["expansion"]
    assert paged["total"] == 5 and len(paged["contains"]) == 2
