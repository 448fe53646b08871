"""The licensed-text stage (terminology/http/licensed.py) on answers built here: what it counts,
what it keeps, what it leaves out, and that an answer without licensed text is left alone."""

from __future__ import annotations

from typing import Any

import pytest

from terminology.cpt.provider import CptProvider
from terminology.errors import TooCostly
from terminology.http.exchange import Exchange, PathStages, Site
from terminology.http.licensed import WITHHELD, at_most, licensed_text, licensed_texts
from terminology.registry import Registry
from terminology.settings import Settings

CPT = "http://www.ama-assn.org/go/cpt"
DISPLAYS = {"70010": "Myelography, posterior fossa", "70015": "Cisternography, the patient's own",
            "70030": "Radiologic examination, eye"}


@pytest.fixture(scope="module")
def registry() -> Registry:
    resource = {"resourceType": "CodeSystem", "url": CPT, "version": "2025", "content": "fragment",
                "concept": [{"code": c, "display": d} for c, d in DISPLAYS.items()]}
    found = Registry()
    found.add_code_system(CptProvider.from_codesystem(resource))
    return found


def exchange(registry: Registry, cap: int, licensed: bool = True) -> Exchange:
    site = Site(Settings(max_cpt_expansion=cap), lambda: registry, lambda: 0.0)
    x = Exchange({}, site, PathStages("flask"), {})
    x.registry, x.licensed = registry, licensed
    return x


def wrong_display(code: str) -> dict[str, Any]:
    return {"severity": "error", "code": "invalid",
            "details": {"text": f"Wrong Display Name 'x' for {CPT}#{code}. Valid display is "
                                f"'{DISPLAYS[code]}' (en)"}}


def test_an_answer_without_licensed_text_is_the_same_object(registry: Registry) -> None:
    body = {"resourceType": "Parameters", "parameter": [{"name": "result", "valueBoolean": True},
                                                        {"name": "message", "valueString": "it's fine"}]}
    assert licensed_text(exchange(registry, 1), body) is body


def test_past_the_bound_messages_lose_the_quote_and_keep_the_rest(registry: Registry) -> None:
    body: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": [wrong_display(c) for c in DISPLAYS]}
    out = licensed_text(exchange(registry, 1), body)
    texts = [i["details"]["text"] for i in out["issue"]]
    assert DISPLAYS["70010"] in texts[0]  # the first one of the answer is kept
    assert all(WITHHELD in t and t.startswith("Wrong Display Name 'x'") for t in texts[1:])
    assert "patient's" not in " ".join(texts)  # a descriptor holding an apostrophe is found too
    assert DISPLAYS["70015"] in body["issue"][1]["details"]["text"]  # the original is untouched


def test_past_the_bound_an_expansion_is_too_costly(registry: Registry) -> None:
    body = {"resourceType": "ValueSet", "expansion": {"contains": [
        {"system": CPT, "code": c, "display": d} for c, d in DISPLAYS.items()]}}
    with pytest.raises(TooCostly):
        licensed_text(exchange(registry, 2), body)
    assert licensed_text(exchange(registry, 3), body) is body


def test_without_a_read_token_an_expansion_lists_codes_only(registry: Registry) -> None:
    body = {"resourceType": "ValueSet", "expansion": {"contains": [
        {"system": CPT, "code": c, "display": d} for c, d in DISPLAYS.items()]}}
    out = licensed_text(exchange(registry, 1000, licensed=False), body)
    assert out["expansion"]["contains"] == [{"system": CPT, "code": c} for c in DISPLAYS]


def test_a_batch_counts_its_entries_together(registry: Registry) -> None:
    def expansion(code: str) -> dict[str, Any]:
        return {"resourceType": "ValueSet", "expansion": {"contains": [
            {"system": CPT, "code": code, "display": DISPLAYS[code]}]}}

    bundle = {"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"resource": expansion(c), "response": {"status": "200 OK"}} for c in DISPLAYS]}
    out = licensed_text(exchange(registry, 2), bundle)
    assert [e["response"]["status"] for e in out["entry"]] == ["200 OK", "200 OK", "422 Unprocessable Entity"]
    assert out["entry"][2]["resource"]["issue"][0]["code"] == "too-costly"


def test_the_byte_bound_holds_every_descriptor_an_answer_carries(registry: Registry) -> None:
    """at_most never undercounts: one descriptor per (shortest + 2) bytes, one per pair of
    apostrophes; a client's text full of apostrophes makes it large, never small."""
    import orjson

    texts = licensed_texts(registry)
    body: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": [wrong_display(c) for c in DISPLAYS]}
    assert at_most(orjson.dumps(body), texts) >= len(DISPLAYS)
    crowded = orjson.dumps({"message": "'" * 1000})
    assert at_most(crowded, texts) >= 1000 * 999 // 2


def test_one_answer_under_the_byte_bound_is_not_walked_and_over_it_is(registry: Registry) -> None:
    """The thin dispatch's one answer skips the walk only when the bytes cannot exceed the
    bound: with room for one descriptor, three in the answer are still withheld."""
    body: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": [wrong_display(c) for c in DISPLAYS]}
    x = exchange(registry, 1000)
    x.one_answer = True
    assert licensed_text(x, body) is body and x.cpt_shown == set()  # no walk: nothing counted
    x = exchange(registry, 1)
    x.one_answer = True
    texts = [i["details"]["text"] for i in licensed_text(x, body)["issue"]]
    assert DISPLAYS["70010"] in texts[0] and all(WITHHELD in t for t in texts[1:])
    x = exchange(registry, 1000, licensed=False)
    x.one_answer = True
    out = licensed_text(x, body)
    assert all(WITHHELD in i["details"]["text"] for i in out["issue"])  # no token: none shown
