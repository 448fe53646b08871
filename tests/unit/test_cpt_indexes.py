"""The CPT indexes (word index, filter bitmaps, position runs) give exactly what a scan gives,
on the full-size synthetic release: the same concepts, the same totals, the same pages."""

from __future__ import annotations

import random
from typing import Any

import pytest

from terminology.cpt.provider import CptProvider
from terminology.http.app import create_app
from terminology.providers.base import Concept
from terminology.providers.text_index import concept_texts, words
from terminology.registry import Registry
from terminology.settings import Settings
from terminology.valuesets.membership import check_membership
from terminology.valuesets.options import ComposeOptions
from tests.conftest import CPT_URL

HL7 = "http://terminology.hl7.org/ValueSet"
ORDER_SETS = "https://terminology.cpt-imaging.org/fhir/ValueSet"
VALUE_SETS = [f"{HL7}/cpt-all", f"{HL7}/cpt-base", f"{HL7}/cpt-modifiers", f"{HL7}/cpt-usable",
              f"{ORDER_SETS}/spine-ct", f"{ORDER_SETS}/spine-mri",
              f"{ORDER_SETS}/imaging-with-contrast", f"{ORDER_SETS}/all-radiology",
              f"{ORDER_SETS}/ct-cervical-spine"]


@pytest.fixture(scope="module")
def cpt(full_registry: Registry) -> CptProvider:
    provider = full_registry.code_system(CPT_URL)
    assert isinstance(provider, CptProvider) and provider.total() > 11_000
    return provider


@pytest.fixture(scope="module")
def full_client(full_registry: Registry, full_cpt_db: Any) -> Any:
    # the licensed-content cap raised, as an operator may: these tests page the whole release
    settings = Settings(cpt_databases=[full_cpt_db], response_cache_bytes=0, max_cpt_expansion=100_000)
    return create_app(settings, full_registry).test_client()


_HELD: dict[int, list[str]] = {}  # id(concept) -> its words, split once for every query


def scan_text(concepts: list[Concept], query: str) -> list[int]:
    """Positions of the concepts whose words each query word prefixes (the filter's rule)."""
    wanted = words(query)
    out = []
    for pos, c in enumerate(concepts):
        held = _HELD.get(id(c))
        if held is None:
            held = _HELD[id(c)] = words(" ".join(concept_texts(c)))
        if all(any(h.startswith(w) for h in held) for w in wanted):
            out.append(pos)
    return out


def queries(cpt: CptProvider, n: int) -> list[str]:
    """Random word prefixes of the release's texts, single and paired, plus edge cases."""
    rng = random.Random(15)
    vocabulary = sorted({w for c in cpt.ordered_concepts() for w in words(" ".join(concept_texts(c)))})
    out = ["c", "7", "721", "zzzqx", "computed tomography", "SYNTHETIC", "mr spi"]
    for _ in range(n):
        chosen = rng.sample(vocabulary, rng.choice((1, 2)))
        out.append(" ".join(w[:rng.randint(1, len(w))] for w in chosen))
    return out


def test_word_index_finds_exactly_what_a_scan_finds(cpt: CptProvider) -> None:
    concepts = list(cpt.ordered_concepts())
    for q in queries(cpt, 40):
        assert cpt.text_index().search(q) == scan_text(concepts, q), q


def test_text_search_of_all_cpt_gives_exact_totals_and_pages(cpt: CptProvider, full_client: Any) -> None:
    concepts = list(cpt.ordered_concepts())
    for q in queries(cpt, 15):
        expected = [concepts[p].code for p in scan_text(concepts, q)]
        offset = len(expected) // 2
        r = full_client.get("/fhir/ValueSet/$expand", query_string={
            "url": f"{HL7}/cpt-all", "filter": q, "count": "20", "offset": str(offset)})
        assert r.status_code == 200, r.get_json()
        expansion = r.get_json()["expansion"]
        assert expansion["total"] == len(expected), q
        assert [c["code"] for c in expansion.get("contains", [])] == expected[offset:offset + 20], q


def test_text_search_within_a_filter_value_set_matches_a_scan(cpt: CptProvider, full_client: Any) -> None:
    concepts = list(cpt.ordered_concepts())
    for q in ("comp", "spi", "mag res", "with"):
        expected = [concepts[p].code for p in scan_text(concepts, q)
                    if "70010" <= concepts[p].code <= "79999" and len(concepts[p].code) == 5]
        r = full_client.get("/fhir/ValueSet/$expand", query_string={
            "url": f"{ORDER_SETS}/all-radiology", "filter": q, "count": "1000"})
        expansion = r.get_json()["expansion"]
        assert expansion["total"] == len(expected), q
        assert [c["code"] for c in expansion.get("contains", [])] == expected[:1000]


def property_texts(c: Concept, name: str) -> set[str]:
    out = set()
    for p in c.properties:
        if p.code == name:
            out.add(("true" if p.value else "false") if isinstance(p.value, bool) else str(p.value))
    return out


def test_every_property_filter_selects_what_a_scan_selects(cpt: CptProvider) -> None:
    concepts = list(cpt.ordered_concepts())
    seen: dict[str, set[str]] = {}
    for c in concepts:
        for p in c.properties:
            if p.code in ("kind", "modality", "body-region", "contrast"):
                seen.setdefault(p.code, set()).add(str(p.value))
    assert {"kind", "modality", "body-region", "contrast"} <= set(seen)
    cases: list[tuple[str, str, str, list[str]]] = []
    for name, values in seen.items():
        ordered = sorted(values)
        for v in ordered:
            cases.append((name, "=", v, [c.code for c in concepts if v in property_texts(c, name)]))
        pair = ordered[:2]
        cases.append((name, "in", ",".join(pair),
                      [c.code for c in concepts if property_texts(c, name) & set(pair)]))
    for flag in ("modifier", "telemedicine", "orthopox"):
        for v in ("true", "false"):
            cases.append((flag, "=", v, [c.code for c in concepts
                                         if (property_texts(c, flag) or {"false"}) == {v}]))
    cases.append(("modified", "=", "false", [c.code for c in concepts]))
    cases.append(("code", "in", "70010-72999,99213,0001F",
                  [c.code for c in concepts if (len(c.code) == 5 and "70010" <= c.code <= "72999")
                   or c.code in ("99213", "0001F")]))
    for prop, op, value, expected in cases:
        f = cpt.filter(prop, op, value)
        assert list(f.codes() or []) == expected, (prop, op, value)
        assert [c.code for c in concepts if f.matches(c)] == expected, (prop, op, value)
        assert f.bitmap().bit_count() == len(expected)


def test_shipped_value_sets_count_and_page_as_membership_decides(
        cpt: CptProvider, full_registry: Registry, full_client: Any) -> None:
    concepts = list(cpt.ordered_concepts())
    for url in VALUE_SETS:
        vs = full_registry.value_set(url)
        assert vs is not None
        members = [c.code for c in concepts
                   if check_membership(full_registry, vs, CPT_URL, c.code, None, ComposeOptions()).found]
        r = full_client.get("/fhir/ValueSet/$expand", query_string={"url": url, "count": "0"})
        assert r.get_json()["expansion"]["total"] == len(members), url
        offset = len(members) // 3
        r = full_client.get("/fhir/ValueSet/$expand",
                            query_string={"url": url, "count": "25", "offset": str(offset)})
        page = [c["code"] for c in r.get_json()["expansion"].get("contains", [])]
        assert page == members[offset:offset + 25], url
