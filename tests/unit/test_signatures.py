"""Operation signatures: parameter syntax (400 naming the parameter) and unknown parameters
named with the closest known name, as the handlers in HANDLERS run them."""

from __future__ import annotations

import pytest

from terminology.errors import BadRequest, NotFound
from terminology.operations.context import OperationContext
from terminology.operations.signatures import (
    SIGNATURES,
    check_language_list,
    check_syntax,
    checked,
    unknown_parameter_issues,
)
from terminology.params import ParamBag, bag_from_parameters, bag_from_query

LOOKUP = SIGNATURES[("CodeSystem", "lookup")]
EXPAND = SIGNATURES[("ValueSet", "expand")]


@pytest.mark.parametrize("value", ["en", "de-CH", "zh-Hant-TW", "en, en-AU; q=0.4", "de,*; q=0", "*",
                                   "sl-rozaj", "de-CH-1901", "en-US-u-ca-gregory", "x-private", "en-US-x-twain"])
def test_language_lists_that_are_bcp_47_pass(value: str) -> None:
    check_language_list("displayLanguage", value)


@pytest.mark.parametrize("value", ["-", "en_US", "english-language-tag", "en;q=2", "en;q=high", "en,,de", " "])
def test_language_lists_that_are_not_bcp_47_are_a_400(value: str) -> None:
    with pytest.raises(BadRequest) as e:
        check_language_list("displayLanguage", value)
    assert e.value.issues[0].expression == ["displayLanguage"]


@pytest.mark.parametrize(("name", "value"), [
    ("date", "2026"), ("date", "2026-02"), ("date", "2026-02-28"), ("date", "2026-02-28T10:00:00Z"),
    ("count", "10"), ("activeOnly", "true"), ("url", "http://x.org/vs|1.0"), ("url", "http://x.org/vs"),
    ("system-version", "http://x.org/cs|2"), ("filter", "  anything goes  "),
])
def test_well_formed_values_pass(name: str, value: str) -> None:
    check_syntax(EXPAND, bag_from_query([(name, value)]), None)


@pytest.mark.parametrize(("name", "value"), [
    ("date", "notadate"), ("date", "2026-2-1"), ("date", "2026-02-28T10:00"), ("count", "1.5"),
    ("activeOnly", "1"), ("url", "http://x.org/vs|"), ("url", "|1.0"), ("url", "http://x.org/a vs"),
    ("system-version", "http://x.org/cs|"), ("displayLanguage", "-"),
])
def test_malformed_values_are_a_400_naming_the_parameter(name: str, value: str) -> None:
    with pytest.raises(BadRequest) as e:
        check_syntax(EXPAND, bag_from_query([(name, value)]), None)
    assert e.value.issues[0].expression == [name] and f"'{name}'" in e.value.text


def test_typed_values_in_a_parameters_body_are_left_to_their_reader() -> None:
    bag = bag_from_parameters({"resourceType": "Parameters", "parameter": [
        {"name": "count", "valueInteger": 5}, {"name": "activeOnly", "valueBoolean": True},
        {"name": "date", "valueDateTime": "2026-01-01"}]})
    check_syntax(EXPAND, bag, None)
    with pytest.raises(BadRequest):
        check_syntax(EXPAND, bag_from_parameters({"resourceType": "Parameters", "parameter": [
            {"name": "date", "valueString": "yesterday"}]}), None)


def test_the_code_under_test_is_not_syntax_checked() -> None:
    check_syntax(LOOKUP, bag_from_query([("code", " 72125 "), ("system", "http://x.org")]), None)


def test_a_bad_accept_language_header_is_a_400_naming_it() -> None:
    with pytest.raises(BadRequest) as e:
        check_syntax(LOOKUP, ParamBag(), "en;q=x")
    assert e.value.issues[0].expression == ["Accept-Language"]


def test_unknown_parameters_are_named_once_with_the_closest_known_name() -> None:
    bag = bag_from_query([("sytem", "a"), ("sytem", "b"), ("code", "1"), ("zzzz", "1")])
    issues = unknown_parameter_issues(LOOKUP, bag)
    assert [i.expression for i in issues] == [["sytem"], ["zzzz"]]
    assert all(i.severity == "warning" for i in issues)
    assert "did you mean 'system'?" in (issues[0].diagnostics or "")
    assert "did you mean" not in (issues[1].diagnostics or "")
    assert "details" not in issues[0].to_dict()  # a note, not a compared issue


def _ctx(bag: ParamBag) -> OperationContext:
    return OperationContext(None, bag, None, None, None, {})  # type: ignore[arg-type]


def test_a_checked_handler_adds_the_warnings_to_its_error_only() -> None:
    def fails(ctx: OperationContext) -> dict[str, object]:
        raise NotFound("no such code", expression="code")

    def works(ctx: OperationContext) -> dict[str, object]:
        return {"resourceType": "Parameters"}

    bag = bag_from_query([("code", "1"), ("sytem", "x")])
    with pytest.raises(NotFound) as e:
        checked("CodeSystem", "lookup", fails)(_ctx(bag))
    assert [i.severity for i in e.value.issues] == ["error", "warning"]
    assert checked("CodeSystem", "lookup", works)(_ctx(bag)) == {"resourceType": "Parameters"}
