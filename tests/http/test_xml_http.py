"""FHIR XML over HTTP: answers element by element, XML request bodies, negotiation, hostile XML."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from lxml import etree

from terminology.http.app import create_app
from terminology.http.fhir.fhir_xml import from_xml, to_xml
from terminology.providers.fhir import FhirCodeSystemProvider
from terminology.registry import Registry
from terminology.settings import Settings

CS = "http://example.test/cs"
VS = "http://example.test/vs"
XML = {"Accept": "application/fhir+xml"}
XML_BODY = "application/fhir+xml"
ANY = "*"  # an expected attribute value that varies (timestamps, uuids)


@pytest.fixture(scope="module")
def client() -> Any:
    reg = Registry()
    reg.add_code_system(FhirCodeSystemProvider({
        "resourceType": "CodeSystem", "id": "x-cs", "url": CS, "version": "1", "status": "active",
        "content": "complete", "concept": [{"code": "a", "display": "Alpha"}, {"code": "b", "display": "Beta"}]}))
    reg.add_value_set({"resourceType": "ValueSet", "id": "x-vs", "url": VS, "version": "1",
                       "status": "active", "compose": {"include": [{"system": CS}]}})
    return create_app(Settings(), reg).test_client()


def assert_same_xml(actual: Any, expected: Any, path: str = "") -> None:
    """Element by element: tag, attributes (ANY matches any value) and children in order."""
    where = f"{path}/{etree.QName(expected).localname}"
    assert actual.tag == expected.tag, where
    assert set(actual.attrib) == set(expected.attrib), (where, dict(actual.attrib))
    for k, v in expected.attrib.items():
        assert v == ANY or actual.get(k) == v, (where, k, actual.get(k), v)
    assert [c.tag for c in actual] == [c.tag for c in expected], where
    for a, e in zip(actual, expected, strict=True):
        assert_same_xml(a, e, where)


def xml_answer(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"] == "application/fhir+xml; charset=utf-8"
    return etree.fromstring(resp.data)


# Modelled on the R4 spec's examples (codesystem-example-lookup, valueset-example-expansion,
# operation-outcome example): the same elements, in the same order, with our values.
LOOKUP_XML = f"""<Parameters xmlns="http://hl7.org/fhir">
  <parameter><name value="name"/><valueString value="{CS}"/></parameter>
  <parameter><name value="version"/><valueString value="1"/></parameter>
  <parameter><name value="display"/><valueString value="Alpha"/></parameter>
  <parameter><name value="code"/><valueCode value="a"/></parameter>
  <parameter><name value="system"/><valueUri value="{CS}"/></parameter>
</Parameters>"""

VALIDATE_XML = f"""<Parameters xmlns="http://hl7.org/fhir">
  <parameter><name value="result"/><valueBoolean value="true"/></parameter>
  <parameter><name value="system"/><valueUri value="{CS}"/></parameter>
  <parameter><name value="code"/><valueCode value="a"/></parameter>
  <parameter><name value="version"/><valueString value="1"/></parameter>
  <parameter><name value="display"/><valueString value="Alpha"/></parameter>
</Parameters>"""

EXPAND_XML = f"""<ValueSet xmlns="http://hl7.org/fhir">
  <id value="x-vs"/><url value="{VS}"/><version value="1"/><status value="active"/>
  <expansion>
    <identifier value="*"/><timestamp value="*"/><total value="2"/>
    <parameter><name value="used-codesystem"/><valueUri value="{CS}|1"/></parameter>
    <contains><system value="{CS}"/><code value="a"/><display value="Alpha"/></contains>
    <contains><system value="{CS}"/><code value="b"/><display value="Beta"/></contains>
  </expansion>
</ValueSet>"""

OUTCOME_XML = """<OperationOutcome xmlns="http://hl7.org/fhir">
  <issue>
    <extension url="http://hl7.org/fhir/StructureDefinition/operationoutcome-message-id">
      <valueString value="*"/>
    </extension>
    <severity value="error"/><code value="not-found"/>
    <details><text value="*"/></details>
    <expression value="code"/>
  </issue>
</OperationOutcome>"""


def parsed(text: str) -> Any:
    return etree.fromstring(text.encode(), etree.XMLParser(remove_blank_text=True))


def params_of(root: Any) -> dict[str, Any]:
    return {p.find("{http://hl7.org/fhir}name").get("value"): p for p in root}


def test_lookup_answers_fhir_xml_element_by_element(client: Any) -> None:
    root = xml_answer(client.get(f"/fhir/CodeSystem/$lookup?system={CS}&code=a", headers=XML))
    expected = parsed(LOOKUP_XML)
    got = params_of(root)
    for name, param in params_of(expected).items():  # every parameter the spec example shows
        assert_same_xml(got[name], param)


def test_validate_code_answers_fhir_xml_element_by_element(client: Any) -> None:
    root = xml_answer(client.get(f"/fhir/ValueSet/$validate-code?url={VS}&system={CS}&code=a&_format=xml"))
    assert_same_xml(root, parsed(VALIDATE_XML))


def test_expand_answers_fhir_xml_element_by_element(client: Any) -> None:
    root = xml_answer(client.get(f"/fhir/ValueSet/$expand?url={VS}", headers=XML))
    assert_same_xml(root, parsed(EXPAND_XML))


def test_errors_answer_in_the_format_asked_for(client: Any) -> None:
    root = xml_answer(client.get(f"/fhir/CodeSystem/$lookup?system={CS}&code=zzz", headers=XML), 404)
    assert_same_xml(root, parsed(OUTCOME_XML))


def test_metadata_and_read_answer_xml(client: Any) -> None:
    caps = xml_answer(client.get("/fhir/metadata?_format=xml"))
    assert caps.tag == "{http://hl7.org/fhir}CapabilityStatement"
    formats = [f.get("value") for f in caps.findall("{http://hl7.org/fhir}format")]
    assert "application/fhir+xml" in formats and "application/fhir+json" in formats
    tc = xml_answer(client.get("/fhir/metadata?mode=terminology", headers=XML))
    assert tc.tag == "{http://hl7.org/fhir}TerminologyCapabilities"
    read = xml_answer(client.get("/fhir/CodeSystem/x-cs", headers=XML))
    assert from_xml(etree.tostring(read))["url"] == CS
    bundle = xml_answer(client.get("/fhir/ValueSet", headers=XML))
    assert bundle.find("{http://hl7.org/fhir}entry/{http://hl7.org/fhir}resource/{http://hl7.org/fhir}ValueSet") is not None


def _stable(body: dict[str, Any]) -> dict[str, Any]:
    exp = body.get("expansion")
    if isinstance(exp, dict):
        exp.pop("identifier", None)
        exp.pop("timestamp", None)
    return body


@pytest.mark.parametrize(("path", "params"), [
    ("CodeSystem/$lookup", [{"name": "system", "valueUri": CS}, {"name": "code", "valueCode": "b"}]),
    ("CodeSystem/$validate-code", [{"name": "url", "valueUri": CS}, {"name": "code", "valueCode": "a"},
                                   {"name": "display", "valueString": "Wrong"}]),
    ("ValueSet/$validate-code", [{"name": "url", "valueUri": VS},
                                 {"name": "coding", "valueCoding": {"system": CS, "code": "b"}}]),
    ("ValueSet/$expand", [{"name": "url", "valueUri": VS}, {"name": "count", "valueInteger": 1}]),
    ("ValueSet/$expand", [{"name": "valueSet", "resource": {
        "resourceType": "ValueSet", "status": "active", "compose": {"include": [{"system": CS, "concept": [{"code": "a"}]}]}}}]),
    ("CodeSystem/$subsumes", [{"name": "system", "valueUri": CS}, {"name": "codeA", "valueCode": "a"},
                              {"name": "codeB", "valueCode": "a"}]),
    ("ConceptMap/$translate", [{"name": "system", "valueUri": CS}, {"name": "code", "valueCode": "a"}]),
    ("CodeSystem/$lookup", [{"name": "system", "valueUri": CS}, {"name": "code", "valueCode": "nope"}]),
])
def test_posted_xml_parameters_answer_like_their_json_twin(client: Any, path: str, params: list[Any]) -> None:
    body = {"resourceType": "Parameters", "parameter": params}
    as_json = client.post(f"/fhir/{path}", json=body, content_type="application/fhir+json")
    as_xml = client.post(f"/fhir/{path}", data=to_xml(body), content_type=XML_BODY)
    assert as_xml.status_code == as_json.status_code
    assert _stable(as_xml.get_json()) == _stable(as_json.get_json())
    xml_out = client.post(f"/fhir/{path}", data=to_xml(body), content_type=XML_BODY, headers=XML)
    assert xml_out.status_code == as_json.status_code
    assert _stable(from_xml(xml_out.data)) == _stable(as_json.get_json())


@pytest.mark.parametrize(("accept", "expected"), [
    ("application/fhir+xml", "application/fhir+xml"),
    ("application/xml", "application/fhir+xml"),
    ("text/xml", "application/fhir+xml"),
    ("application/fhir+json", "application/fhir+json"),
    ("*/*", "application/fhir+json"),
    ("application/*", "application/fhir+json"),
    ("", "application/fhir+json"),
    ("application/fhir+json;q=0.5, application/fhir+xml;q=0.9", "application/fhir+xml"),
    ("application/fhir+xml;q=0.4, application/fhir+json;q=0.8", "application/fhir+json"),
    ("application/fhir+json;q=0, */*;q=0.1", "application/fhir+json"),  # application/json still
    ("application/fhir+json;q=0, application/json;q=0, text/json;q=0, application/json+fhir;q=0, */*",
     "application/fhir+xml"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/fhir+xml"),
    ("application/fhir+json; fhirVersion=4.0", "application/fhir+json"),  # as the HL7 runner sends
    ("application/fhir+xml;fhirVersion=4.0;charset=utf-8", "application/fhir+xml"),
    ("application/fhir+xml; fhirVersion=4.0; q=0.2, application/json;q=0.3", "application/fhir+json"),
])
def test_accept_is_weighed_by_quality(client: Any, accept: str, expected: str) -> None:
    resp = client.get(f"/fhir/CodeSystem/$lookup?system={CS}&code=a", headers={"Accept": accept})
    assert resp.status_code == 200 and resp.mimetype == expected


@pytest.mark.parametrize(("fmt", "expected"), [
    ("json", "application/fhir+json"), ("xml", "application/fhir+xml"),
    ("application/fhir%2Bxml", "application/fhir+xml"), ("application/fhir+xml", "application/fhir+xml"),
    ("application/fhir%2Bjson", "application/fhir+json"), ("text/xml", "application/fhir+xml"),
    ("application/xml", "application/fhir+xml"),
])
def test_format_parameter_overrides_accept(client: Any, fmt: str, expected: str) -> None:
    other = "application/fhir+json" if expected.endswith("xml") else "application/fhir+xml"
    resp = client.get(f"/fhir/CodeSystem/$lookup?system={CS}&code=a&_format={fmt}", headers={"Accept": other})
    assert resp.status_code == 200 and resp.mimetype == expected


def test_nothing_acceptable_is_406_in_json(client: Any) -> None:
    resp = client.get(f"/fhir/CodeSystem/$lookup?system={CS}&code=a", headers={"Accept": "image/png"})
    assert resp.status_code == 406 and resp.mimetype == "application/fhir+json"
    assert resp.get_json()["issue"][0]["code"] == "not-supported"


def test_unsupported_body_type_is_415_answered_in_the_accepted_format(client: Any) -> None:
    resp = client.post("/fhir/CodeSystem/$lookup", data=b"code=a", content_type="text/csv", headers=XML)
    root = xml_answer(resp, 415)
    assert root.tag == "{http://hl7.org/fhir}OperationOutcome"


HOSTILE = {
    "xxe-file": b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                b'<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="code"/>'
                b'<valueCode value="&x;"/></parameter></Parameters>',
    "billion-laughs": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                      + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                                 for i in range(1, 10))
                      + b']><Parameters xmlns="http://hl7.org/fhir"><parameter><name value="&lol9;"/>'
                        b'<valueCode value="a"/></parameter></Parameters>',
    "external-dtd": b'<?xml version="1.0"?><!DOCTYPE Parameters SYSTEM "http://127.0.0.1:9/evil.dtd">'
                    b'<Parameters xmlns="http://hl7.org/fhir"/>',
    "parameter-entity": b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY % e SYSTEM "file:///etc/passwd"> %e;]>'
                        b'<Parameters xmlns="http://hl7.org/fhir"/>',
    "utf16-doctype": '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE p [<!ENTITY x SYSTEM '
                     '"file:///etc/passwd">]><Parameters xmlns="http://hl7.org/fhir"><parameter>'
                     '<name value="&x;"/></parameter></Parameters>'.encode("utf-16"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_xml_bodies_are_400_and_read_nothing(client: Any, name: str) -> None:
    resp = client.post("/fhir/CodeSystem/$lookup", data=HOSTILE[name], content_type=XML_BODY)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert "root:x:0:0" not in orjson.dumps(body).decode()
