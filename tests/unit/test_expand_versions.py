"""$expand of value sets that name several versions of one code system (versionsMatch)."""

from __future__ import annotations

from typing import Any

import pytest

from terminology.operations.expand import expand
from terminology.params import ExpandRequest
from terminology.providers.fhir import FhirCodeSystemProvider
from terminology.registry import Registry
from terminology.settings import Settings

CS = "http://example.test/versioned"
EXPANSION_PARAMETER = "http://hl7.org/fhir/StructureDefinition/valueset-expansion-parameter"


def _code_system(version: str, *codes: tuple[str, str]) -> FhirCodeSystemProvider:
    return FhirCodeSystemProvider({
        "resourceType": "CodeSystem", "url": CS, "version": version, "status": "active",
        "content": "complete", "caseSensitive": True,
        "concept": [{"code": c, "display": d} for c, d in codes],
    })


@pytest.fixture()
def registry() -> Registry:
    reg = Registry()
    reg.add_code_system(_code_system("1.0.0", ("a", "A one"), ("b", "B one"), ("c", "C one")))
    reg.add_code_system(_code_system("2.0.0", ("a", "A two"), ("b", "B two"), ("d", "D two")))
    return reg


def _expand(registry: Registry, compose: dict[str, Any], **kw: Any) -> dict[str, Any]:
    vs = {"resourceType": "ValueSet", "url": "http://example.test/vs", "status": "active",
          "compose": compose}
    return expand(registry, ExpandRequest(value_set=vs, **kw), Settings())["expansion"]


def _members(exp: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    return [(c["code"], c.get("version"), c.get("display")) for c in exp.get("contains", [])]


def _versions_match_ext(value: str) -> dict[str, Any]:
    return {"url": EXPANSION_PARAMETER, "extension": [
        {"url": "name", "valueCode": "versionsMatch"}, {"url": "value", "valueString": value}]}


BOTH = [{"system": CS, "version": "1.0.0"}, {"system": CS, "version": "2.0.0"}]


def _names(exp: dict[str, Any]) -> list[str]:
    return [p["name"] for p in exp["parameter"]]


def test_two_versions_list_each_version_newest_first(registry: Registry) -> None:
    exp = _expand(registry, {"include": BOTH})
    assert exp["total"] == 6
    assert _members(exp) == [("a", "2.0.0", "A two"), ("b", "2.0.0", "B two"), ("d", "2.0.0", "D two"),
                             ("a", "1.0.0", "A one"), ("b", "1.0.0", "B one"), ("c", "1.0.0", "C one")]
    assert "versionsMatch" not in _names(exp)


def test_versions_match_merges_a_code_into_one_member_from_the_newest_version(registry: Registry) -> None:
    exp = _expand(registry, {"include": BOTH}, versions_match=True)
    assert exp["total"] == 4
    assert _members(exp) == [("a", "2.0.0", "A two"), ("b", "2.0.0", "B two"), ("d", "2.0.0", "D two"),
                             ("c", "1.0.0", "C one")]
    assert {"name": "versionsMatch", "valueBoolean": True} in exp["parameter"]


def test_value_set_expansion_parameter_sets_versions_match(registry: Registry) -> None:
    merged = _expand(registry, {"extension": [_versions_match_ext("true")], "include": BOTH})
    apart = _expand(registry, {"extension": [_versions_match_ext("false")], "include": BOTH})
    assert merged["total"] == 4 and apart["total"] == 6
    assert "versionsMatch" not in _names(apart)  # false is not reported


def test_excluding_another_version_compares_codes_across_versions(registry: Registry) -> None:
    exp = _expand(registry, {"include": [{"system": CS, "version": "2.0.0"}],
                             "exclude": [{"system": CS, "version": "1.0.0"}]})
    assert _members(exp) == [("d", "2.0.0", "D two")]
    assert {"name": "versionsMatch", "valueBoolean": True} in exp["parameter"]
    used = [p["valueUri"] for p in exp["parameter"] if p["name"] == "used-codesystem"]
    assert sorted(used) == [f"{CS}|1.0.0", f"{CS}|2.0.0"]


def test_versions_match_false_keeps_an_excluded_version_apart(registry: Registry) -> None:
    exp = _expand(registry, {"extension": [_versions_match_ext("false")],
                             "include": [{"system": CS, "version": "2.0.0"}],
                             "exclude": [{"system": CS, "version": "1.0.0"}]})
    assert [m[0] for m in _members(exp)] == ["a", "b", "d"]
    assert "versionsMatch" not in _names(exp)


def test_excluding_a_code_of_one_version_keeps_it_in_the_other(registry: Registry) -> None:
    exp = _expand(registry, {"include": BOTH,
                             "exclude": [{"system": CS, "version": "1.0.0", "concept": [{"code": "b"}]}]})
    assert ("b", "2.0.0", "B two") in _members(exp)
    assert ("b", "1.0.0", "B one") not in _members(exp)
    assert exp["total"] == 5
