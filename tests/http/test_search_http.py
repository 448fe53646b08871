"""Read and search as R4 defines them: paging links, _summary, _elements, _total, unknown parameters."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from terminology.operations.search import subset

from ..conftest import assert_fhir_valid, assert_outcome

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}


def ok(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body: dict[str, Any] = resp.get_json()
    assert_fhir_valid(body)
    return body


def links(bundle: dict[str, Any]) -> dict[str, str]:
    return {x["relation"]: x["url"] for x in bundle["link"]}


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def test_paging_links_followed_to_the_end_visit_every_match_once(client: Any) -> None:
    everything = ok(client.get("/fhir/ValueSet"))
    ids = [e["resource"]["id"] for e in everything["entry"]]
    assert len(ids) > 4
    page = ok(client.get("/fhir/ValueSet?_count=3"))
    assert "previous" not in links(page)
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        assert page["total"] == len(ids)
        seen += [e["resource"]["id"] for e in page["entry"]]
        nxt = links(page).get("next")
        if nxt is None:
            break
        page = ok(client.get(local(nxt)))
        assert "previous" in links(page)
    assert seen == ids and pages == (len(ids) + 2) // 3
    assert local(links(page)["last"]) == local(links(page)["self"])
    first = ok(client.get(local(links(page)["first"])))
    assert [e["resource"]["id"] for e in first["entry"]] == ids[:3]


def test_paging_links_keep_the_criteria(client: Any) -> None:
    page = ok(client.get("/fhir/ValueSet?status=active&_count=2&_summary=true"))
    query = parse_qs(urlsplit(links(page)["next"]).query)
    assert query == {"status": ["active"], "_count": ["2"], "_offset": ["2"], "_summary": ["true"]}


@pytest.mark.parametrize(("summary", "present", "absent"), [
    ("true", {"url", "status", "content"}, {"concept"}),
    ("text", {"status", "content"}, {"concept", "url"}),
    ("data", {"url", "concept"}, set()),
])
def test_read_summary_keeps_the_elements_fhir_marks(client: Any, summary: str, present: set[str], absent: set[str]) -> None:
    body = ok(client.get(f"/fhir/CodeSystem/test-body-site?_summary={summary}"))
    assert present <= set(body) and not absent & set(body)
    assert SUBSETTED in body["meta"]["tag"]


def test_summary_text_keeps_the_narrative_and_data_drops_it() -> None:
    text = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'}
    cs = {"resourceType": "CodeSystem", "id": "c", "url": "http://x", "status": "active",
          "content": "complete", "text": text, "concept": [{"code": "a"}], "description": "d"}
    assert subset(cs, "text", None) == {"resourceType": "CodeSystem", "id": "c", "status": "active",
                                        "content": "complete", "text": text, "meta": {"tag": [SUBSETTED]}}
    data = subset(cs, "data", None)
    assert "text" not in data and data["concept"] == [{"code": "a"}] and data["description"] == "d"
    true = subset(cs, "true", None)
    assert set(true) == {"resourceType", "id", "url", "status", "content", "meta"}
    assert "meta" not in cs  # the loaded resource is not changed


def test_read_elements_keeps_those_named_and_the_mandatory_ones(client: Any) -> None:
    body = ok(client.get("/fhir/CodeSystem/test-body-site?_elements=url,version"))
    assert set(body) == {"resourceType", "id", "meta", "url", "version", "status", "content"}
    assert SUBSETTED in body["meta"]["tag"]


def test_search_elements_applies_to_every_entry(client: Any) -> None:
    body = ok(client.get("/fhir/ValueSet?_elements=name"))
    assert all(set(e["resource"]) <= {"resourceType", "id", "meta", "name", "status"} for e in body["entry"])


def test_summary_false_is_the_whole_resource(client: Any) -> None:
    assert ok(client.get("/fhir/CodeSystem/test-body-site?_summary=false")) == ok(client.get("/fhir/CodeSystem/test-body-site"))


def test_total_none_leaves_the_total_out(client: Any) -> None:
    body = ok(client.get("/fhir/ValueSet?_total=none&_count=1"))
    assert "total" not in body and len(body["entry"]) == 1
    assert ok(client.get("/fhir/ValueSet?_total=accurate"))["total"] > 1


def test_unknown_search_parameter_is_reported_in_an_outcome_entry(client: Any) -> None:
    body = ok(client.get("/fhir/ValueSet?colour=red"))
    outcome = [e for e in body["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1
    issue = outcome[0]["resource"]["issue"][0]
    assert issue["severity"] == "warning" and issue["expression"] == ["colour"]
    assert body["total"] == len(body["entry"]) - 1  # the outcome is not a match


@pytest.mark.parametrize(("query", "fragment", "expression"), [
    ("_summary=everything", "not supported", "_summary"),
    ("_total=maybe", "not supported", "_total"),
    ("_offset=-1", "at least 0", "_offset"),
    ("_summary=true&_elements=url", "cannot be used together", "_elements"),
])
def test_bad_result_parameters_are_400(client: Any, query: str, fragment: str, expression: str) -> None:
    assert_outcome(client.get(f"/fhir/ValueSet?{query}"), 400, fragment, expression)


def test_summary_count_on_a_read_is_400(client: Any) -> None:
    assert_outcome(client.get("/fhir/CodeSystem/test-body-site?_summary=count"), 400, "searches", "_summary")
