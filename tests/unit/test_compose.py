"""The compose engine: membership without expansion, expansion order, imports, excludes."""

from __future__ import annotations

from typing import Any

import pytest

from terminology.errors import FhirError, NotFound, TooCostly, Unprocessable
from terminology.params import ExpandRequest, ValidateCodeRequest
from terminology.providers.fhir import FhirCodeSystemProvider
from terminology.registry import Registry
from terminology.valuesets.compose import (
    ComposeOptions,
    check_membership,
    expand_compose,
    request_options,
    resolve_value_set,
    value_set_parameters,
)

CS = "http://example.test/cs"


def _concept(code: str, *children: dict[str, Any], **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "display": f"Display {code}", **extra}
    if children:
        out["concept"] = list(children)
    return out


def code_system(version: str = "1") -> dict[str, Any]:
    """a > (a1 > a1x, a2), b (inactive), c (abstract)."""
    return {
        "resourceType": "CodeSystem", "url": CS, "version": version, "status": "active",
        "content": "complete", "caseSensitive": True,
        "property": [{"code": "status", "uri": "http://hl7.org/fhir/concept-properties#status", "type": "code"},
                     {"code": "notSelectable", "uri": "http://hl7.org/fhir/concept-properties#notSelectable",
                      "type": "boolean"},
                     {"code": "colour", "type": "code"}],
        "concept": [
            _concept("a", _concept("a1", _concept("a1x")), _concept("a2"),
                     property=[{"code": "colour", "valueCode": "red"}]),
            _concept("b", property=[{"code": "status", "valueCode": "retired"}]),
            _concept("c", property=[{"code": "notSelectable", "valueBoolean": True}]),
        ],
    }


def value_set(url: str, compose: dict[str, Any], version: str = "1") -> dict[str, Any]:
    return {"resourceType": "ValueSet", "url": url, "version": version, "status": "active",
            "compose": compose}


@pytest.fixture()
def registry() -> Registry:
    reg = Registry()
    reg.add_code_system(FhirCodeSystemProvider(code_system("1")))
    reg.add_code_system(FhirCodeSystemProvider(code_system("2")))
    return reg


def codes(registry: Registry, vs: dict[str, Any], **opts: Any) -> list[str]:
    return [e.code for e in expand_compose(registry, vs, ComposeOptions(**opts)).entries]


def test_expand_whole_system_lists_parents_before_children(registry: Registry) -> None:
    vs = value_set("urn:vs", {"include": [{"system": CS}]})
    assert codes(registry, vs) == ["a", "a1", "a1x", "a2", "b", "c"]


def test_expand_uses_newest_version_and_records_it(registry: Registry) -> None:
    exp = expand_compose(registry, value_set("urn:vs", {"include": [{"system": CS}]}), ComposeOptions())
    assert exp.used_systems == [f"{CS}|2"]


def test_force_system_version_overrides_pinned_include(registry: Registry) -> None:
    vs = value_set("urn:vs", {"include": [{"system": CS, "version": "2"}]})
    exp = expand_compose(registry, vs, ComposeOptions(force_versions={CS: "1"}))
    assert exp.used_systems == [f"{CS}|1"]


def test_is_a_filter_includes_root_and_descendants_nestable(registry: Registry) -> None:
    vs = value_set("urn:vs", {"include": [{"system": CS, "filter": [
        {"property": "concept", "op": "is-a", "value": "a1"}]}]})
    exp = expand_compose(registry, vs, ComposeOptions())
    assert [e.code for e in exp.entries] == ["a1", "a1x"]
    roots = exp.nested()
    assert [r.code for r in roots] == ["a1"] and [c.code for c in roots[0].children] == ["a1x"]


def test_concept_list_skips_unknown_codes_and_is_flat(registry: Registry) -> None:
    vs = value_set("urn:vs", {"include": [{"system": CS, "concept": [
        {"code": "a1x"}, {"code": "zzz"}, {"code": "a1", "display": "Own display"}]}]})
    exp = expand_compose(registry, vs, ComposeOptions())
    assert [(e.code, e.display) for e in exp.entries] == [("a1x", "Display a1x"), ("a1", "Own display")]
    assert len(exp.nested()) == 2


def test_active_only_drops_inactive_concepts(registry: Registry) -> None:
    vs = value_set("urn:vs", {"include": [{"system": CS}]})
    assert "b" not in codes(registry, vs, active_only=True)


def test_exclude_removes_codes_and_filters(registry: Registry) -> None:
    vs = value_set("urn:vs", {"include": [{"system": CS}], "exclude": [
        {"system": CS, "filter": [{"property": "concept", "op": "descendent-of", "value": "a"}]},
        {"system": CS, "concept": [{"code": "c"}]}]})
    assert codes(registry, vs) == ["a", "b"]


def test_import_intersects_with_system_part(registry: Registry) -> None:
    registry.add_value_set(value_set("urn:inner", {"include": [{"system": CS, "concept": [
        {"code": "a"}, {"code": "b"}]}]}))
    vs = value_set("urn:outer", {"include": [{"system": CS, "filter": [
        {"property": "colour", "op": "=", "value": "red"}], "valueSet": ["urn:inner"]}]})
    assert codes(registry, vs) == ["a"]


def test_circular_import_is_an_error(registry: Registry) -> None:
    registry.add_value_set(value_set("urn:one", {"include": [{"valueSet": ["urn:two"]}]}))
    registry.add_value_set(value_set("urn:two", {"include": [{"valueSet": ["urn:one"]}]}))
    with pytest.raises(Unprocessable) as err:
        expand_compose(registry, resolve_value_set(registry, "urn:one", None), ComposeOptions())
    assert err.value.issues[0].message_id == "VALUESET_CIRCULAR_REFERENCE"


def test_unknown_value_set_is_not_found_with_tx_message_id(registry: Registry) -> None:
    with pytest.raises(NotFound) as err:
        resolve_value_set(registry, "urn:nope", None)
    assert err.value.issues[0].message_id == "Unable_to_resolve_value_Set_"


def test_past_max_size_is_too_costly(registry: Registry) -> None:
    vs = value_set("urn:vs", {"include": [{"system": CS}]})
    with pytest.raises(TooCostly) as err:
        expand_compose(registry, vs, ComposeOptions(), max_size=3)
    assert "too many codes to produce (>3)" in err.value.text


def test_filter_without_value_names_the_filter(registry: Registry) -> None:
    vs = value_set("urn:vs", {"include": [{"system": CS, "filter": [{"property": "concept", "op": "is-a"}]}]})
    with pytest.raises(FhirError) as err:
        expand_compose(registry, vs, ComposeOptions())
    assert err.value.issues[0].expression == ["ValueSet.compose.include[0].filter[0]"]


def test_r4_filter_op_extension_is_read(registry: Registry) -> None:
    op_ext = {"extension": [{"url": "http://hl7.org/fhir/5.0/StructureDefinition/"
                                    "extension-ValueSet.compose.include.filter.op", "valueCode": "child-of"}]}
    vs = value_set("urn:vs", {"include": [{"system": CS, "filter": [
        {"property": "concept", "_op": op_ext, "value": "a"}]}]})
    assert codes(registry, vs) == ["a1", "a2"]


def test_membership_tests_filters_without_expanding(registry: Registry) -> None:
    vs = value_set("urn:vs", {"include": [{"system": CS, "filter": [
        {"property": "concept", "op": "is-a", "value": "a1"}]}]})
    hit = check_membership(registry, vs, CS, "a1x", None, ComposeOptions())
    miss = check_membership(registry, vs, CS, "a2", None, ComposeOptions())
    assert hit.found and hit.concept is not None and hit.concept.code == "a1x"
    assert not miss.found and miss.system_known


def test_membership_honours_excludes_and_imports(registry: Registry) -> None:
    registry.add_value_set(value_set("urn:inner", {"include": [{"system": CS}],
                                                   "exclude": [{"system": CS, "concept": [{"code": "b"}]}]}))
    vs = value_set("urn:outer", {"include": [{"valueSet": ["urn:inner"]}]})
    assert check_membership(registry, vs, CS, "a", None, ComposeOptions()).found
    assert not check_membership(registry, vs, CS, "b", None, ComposeOptions()).found


def test_membership_unknown_system_is_a_result_with_issue(registry: Registry) -> None:
    vs = value_set("urn:vs", {"include": [{"system": "urn:unknown"}]})
    result = check_membership(registry, vs, "urn:unknown", "x", None, ComposeOptions())
    assert not result.found and not result.system_known
    assert result.issues[0].message_id == "UNKNOWN_CODESYSTEM"


def test_membership_uses_coding_version_when_include_has_none(registry: Registry) -> None:
    vs = value_set("urn:vs", {"include": [{"system": CS}]})
    result = check_membership(registry, vs, CS, "a", "1", ComposeOptions())
    assert result.found and result.provider is not None and result.provider.version == "1"


def test_expanding_a_not_present_code_system_is_an_error(registry: Registry) -> None:
    registry.add_code_system(FhirCodeSystemProvider({
        "resourceType": "CodeSystem", "url": "urn:empty", "status": "active", "content": "not-present"}))
    vs = value_set("urn:vs", {"include": [{"system": "urn:empty"}]})
    with pytest.raises(Unprocessable) as err:
        expand_compose(registry, vs, ComposeOptions())
    assert "has no content" in err.value.text


def test_request_options_copy_version_rules_of_either_operation() -> None:
    expand_req = ExpandRequest(active_only=True, system_versions={CS: "1"})
    validate_req = ValidateCodeRequest(mode="code", coded={}, force_versions={CS: "2"})
    options = request_options(expand_req, exclude_not_for_ui=True)
    assert (options.active_only, options.system_versions, options.exclude_not_for_ui) == (True, {CS: "1"}, True)
    assert request_options(validate_req).force_versions == {CS: "2"}
    expand_req.system_versions["x"] = "y"  # the options hold their own copy
    assert options.system_versions == {CS: "1"}


def test_value_set_parameters_read_core_and_tools_extensions() -> None:
    def param(url: str, name: str, value: dict[str, Any]) -> dict[str, Any]:
        return {"url": url, "extension": [{"url": "name", "valueCode": name}, {"url": "value", **value}]}
    vs = {"compose": {"extension": [
        param("http://hl7.org/fhir/StructureDefinition/valueset-expansion-parameter",
              "activeOnly", {"valueBoolean": True}),
        param("http://hl7.org/fhir/tools/StructureDefinition/valueset-expansion-parameter",
              "displayLanguage", {"valueCode": "de"}),
        param("http://example.test/other", "count", {"valueInteger": 3}),
    ]}}
    assert value_set_parameters(vs) == {"activeOnly": True, "displayLanguage": "de"}
    assert value_set_parameters(None) == {}
