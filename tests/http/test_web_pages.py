"""The terminology browser's pages (Flask test client): search, concept, value set and code
system pages render what the FHIR operations answer, link the FHIR request behind them,
escape what the user typed, and answer errors as HTML pages."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from tests.conftest import BODY_SITE, CPT_URL

CONTRAST_VS = "https://terminology.cpt-imaging.org/fhir/ValueSet/imaging-with-contrast"
AMA_NOTICE = "CPT © Copyright 2025 American Medical Association"


def page(client: Any, url: str, status: int = 200) -> str:
    """GET a page; check its status and that it is HTML; its text."""
    resp = client.get(url)
    assert resp.status_code == status, resp.get_data(as_text=True)[:500]
    assert resp.headers["Content-Type"].startswith("text/html")
    return resp.get_data(as_text=True)


MAPS = "https://terminology.cpt-imaging.org/fhir/ConceptMap"


def concept_url(code: str, system: str = CPT_URL, **extra: str) -> str:
    query = f"system={quote(system, safe='')}&code={quote(code, safe='')}"
    return "/concept?" + query + "".join(f"&{k}={quote(v, safe='')}" for k, v in extra.items())


def fhir_links(body: str) -> list[str]:
    """The hrefs of the page's FHIR request links, unescaped."""
    return [html.unescape(h) for h in re.findall(r'class="fhir-link" href="([^"]+)"', body)]


def concept_links(body: str) -> list[dict[str, str]]:
    """The query parameters of every link to a concept page."""
    hrefs = re.findall(r'href="(/concept\?[^"]+)"', body)
    return [dict(parse_qsl(urlsplit(html.unescape(h)).query)) for h in hrefs]


def result_codes(body: str) -> list[str]:
    """Codes listed as search results, in order."""
    return re.findall(r'<code class="code">([^<]+)</code> <span class="display">', body)


# -- search ----------------------------------------------------------------------------------


def test_search_page_offers_a_labelled_search_box_and_browse_lists(client: Any) -> None:
    body = page(client, "/")
    assert '<label for="q">' in body and 'id="q" name="q"' in body
    assert '<label for="system">' in body
    assert "/codesystem?url=http" in body and "Imaging procedures that use contrast" in body


def test_server_rendered_search_finds_cervical_spine_ct_codes(client: Any) -> None:
    body = page(client, "/?q=cerv")
    codes = result_codes(body)
    assert {"72125", "72126", "72127"} <= set(codes)
    assert {"system": CPT_URL, "code": "72126", "version": "2026"} in concept_links(body)


def test_search_uses_expand_and_links_the_request_that_repeats_it(client: Any) -> None:
    body = page(client, "/?q=cerv&system=" + quote(CPT_URL, safe=""))
    [link] = fhir_links(body)
    assert link.startswith("/fhir/ValueSet/$expand?") and "filter=cerv" in link
    expansion = client.get(link).get_json()["expansion"]
    assert [c["code"] for c in expansion["contains"]] == result_codes(body)
    assert AMA_NOTICE in body


def test_search_of_a_system_without_an_all_codes_value_set_posts_an_inline_value_set(client: Any) -> None:
    body = page(client, "/?q=cerv&system=" + quote(BODY_SITE, safe=""))
    assert result_codes(body) == ["c-spine"]
    assert "POST /fhir/ValueSet/$expand" in body and "-H &#39;Content-Type: application/fhir+json&#39;" in body


def test_search_results_block_is_served_alone_for_the_script(client: Any) -> None:
    body = page(client, "/search/results?q=cervical+contrast&system=" + quote(CPT_URL, safe=""))
    assert "<html" not in body
    assert {"72126", "72127"} <= set(result_codes(body)) and "72125" in result_codes(body)
    assert "FHIR request" in body


def test_search_that_matches_nothing_says_so(client: Any) -> None:
    assert "No codes match “zzzqqq”" in page(client, "/?q=zzzqqq")


def test_a_code_system_that_cannot_be_searched_does_not_hide_the_others(client: Any, monkeypatch: Any) -> None:
    from terminology.errors import TooCostly
    from terminology.http.web import search

    real_run = search.run

    def run(call: Any, *args: Any) -> Any:
        if call.body is not None:  # the body-site search (inline value set)
            raise TooCostly("The value set expansion is too costly")
        return real_run(call, *args)

    monkeypatch.setattr(search, "run", run)
    body = page(client, "/?q=cerv")
    assert "72126" in result_codes(body) and "c-spine" not in result_codes(body)
    assert '<p class="result invalid" role="alert">The value set expansion is too costly</p>' in body


def test_search_escapes_what_the_user_typed(client: Any) -> None:
    body = page(client, "/?q=" + quote('<script>alert("x")</script>'))
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body


# -- concept ---------------------------------------------------------------------------------


def test_concept_page_shows_display_designations_properties_and_facets(client: Any) -> None:
    body = page(client, concept_url("72126"))
    assert "Computed tomography, cervical spine; with contrast material" in body
    assert "CT NECK SPINE W/DYE" in body  # the short descriptor designation
    facets = re.search(r'<ul class="facets" id="facets">(.*?)</ul>', body, re.S)
    assert facets is not None
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", facets.group(1)))
    assert "modality CT" in text and "body-region cervical-spine" in text and "contrast with" in text
    assert "<th scope=\"row\">kind</th>" in body


def test_concept_page_lists_the_value_sets_that_contain_the_code(client: Any) -> None:
    body = page(client, concept_url("72126"))
    members = re.search(r'<ul id="memberships">(.*?)</ul>', body, re.S)
    assert members is not None
    assert "CT cervical spine orders" in members.group(1)
    assert "Imaging procedures that use contrast" in members.group(1)
    assert "spine-mri" not in members.group(1)
    links = [h for h in fhir_links(body) if "ValueSet/$validate-code" in h]
    assert links and all(client.get(h).get_json()["parameter"][0]["valueBoolean"] is True for h in links)


def test_concept_page_links_its_lookup_request_and_shows_the_ama_notice(client: Any) -> None:
    body = page(client, concept_url("72126"))
    [link] = [h for h in fhir_links(body) if "$lookup" in h]
    assert link == f"/fhir/CodeSystem/$lookup?system={CPT_URL}&code=72126"
    assert client.get(link).status_code == 200
    assert f"curl &#39;http://localhost{html.escape(link)}&#39;" in body
    assert AMA_NOTICE in body


def test_cpt_concept_page_lists_modifiers_and_validates_an_expression(client: Any) -> None:
    body = page(client, concept_url("72126", expression="72126:26"))
    modifiers = re.search(r'<table id="modifiers">(.*?)</table>', body, re.S)
    assert modifiers is not None and "Professional Component" in modifiers.group(1)
    assert '<label for="expression">' in body
    result = re.search(r'<div id="validation-result" class="result (\w+)"', body)
    assert result is not None and result.group(1) == "valid"
    assert any("CodeSystem/$validate-code" in h and "code=72126:26" in h for h in fhir_links(body))


def test_modifier_concept_page_has_no_modifier_form(client: Any) -> None:
    body = page(client, concept_url("26"))
    assert "Professional Component" in body and 'id="expression"' not in body


def test_expression_concept_page_has_no_modifier_form(client: Any) -> None:
    body = page(client, concept_url("72126:26"))
    assert "72126:26" in body and "Professional Component" in body  # the modifier's definition
    assert 'id="expression"' not in body


def test_cpt_expression_breaking_a_modifier_rule_is_shown_invalid_with_the_rule(client: Any) -> None:
    body = page(client, concept_url("72126", expression="72126:76:77"))
    result = re.search(r'<div id="validation-result" class="result (\w+)".*?</div>', body, re.S)
    assert result is not None and result.group(1) == "invalid"
    assert "76, 77, 78, 79" in result.group(0)


def mapping_block(body: str, url: str) -> str:
    found = re.search(rf'<ul class="mapping" data-map="{re.escape(url)}">(.*?)</ul>', body, re.S)
    assert found is not None, f"no mapping from {url}"
    return found.group(1)


def test_imaging_concept_page_links_its_contrast_alternatives(client: Any) -> None:
    body = page(client, concept_url("72126"))
    block = mapping_block(body, f"{MAPS}/cpt-contrast-alternatives")
    linked = [q["code"] for q in concept_links(block)]
    assert linked == ["72125", "72127"]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", block))
    assert "contrast none" in text and "contrast without-then-with" in text
    [call] = [h for h in fhir_links(body) if "ConceptMap/$translate" in h and "contrast" in h]
    answer = client.get(call).get_json()
    assert sorted(p["part"][1]["valueCoding"]["code"] for p in answer["parameter"]
                  if p["name"] == "match") == ["72125", "72127"]


def test_imaging_concept_page_shows_its_dicom_modality_linked_to_the_map(client: Any) -> None:
    body = page(client, concept_url("71045"))
    block = mapping_block(body, f"{MAPS}/cpt-to-dicom-modality")
    assert re.findall(r"<code[^>]*>(\w+)</code>", block)[:2] == ["DX", "CR"]
    assert "Digital Radiography" in block
    assert 'href="/fhir/ConceptMap/cpt-to-dicom-modality-2026"' in body
    assert client.get("/fhir/ConceptMap/cpt-to-dicom-modality-2026").status_code == 200
    assert f"{MAPS}/cpt-contrast-alternatives" not in body  # 71045 has no contrast family


def test_concept_without_mappings_has_no_mapping_section(client: Any) -> None:
    body = page(client, concept_url("26"))
    assert 'id="mappings-heading"' not in body


def test_hierarchy_properties_link_the_parent_concept(client: Any) -> None:
    body = page(client, concept_url("c-spine", BODY_SITE))
    assert "Halswirbelsäule" in body
    assert {"system": BODY_SITE, "code": "spine", "version": "1.0.0"} in concept_links(body)
    assert AMA_NOTICE not in body


def test_unknown_code_is_an_html_404_with_a_clear_message(client: Any) -> None:
    body = page(client, concept_url("99999"), 404)
    assert "<h1>Not found</h1>" in body
    assert f"Unknown code &#39;99999&#39; in the CodeSystem &#39;{CPT_URL}&#39;" in body
    assert fhir_links(body) == [f"/fhir/CodeSystem/$lookup?system={CPT_URL}&code=99999"]


def test_unknown_code_system_is_an_html_404(client: Any) -> None:
    body = page(client, concept_url("1", "http://example.test/nowhere"), 404)
    assert "http://example.test/nowhere" in body and "could not be found" in body


def test_concept_page_escapes_the_code_in_its_error(client: Any) -> None:
    body = page(client, concept_url("<img src=x onerror=alert(1)>"), 404)
    assert "<img src=x" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body


def test_concept_page_without_a_code_is_an_html_400(client: Any) -> None:
    body = page(client, "/concept?system=" + quote(CPT_URL, safe=""), 400)
    assert "This page needs the query parameter &#39;code&#39;" in body


# -- value set -------------------------------------------------------------------------------


def test_value_set_page_shows_compose_in_words_and_the_first_page(client: Any) -> None:
    body = page(client, "/valueset?url=" + quote(CONTRAST_VS, safe=""))
    assert "Imaging procedures that use contrast" in body
    assert "<code>contrast in with,without-then-with</code>" in body
    assert "Codes 1–20 of 22" in body
    assert len(re.findall(r"<tr><td style=", body)) == 20
    assert 'rel="next"' in body and "offset=20" in body and 'rel="prev"' not in body
    [link] = fhir_links(body)
    assert "ValueSet/$expand?url=" + CONTRAST_VS in link and "offset=0&count=20" in link
    assert AMA_NOTICE in body


def test_value_set_page_pages_through_the_expansion(client: Any) -> None:
    body = page(client, "/valueset?url=" + quote(CONTRAST_VS, safe="") + "&offset=20")
    assert "Codes 21–22 of 22" in body
    assert len(re.findall(r"<tr><td style=", body)) == 2
    assert 'rel="prev"' in body and 'rel="next"' not in body


def test_value_set_page_filters_the_expansion(client: Any) -> None:
    body = page(client, "/valueset?url=" + quote(CONTRAST_VS, safe="") + "&filter=cervical")
    assert "Codes 1–" in body and "matching “cervical”" in body
    assert "72126" in body and "70460" not in body


def test_value_set_page_rejects_a_bad_offset_with_an_html_400(client: Any) -> None:
    body = page(client, "/valueset?url=" + quote(CONTRAST_VS, safe="") + "&offset=abc", 400)
    assert "&#39;offset&#39; must be a whole number" in body


def test_unknown_value_set_is_an_html_404(client: Any) -> None:
    assert "No value set" in page(client, "/valueset?url=http://example.test/vs", 404)


# -- code system -----------------------------------------------------------------------------


def test_code_system_page_shows_metadata_copyright_counts_properties_and_filters(client: Any) -> None:
    body = page(client, "/codesystem?url=" + quote(CPT_URL, safe=""))
    assert "<h1>Current Procedural Terminology (CPT) — imaging fragment</h1>" in body
    assert re.search(r'<dd id="concept-count">51</dd>', body)
    assert AMA_NOTICE in body
    assert "<code>body-region</code>" in body and "urn:cpt-imaging:property:modality" in body
    filters = re.search(r'<table id="cs-filters">(.*?)</table>', body, re.S)
    assert filters is not None and "<code>modality</code>" in filters.group(1)
    assert fhir_links(body) == ["/fhir/CodeSystem/cpt"]


# -- the FHIR API is unchanged ---------------------------------------------------------------


def test_fhir_errors_stay_operation_outcomes(client: Any) -> None:
    resp = client.get(f"/fhir/CodeSystem/$lookup?system={CPT_URL}&code=99999")
    assert resp.status_code == 404
    assert resp.headers["Content-Type"].startswith("application/fhir+json")


def test_stylesheet_and_script_are_served(client: Any) -> None:
    assert client.get("/assets/app.css").status_code == 200
    assert b"debounce" in client.get("/assets/app.js").data.lower() or b"setTimeout" in client.get("/assets/app.js").data
