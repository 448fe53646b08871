"""Which CPT is served: the operator's licensed release replaces the bundled fragment, and
CPT's forms are checked even on the fragment."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from terminology.content import load_content
from terminology.cpt.ama_import import import_to_db
from terminology.cpt.synthetic import modifier_count, write_synthetic_release
from terminology.http.app import create_app
from terminology.settings import Settings
from tests.conftest import CPT_URL, param_value

CODES = 300
FRAGMENT_CODES = ("72125", "72126", "70450")
ORDER_SET = "https://terminology.cpt-imaging.org/fhir/ValueSet/ct-cervical-spine"


@pytest.fixture(scope="module")
def licensed_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A (synthetic) licensed CPT 2025 release."""
    tmp = tmp_path_factory.mktemp("cpt-2025")
    write_synthetic_release(tmp / "release", n_codes=CODES, seed=7)
    import_to_db(tmp / "release", "2025", tmp / "cpt-2025.db")
    return tmp / "cpt-2025.db"


@pytest.fixture(scope="module")
def licensed(licensed_db: Path) -> Any:
    """A test client over the bundled content (fragment included) plus the 2025 release."""
    settings = Settings(cpt_databases=[licensed_db], response_cache_bytes=0)
    return create_app(settings, load_content(settings)).test_client()


@pytest.fixture(scope="module")
def fragment_only() -> Any:
    """A test client over the bundled content alone: the CPT fragment."""
    settings = Settings(response_cache_bytes=0)
    return create_app(settings, load_content(settings)).test_client()


def licensed_only_code(licensed_db: Path) -> str:
    """A code of the licensed release that the bundled fragment does not hold."""
    from terminology.cpt.release import read_cpt_db

    return next(c for c, concept in read_cpt_db(licensed_db).concepts.items()
                if not concept.modifier and c.startswith("9") and c not in ("99202", "99203"))


def validate(client: Any, code: str, **extra: str) -> dict[str, Any]:
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in {"url": CPT_URL, "code": code,
                                                              **extra}.items())
    resp = client.get(f"/fhir/CodeSystem/$validate-code?{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    body: dict[str, Any] = resp.get_json()
    return body


# --- a licensed release replaces the fragment --------------------------------------------------


def test_lookup_without_a_version_answers_from_the_licensed_release(licensed: Any) -> None:
    body = licensed.get(f"/fhir/CodeSystem/$lookup?system={CPT_URL}&code=72126").get_json()
    assert param_value(body, "version") == "2025"
    assert param_value(body, "display").startswith("SYNTHETIC TEST DESCRIPTOR")


def test_a_licensed_code_validates_without_the_fragment_warning(licensed: Any,
                                                                 licensed_db: Path) -> None:
    body = validate(licensed, licensed_only_code(licensed_db))
    assert param_value(body, "result") is True
    assert param_value(body, "version") == "2025"
    assert "fragment" not in str(body)


def test_fhir_vs_with_count_0_totals_the_licensed_release(licensed: Any) -> None:
    url = quote(f"{CPT_URL}?fhir_vs", safe="")
    body = licensed.get(f"/fhir/ValueSet/$expand?url={url}&count=0").get_json()
    assert body["expansion"]["total"] == CODES + modifier_count()
    used = [p["valueUri"] for p in body["expansion"]["parameter"] if p["name"] == "used-codesystem"]
    assert used == [f"{CPT_URL}|2025"]


def test_codesystem_search_and_read_give_the_licensed_release(licensed: Any) -> None:
    found = licensed.get(f"/fhir/CodeSystem?url={CPT_URL}").get_json()
    assert [e["resource"]["version"] for e in found["entry"]] == ["2025"]
    read = licensed.get("/fhir/CodeSystem/cpt").get_json()
    assert (read["version"], read["content"]) == ("2025", "not-present")


def test_the_bundled_order_sets_expand_from_the_licensed_release(licensed: Any) -> None:
    body = licensed.get(f"/fhir/ValueSet/$expand?url={quote(ORDER_SET, safe='')}").get_json()
    used = [p["valueUri"] for p in body["expansion"]["parameter"] if p["name"] == "used-codesystem"]
    assert used == [f"{CPT_URL}|2025"]
    assert all(c["display"].startswith("SYNTHETIC") for c in body["expansion"]["contains"])


def test_browser_and_editor_show_the_licensed_release(licensed: Any) -> None:
    page = licensed.get(f"/codesystem?url={quote(CPT_URL, safe='')}").get_data(as_text=True)
    assert "2025" in page and "fragment" not in page.lower()
    concept = licensed.get(f"/concept?system={quote(CPT_URL, safe='')}&code=72126")
    assert "SYNTHETIC TEST DESCRIPTOR" in concept.get_data(as_text=True)
    assert licensed.get("/editor").status_code == 200


def test_capability_statement_names_the_cpt_served(licensed: Any, fragment_only: Any) -> None:
    rest = licensed.get("/fhir/metadata").get_json()["rest"][0]
    assert rest["documentation"] == (f"CPT served: 2025 (complete, {CODES + modifier_count()} "
                                     "codes and modifiers)")
    fragment = fragment_only.get("/fhir/metadata").get_json()["rest"][0]["documentation"]
    assert fragment.startswith("CPT served: 2026 (fragment, ")


# --- CPT's forms, even on the fragment ---------------------------------------------------------


@pytest.mark.parametrize(("code", "why"), [
    ("hello", "is not a valid CPT code: a CPT code is four digits followed by a digit"),
    ("7212", "is not a valid CPT code"),
    ("721266", "is not a valid CPT code"),
    ("7212X", "is not a valid CPT code"),
    ("72126:", "has an empty part"),
    ("72126:2", "has the modifier '2', which is not a valid CPT modifier"),
    ("72126:lt", "has the modifier 'lt', which is not a valid CPT modifier"),
    ("hello:26", "has the base code 'hello', which is not a valid CPT code"),
])
def test_a_code_without_a_cpt_form_is_false_whatever_is_loaded(
        fragment_only: Any, licensed: Any, code: str, why: str) -> None:
    for client in (fragment_only, licensed):
        body = validate(client, code)
        assert param_value(body, "result") is False, body
        assert why in param_value(body, "message")


@pytest.mark.parametrize("code", ["99999", "0999T", "72126:XY"])
def test_a_well_formed_code_the_fragment_lacks_gets_the_fragment_answer(fragment_only: Any,
                                                                        code: str) -> None:
    body = validate(fragment_only, code)
    assert param_value(body, "result") is True, body
    issue = param_value(body, "issues")["issue"][0]
    assert issue["severity"] == "warning"
    assert "is labeled as a fragment, so the code may be valid" in issue["details"]["text"]


def test_a_well_formed_code_the_licensed_release_lacks_is_unknown(licensed: Any) -> None:
    body = validate(licensed, "99999")
    assert param_value(body, "result") is False
    assert "Unknown code '99999'" in param_value(body, "message")


def test_start_up_log_names_the_cpt_served(licensed_db: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="terminology.content"):
        load_content(Settings(cpt_databases=[licensed_db]))
    served = [r.getMessage() for r in caplog.records if r.getMessage().startswith("CPT served")]
    assert served == [f"CPT served: 2025 (complete, {CODES + modifier_count()} codes and "
                      "modifiers)"]


@pytest.mark.parametrize("code", ["22", "25", "26", "50", "59", "76", "77", "1P", "LT", "RT",
                                  "TC", "P1", "P2"])
def test_every_modifier_of_the_ama_layout_answers_lookup(licensed: Any, code: str) -> None:
    resp = licensed.get(f"/fhir/CodeSystem/$lookup?system={CPT_URL}&code={code}")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert param_value(resp.get_json(), "display").startswith("Synthetic")


def test_a_ct_code_with_modifier_26_is_valid_on_the_licensed_release(licensed: Any) -> None:
    body = validate(licensed, "72126:26")
    assert param_value(body, "result") is True, body
