"""ValueSet/$compare as a pure function: every result, from the definitions and by expanding,
on value sets built here (enumerated, filtered, mixed, excludes, imports, inactive codes,
versions of a code system)."""

from __future__ import annotations

from typing import Any

import pytest

from terminology.errors import BadRequest, NotFound
from terminology.operations.compare import CompareRequest, compare, compare_request
from terminology.params import bag_from_parameters
from terminology.providers.fhir import FhirCodeSystemProvider
from terminology.registry import Registry
from terminology.settings import Settings

H = "http://example.test/CodeSystem/h"  # a tree, versions 1 and 2 (2 adds A3)
X = "http://example.test/CodeSystem/x"  # another system
M = "http://example.test/CodeSystem/m"  # a polyhierarchy: S has parents P and Q
RETIRED = [{"code": "status", "valueCode": "retired"}]


def _h(version: str, extra: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "CodeSystem", "url": H, "version": version, "content": "complete",
            "status": "active", "hierarchyMeaning": "is-a",
            "property": [{"code": "status", "type": "code"}],
            "concept": [{"code": "root", "concept": [
                {"code": "A", "concept": [{"code": "A1"}, {"code": "A2"}, *extra]},
                {"code": "B", "concept": [{"code": "B1"}, {"code": "B2"}]}]},
                {"code": "C", "property": RETIRED}]}


@pytest.fixture()
def reg() -> Registry:
    r = Registry()
    r.add_code_system(FhirCodeSystemProvider(_h("1", [])))
    r.add_code_system(FhirCodeSystemProvider(_h("2", [{"code": "A3"}])))
    r.add_code_system(FhirCodeSystemProvider({
        "resourceType": "CodeSystem", "url": X, "content": "complete", "status": "active",
        "concept": [{"code": "x1"}, {"code": "x2"}]}))
    r.add_code_system(FhirCodeSystemProvider({
        "resourceType": "CodeSystem", "url": M, "content": "complete", "status": "active",
        "property": [{"code": "parent", "type": "code"}],
        "concept": [{"code": "P"}, {"code": "Q"}, {"code": "S", "property": [
            {"code": "parent", "valueCode": "P"}, {"code": "parent", "valueCode": "Q"}]}]}))
    r.add_value_set(vs("http://example.test/ValueSet/a-branch", isa(H, "A"), version="1.0"))
    return r


def vs(url: str, *includes: dict[str, Any], version: str | None = None,
       **compose: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "ValueSet", "url": url, "status": "active",
                           "compose": {"include": list(includes), **compose}}
    if version:
        out["version"] = version
    return out


def codes(system: str, *cs: str, version: str | None = None) -> dict[str, Any]:
    inc: dict[str, Any] = {"system": system, "concept": [{"code": c} for c in cs]}
    if version:
        inc["version"] = version
    return inc


def isa(system: str, code: str, version: str | None = None) -> dict[str, Any]:
    inc: dict[str, Any] = {"system": system, "filter": [{"property": "concept", "op": "is-a", "value": code}]}
    if version:
        inc["version"] = version
    return inc


def run(reg: Registry, this: dict[str, Any], other: dict[str, Any], diagnostics: bool = True,
        policy: str = "as-needed", limit: int | None = None) -> dict[str, Any]:
    out = compare(reg, CompareRequest(this, other, diagnostics, policy), Settings(), limit)
    return {p["name"]: next(v for k, v in p.items() if k != "name") for p in out["parameter"]}


THIS, OTHER = "http://example.test/ValueSet/this", "http://example.test/ValueSet/other"


# -- decided from the definitions ---------------------------------------------------------

def test_reordered_code_lists_are_the_same_without_expanding(reg: Registry) -> None:
    got = run(reg, vs(THIS, codes(H, "A1", "B1", "A2")), vs(OTHER, codes(H, "A2", "A1"), codes(H, "B1")))
    assert got == {"result": "same", "performed-expansion": False, "common-codes": "A1,A2,B1",
                   "message": f"The value sets {THIS} and {OTHER} contain the same codes"}


def test_a_longer_code_list_is_a_superset_naming_what_other_lacks(reg: Registry) -> None:
    got = run(reg, vs(THIS, codes(H, "A1", "A2", "B1")), vs(OTHER, codes(H, "A1", "B1")))
    assert (got["result"], got["missing-codes"], got["common-codes"]) == ("superset", "A2", "A1,B1")
    assert "extra-codes" not in got and got["performed-expansion"] is False


def test_overlapping_code_lists_list_all_three_sets(reg: Registry) -> None:
    got = run(reg, vs(THIS, codes(H, "A1", "A2")), vs(OTHER, codes(H, "A2", "B1")))
    assert (got["result"], got["missing-codes"], got["extra-codes"], got["common-codes"]) == (
        "overlapping", "A1", "B1", "A2")


def test_without_diagnostics_no_code_lists_are_returned(reg: Registry) -> None:
    got = run(reg, vs(THIS, codes(H, "A1", "A2")), vs(OTHER, codes(H, "A2", "B1")), diagnostics=False)
    assert set(got) == {"result", "message", "performed-expansion"}
    assert got["result"] == "overlapping"


def test_is_a_a_concept_is_a_subset_of_is_a_its_ancestor(reg: Registry) -> None:
    got = run(reg, vs(THIS, isa(H, "A")), vs(OTHER, isa(H, "root")))
    assert (got["result"], got["performed-expansion"]) == ("subset", False)
    assert run(reg, vs(THIS, isa(H, "root")), vs(OTHER, isa(H, "A")))["result"] == "superset"


def test_is_a_unrelated_branches_of_a_tree_are_disjoint(reg: Registry) -> None:
    got = run(reg, vs(THIS, isa(H, "A")), vs(OTHER, isa(H, "B")))
    assert (got["result"], got["performed-expansion"]) == ("disjoint", False)
    assert got["message"] == f"No shared codes between the value sets {THIS} and {OTHER}"


def test_different_code_systems_are_disjoint_without_expanding(reg: Registry) -> None:
    got = run(reg, vs(THIS, {"system": H}), vs(OTHER, {"system": X}))
    assert (got["result"], got["performed-expansion"]) == ("disjoint", False)


def test_a_code_system_only_this_includes_makes_it_a_superset(reg: Registry) -> None:
    got = run(reg, vs(THIS, {"system": X}, isa(H, "A")), vs(OTHER, isa(H, "A")))
    assert (got["result"], got["performed-expansion"]) == ("superset", False)


def test_whole_code_system_in_two_versions_is_the_same_when_versions_do_not_matter(reg: Registry) -> None:
    got = run(reg, vs(THIS, {"system": H, "version": "1"}), vs(OTHER, {"system": H, "version": "2"}))
    assert (got["result"], got["performed-expansion"]) == ("same", False)


def test_version_policy_always_separates_the_codes_of_two_versions(reg: Registry) -> None:
    got = run(reg, vs(THIS, {"system": H, "version": "1"}), vs(OTHER, {"system": H, "version": "2"}),
              policy="always")
    assert (got["result"], got["performed-expansion"]) == ("disjoint", True)


# -- decided by expanding -----------------------------------------------------------------

def test_a_filter_and_the_list_of_its_closure_are_the_same_after_expanding(reg: Registry) -> None:
    got = run(reg, vs(THIS, isa(H, "A", "1")), vs(OTHER, codes(H, "A", "A1", "A2", version="1")))
    assert got == {"result": "same", "performed-expansion": True,
                   "message": f"The value sets {THIS} and {OTHER} contain the same codes"}


def test_a_list_inside_a_filter_is_a_subset_with_the_other_codes_listed(reg: Registry) -> None:
    got = run(reg, vs(THIS, codes(H, "A1")), vs(OTHER, isa(H, "A", "1")))
    assert (got["result"], got["extra-codes"], got["common-codes"], got["performed-expansion"]) == (
        "subset", "A,A2", "A1", True)
    assert got["message"] == f"The valueSet {THIS} is a sub-set of the valueSet {OTHER}"


def test_the_same_filter_in_two_versions_compares_their_expansions(reg: Registry) -> None:
    got = run(reg, vs(THIS, isa(H, "A", "1")), vs(OTHER, isa(H, "A", "2")))
    assert (got["result"], got["extra-codes"], got["performed-expansion"]) == ("subset", "A3", True)


def test_an_exclude_is_applied_before_comparing(reg: Registry) -> None:
    this = vs(THIS, isa(H, "root", "1"), exclude=[codes(H, "B1", "B2", version="1")])
    got = run(reg, this, vs(OTHER, codes(H, "root", "A", "A1", "A2", "B", version="1")))
    assert (got["result"], got["performed-expansion"]) == ("same", True)


def test_an_import_compares_as_the_imported_codes(reg: Registry) -> None:
    this = vs(THIS, {"valueSet": ["http://example.test/ValueSet/a-branch"]}, codes(H, "B1"))
    got = run(reg, this, vs(OTHER, isa(H, "A")))
    assert (got["result"], got["missing-codes"], got["performed-expansion"]) == ("superset", "B1", True)


def test_keeping_inactive_codes_out_changes_a_listed_retired_code(reg: Registry) -> None:
    got = run(reg, vs(THIS, codes(H, "A1", "C"), inactive=False), vs(OTHER, codes(H, "A1")))
    assert (got["result"], got["performed-expansion"]) == ("same", True)
    assert run(reg, vs(THIS, codes(H, "A1", "C")), vs(OTHER, codes(H, "A1")))["result"] == "superset"


def test_unrelated_concepts_of_a_polyhierarchy_are_expanded_not_guessed(reg: Registry) -> None:
    got = run(reg, vs(THIS, isa(M, "P")), vs(OTHER, isa(M, "Q")))
    assert (got["result"], got["common-codes"], got["performed-expansion"]) == ("overlapping", "S", True)


def test_two_empty_value_sets_are_empty(reg: Registry) -> None:
    def nothing(pattern: str) -> dict[str, Any]:
        return {"system": H, "filter": [{"property": "concept", "op": "regex", "value": pattern}]}

    got = run(reg, vs(THIS, nothing("zz.*")), vs(OTHER, nothing("yy.*"), codes(H)))
    assert got["result"] == "empty"
    assert got["message"] == f"Both the value sets {THIS} and {OTHER} are empty"


# -- indeterminate ------------------------------------------------------------------------

def test_an_unknown_code_system_is_indeterminate_when_it_must_be_expanded(reg: Registry) -> None:
    unknown = "http://example.test/CodeSystem/unknown"
    got = run(reg, vs(THIS, isa(unknown, "a")), vs(OTHER, isa(unknown, "b")))
    assert (got["result"], got["performed-expansion"]) == ("indeterminate", True)
    assert "Both expansions failed" in got["message"] and unknown in got["message"]
    assert "common-codes" not in got


def test_a_too_costly_expansion_is_indeterminate(reg: Registry) -> None:
    got = run(reg, vs(THIS, isa(H, "root", "1")), vs(OTHER, codes(H, "A1", version="1")), limit=3)
    assert got["result"] == "indeterminate"
    assert "This expansion failed: The value set" in got["message"] and "(>3)" in got["message"]


def test_expansions_past_the_time_limit_are_indeterminate(reg: Registry) -> None:
    request = CompareRequest(vs(THIS, isa(H, "root", "1")), vs(OTHER, codes(H, "A1", version="1")))
    out = compare(reg, request, Settings(request_time_limit=-1))
    assert out["parameter"][0] == {"name": "result", "valueCode": "indeterminate"}
    assert "time limit" in out["parameter"][1]["valueString"]


def test_a_value_set_without_compose_is_indeterminate(reg: Registry) -> None:
    bare = {"resourceType": "ValueSet", "url": OTHER, "status": "active"}
    got = run(reg, vs(THIS, codes(H, "A1")), bare)
    assert (got["result"], got["message"]) == ("indeterminate", f"Unable to compare {THIS} and {OTHER}: "
                                               f"The ValueSet {OTHER} has no compose")


def test_a_listed_code_the_code_system_lacks_is_left_to_the_expansion(reg: Registry) -> None:
    got = run(reg, vs(THIS, codes(H, "A1", "nonesuch", version="1")), vs(OTHER, codes(H, "A1", version="1")))
    assert (got["result"], got["performed-expansion"]) == ("same", True)  # not a member: not a superset


def test_a_value_set_without_url_is_named_by_its_side(reg: Registry) -> None:
    got = run(reg, {"resourceType": "ValueSet", "status": "active", "compose": {"include": [codes(H, "A1")]}},
              vs(OTHER, codes(H, "A1")))
    assert got["message"] == f"The value sets (the this value set, inline) and {OTHER} contain the same codes"


def test_code_lists_of_an_unknown_system_compare_as_listed(reg: Registry) -> None:
    unknown = "http://example.test/CodeSystem/unknown"
    got = run(reg, vs(THIS, codes(unknown, "p", "q")), vs(OTHER, codes(unknown, "q", "r")))
    assert (got["result"], got["performed-expansion"]) == ("overlapping", False)


# -- the request ----------------------------------------------------------------------------

def _bag(*params: dict[str, Any]) -> Any:
    return bag_from_parameters({"resourceType": "Parameters", "parameter": list(params)})


def test_url_with_version_resolves_the_stored_value_set(reg: Registry) -> None:
    request = compare_request(reg, _bag({"name": "thisUrl", "valueUri": "http://example.test/ValueSet/a-branch|1.0"},
                                        {"name": "otherValueSet", "resource": vs(OTHER, isa(H, "A"))},
                                        {"name": "diagnostics", "valueBoolean": True}))
    assert request.this["version"] == "1.0" and request.diagnostics


def test_an_unknown_url_is_not_found(reg: Registry) -> None:
    with pytest.raises(NotFound):
        compare_request(reg, _bag({"name": "thisUrl", "valueUri": "http://example.test/nope"},
                                  {"name": "otherUrl", "valueUri": "http://example.test/nope"}))


@pytest.mark.parametrize("params", [
    [{"name": "thisUrl", "valueUri": THIS}],
    [{"name": "otherUrl", "valueUri": "http://example.test/ValueSet/a-branch"}],
    [{"name": "thisUrl", "valueUri": "http://example.test/ValueSet/a-branch"},
     {"name": "thisValueSet", "resource": vs(THIS)},
     {"name": "otherUrl", "valueUri": "http://example.test/ValueSet/a-branch"}],
    [{"name": "thisUrl", "valueUri": "http://example.test/ValueSet/a-branch"},
     {"name": "otherUrl", "valueUri": "http://example.test/ValueSet/a-branch"},
     {"name": "version-policy", "valueCode": "sometimes"}],
])
def test_a_malformed_request_is_a_bad_request(reg: Registry, params: list[dict[str, Any]]) -> None:
    with pytest.raises(BadRequest):
        compare_request(reg, _bag(*params))


def test_at_the_instance_level_the_instance_is_this(reg: Registry) -> None:
    instance = vs(THIS, codes(H, "A1"))
    request = compare_request(reg, _bag({"name": "otherValueSet", "resource": vs(OTHER, codes(H, "A1"))}),
                              instance)
    assert request.this is instance
    with pytest.raises(BadRequest):
        compare_request(reg, _bag({"name": "thisValueSet", "resource": instance},
                                  {"name": "otherValueSet", "resource": instance}), instance)


# -- a code system with a grammar (CPT modifier expressions) --------------------------------

@pytest.fixture()
def cpt_reg() -> Registry:
    from terminology.cpt.provider import CptProvider, database_resource
    from terminology.cpt.release import CptConcept, CptRelease

    def concept(code: str, modality: str, modifier: bool = False) -> CptConcept:
        props = {} if modifier else {"modality": [modality], "kind": ["code"]}
        return CptConcept(code, modifier, f"Descriptor of {code}", [], props)

    release = CptRelease("2099", {c.code: c for c in [
        concept("72125", "CT"), concept("72126", "CT"), concept("72141", "MR"),
        concept("26", "", modifier=True)]})
    r = Registry()
    r.add_code_system(CptProvider(release, database_resource(release)))
    return r


CPT = "http://www.ama-assn.org/go/cpt"
CT = {"system": CPT, "filter": [{"property": "modality", "op": "=", "value": "CT"}]}


def test_cpt_filters_select_only_listed_codes_so_their_expansions_compare(cpt_reg: Registry) -> None:
    got = run(cpt_reg, vs(THIS, codes(CPT, "72125")), vs(OTHER, CT))
    assert (got["result"], got["extra-codes"], got["performed-expansion"]) == ("subset", "72126", True)


def test_whole_cpt_admits_modifier_expressions_no_expansion_lists(cpt_reg: Registry) -> None:
    got = run(cpt_reg, vs(THIS, {"system": CPT}), vs(OTHER, CT))
    assert got["result"] == "indeterminate"
    assert got["message"].endswith("This expansion is unclosed.")
