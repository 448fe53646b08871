"""The order-set editor's pages (Flask test client): what the server tells editor.js (code
systems, facet values, the search request, the url base, the draft), and HTML error pages.
The editing itself is tested in a real browser (tests/e2e/test_editor.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from terminology.content import load_registry
from terminology.http.app import create_app
from terminology.http.web import editor
from terminology.registry import Registry
from terminology.settings import BUNDLED_CONTENT, Settings
from tests.conftest import CPT_URL

AMA_NOTICE = "American Medical Association"


def config(client: Any, url: str) -> dict[str, Any]:
    """The editor-config JSON embedded in an editor page."""
    resp = client.get(url)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    body = resp.get_data(as_text=True)
    match = re.search(r'<script type="application/json" id="editor-config">(.*?)</script>', body, re.S)
    assert match is not None
    return orjson.loads(match.group(1))


def cpt(cfg: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in cfg["systems"] if s["url"] == CPT_URL)


def test_new_order_set_page_starts_from_an_empty_draft_with_cpt_first(client: Any) -> None:
    cfg = config(client, "/editor")
    assert cfg["id"] is None and cfg["versionId"] is None
    assert cfg["draft"] == {"resourceType": "ValueSet", "status": "draft", "compose": {"include": []}}
    assert cfg["systems"][0]["url"] == CPT_URL  # the code system with rules comes first
    assert AMA_NOTICE in cpt(cfg)["copyright"]
    assert AMA_NOTICE in client.get("/editor").get_data(as_text=True)  # the page footer too


def test_cpt_offers_its_imaging_facets_with_the_values_its_codes_carry(client: Any) -> None:
    facets = {f["property"]: dict(f["values"]) for f in cpt(config(client, "/editor"))["facets"]}
    assert list(facets) == ["modality", "body-region", "contrast", "kind"]
    assert facets["modality"]["CT"] == "CT" and facets["modality"]["MR"] == "MRI"
    assert facets["body-region"]["cervical-spine"] == "cervical spine"
    assert facets["contrast"] == {"none": "without contrast", "with": "with contrast",
                                  "without-then-with": "without, then with contrast"}
    assert cpt(config(client, "/editor"))["code_ranges"] is True


def test_facets_are_the_values_found_on_concepts(registry: Registry) -> None:
    provider = registry.code_system(CPT_URL)
    assert provider is not None
    found = {f.property: {v for v, _ in f.values} for f in editor.facets(provider)}
    expected: dict[str, set[str]] = {p: set() for p in found}
    for concept in provider.iterate():
        for prop in concept.properties:
            if prop.code in expected:
                expected[prop.code].add(str(prop.value))
    assert found == expected and found["modality"] >= {"CT", "MR"}


def test_search_request_is_the_search_pages_expand_without_the_filter(client: Any) -> None:
    search = cpt(config(client, "/editor"))["search"]
    assert search["method"] == "GET"
    assert search["url"].startswith("/fhir/ValueSet/$expand?url=")
    assert "filter=" not in search["url"]
    resp = client.get(search["url"] + "&filter=cervical")  # what editor.js sends
    codes = [c["code"] for c in resp.get_json()["expansion"]["contains"]]
    assert {"72125", "72126", "72127"} <= set(codes)


def test_url_base_defaults_to_this_server_and_follows_the_setting(registry: Registry) -> None:
    assert editor.url_base("", "http://tx.example/") == "http://tx.example/fhir/ValueSet"
    assert editor.url_base("https://orders.example.org/ValueSet/", "http://x/") == \
        "https://orders.example.org/ValueSet"
    app = create_app(Settings(editor_url_base="https://orders.example.org/fhir/ValueSet"), registry)
    assert config(app.test_client(), "/editor")["urlBase"] == "https://orders.example.org/fhir/ValueSet"


def test_editing_bundled_content_opens_a_copy(client: Any) -> None:
    resp = client.get("/editor/spine-ct")
    assert resp.status_code == 303
    assert resp.headers["Location"].endswith("/editor?from=spine-ct")
    body = client.get("/editor?from=spine-ct").get_data(as_text=True)
    assert "bundled with the server and read-only" in body


def test_editing_an_authored_value_set_embeds_it_with_its_version(tmp_path: Path) -> None:
    app = create_app(Settings(write_tokens="t", data_dir=tmp_path), load_registry([BUNDLED_CONTENT]))
    client = app.test_client()
    vs = {"resourceType": "ValueSet", "url": "http://orders.test/vs/ct", "status": "draft",
          "title": "CT", "compose": {"include": [{"system": CPT_URL, "filter": [
              {"property": "modality", "op": "=", "value": "CT"}]}]}}
    resp = client.post("/fhir/ValueSet", json=vs, headers={"Authorization": "Bearer t",
                                                          "Content-Type": "application/fhir+json"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    rid = resp.get_json()["id"]
    cfg = config(client, f"/editor/{rid}")
    assert cfg["id"] == rid
    assert cfg["draft"]["meta"]["versionId"] == "1"
    assert cfg["draft"]["compose"] == vs["compose"]
    page = client.get("/valueset?url=http://orders.test/vs/ct").get_data(as_text=True)
    assert f'href="/editor/{rid}"' in page


def test_copying_a_value_set_keeps_its_definition_but_not_its_identity(client: Any) -> None:
    cfg = config(client, "/editor?from=spine-ct")
    draft = cfg["draft"]
    assert cfg["id"] is None
    assert draft["title"] == "Copy of Spine CT orders"
    assert "url" not in draft and "name" not in draft and "version" not in draft
    assert draft["compose"]["include"][0]["filter"][0]["value"] == "CT"


def test_unknown_value_set_in_the_editor_is_a_404_page(client: Any) -> None:
    for url in ("/editor/no-such-id", "/editor?from=no-such-id"):
        resp = client.get(url)
        assert resp.status_code == 404
        assert resp.headers["Content-Type"].startswith("text/html")
        assert "no-such-id" in resp.get_data(as_text=True)


def test_a_version_page_asks_editor_js_for_that_version(client: Any) -> None:
    cfg = config(client, "/editor/spine-ct/_history/3")
    assert (cfg["id"], cfg["versionId"]) == ("spine-ct", "3")
    assert "version 3" in client.get("/editor/spine-ct/_history/3").get_data(as_text=True)


def test_bundled_value_set_page_links_to_a_copy_in_the_editor(client: Any) -> None:
    body = client.get("/valueset?url=https://terminology.cpt-imaging.org/fhir/ValueSet/spine-ct").get_data(as_text=True)
    assert 'href="/editor/spine-ct"' not in body  # bundled: read-only
    assert 'href="/editor?from=spine-ct"' in body


def test_the_draft_json_cannot_close_the_script_element(tmp_path: Path) -> None:
    (tmp_path / "xss.json").write_bytes(orjson.dumps({
        "resourceType": "ValueSet", "id": "xss", "url": "http://x.test/vs/xss", "status": "draft",
        "title": "</script><script>alert(1)</script>",
        "compose": {"include": [{"system": CPT_URL, "concept": [{"code": "72125"}]}]}}))
    client = create_app(Settings(), load_registry([BUNDLED_CONTENT, tmp_path])).test_client()
    body = client.get("/editor?from=xss").get_data(as_text=True)
    assert "</script><script>alert(1)" not in body
    assert config(client, "/editor?from=xss")["draft"]["title"] == "Copy of </script><script>alert(1)</script>"
