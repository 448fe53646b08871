"""The CPT provider: concepts, expressions, filters (membership and enumeration), lookup
extras, and both sources (tx.fhir.org-format database, bundled CodeSystem fragment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from terminology.content import make_provider
from terminology.cpt import rules as cpt_rules
from terminology.cpt.provider import (
    LOOKUP_COPYRIGHT,
    CptProvider,
    database_resource,
    descriptor_use,
)
from terminology.cpt.release import CPT_URL, CptConcept, CptRelease
from terminology.errors import BadRequest
from terminology.operations.lookup import lookup
from terminology.params import LookupRequest
from terminology.providers.base import Concept, Prop
from terminology.registry import Registry
from terminology.valuesets.compose import ComposeOptions, check_membership, expand_compose

REPO = Path(__file__).resolve().parents[2]
FRAGMENT_DB = REPO.parent / "shared" / "cpt" / "cpt-fragment.db"
BUNDLED = REPO / "codesystems" / "cpt-2026-imaging.json"


def _concept(code: str, modifier: bool = False, **props: list[str]) -> CptConcept:
    properties = {k.replace("_", "-"): v for k, v in props.items()}
    return CptConcept(code, modifier, f"Descriptor of {code}", [("short", f"SHORT {code}")],
                      properties)


def small_release() -> CptRelease:
    """A release modeled on cpt-fragment.db plus a few imaging codes with facets."""
    concepts = [
        _concept("99202", kind=["code"], telemedicine=["true"]),
        _concept("99252", kind=["code"]),
        _concept("0001A", kind=["cat-2"], orthopox=["true"]),
        _concept("72125", kind=["code"], modality=["CT"], body_region=["cervical-spine"],
                 contrast=["none"]),
        _concept("72126", kind=["code"], modality=["CT"], body_region=["cervical-spine"],
                 contrast=["with"]),
        _concept("72141", kind=["code"], modality=["MR"], body_region=["cervical-spine"],
                 contrast=["none"]),
        _concept("25", True, kind=["general", "cat-1"]),
        _concept("26", True, kind=["general"]),
        _concept("59", True, kind=["general", "cat-1"]),
        _concept("95", True, kind=["general"]),
        _concept("P1", True, kind=["physical-status"]),
        _concept("1P", True, kind=["cat-2"]),
        _concept("F1", True, kind=["hcpcs"]),
    ]
    return CptRelease("2023", {c.code: c for c in concepts})


@pytest.fixture(scope="module")
def cpt() -> CptProvider:
    release = small_release()
    return CptProvider(release, database_resource(release))


def codes_of(provider: CptProvider, prop: str, op: str, value: str) -> list[str]:
    listed = provider.filter(prop, op, value).codes()
    assert listed is not None
    return list(listed)


def value_set(*filters: dict[str, str]) -> dict[str, Any]:
    include: dict[str, Any] = {"system": CPT_URL}
    if filters:
        include["filter"] = list(filters)
    return {"resourceType": "ValueSet", "url": "http://example.test/vs", "compose": {"include": [include]}}


def registry_of(provider: CptProvider) -> Registry:
    reg = Registry()
    reg.add_code_system(provider)
    return reg


# -- concepts -------------------------------------------------------------------------------


def test_concepts_carry_display_designations_and_typed_properties(cpt: CptProvider) -> None:
    c = cpt.locate("25")
    assert c is not None and c.display == "Descriptor of 25"
    assert [(d.language, d.use, d.value) for d in c.designations] == [
        ("en", descriptor_use("short"), "SHORT 25")]
    assert Prop("modifier", "Boolean", True) in c.properties
    assert c.property_values("kind") == ["general", "cat-1"]
    tele = cpt.locate("99202")
    assert tele is not None and tele.property_values("telemedicine") == [True]
    ct = cpt.locate("72126")
    assert ct is not None and ct.property_values("modality") == ["CT"]
    assert Prop("contrast", "Code", "with") in ct.properties


def test_provider_is_flat_case_sensitive_and_unclosed(cpt: CptProvider) -> None:
    assert cpt.total() == 13 and len(cpt.roots()) == 13
    assert [c.code for c in cpt.iterate()][:3] == ["99202", "99252", "0001A"]
    assert cpt.case_sensitive and not cpt.hierarchical and cpt.unclosed
    assert cpt.locate("0001a") is None
    assert cpt.language == "en"


def test_subsumes_only_equal_codes(cpt: CptProvider) -> None:
    assert cpt.subsumes("72126", "72126")
    assert not cpt.subsumes("72125", "72126")
    assert not cpt.subsumes("99998", "99998")


# -- expressions ----------------------------------------------------------------------------


def test_valid_expression_locates_as_concept_without_display(cpt: CptProvider) -> None:
    exp = cpt.locate("72126:26:59")
    assert exp is not None and exp.code == "72126:26:59"
    assert exp.display is None and exp.designations == []
    assert exp.properties[0] == Prop("modified", "Boolean", True)
    assert Prop("modality", "Code", "CT") in exp.properties
    assert [(p.code, p.value) for p in exp.properties if p.code.startswith("modifier")] == [
        ("modifier", "26"), ("modifier-definition", "Descriptor of 26"),
        ("modifier", "59"), ("modifier-definition", "Descriptor of 59")]


def test_invalid_expression_is_none_and_explained(cpt: CptProvider) -> None:
    assert cpt.locate("99252:95") is None
    assert cpt.explain_unknown("99252:95") == (
        "The modifier 95 cannot be used with the code 99252 as it is not designated for "
        "telemedicine")
    assert cpt.explain_unknown("99202-25") is not None and "':'" in str(cpt.explain_unknown("99202-25"))


def test_grammar_error_only_for_rules_broken_by_known_parts(cpt: CptProvider) -> None:
    # a fragment may lack a part (valid elsewhere) but a broken rule is invalid everywhere
    assert cpt.grammar_error("72126:26:59:25") == (
        "There can only be one modifier in the set 25, 57, 59")
    assert "':'" in str(cpt.grammar_error("72126-26"))
    assert cpt.grammar_error("72127:26") is None
    assert cpt.grammar_error("72126:XX") is None
    assert cpt.grammar_error("72126:26") is None
    assert cpt.grammar_error("72126") is None


def test_plain_unknown_code_has_no_special_explanation(cpt: CptProvider) -> None:
    assert cpt.locate("99998") is None
    assert cpt.explain_unknown("99998") is None
    assert cpt.explain_unknown("99202") is None


# -- filters --------------------------------------------------------------------------------


def test_modifier_filter_lists_modifiers_or_base_codes(cpt: CptProvider) -> None:
    assert codes_of(cpt, "modifier", "=", "true") == ["25", "26", "59", "95", "P1", "1P", "F1"]
    assert codes_of(cpt, "modifier", "=", "false") == [
        "99202", "99252", "0001A", "72125", "72126", "72141"]


def test_modified_true_enumerates_nothing_but_admits_valid_expressions(cpt: CptProvider) -> None:
    f = cpt.filter("modified", "=", "true")
    assert list(f.codes() or []) == []
    expression = cpt.locate("72126:26")
    code = cpt.locate("72126")
    assert expression is not None and code is not None
    assert f.matches(expression) and not f.matches(code)


def test_modified_false_is_every_code_and_no_expression(cpt: CptProvider) -> None:
    f = cpt.filter("modified", "=", "false")
    assert len(list(f.codes() or [])) == cpt.total()
    expression = cpt.locate("72126:26")
    assert expression is not None and not f.matches(expression)


def test_other_filters_are_closed_to_expressions(cpt: CptProvider) -> None:
    expression = cpt.locate("72126:26")
    assert expression is not None
    for prop, op, value in [("kind", "=", "code"), ("modifier", "=", "false"),
                            ("modality", "=", "CT"), ("code", "in", "72126")]:
        assert not cpt.filter(prop, op, value).matches(expression)


def test_kind_filter_equals_and_in(cpt: CptProvider) -> None:
    assert codes_of(cpt, "kind", "=", "cat-2") == ["0001A", "1P"]
    assert codes_of(cpt, "kind", "in", "hcpcs,cat-2") == ["0001A", "1P", "F1"]
    assert codes_of(cpt, "kind", "=", "nothing") == []


def test_flag_filters_telemedicine_and_orthopox(cpt: CptProvider) -> None:
    assert codes_of(cpt, "telemedicine", "=", "true") == ["99202"]
    assert "99202" not in codes_of(cpt, "telemedicine", "=", "false")
    assert len(codes_of(cpt, "telemedicine", "=", "false")) == cpt.total() - 1
    assert codes_of(cpt, "orthopox", "=", "true") == ["0001A"]


def test_code_in_takes_single_codes_and_inclusive_ranges(cpt: CptProvider) -> None:
    assert codes_of(cpt, "code", "in", "72125-72133,72141-72158") == ["72125", "72126", "72141"]
    assert codes_of(cpt, "code", "in", "72126-72126;99202,25") == ["99202", "72126", "25"]
    assert codes_of(cpt, "code", "in", "99998,10000-19999") == []


def test_code_in_range_never_matches_two_character_modifiers(cpt: CptProvider) -> None:
    assert codes_of(cpt, "code", "in", "00000-ZZZZZ") == [
        "99202", "99252", "0001A", "72125", "72126", "72141"]


def test_imaging_facet_filters(cpt: CptProvider) -> None:
    assert codes_of(cpt, "modality", "=", "MR") == ["72141"]
    assert codes_of(cpt, "body-region", "in", "cervical-spine,head") == ["72125", "72126", "72141"]
    assert codes_of(cpt, "contrast", "in", "with,without-then-with") == ["72126"]


def test_filters_match_the_codes_they_list(cpt: CptProvider) -> None:
    f = cpt.filter("kind", "in", "general,cat-2")
    listed = set(f.codes() or [])
    assert {c.code for c in cpt.iterate() if f.matches(c)} == listed


@pytest.mark.parametrize(("prop", "op", "value"), [
    ("display", "=", "x"), ("kind", "regex", "c.*"), ("concept", "is-a", "72126"),
    ("code", "=", "72126"), ("modified", "in", "true"),
])
def test_unsupported_filter_is_400_naming_the_filter(cpt: CptProvider, prop: str, op: str,
                                                     value: str) -> None:
    with pytest.raises(BadRequest) as err:
        cpt.filter(prop, op, value)
    issue = err.value.issues[0]
    assert issue.message_id == "FILTER_NOT_UNDERSTOOD"
    assert f"'{prop} {op} {value}'" in issue.text


@pytest.mark.parametrize(("prop", "value"), [("modifier", "yes"), ("modified", "1")])
def test_flag_filters_need_true_or_false(cpt: CptProvider, prop: str, value: str) -> None:
    with pytest.raises(BadRequest, match="true or false"):
        cpt.filter(prop, "=", value)


def test_code_in_rejects_a_malformed_range(cpt: CptProvider) -> None:
    with pytest.raises(BadRequest, match="invalid range '72133-72125'"):
        cpt.filter("code", "in", "72133-72125")


def test_filters_on_a_full_size_release_use_indexes() -> None:
    concepts = {f"{70000 + i:05d}": CptConcept(f"{70000 + i:05d}", False, "d", [],
                                               {"kind": ["code"], "modality": ["CT" if i % 2 else "MR"]})
                for i in range(11000)}
    provider = CptProvider(CptRelease("2099", concepts), database_resource(CptRelease("2099", concepts)))
    assert len(codes_of(provider, "modality", "=", "CT")) == 5500
    assert len(codes_of(provider, "code", "in", "70000-70999")) == 1000
    assert len(codes_of(provider, "kind", "in", "code,cat-2")) == 11000


# -- compose: membership and expansion ------------------------------------------------------


def test_expression_is_member_of_unfiltered_include_and_modified_true(cpt: CptProvider) -> None:
    reg, opts = registry_of(cpt), ComposeOptions()
    assert check_membership(reg, value_set(), CPT_URL, "72126:26", None, opts).found
    modified = value_set({"property": "modified", "op": "=", "value": "true"})
    assert check_membership(reg, modified, CPT_URL, "72126:26", None, opts).found
    assert not check_membership(reg, modified, CPT_URL, "72126", None, opts).found
    kind = value_set({"property": "kind", "op": "=", "value": "code"})
    assert not check_membership(reg, kind, CPT_URL, "72126:26", None, opts).found
    assert not check_membership(reg, value_set(), CPT_URL, "99252:95", None, opts).found


def test_expansion_lists_codes_never_expressions_and_is_unclosed(cpt: CptProvider) -> None:
    reg, opts = registry_of(cpt), ComposeOptions()
    modified = expand_compose(reg, value_set({"property": "modified", "op": "=", "value": "true"}), opts)
    assert modified.entries == [] and modified.unclosed
    facets = expand_compose(reg, value_set({"property": "modality", "op": "=", "value": "CT"},
                                           {"property": "contrast", "op": "=", "value": "with"}), opts)
    assert [e.code for e in facets.entries] == ["72126"]
    assert any("has a grammar" in r for r in facets.unclosed_reasons)


# -- lookup ---------------------------------------------------------------------------------


def _properties(answer: dict[str, Any]) -> list[tuple[str, Any]]:
    out = []
    for p in answer["parameter"]:
        if p["name"] == "property":
            parts = {part["name"]: part for part in p["part"]}
            value = next(v for k, v in parts["value"].items() if k.startswith("value"))
            out.append((parts["code"]["valueCode"], value))
    return out


def test_lookup_adds_the_ama_copyright(cpt: CptProvider) -> None:
    assert cpt.extra_properties(Concept("72126")) == [Prop("copyright", "String", LOOKUP_COPYRIGHT)]
    answer = lookup(registry_of(cpt), LookupRequest(system=CPT_URL, code="72126"))
    assert ("copyright", LOOKUP_COPYRIGHT) in _properties(answer)
    assert ("kind", "code") in _properties(answer)


def test_lookup_of_expression_lists_each_modifier_and_its_definition(cpt: CptProvider) -> None:
    answer = lookup(registry_of(cpt), LookupRequest(system=CPT_URL, code="72126:26"))
    names = {p["name"]: p for p in answer["parameter"]}
    assert names["code"]["valueCode"] == "72126:26" and "display" not in names
    props = _properties(answer)
    assert ("modified", True) in props
    assert ("modifier", "26") in props and ("modifier-definition", "Descriptor of 26") in props
    assert ("copyright", LOOKUP_COPYRIGHT) in props


# -- sources ----------------------------------------------------------------------------------


def test_database_resource_declares_copyright_properties_and_filters(cpt: CptProvider) -> None:
    res = cpt.resource
    assert res["url"] == CPT_URL and res["version"] == "2023" and res["content"] == "complete"
    assert "American Medical Association" in res["copyright"]
    assert {p["code"] for p in res["property"]} >= {"modifier", "kind", "telemedicine", "modality"}
    assert {f["code"] for f in res["filter"]} >= {"modifier", "modified", "kind", "code", "contrast"}
    assert cpt.full_resource()["content"] == "not-present"
    assert "concept" not in cpt.full_resource()


def test_bundled_fragment_loads_through_make_provider() -> None:
    if not BUNDLED.is_file():
        pytest.skip("bundled CPT fragment not present")
    resource = orjson.loads(BUNDLED.read_bytes())
    provider = make_provider(resource)
    assert isinstance(provider, CptProvider)
    assert provider.content == "fragment" and provider.version == resource["version"]
    assert provider.locate("72126:26") is not None
    assert provider.explain_unknown("72126:76:77") == (
        "There can only be one modifier in the set 76, 77, 78, 79")
    full = provider.full_resource()
    assert len(full["concept"]) == len(resource["concept"])
    assert provider.property_definitions() == resource["property"]


@pytest.fixture(scope="module")
def fragment_db() -> CptProvider:
    if not FRAGMENT_DB.is_file():
        pytest.skip("tx.fhir.org cpt-fragment.db not present")
    # tx.fhir.org's own test data, answered as tx.fhir.org answers it (its rule set)
    return CptProvider.from_database(FRAGMENT_DB, cpt_rules.TX_FHIR_ORG_RULES)


def test_fragment_db_loads_as_complete_cpt_2023(fragment_db: CptProvider) -> None:
    assert fragment_db.version == "2023" and fragment_db.content == "complete"
    assert fragment_db.total() == 9
    c = fragment_db.locate("99202")
    assert c is not None and c.display is not None and c.display.startswith("Office or other")
    assert {"upper", "med", "short", "consumer", "clinician"} <= {
        d.use["code"] for d in c.designations if d.use}


def test_fragment_db_expressions_as_tx_fhir_org(fragment_db: CptProvider) -> None:
    assert fragment_db.locate("99202:25") is not None
    assert fragment_db.locate("99202:95") is not None
    assert fragment_db.locate("0001A:1P") is not None
    assert fragment_db.locate("99252:95") is None
    assert fragment_db.explain_unknown("99252:95") == (
        "The modifier 95 cannot be used with the code 99252 as it is not designated for "
        "telemedicine")
    assert fragment_db.explain_unknown("99202:F1") == (
        "The modifier F1 is an hcpcs code that can only be used if the modifier 59 is also used")
