"""The write API's edges through the Flask test client: request shape errors, reads that need a
token, the OpenAPI description when writes are on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from terminology.http.app import create_app
from terminology.registry import Registry
from terminology.settings import BUNDLED_CONTENT, Settings

from ..conftest import DATA, assert_outcome

TOKEN = "http-test-token-31c9"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def value_set(rid: str | None = None) -> bytes:
    vs: dict[str, Any] = {"resourceType": "ValueSet", "url": "http://x.test/vs", "status": "draft"}
    if rid:
        vs["id"] = rid
    return orjson.dumps(vs)


@pytest.fixture()
def writer(tmp_path: Path, registry: Registry) -> Any:
    from terminology.content import load_registry

    settings = Settings(content_dirs=[BUNDLED_CONTENT, DATA], data_dir=tmp_path, write_tokens=TOKEN)
    return create_app(settings, load_registry(settings.content_dirs)).test_client()


def test_put_whose_body_id_differs_from_the_url_is_400(writer: Any) -> None:
    resp = writer.put("/fhir/ValueSet/a", data=value_set("b"), headers=AUTH, content_type="application/fhir+json")
    assert_outcome(resp, 400, "must be the id", "ValueSet.id")


def test_body_of_another_type_or_format_is_refused(writer: Any) -> None:
    cm = orjson.dumps({"resourceType": "ConceptMap", "status": "draft"})
    assert_outcome(writer.post("/fhir/ValueSet", data=cm, headers=AUTH, content_type="application/fhir+json"),
                   400, "must be a ValueSet", "resourceType")
    assert_outcome(writer.post("/fhir/ValueSet", data=b"<ValueSet/>", headers=AUTH,
                               content_type="application/fhir+xml"), 415)
    assert_outcome(writer.post("/fhir/ValueSet", data=b"{", headers=AUTH, content_type="application/fhir+json"),
                   400, "not valid JSON")


def test_if_match_that_is_no_version_is_400(writer: Any) -> None:
    resp = writer.put("/fhir/ValueSet/a", data=value_set("a"), content_type="application/fhir+json",
                      headers={**AUTH, "If-Match": "*"})
    assert_outcome(resp, 400, "If-Match", "If-Match")


def test_writes_are_405_when_no_way_to_authorize_is_configured(client: Any) -> None:
    resp = client.post("/fhir/ValueSet", data=value_set(), content_type="application/fhir+json", headers=AUTH)
    assert_outcome(resp, 405, "read-only")
    assert "put" not in client.get("/fhir/openapi.json").get_json()["paths"]["/fhir/ValueSet"]


def test_openapi_documents_the_writes_when_they_are_on(writer: Any) -> None:
    paths = writer.get("/fhir/openapi.json").get_json()["paths"]
    assert set(paths["/fhir/ValueSet/{id}"]) == {"get", "put", "delete"}
    assert {"401", "403", "412", "422"} <= set(paths["/fhir/ValueSet/{id}"]["put"]["responses"])
    assert "/fhir/ValueSet/{id}/_history/{vid}" in paths


def test_reads_need_a_token_when_configured(tmp_path: Path, registry: Registry) -> None:
    settings = Settings(content_dirs=[BUNDLED_CONTENT, DATA], data_dir=tmp_path, write_tokens=TOKEN,
                        read_requires_token=True)
    client = create_app(settings, registry).test_client()
    lookup = "/fhir/CodeSystem/$lookup?system=http://www.ama-assn.org/go/cpt&code=72126"
    assert_outcome(client.get(lookup), 401)
    assert client.get(lookup, headers=AUTH).status_code == 200
    assert client.get("/fhir/metadata").status_code == 200  # how to authenticate stays public


def test_a_store_that_is_down_is_503_and_reads_go_on(writer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    authoring = writer.application.extensions["tx_authoring"]

    def down(*_args: Any, **_kw: Any) -> Any:
        raise OperationalError("UPDATE tx_counter", {}, ConnectionRefusedError("refused"))

    monkeypatch.setattr(authoring.store, "put", down)
    monkeypatch.setattr(authoring.store, "change_number", down)
    resp = writer.post("/fhir/ValueSet", data=value_set(), headers=AUTH, content_type="application/fhir+json")
    body = assert_outcome(resp, 503, "unavailable")
    assert body["issue"][0]["code"] == "transient"
    authoring.feed.next_poll = 0  # a poll is due, and fails: reads are served from what is loaded
    spine = writer.get("/fhir/ValueSet/$expand?url=https://terminology.cpt-imaging.org/fhir/ValueSet/spine-ct")
    assert spine.status_code == 200 and spine.get_json()["expansion"]["contains"]


# -- who you are first: 401 / 403 before the body is read, parsed or validated ---------------------

BODIES = [b"", b"{", b"[]", b"<ValueSet/>", orjson.dumps({"resourceType": "ConceptMap"}), value_set("a")]


@pytest.mark.parametrize("body", BODIES)
def test_put_without_a_token_is_401_whatever_its_body(writer: Any, body: bytes) -> None:
    for path in ("/fhir/ValueSet/a", "/fhir/ValueSet/not%20an%20id", "/fhir/ValueSet?url=http://x.test/vs"):
        resp = writer.put(path, data=body, content_type="application/fhir+json")
        assert_outcome(resp, 401, "access token")
    resp = writer.post("/fhir/ValueSet", data=body, content_type="application/fhir+json")
    assert_outcome(resp, 401, "access token")


def test_conditional_put_without_a_token_runs_no_match_and_names_no_id(writer: Any) -> None:
    created = writer.post("/fhir/ValueSet", data=value_set(), headers=AUTH, content_type="application/fhir+json")
    assert created.status_code == 201
    rid = created.json["id"]
    for body in (value_set("someone-else"), b"{"):
        resp = writer.put("/fhir/ValueSet?url=http://x.test/vs", data=body, content_type="application/fhir+json")
        assert_outcome(resp, 401, "access token")
        assert rid.encode() not in resp.data


def test_a_token_without_the_write_scope_is_403_before_the_body_is_read(tmp_path: Path) -> None:
    from terminology.content import load_registry

    from ..e2e.authoring_support import AUDIENCE, ISSUER, make_jwt, public_pem, rsa_key

    key = rsa_key()
    settings = Settings(content_dirs=[BUNDLED_CONTENT, DATA], data_dir=tmp_path, jwt_public_key=public_pem(key),
                        jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    app = create_app(settings, load_registry(settings.content_dirs)).test_client()
    reader = {"Authorization": f"Bearer {make_jwt(key, 'system/ValueSet.rs system/CodeSystem.cud')}"}
    for body in (b"{", value_set("a")):
        for path in ("/fhir/ValueSet/a", "/fhir/ValueSet?url=http://x.test/vs"):
            resp = app.put(path, data=body, headers=reader, content_type="application/fhir+json")
            assert_outcome(resp, 403, "does not allow")
        assert_outcome(app.post("/fhir/ValueSet", data=body, headers=reader,
                                content_type="application/fhir+json"), 403, "does not allow")


@pytest.mark.parametrize("rid", [".", ".."])
def test_ids_dot_and_dot_dot_are_400_naming_the_id(writer: Any, rid: str) -> None:
    resp = writer.put(f"/fhir/ValueSet/{rid}", data=value_set(rid), headers=AUTH,
                      content_type="application/fhir+json")
    assert_outcome(resp, 400, f"'{rid}' is not accepted as an id", "id")
    resp = writer.put("/fhir/ValueSet?url=http://x.test/dots", data=orjson.dumps(
        {"resourceType": "ValueSet", "url": "http://x.test/dots", "status": "draft", "id": rid}),
        headers=AUTH, content_type="application/fhir+json")
    assert_outcome(resp, 400, f"'{rid}' is not accepted as an id", "ValueSet.id")
