"""ValueSet/$batch-validate-code: shared parameters, per-validation overrides, errors as outcomes."""

from __future__ import annotations

from typing import Any

import pytest

from terminology.errors import TooCostly
from terminology.operations.batch import batch_validate
from terminology.params import bag_from_parameters
from terminology.providers.fhir import FhirCodeSystemProvider
from terminology.registry import Registry

SYS, VS = "http://example.test/cs", "http://example.test/vs"


def _reg() -> Registry:
    r = Registry()
    r.add_code_system(FhirCodeSystemProvider({"resourceType": "CodeSystem", "url": SYS, "content": "complete",
                                              "status": "active", "concept": [{"code": "a", "display": "A"}]}))
    r.add_value_set({"resourceType": "ValueSet", "url": VS, "status": "active", "compose": {"include": [{"system": SYS}]}})
    return r


def _validation(*params: dict[str, Any]) -> dict[str, Any]:
    return {"name": "validation", "resource": {"resourceType": "Parameters", "parameter": list(params)}}


def test_batch_answers_each_validation_with_shared_url_and_overrides() -> None:
    bag = bag_from_parameters({"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": VS}, {"name": "lenient-display-validation", "valueBoolean": True},
        _validation({"name": "coding", "valueCoding": {"system": SYS, "code": "a", "display": "X"}},
                    {"name": "lenient-display-validation", "valueBoolean": False}),
        _validation({"name": "coding", "valueCoding": {"system": SYS, "code": "a", "display": "X"}}),
        _validation({"name": "codingX", "valueCoding": {"system": SYS, "code": "a"}}),
    ]})
    results = [p["resource"] for p in batch_validate(_reg(), bag)["parameter"]]
    first, second = (next(p["valueBoolean"] for p in r["parameter"] if p["name"] == "result") for r in results[:2])
    assert (first, second) == (False, True)  # the override makes the wrong display an error
    assert results[2]["resourceType"] == "OperationOutcome"


def test_batch_with_more_validations_than_the_limit_is_too_costly() -> None:
    one = _validation({"name": "coding", "valueCoding": {"system": SYS, "code": "a"}})
    bag = bag_from_parameters({"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": VS}, one, one, one]})
    assert len(batch_validate(_reg(), bag, max_validations=3)["parameter"]) == 3
    with pytest.raises(TooCostly) as err:
        batch_validate(_reg(), bag, max_validations=2)
    assert err.value.issues[0].expression == ["validation"]
