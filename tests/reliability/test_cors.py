"""CORS for browser-based FHIR apps: any origin may read and write, no cookies (tokens only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from terminology.content import load_registry
from terminology.http.app import create_app
from terminology.settings import BUNDLED_CONTENT, Settings

from ..conftest import CPT_URL
from .conftest import FHIR_JSON, parameters

ORIGIN = {"Origin": "https://app.example.org"}
LOOKUP = f"/fhir/CodeSystem/$lookup?system={CPT_URL}&code=72126"


def assert_simple_cors(headers: Any) -> None:
    assert headers["Access-Control-Allow-Origin"] == "*"
    exposed = {h.strip() for h in headers["Access-Control-Expose-Headers"].split(",")}
    # a browser editor reads the version (ETag), where a create went (Location) and why a
    # write was refused (WWW-Authenticate)
    assert exposed == {"X-Request-Id", "ETag", "Location", "Last-Modified", "WWW-Authenticate"}
    assert "Access-Control-Allow-Credentials" not in headers


def test_get_answer_allows_any_origin_and_exposes_the_request_id(client: Any) -> None:
    resp = client.get(LOOKUP, headers=ORIGIN)
    assert resp.status_code == 200
    assert_simple_cors(resp.headers)


def test_post_and_error_answers_carry_cors_headers(client: Any) -> None:
    ok = client.post("/fhir/CodeSystem/$lookup", headers=ORIGIN, content_type=FHIR_JSON,
                     data=parameters({"name": "system", "valueUri": CPT_URL},
                                     {"name": "code", "valueCode": "72126"}))
    assert ok.status_code == 200
    assert_simple_cors(ok.headers)
    bad = client.get("/fhir/ValueSet/$expand?count=abc", headers=ORIGIN)
    assert bad.status_code == 400
    assert_simple_cors(bad.headers)


def test_preflight_allows_the_write_methods_only_when_writes_are_on(tmp_path: Path) -> None:
    settings = Settings(write_tokens="a-token", data_dir=tmp_path)
    writes = create_app(settings, load_registry([BUNDLED_CONTENT])).test_client()
    resp = writes.options("/fhir/ValueSet/spine-ct", headers={**ORIGIN, "Access-Control-Request-Method": "PUT"})
    assert resp.status_code == 204
    methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"GET", "POST", "PUT", "DELETE", "OPTIONS"}


def test_preflight_of_a_read_only_server_allows_reads_operations_and_the_fhir_headers(client: Any) -> None:
    resp = client.options("/fhir/ValueSet/$expand", headers={
        **ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization"})
    assert resp.status_code == 204 and resp.get_data() == b""
    assert_simple_cors(resp.headers)
    methods = {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"GET", "POST", "OPTIONS"}  # no PUT or DELETE while writes are off
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed == {"content-type", "accept", "accept-language", "x-request-id", "authorization",
                       "if-match", "if-none-exist", "prefer"}
    assert int(resp.headers["Access-Control-Max-Age"]) > 0


def test_preflight_is_answered_even_for_an_xml_only_accept(client: Any) -> None:
    # browsers send the preflight without the real request's Accept header: it must not 406
    resp = client.options("/fhir/metadata", headers={
        **ORIGIN, "Access-Control-Request-Method": "GET", "Accept": "application/fhir+xml"})
    assert resp.status_code == 204


def test_live_server_sends_cors_headers_on_fresh_and_repeated_answers(live_server: str) -> None:
    url = live_server.removesuffix("/fhir") + LOOKUP
    for _ in range(2):  # the second may come from the response cache
        resp = requests.get(url, headers=ORIGIN, timeout=10)
        assert resp.status_code == 200
        assert_simple_cors(resp.headers)
    pre = requests.options(live_server + "/ValueSet/$expand", timeout=10,
                           headers={**ORIGIN, "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
