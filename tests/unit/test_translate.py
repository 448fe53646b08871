"""ConceptMap/$translate forward and reverse, R4 equivalence from R4 or R5 maps."""

from __future__ import annotations

from typing import Any

from terminology.operations.translate import translate, translate_request
from terminology.params import bag_from_parameters
from terminology.registry import Registry

SRC, TGT = "http://example.test/cs/src", "http://example.test/cs/tgt"


def _reg() -> Registry:
    r = Registry()
    r.add_concept_map({"resourceType": "ConceptMap", "url": "http://example.test/cm", "version": "1",
                       "group": [{"source": SRC, "target": TGT, "element": [
                           {"code": "a", "target": [{"code": "A", "equivalence": "equivalent"}]},
                           {"code": "b", "target": [{"code": "B", "relationship": "source-is-broader-than-target"}]},
                       ]}]})
    return r


def _run(*params: dict[str, Any]) -> dict[str, Any]:
    bag = bag_from_parameters({"resourceType": "Parameters", "parameter": list(params)})
    return translate(_reg(), translate_request(bag))


def _parts(answer: dict[str, Any]) -> dict[str, Any]:
    match = next(p for p in answer["parameter"] if p["name"] == "match")
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in match["part"]}


def test_translate_forward_gives_target_with_r4_equivalence() -> None:
    out = _run({"name": "system", "valueUri": SRC}, {"name": "code", "valueCode": "a"})
    assert out["parameter"][0] == {"name": "result", "valueBoolean": True}
    parts = _parts(out)
    assert parts["concept"] == {"system": TGT, "code": "A"}
    assert parts["equivalence"] == "equivalent"
    assert parts["originMap"] == "http://example.test/cm|1"


def test_translate_reads_r5_relationship_as_equivalence() -> None:
    out = _run({"name": "sourceSystem", "valueUri": SRC}, {"name": "sourceCode", "valueCode": "b"})
    assert _parts(out)["equivalence"] == "wider"


def test_translate_reverse_names_the_source_code() -> None:
    out = _run({"name": "sourceSystem", "valueUri": SRC}, {"name": "targetCode", "valueCode": "A"},
               {"name": "targetSystem", "valueUri": TGT})
    assert _parts(out)["source"] == {"system": SRC, "code": "a"}


def test_translate_unmapped_code_is_result_false_with_message() -> None:
    out = _run({"name": "system", "valueUri": SRC}, {"name": "code", "valueCode": "zz"})
    names = [p["name"] for p in out["parameter"]]
    assert out["parameter"][0]["valueBoolean"] is False and "message" in names and "match" not in names
