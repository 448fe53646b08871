"""Conditional GET through the Flask app: version ETags, dates, weak comparison, HEAD."""

from __future__ import annotations

from typing import Any

import pytest

from terminology.http.app import create_app
from terminology.http.fhir.conditional import etag_matches, strong_etag
from terminology.registry import Registry
from terminology.settings import Settings

VERSIONED = {"resourceType": "ValueSet", "id": "authored", "url": "http://example.test/vs/authored",
             "status": "active", "meta": {"versionId": "3", "lastUpdated": "2026-01-02T03:04:05Z"},
             "compose": {"include": [{"system": "http://example.test/cs"}]}}
PLAIN = {"resourceType": "ValueSet", "id": "plain", "url": "http://example.test/vs/plain", "status": "active"}


@pytest.fixture(scope="module")
def client() -> Any:
    reg = Registry()
    reg.add_value_set(VERSIONED)
    reg.add_value_set(PLAIN)
    return create_app(Settings(operation_cache_control="max-age=5"), reg).test_client()


def test_a_versioned_resource_has_the_fhir_version_etag_and_its_last_updated(client: Any) -> None:
    resp = client.get("/fhir/ValueSet/authored")
    assert resp.headers["ETag"] == 'W/"3"'
    assert resp.headers["Last-Modified"] == "Fri, 02 Jan 2026 03:04:05 GMT"
    assert client.get("/fhir/ValueSet/authored", headers={"If-None-Match": 'W/"3"'}).status_code == 304
    assert client.get("/fhir/ValueSet/authored", headers={"If-None-Match": 'W/"2"'}).status_code == 200
    since = {"If-Modified-Since": "Fri, 02 Jan 2026 03:04:05 GMT"}
    assert client.get("/fhir/ValueSet/authored", headers=since).status_code == 304
    before = {"If-Modified-Since": "Thu, 01 Jan 2026 00:00:00 GMT"}
    assert client.get("/fhir/ValueSet/authored", headers=before).status_code == 200


def test_a_loaded_resource_has_a_strong_etag_of_its_bytes(client: Any) -> None:
    resp = client.get("/fhir/ValueSet/plain")
    assert resp.headers["ETag"] == strong_etag(resp.data)
    assert "Cache-Control" not in resp.headers  # reads: only operation GETs get the setting
    not_modified = client.get("/fhir/ValueSet/plain", headers={"If-None-Match": f'"x", {resp.headers["ETag"]}'})
    assert not_modified.status_code == 304 and not_modified.data == b""
    assert client.get("/fhir/ValueSet/plain", headers={"If-None-Match": "*"}).status_code == 304


def test_head_revalidates_like_get(client: Any) -> None:
    etag = client.get("/fhir/ValueSet/plain").headers["ETag"]
    assert client.head("/fhir/ValueSet/plain", headers={"If-None-Match": etag}).status_code == 304


def test_operation_gets_carry_the_cache_control_setting_and_posts_do_not(client: Any) -> None:
    get = client.get("/fhir/ValueSet/plain/$expand")
    assert get.status_code == 200 and get.headers["Cache-Control"] == "max-age=5"
    post = client.post("/fhir/ValueSet/$expand", json={"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": PLAIN["url"]}]})
    assert post.status_code == 200 and "Cache-Control" not in post.headers and "ETag" not in post.headers


def test_errors_are_never_304(client: Any) -> None:
    resp = client.get("/fhir/ValueSet/missing", headers={"If-None-Match": "*"})
    assert resp.status_code == 404


@pytest.mark.parametrize(("header", "etag", "matches"), [
    ('"abc"', '"abc"', True), ('W/"abc"', '"abc"', True), ('"abc"', 'W/"abc"', True),
    ('"abc-gzip"', '"abc"', True), ('"abd"', '"abc"', False), ('"a", "b"', '"b"', True),
])
def test_if_none_match_compares_weakly(header: str, etag: str, matches: bool) -> None:
    assert etag_matches(header, etag) is matches


def test_query_encoding_errors_answer_in_the_negotiated_format(client: Any) -> None:
    resp = client.get("/fhir/ValueSet?name=%FF", headers={"Accept": "application/fhir+xml"})
    assert resp.status_code == 400 and resp.mimetype == "application/fhir+xml"
