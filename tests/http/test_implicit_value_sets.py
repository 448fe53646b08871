"""Implicit value sets (FHIR R4 "Implicit value sets"): `{cs}?fhir_vs` and `?fhir_vs=isa/{code}`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from terminology.content import load_registry
from terminology.http.app import create_app
from terminology.settings import BUNDLED_CONTENT, Settings
from tests.conftest import BODY_SITE, CPT_URL, DATA, assert_fhir_valid, assert_outcome, param_value

ALL_BODY_SITES = f"{BODY_SITE}?fhir_vs"
BODY_SITE_CODES = ["spine", "c-spine", "t-spine", "l-spine", "limb", "knee", "old-joint"]


def expand(client: Any, url: str, extra: str = "") -> Any:
    return client.get(f"/fhir/ValueSet/$expand?url={quote(url, safe='')}{extra}")


def codes(body: dict[str, Any]) -> list[str]:
    out: list[str] = []
    stack = list(reversed(body["expansion"].get("contains", [])))
    while stack:
        c = stack.pop()
        out.append(c["code"])
        stack.extend(reversed(c.get("contains", [])))
    return out


def validate(client: Any, url: str, system: str, code: str) -> dict[str, Any]:
    resp = client.get(f"/fhir/ValueSet/$validate-code?url={quote(url, safe='')}"
                      f"&system={quote(system, safe='')}&code={quote(code, safe='')}")
    assert resp.status_code == 200
    body: dict[str, Any] = resp.get_json()
    return body


def test_fhir_vs_expands_to_every_code_of_the_code_system(client: Any) -> None:
    resp = expand(client, ALL_BODY_SITES)
    body = resp.get_json()
    assert resp.status_code == 200
    assert_fhir_valid(body)
    assert body["url"] == ALL_BODY_SITES
    assert body["expansion"]["total"] == len(BODY_SITE_CODES)
    assert sorted(codes(body)) == sorted(BODY_SITE_CODES)


def test_fhir_vs_expansion_pages_with_count_and_offset(client: Any) -> None:
    body = expand(client, ALL_BODY_SITES, "&count=2&offset=1").get_json()
    assert body["expansion"]["total"] == 7 and body["expansion"]["offset"] == 1
    assert codes(body) == BODY_SITE_CODES[1:3]


def test_fhir_vs_isa_is_the_code_and_its_descendants(client: Any) -> None:
    body = expand(client, f"{BODY_SITE}?fhir_vs=isa/spine").get_json()
    assert body["expansion"]["total"] == 4
    assert sorted(codes(body)) == ["c-spine", "l-spine", "spine", "t-spine"]


def test_fhir_vs_isa_validate_code_in_and_out(client: Any) -> None:
    url = f"{BODY_SITE}?fhir_vs=isa/spine"
    assert param_value(validate(client, url, BODY_SITE, "c-spine"), "result") is True
    out = validate(client, url, BODY_SITE, "knee")
    assert param_value(out, "result") is False
    assert "was not found in the value set" in param_value(out, "message")


def test_fhir_vs_validate_code_knows_every_code_and_no_other(client: Any) -> None:
    assert param_value(validate(client, ALL_BODY_SITES, BODY_SITE, "knee"), "result") is True
    assert param_value(validate(client, ALL_BODY_SITES, BODY_SITE, "nose"), "result") is False


def test_fhir_vs_of_an_unknown_code_system_is_404(client: Any) -> None:
    assert_outcome(expand(client, "http://example.test/none?fhir_vs"), 404, "could not be found")


def test_fhir_vs_form_not_defined_is_404(client: Any) -> None:
    assert_outcome(expand(client, f"{BODY_SITE}?fhir_vs=refset/123"), 404, "could not be found")


def test_cpt_fhir_vs_lists_base_codes_and_modifiers(client: Any) -> None:
    body = expand(client, f"{CPT_URL}?fhir_vs", "&count=1000").get_json()
    listed = codes(body)
    assert "72126" in listed and "26" in listed  # a base code and a modifier
    assert not any(":" in c for c in listed)  # expressions are not enumerated
    assert body["expansion"]["total"] == len(listed)
    assert param_value(validate(client, f"{CPT_URL}?fhir_vs", CPT_URL, "72126"), "result") is True


def test_cpt_fhir_vs_isa_on_flat_cpt_is_just_that_code(client: Any) -> None:
    body = expand(client, f"{CPT_URL}?fhir_vs=isa/72126").get_json()
    assert codes(body) == ["72126"]


def test_cpt_fhir_vs_has_the_cpt_expansion_cap() -> None:
    settings = Settings(content_dirs=[BUNDLED_CONTENT, DATA], max_cpt_expansion=10,
                        response_cache_bytes=0)
    client = create_app(settings, load_registry([BUNDLED_CONTENT, DATA])).test_client()
    body = assert_outcome(expand(client, f"{CPT_URL}?fhir_vs"), 422, "setting max_cpt_expansion")
    assert body["issue"][0]["code"] == "too-costly"
    counted = expand(client, f"{CPT_URL}?fhir_vs", "&count=0").get_json()
    assert counted["expansion"]["total"] > 10  # count=0 asks only for the total
