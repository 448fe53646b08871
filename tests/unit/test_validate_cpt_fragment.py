"""$validate-code of CPT expressions against the bundled fragment: grammar errors are errors."""

from __future__ import annotations

import pytest

from terminology.operations.validate import validate_code_system
from terminology.params import bag_from_query, validate_code_request
from terminology.registry import Registry

from ..conftest import CPT_URL, param_value


def validate(registry: Registry, code: str) -> tuple[bool, str | None]:
    bag = bag_from_query([("url", CPT_URL), ("code", code)])
    out = validate_code_system(registry, validate_code_request(bag, True))
    return param_value(out, "result"), param_value(out, "message")


def test_valid_expression_on_fragment_is_true(registry: Registry) -> None:
    assert validate(registry, "72126:26") == (True, None)


def test_rule_breaking_expression_is_invalid_even_on_a_fragment(registry: Registry) -> None:
    result, msg = validate(registry, "72126:76:77")
    assert result is False
    assert msg == "There can only be one modifier in the set 76, 77, 78, 79"


@pytest.mark.parametrize("code", ["72126-26", "72126.26"])
def test_wrong_separator_is_invalid_and_names_colon(registry: Registry, code: str) -> None:
    result, msg = validate(registry, code)
    assert result is False and msg is not None and "':'" in msg


def test_code_missing_from_fragment_is_not_declared_invalid(registry: Registry) -> None:
    result, _ = validate(registry, "99999")
    assert result is True
