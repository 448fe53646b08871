"""HTTP conventions against the real server: XML, q-values, 304s, ETags, gzip, paging, subsets."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from lxml import etree

from terminology.http.fhir.fhir_xml import from_xml, to_xml

from ..conftest import BODY_SITE, running_server

LOOKUP = f"/CodeSystem/$lookup?system={BODY_SITE}&code=knee"
BIG = "/CodeSystem/test-body-site"  # a read well over 1 kB


@pytest.fixture(scope="module")
def gzip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real server with in-app gzip on (TX_GZIP) and a short Cache-Control."""
    env = {"TX_GZIP": "true", "TX_OPERATION_CACHE_CONTROL": "public, max-age=60"}
    with running_server(tmp_path_factory.mktemp("gzip-server"), env) as (base, _proc):
        yield base


def get(base: str, path: str, **headers: str) -> requests.Response:
    return requests.get(base + path, headers={k.replace("_", "-"): v for k, v in headers.items()}, timeout=30)


def test_xml_answers_and_xml_bodies_over_the_wire(live_server: str) -> None:
    resp = get(live_server, LOOKUP, Accept="application/fhir+xml;q=0.9, application/fhir+json;q=0.2")
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/fhir+xml")
    assert etree.fromstring(resp.content).tag == "{http://hl7.org/fhir}Parameters"
    as_json = get(live_server, LOOKUP).json()
    assert from_xml(resp.content) == as_json
    body = {"resourceType": "Parameters", "parameter": [{"name": "system", "valueUri": BODY_SITE},
                                                        {"name": "code", "valueCode": "knee"}]}
    posted = requests.post(live_server + "/CodeSystem/$lookup", data=to_xml(body), timeout=30,
                           headers={"Content-Type": "application/fhir+xml"})
    assert posted.status_code == 200 and posted.json() == as_json


def test_hostile_xml_is_400_over_the_wire(live_server: str) -> None:
    xxe = (b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="code"/><valueCode value="&x;"/>'
           b'</parameter></Parameters>')
    resp = requests.post(live_server + "/CodeSystem/$lookup", data=xxe, timeout=30,
                         headers={"Content-Type": "application/fhir+xml", "Accept": "application/fhir+xml"})
    assert resp.status_code == 400 and b"root:" not in resp.content
    assert etree.fromstring(resp.content).tag == "{http://hl7.org/fhir}OperationOutcome"


@pytest.mark.parametrize("accept", ["image/png", "application/fhir+json;q=0, application/json;q=0, "
                                    "application/fhir+xml;q=0, application/xml;q=0, text/xml;q=0, */*;q=0"])
def test_nothing_acceptable_is_406_over_the_wire(live_server: str, accept: str) -> None:
    resp = get(live_server, LOOKUP, Accept=accept)
    assert resp.status_code == 406 and resp.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("path", [LOOKUP, BIG, "/ValueSet?_count=2"])
def test_etag_revalidation_gives_304_without_a_body(live_server: str, path: str) -> None:
    first = get(live_server, path)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert etag.startswith('"') and len(etag) > 10  # strong
    again = get(live_server, path)  # the second may come from the response cache
    assert again.headers["ETag"] == etag
    not_modified = get(live_server, path, If_None_Match=etag)
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["ETag"] == etag
    assert get(live_server, path, If_Modified_Since=modified).status_code == 304
    assert get(live_server, path, If_None_Match='"other"').status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
    assert get(live_server, path, If_None_Match='"other"', If_Modified_Since=modified).status_code == 200


def test_etag_differs_by_format_and_operation_gets_carry_cache_control(live_server: str) -> None:
    as_json = get(live_server, LOOKUP)
    as_xml = get(live_server, LOOKUP, Accept="application/fhir+xml")
    assert as_json.headers["ETag"] != as_xml.headers["ETag"]
    assert get(live_server, LOOKUP, Accept="application/fhir+xml", If_None_Match=as_json.headers["ETag"]).status_code == 200
    assert as_json.headers["Cache-Control"] == "public, max-age=3600"
    assert "Accept" in as_json.headers["Vary"] and "Cache-Control" not in get(live_server, BIG).headers


def test_gzip_when_asked_for_and_over_1kb(gzip_server: str) -> None:
    plain = requests.get(gzip_server + BIG, headers={"Accept-Encoding": "identity"}, timeout=30)
    assert "Content-Encoding" not in plain.headers and len(plain.content) > 1024
    raw = requests.get(gzip_server + BIG, headers={"Accept-Encoding": "gzip"}, timeout=30, stream=True)
    assert raw.headers["Content-Encoding"] == "gzip"
    wire = raw.raw.read()
    assert len(wire) < len(plain.content) and gzip.decompress(wire) == plain.content
    assert raw.headers["ETag"] != plain.headers["ETag"]
    # the gzip ETag revalidates too
    again = requests.get(gzip_server + BIG, headers={"Accept-Encoding": "gzip", "If-None-Match": raw.headers["ETag"]},
                         timeout=30)
    assert again.status_code == 304
    small = requests.get(gzip_server + "/ValueSet?_summary=count", headers={"Accept-Encoding": "gzip"}, timeout=30)
    assert "Content-Encoding" not in small.headers  # under 1 kB
    op = requests.get(gzip_server + LOOKUP, timeout=30)
    assert op.headers["Cache-Control"] == "public, max-age=60"


def test_gzip_is_off_by_default(live_server: str) -> None:
    resp = requests.get(live_server + BIG, headers={"Accept-Encoding": "gzip"}, timeout=30, stream=True)
    assert "Content-Encoding" not in resp.headers


def test_search_pages_followed_to_the_end_over_the_wire(live_server: str) -> None:
    everything = [e["resource"]["id"] for e in get(live_server, "/ValueSet").json()["entry"]]
    url: str | None = live_server + "/ValueSet?_count=2&_elements=name"
    seen: list[str] = []
    while url:
        page: dict[str, Any] = requests.get(url, timeout=30).json()
        seen += [e["resource"]["id"] for e in page["entry"]]
        assert all(set(e["resource"]) <= {"resourceType", "id", "meta", "name", "status"} for e in page["entry"])
        url = next((x["url"] for x in page["link"] if x["relation"] == "next"), None)
    assert seen == everything


def test_read_summary_over_the_wire(live_server: str) -> None:
    body = get(live_server, BIG + "?_summary=true").json()
    assert "concept" not in body and body["url"] == BODY_SITE
    xml = get(live_server, BIG + "?_summary=true&_format=xml")
    assert from_xml(xml.content) == body


def test_media_type_parameters_do_not_change_the_format(live_server: str) -> None:
    # the HL7 suite runner sends "application/fhir+json; fhirVersion=4.0"
    resp = get(live_server, "/metadata", Accept="application/fhir+json; fhirVersion=4.0")
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/fhir+json")
    xml = get(live_server, "/metadata", Accept="application/fhir+xml; fhirVersion=4.0")
    assert xml.status_code == 200 and xml.headers["Content-Type"].startswith("application/fhir+xml")
