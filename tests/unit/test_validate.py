"""$validate-code as pure functions over a registry: results, messages and issues."""

from __future__ import annotations

from typing import Any

import pytest

from terminology.errors import FhirError, NotFound
from terminology.operations.validate import validate_code_system, validate_value_set
from terminology.params import ParamBag, bag_from_parameters, validate_code_request
from terminology.providers.fhir import FhirCodeSystemProvider
from terminology.registry import Registry

SYS = "http://example.test/CodeSystem/v"
VS = "http://example.test/ValueSet/v"


def _cs(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "CodeSystem", "url": SYS, "version": "1.0.0", "language": "en",
        "status": "active", "content": "complete", "caseSensitive": True,
        "concept": [
            {"code": "a", "display": "Alpha", "designation": [{"language": "de", "value": "Alfa"}],
             "concept": [{"code": "a1", "display": "Alpha one"}]},
            {"code": "old", "display": "Old", "property": [{"code": "status", "valueCode": "retired"}]},
            {"code": "abs", "display": "Abstract", "property": [{"code": "notSelectable", "valueBoolean": True}]},
        ],
        **extra,
    }


@pytest.fixture()
def reg() -> Registry:
    r = Registry()
    r.add_code_system(FhirCodeSystemProvider(_cs()))
    r.add_value_set({"resourceType": "ValueSet", "url": VS, "version": "2.0", "status": "active",
                     "compose": {"include": [{"system": SYS, "concept": [{"code": "a"}, {"code": "old"}]}]}})
    return r


def _bag(*params: dict[str, Any]) -> ParamBag:
    return bag_from_parameters({"resourceType": "Parameters", "parameter": list(params)})


def _p(answer: dict[str, Any], name: str) -> Any:
    for p in answer["parameter"]:
        if p["name"] == name:
            return p.get("resource") or next(v for k, v in p.items() if k.startswith("value"))
    return None


def _tx_codes(answer: dict[str, Any]) -> list[str]:
    issues = _p(answer, "issues") or {"issue": []}
    return [i["details"]["coding"][0]["code"] for i in issues["issue"]]


def _vs(reg: Registry, *params: dict[str, Any]) -> dict[str, Any]:
    return validate_value_set(reg, validate_code_request(_bag(*params), for_code_system=False))


def test_vs_validate_member_code_is_true_with_display_and_version(reg: Registry) -> None:
    out = _vs(reg, {"name": "url", "valueUri": VS}, {"name": "code", "valueCode": "a"},
              {"name": "system", "valueUri": SYS})
    assert _p(out, "result") is True
    assert (_p(out, "display"), _p(out, "version"), _p(out, "system")) == ("Alpha", "1.0.0", SYS)
    assert _p(out, "issues") is None


def test_vs_validate_code_not_in_value_set_is_false_with_not_in_vs_issue(reg: Registry) -> None:
    out = _vs(reg, {"name": "url", "valueUri": VS},
              {"name": "coding", "valueCoding": {"system": SYS, "code": "a1"}})
    assert _p(out, "result") is False
    assert _tx_codes(out) == ["not-in-vs"]
    issue = _p(out, "issues")["issue"][0]
    assert issue["expression"] == ["Coding.code"]
    assert "was not found in the value set 'http://example.test/ValueSet/v|2.0'" in _p(out, "message")


def test_vs_validate_unknown_code_adds_invalid_code_issue(reg: Registry) -> None:
    out = _vs(reg, {"name": "url", "valueUri": VS}, {"name": "code", "valueCode": "zz"},
              {"name": "system", "valueUri": SYS})
    assert _p(out, "result") is False
    assert sorted(_tx_codes(out)) == ["invalid-code", "not-in-vs"]
    assert "Unknown code 'zz' in the CodeSystem" in _p(out, "message")


def test_vs_validate_wrong_display_is_error_unless_lenient(reg: Registry) -> None:
    coding = {"name": "coding", "valueCoding": {"system": SYS, "code": "a", "display": "Beta"}}
    out = _vs(reg, {"name": "url", "valueUri": VS}, coding)
    assert _p(out, "result") is False
    assert _tx_codes(out) == ["invalid-display"]
    assert _p(out, "issues")["issue"][0]["expression"] == ["Coding.display"]
    lenient = _vs(reg, {"name": "url", "valueUri": VS}, coding,
                  {"name": "lenient-display-validation", "valueBoolean": True})
    assert _p(lenient, "result") is True
    assert _p(lenient, "issues")["issue"][0]["severity"] == "warning"


def test_vs_validate_display_in_requested_language_is_accepted(reg: Registry) -> None:
    out = _vs(reg, {"name": "url", "valueUri": VS},
              {"name": "coding", "valueCoding": {"system": SYS, "code": "a", "display": "Alfa"}},
              {"name": "displayLanguage", "valueCode": "de"})
    assert _p(out, "result") is True
    assert _p(out, "display") == "Alfa"


def test_vs_validate_unknown_system_is_false_with_unknown_system_parameter(reg: Registry) -> None:
    out = _vs(reg, {"name": "url", "valueUri": VS},
              {"name": "coding", "valueCoding": {"system": "http://nowhere.test/cs", "code": "a"}})
    assert _p(out, "result") is False
    assert "not-found" in _tx_codes(out)
    assert _p(out, "x-unknown-system") == "http://nowhere.test/cs"


def test_vs_validate_unknown_value_set_is_not_found_error(reg: Registry) -> None:
    with pytest.raises(NotFound) as e:
        _vs(reg, {"name": "url", "valueUri": VS + "X"}, {"name": "code", "valueCode": "a"},
            {"name": "system", "valueUri": SYS})
    assert e.value.issues[0].message_id == "Unable_to_resolve_value_Set_"


def test_vs_validate_inactive_code_reports_inactive_and_status(reg: Registry) -> None:
    out = _vs(reg, {"name": "url", "valueUri": VS}, {"name": "code", "valueCode": "old"},
              {"name": "system", "valueUri": SYS})
    assert _p(out, "result") is True
    assert _p(out, "inactive") is True
    assert _p(out, "status") == "retired"
    assert _tx_codes(out) == ["code-comment"]


def test_vs_validate_active_only_rejects_inactive_code(reg: Registry) -> None:
    out = _vs(reg, {"name": "url", "valueUri": VS}, {"name": "code", "valueCode": "old"},
              {"name": "system", "valueUri": SYS}, {"name": "activeOnly", "valueBoolean": True})
    assert _p(out, "result") is False
    assert "code-rule" in _tx_codes(out)


def test_vs_validate_codeable_concept_any_valid_coding_is_enough(reg: Registry) -> None:
    cc = {"coding": [{"system": SYS, "code": "a1"}, {"system": SYS, "code": "a"}]}
    out = _vs(reg, {"name": "url", "valueUri": VS}, {"name": "codeableConcept", "valueCodeableConcept": cc})
    assert _p(out, "result") is True
    assert _p(out, "code") == "a"
    assert _tx_codes(out) == ["this-code-not-in-vs"]


def test_vs_validate_infer_system_finds_the_one_system(reg: Registry) -> None:
    out = _vs(reg, {"name": "url", "valueUri": VS}, {"name": "code", "valueCode": "a"},
              {"name": "inferSystem", "valueBoolean": True})
    assert _p(out, "result") is True
    assert _p(out, "system") == SYS


def test_vs_validate_missing_code_is_bad_request(reg: Registry) -> None:
    with pytest.raises(FhirError) as e:
        _vs(reg, {"name": "url", "valueUri": VS})
    assert e.value.status == 400


def test_vs_validate_bad_import_is_result_false_not_error(reg: Registry) -> None:
    reg.add_value_set({"resourceType": "ValueSet", "url": VS + "-imp", "status": "active",
                       "compose": {"include": [{"valueSet": ["http://example.test/missing"]}]}})
    out = _vs(reg, {"name": "url", "valueUri": VS + "-imp"}, {"name": "code", "valueCode": "a"},
              {"name": "system", "valueUri": SYS})
    assert _p(out, "result") is False
    assert _tx_codes(out) == ["not-found"]


def test_vs_validate_filter_without_value_is_400(reg: Registry) -> None:
    vs = {"resourceType": "ValueSet", "status": "active", "compose": {"include": [
        {"system": SYS, "filter": [{"property": "concept", "op": "is-a"}]}]}}
    with pytest.raises(FhirError) as e:
        _vs(reg, {"name": "valueSet", "resource": vs}, {"name": "code", "valueCode": "a"},
            {"name": "system", "valueUri": SYS})
    assert e.value.status == 400
    assert "has no value" in e.value.text


def test_cs_validate_good_and_bad_code(reg: Registry) -> None:
    good = validate_code_system(reg, validate_code_request(
        _bag({"name": "url", "valueUri": SYS}, {"name": "code", "valueCode": "a1"}), True))
    assert _p(good, "result") is True and _p(good, "display") == "Alpha one"
    bad = validate_code_system(reg, validate_code_request(
        _bag({"name": "url", "valueUri": SYS}, {"name": "code", "valueCode": "nope"}), True))
    assert _p(bad, "result") is False
    assert _tx_codes(bad) == ["invalid-code"]  # no value set, so no not-in-vs


def test_cs_validate_abstract_false_rejects_not_selectable_code(reg: Registry) -> None:
    out = validate_code_system(reg, validate_code_request(
        _bag({"name": "url", "valueUri": SYS}, {"name": "code", "valueCode": "abs"},
             {"name": "abstract", "valueBoolean": False}), True))
    assert _p(out, "result") is False
    assert _tx_codes(out) == ["code-rule"]


def test_cs_validate_unknown_system_is_false_with_caused_by(reg: Registry) -> None:
    out = validate_code_system(reg, validate_code_request(
        _bag({"name": "url", "valueUri": "http://nowhere.test/cs"}, {"name": "code", "valueCode": "a"}), True))
    assert _p(out, "result") is False
    assert _p(out, "x-caused-by-unknown-system") == "http://nowhere.test/cs"


def test_cs_validate_fragment_unknown_code_is_true_with_warning() -> None:
    r = Registry()
    r.add_code_system(FhirCodeSystemProvider(_cs(content="fragment")))
    out = validate_code_system(r, validate_code_request(
        _bag({"name": "url", "valueUri": SYS}, {"name": "code", "valueCode": "zz"}), True))
    assert _p(out, "result") is True
    issue = _p(out, "issues")["issue"][0]
    assert (issue["severity"], issue["details"]["coding"][0]["code"]) == ("warning", "invalid-code")


def test_cs_validate_uses_provider_explanation_for_unknown_code() -> None:
    class Grammar(FhirCodeSystemProvider):
        def explain_unknown(self, code: str) -> str | None:
            return "There can only be one modifier in the set 76, 77, 78, 79" if ":" in code else None

    r = Registry()
    r.add_code_system(Grammar(_cs()))
    out = validate_code_system(r, validate_code_request(
        _bag({"name": "url", "valueUri": SYS}, {"name": "code", "valueCode": "a:76:77"}), True))
    assert _p(out, "result") is False
    assert _p(out, "message") == "There can only be one modifier in the set 76, 77, 78, 79"
    assert _p(out, "display") is None
