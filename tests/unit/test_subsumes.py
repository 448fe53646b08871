"""CodeSystem/$subsumes over a small hierarchy."""

from __future__ import annotations

import pytest

from terminology.errors import BadRequest, NotFound
from terminology.operations.subsumes import subsumes, subsumes_request
from terminology.params import bag_from_parameters
from terminology.providers.fhir import FhirCodeSystemProvider
from terminology.registry import Registry

SYS = "http://example.test/CodeSystem/h"


@pytest.fixture()
def reg() -> Registry:
    r = Registry()
    r.add_code_system(FhirCodeSystemProvider({
        "resourceType": "CodeSystem", "url": SYS, "content": "complete", "status": "active",
        "concept": [{"code": "limb", "concept": [{"code": "knee"}]}, {"code": "head"}],
    }))
    return r


def _outcome(reg: Registry, **params: str) -> str:
    bag = bag_from_parameters({"resourceType": "Parameters", "parameter": [
        {"name": k, "valueCode" if k.startswith("code") else "valueUri": v} for k, v in params.items()]})
    return subsumes(reg, subsumes_request(bag))["parameter"][0]["valueCode"]


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("limb", "knee", "subsumes"), ("knee", "limb", "subsumed-by"),
    ("knee", "knee", "equivalent"), ("head", "knee", "not-subsumed"),
])
def test_subsumes_outcome_follows_the_hierarchy(reg: Registry, a: str, b: str, expected: str) -> None:
    assert _outcome(reg, system=SYS, codeA=a, codeB=b) == expected


def test_subsumes_unknown_code_is_not_found(reg: Registry) -> None:
    with pytest.raises(NotFound):
        _outcome(reg, system=SYS, codeA="limb", codeB="elbow")


def test_subsumes_codings_from_two_systems_is_bad_request() -> None:
    bag = bag_from_parameters({"resourceType": "Parameters", "parameter": [
        {"name": "codingA", "valueCoding": {"system": SYS, "code": "limb"}},
        {"name": "codingB", "valueCoding": {"system": SYS + "x", "code": "knee"}}]})
    with pytest.raises(BadRequest):
        subsumes_request(bag)
