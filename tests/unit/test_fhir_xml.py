"""The FHIR XML converter: JSON -> XML -> JSON round trips and the R4 XML rules one by one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from lxml import etree

from terminology.http.fhir.fhir_xml import FHIR_NS, XHTML_NS, XmlError, from_xml, to_xml
from terminology.settings import BUNDLED_CONTENT

from ..conftest import DATA
from ..tx_cases import case_resources

F = "{" + FHIR_NS + "}"
SHIPPED = sorted(BUNDLED_CONTENT.glob("*.json")) + sorted(DATA.glob("*.json"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_resource_round_trips_through_xml(path: Path) -> None:
    resource = orjson.loads(path.read_bytes())
    assert from_xml(to_xml(resource)) == resource


def test_every_hl7_suite_resource_round_trips_through_xml() -> None:
    resources = case_resources()
    assert len(resources) > 1000
    failed = [name for name, res in resources if from_xml(to_xml(res)) != res]
    assert failed == []


def test_root_is_the_resource_type_in_the_fhir_namespace() -> None:
    root = etree.fromstring(to_xml({"resourceType": "Parameters", "id": "p1"}))
    assert root.tag == F + "Parameters" and root.nsmap == {None: FHIR_NS}
    assert [(c.tag, c.get("value")) for c in root] == [(F + "id", "p1")]


def test_elements_follow_definition_order_not_json_order() -> None:
    coding = {"display": "D", "code": "c", "system": "http://s", "version": "1"}
    root = etree.fromstring(to_xml({"resourceType": "Parameters", "parameter": [
        {"valueCoding": coding, "name": "coding"}]}))
    param = root[0]
    assert [c.tag for c in param] == [F + "name", F + "valueCoding"]
    assert [c.tag[len(F):] for c in param[1]] == ["system", "version", "code", "display"]


def test_primitive_arrays_pair_values_and_extensions_with_nulls() -> None:
    ext = {"url": "http://x/ext", "valueString": "note"}
    vs = {"resourceType": "ValueSet", "status": "active", "compose": {"include": [{
        "system": "http://s", "valueSet": ["http://a", None], "_valueSet": [None, {"id": "e1", "extension": [ext]}]}]}}
    xml = to_xml(vs)
    include = etree.fromstring(xml).find(f"{F}compose/{F}include")
    assert include is not None
    first, second = include.findall(F + "valueSet")
    assert first.attrib == {"value": "http://a"}
    assert second.get("value") is None and second.get("id") == "e1"
    assert second[0].tag == F + "extension" and second[0].get("url") == "http://x/ext"
    assert from_xml(xml) == vs


def test_element_id_and_extension_url_are_attributes_but_resource_id_is_an_element() -> None:
    cs = {"resourceType": "CodeSystem", "id": "cs1", "status": "active", "content": "complete",
          "concept": [{"id": "c1", "code": "a", "extension": [{"url": "http://x", "valueBoolean": True}]}]}
    root = etree.fromstring(to_xml(cs))
    assert root.find(F + "id").get("value") == "cs1"  # type: ignore[union-attr]
    concept = root.find(F + "concept")
    assert concept is not None and concept.get("id") == "c1"
    assert concept[0].tag == F + "extension" and concept[0].get("url") == "http://x"
    assert concept[0][0].tag == F + "valueBoolean" and concept[0][0].get("value") == "true"


def test_narrative_div_is_xhtml_in_its_own_namespace() -> None:
    div = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Knee <b>joint</b></p></div>'
    cs = {"resourceType": "CodeSystem", "status": "active", "content": "complete",
          "text": {"status": "generated", "div": div}}
    xml = to_xml(cs)
    text = etree.fromstring(xml).find(F + "text")
    assert text is not None and text[1].tag == "{" + XHTML_NS + "}div"
    assert from_xml(xml) == cs


def test_inline_resources_sit_in_a_wrapper_named_for_the_field() -> None:
    oo = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]}
    vs = {"resourceType": "ValueSet", "status": "active", "contained": [oo]}
    params = {"resourceType": "Parameters", "parameter": [{"name": "issues", "resource": oo},
                                                          {"name": "vs", "resource": vs}]}
    root = etree.fromstring(to_xml(params))
    wrapper = root[0][1]
    assert wrapper.tag == F + "resource" and wrapper[0].tag == F + "OperationOutcome"
    contained = root[1][1][0].find(F + "contained")
    assert contained is not None and contained[0].tag == F + "OperationOutcome"
    assert from_xml(to_xml(params)) == params


def test_numbers_and_booleans_come_back_as_json_types() -> None:
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "i", "valueInteger": -3}, {"name": "d", "valueDecimal": 1.25},
        {"name": "b", "valueBoolean": False}, {"name": "u", "valueUnsignedInt": 0}]}
    assert from_xml(to_xml(params)) == params


@pytest.mark.parametrize(("xml", "fragment"), [
    (b"<Parameters/>", "not in the FHIR namespace"),
    (b'<Patientz xmlns="http://hl7.org/fhir"/>', "not a FHIR resource type"),
    (b'<Parameters xmlns="http://hl7.org/fhir"><bogus value="1"/></Parameters>', "unknown element 'bogus'"),
    (b'<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="x"/>'
     b'<valueBoolean value="yes"/></parameter></Parameters>', "not a boolean"),
    (b'<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="x"/>'
     b'<valueInteger value="1.5"/></parameter></Parameters>', "not an integer"),
    (b'<Parameters xmlns="http://hl7.org/fhir">text</Parameters>', "unexpected text"),
    (b'<Parameters xmlns="http://hl7.org/fhir"><id value="a"/><id value="b"/></Parameters>', "repeats"),
    (b'<Parameters xmlns="http://hl7.org/fhir"><parameter><name/></parameter></Parameters>',
     "needs a value"),
    (b'<Parameters xmlns="http://hl7.org/fhir"', "not well-formed"),
])
def test_xml_that_is_not_fhir_is_refused(xml: bytes, fragment: str) -> None:
    with pytest.raises(XmlError) as caught:
        from_xml(xml)
    assert caught.value.status == 400
    assert fragment in caught.value.outcome()["issue"][0]["details"]["text"]


def test_external_entity_is_refused_and_reads_no_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xml = (f'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file://{secret}">]>'
           '<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="&x;"/></parameter>'
           '</Parameters>').encode()
    with pytest.raises(XmlError) as caught:
        from_xml(xml)
    assert "TOP-SECRET" not in orjson.dumps(caught.value.outcome()).decode()


def test_wrapper_holding_two_resources_is_refused() -> None:
    xml = (b'<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="r"/><resource>'
           b'<Parameters/><Parameters/></resource></parameter></Parameters>')
    with pytest.raises(XmlError, match="exactly one resource"):
        from_xml(xml)


def test_deep_nesting_is_refused_not_recursed() -> None:
    depth = 250
    xml = (b'<Parameters xmlns="http://hl7.org/fhir"><parameter><name value=\'n\'/>'
           + b"<part><name value='n'/>" * depth + b"</part>" * depth + b"</parameter></Parameters>")
    with pytest.raises(XmlError, match="nested deeper"):
        from_xml(xml)


def test_many_parameters_are_read_in_linear_work() -> None:
    params: dict[str, Any] = {"resourceType": "Parameters", "parameter": [
        {"name": "code", "valueCode": str(i)} for i in range(20_000)]}
    assert from_xml(to_xml(params)) == params


def test_attribute_whitespace_survives_and_characters_xml_cannot_carry_are_replaced() -> None:
    params = {"resourceType": "Parameters", "parameter": [{"name": "m", "valueString": 'a\nb\t"<&>'}]}
    assert from_xml(to_xml(params)) == params
    odd = {"resourceType": "Parameters", "parameter": [{"name": "m", "valueString": "bad\x01char"}]}
    assert from_xml(to_xml(odd))["parameter"][0]["valueString"] == "bad\ufffdchar"
