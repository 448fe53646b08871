"""The indexes that make big expansions fast give the same answers as a plain scan.

Word index (text filter), positions and subtree spans (paging, is-a), hierarchy filters that
test ancestors, and expansions held as runs of concepts (totals and pages by position).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from terminology.operations.expand import expand, text_matcher
from terminology.params import ExpandRequest
from terminology.providers.fhir import FhirCodeSystemProvider
from terminology.providers.filters import generic_filter
from terminology.providers.text_index import TextIndex
from terminology.registry import Registry
from terminology.settings import Settings
from terminology.valuesets.compose import ExpansionEntry

CS = "http://example.test/big"
WORDS = ["Cardiac", "cardio", "lumbar", "LUM", "spine", "spinal", "Ünter", "x_ray", "ct-scan",
         "a1", "b2", "über", "links", "12", "123"]
HIERARCHY_OPS = ["is-a", "descendent-of", "child-of", "descendent-leaf", "generalizes", "is-not-a"]


def _concepts(texts: list[tuple[str, list[str]]]) -> list[dict[str, Any]]:
    """Flat concepts c0.. with the given display and designation values."""
    return [{"code": f"c{i}", "display": display,
             "designation": [{"language": "de", "value": v} for v in des]}
            for i, (display, des) in enumerate(texts)]


def _provider(concepts: list[dict[str, Any]]) -> FhirCodeSystemProvider:
    return FhirCodeSystemProvider({"resourceType": "CodeSystem", "url": CS, "status": "active",
                                   "content": "complete", "concept": concepts})


phrases = st.lists(st.sampled_from(WORDS), min_size=0, max_size=4).map(" ".join)
concept_texts = st.lists(st.tuples(phrases, st.lists(phrases, max_size=2)), max_size=30)
queries = st.lists(st.sampled_from([w[:k] for w in WORDS for k in (1, 2, 3, 6)] + ["C1", "-"]),
                   max_size=3).map(" ".join)


@settings(max_examples=80, deadline=None)
@given(concept_texts, queries)
def test_text_index_search_equals_a_scan_of_every_concept(texts: Any, query: str) -> None:
    provider = _provider(_concepts(texts))
    ordered = list(provider.ordered_concepts())
    matches = text_matcher(query)
    scanned = [i for i, c in enumerate(ordered)
               if matches(ExpansionEntry(CS, None, c.code, c.display, c))]
    found = TextIndex(ordered).search(query)
    assert (list(range(len(ordered))) if found is None else found) == scanned


def _tree(n: int, fanout: int) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = [{"code": f"n{i}", "display": f"node {i}"} for i in range(n)]
    for i, node in enumerate(nodes[1:], start=1):
        nodes[(i - 1) // fanout].setdefault("concept", []).append(node)
    return nodes[:1]


def _closure(provider: FhirCodeSystemProvider, code: str) -> list[str]:
    """Codes below `code` by walking children (the reference)."""
    out: list[str] = []
    stack = list(reversed(provider.locate(code).children))  # type: ignore[union-attr]
    while stack:
        k = stack.pop()
        if k not in out:
            out.append(k)
            stack.extend(reversed(provider.locate(k).children))  # type: ignore[union-attr]
    return out


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 4))
def test_subtree_span_lists_the_same_descendants_as_walking_children(n: int, fanout: int) -> None:
    provider = _provider(_tree(n, fanout))
    ordered = provider.ordered_concepts()
    for concept in ordered:
        span = provider.subtree_span(concept.code)
        assert span is not None
        assert [c.code for c in ordered[span[0] + 1:span[1]]] == _closure(provider, concept.code)
        assert provider.descendants(concept.code) == _closure(provider, concept.code)


def test_polyhierarchy_has_no_spans_and_descendants_follow_every_parent() -> None:
    concepts: list[dict[str, Any]] = [{"code": "a"}, {"code": "b"},
                {"code": "c", "property": [{"code": "parent", "valueCode": "a"},
                                           {"code": "parent", "valueCode": "b"}]}]
    provider = _provider(concepts)
    assert provider.subtree_span("a") is None
    assert provider.descendants("a") == ["c"] and provider.descendants("b") == ["c"]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 30), st.integers(1, 3), st.data())
def test_hierarchy_filters_match_exactly_the_codes_they_list(n: int, fanout: int, data: Any) -> None:
    provider = _provider(_tree(n, fanout))
    root = data.draw(st.sampled_from([c.code for c in provider.ordered_concepts()]))
    for op in HIERARCHY_OPS:
        f = generic_filter(provider, "concept", op, root)
        matched = [c.code for c in provider.ordered_concepts() if f.matches(c)]
        listed = f.codes()
        if listed is not None:
            assert sorted(matched) == sorted(listed), op
        elif op == "is-not-a":
            below = {root, *_closure(provider, root)}
            assert matched == [c.code for c in provider.ordered_concepts() if c.code not in below]


def _expansion(registry: Registry, vs: dict[str, Any], **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = expand(registry, ExpandRequest(value_set=vs, **kw), Settings())["expansion"]
    return out


@st.composite
def composes(draw: Any) -> tuple[Registry, dict[str, Any]]:
    texts = draw(st.lists(st.tuples(phrases, st.lists(phrases, max_size=1)), min_size=1, max_size=20))
    concepts = _concepts(texts)
    codes = [c["code"] for c in concepts]
    registry = Registry()
    registry.add_code_system(_provider(concepts))
    parts = [{"system": CS},
             {"system": CS, "concept": [{"code": c} for c in draw(st.lists(st.sampled_from(codes)))]}]
    include = draw(st.lists(st.sampled_from(parts), min_size=1, max_size=3))
    compose: dict[str, Any] = {"include": include}
    if draw(st.booleans()):
        compose["exclude"] = [{"system": CS, "concept": [{"code": draw(st.sampled_from(codes))}]}]
    return registry, {"resourceType": "ValueSet", "status": "active", "compose": compose}


@settings(max_examples=60, deadline=None)
@given(composes(), st.integers(0, 25), st.integers(0, 25), queries)
def test_pages_and_text_filter_equal_slices_of_the_full_expansion(
    case: Any, offset: int, count: int, query: str
) -> None:
    registry, vs = case
    full = _expansion(registry, vs, exclude_nested=True).get("contains", [])
    codes = [item["code"] for item in full]
    assert len(set(codes)) == len(codes)  # each member once, whatever the includes
    page = _expansion(registry, vs, offset=offset, count=count)
    assert page["total"] == len(full)
    assert page.get("contains", []) == full[offset:offset + count]
    matches = text_matcher(query)
    provider = registry.code_system(CS)
    assert provider is not None
    wanted = [item for item in full
              if matches(ExpansionEntry(CS, None, item["code"], item.get("display"),
                                        provider.locate(item["code"])))]
    searched = _expansion(registry, vs, text_filter=query, offset=0, count=100)
    assert searched["total"] == len(wanted)
    assert searched.get("contains", []) == wanted


def test_count_zero_on_a_whole_code_system_gives_the_exact_total_and_no_codes() -> None:
    registry = Registry()
    registry.add_code_system(_provider(_tree(50, 3)))
    exp = _expansion(registry, {"resourceType": "ValueSet", "status": "active",
                                "compose": {"include": [{"system": CS}]}}, count=0)
    assert exp["total"] == 50 and "contains" not in exp
