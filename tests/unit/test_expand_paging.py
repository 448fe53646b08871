"""Property test: paging invariants of $expand over random value sets.

R4 $expand paging: pages at offset/count are disjoint, their concatenation is the unpaged
(flat) expansion, and `total` is the size of the whole expansion whatever the page.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from terminology.operations.expand import expand
from terminology.params import ExpandRequest
from terminology.providers.fhir import FhirCodeSystemProvider
from terminology.registry import Registry
from terminology.settings import Settings

CS = "http://example.test/paging"


def _tree(codes: list[str], fanout: int) -> list[dict[str, Any]]:
    """A concept tree over `codes`: each code's children are the next `fanout` unplaced codes."""
    nodes: list[dict[str, Any]] = [{"code": c, "display": f"Display {c}"} for c in codes]
    for i, node in enumerate(nodes[1:], start=1):
        parent = nodes[(i - 1) // fanout]
        parent.setdefault("concept", []).append(node)
    return nodes[:1]


@st.composite
def value_sets(draw: Any) -> tuple[Registry, dict[str, Any]]:
    n = draw(st.integers(min_value=0, max_value=25))
    codes = [f"c{i}" for i in range(n)]
    fanout = draw(st.integers(min_value=1, max_value=4))
    reg = Registry()
    reg.add_code_system(FhirCodeSystemProvider({
        "resourceType": "CodeSystem", "url": CS, "status": "active", "content": "complete",
        "concept": _tree(codes, fanout) if codes else []}))
    if codes and draw(st.booleans()):
        picked = draw(st.lists(st.sampled_from(codes), unique=True, max_size=n))
        include: dict[str, Any] = {"system": CS, "concept": [{"code": c} for c in picked]}
    elif codes and draw(st.booleans()):
        root = draw(st.sampled_from(codes))
        include = {"system": CS, "filter": [{"property": "concept", "op": "is-a", "value": root}]}
    else:
        include = {"system": CS}
    compose: dict[str, Any] = {"include": [include]}
    if codes and draw(st.booleans()):
        compose["exclude"] = [{"system": CS, "concept": [{"code": draw(st.sampled_from(codes))}]}]
    return reg, {"resourceType": "ValueSet", "status": "active", "compose": compose}


def _flat(registry: Registry, vs: dict[str, Any], **kw: Any) -> dict[str, Any]:
    exp: dict[str, Any] = expand(registry, ExpandRequest(value_set=vs, **kw), Settings())["expansion"]
    return exp


@settings(max_examples=60, deadline=None)
@given(value_sets(), st.integers(min_value=1, max_value=7))
def test_pages_concatenate_to_the_unpaged_expansion(case: tuple[Registry, dict[str, Any]], size: int) -> None:
    registry, vs = case
    whole = _flat(registry, vs, exclude_nested=True)
    expected = [c["code"] for c in whole.get("contains", [])]
    pages: list[str] = []
    offset = 0
    while True:
        page = _flat(registry, vs, offset=offset, count=size)
        assert page["total"] == whole["total"] == len(expected)
        got = [c["code"] for c in page.get("contains", [])]
        assert len(got) <= size
        if not got:
            break
        pages.extend(got)
        offset += size
    assert pages == expected
    assert len(set(pages)) == len(pages)  # disjoint pages


@settings(max_examples=30, deadline=None)
@given(value_sets())
def test_count_zero_gives_the_total_and_no_codes(case: tuple[Registry, dict[str, Any]]) -> None:
    registry, vs = case
    whole = _flat(registry, vs, exclude_nested=True)
    zero = _flat(registry, vs, count=0)
    assert zero["total"] == whole["total"] and "contains" not in zero
