"""$expand and extensions: which ones an expansion repeats, and where."""

from __future__ import annotations

from typing import Any

import pytest

from terminology.operations.expand import expand
from terminology.params import ExpandRequest
from terminology.providers.base import Designation
from terminology.providers.fhir import FhirCodeSystemProvider
from terminology.registry import Registry
from terminology.settings import Settings

CS = "http://example.test/ext-cs"
SD = "http://hl7.org/fhir/StructureDefinition/"
SCTDESCID = {"url": SD + "coding-sctdescid", "valueId": "234234"}
UNKNOWN = {"url": "http://example.test/unknown-extension", "valueString": "ignored"}


@pytest.fixture()
def registry() -> Registry:
    reg = Registry()
    reg.add_code_system(FhirCodeSystemProvider({
        "resourceType": "CodeSystem", "url": CS, "version": "1", "status": "active",
        "content": "complete", "caseSensitive": True,
        "concept": [{"code": "one", "display": "One", "designation": [
            {"language": "de", "value": "Eins", "extension": [SCTDESCID, UNKNOWN]}]}],
    }))
    return reg


def _value_set(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "ValueSet", "url": "http://example.test/vs", "status": "active",
            "compose": {"include": [{"system": CS, **extra}]}}


def _expand(registry: Registry, vs: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return expand(registry, ExpandRequest(value_set=vs, include_designations=True, **kw), Settings())


def test_designation_from_fhir_keeps_its_extensions() -> None:
    d = Designation.from_fhir({"language": "de", "value": "Eins", "extension": [SCTDESCID]})
    assert (d.language, d.use, d.value, d.extensions) == ("de", None, "Eins", [SCTDESCID])
    assert Designation("en", None, "One").extensions == []  # positional construction still works


def test_code_system_designation_carries_known_extensions_only(registry: Registry) -> None:
    item = _expand(registry, _value_set())["expansion"]["contains"][0]
    assert item["designation"] == [{"extension": [SCTDESCID], "language": "de", "value": "Eins"}]


def test_value_set_designation_follows_the_code_system_ones_with_its_extensions(registry: Registry) -> None:
    vs = _value_set(concept=[{"code": "one", "designation": [
        {"language": "de", "value": "Nummer eins", "extension": [SCTDESCID, UNKNOWN]}]}])
    item = _expand(registry, vs)["expansion"]["contains"][0]
    assert [d["value"] for d in item["designation"]] == ["Eins", "Nummer eins"]
    assert item["designation"][1]["extension"] == [SCTDESCID]


def test_value_set_extensions_are_repeated_only_with_include_definition(registry: Registry) -> None:
    vs = {**_value_set(), "extension": [UNKNOWN]}
    assert "extension" not in _expand(registry, vs)
    assert _expand(registry, vs, include_definition=True)["extension"] == [UNKNOWN]
