"""The terminology browser in a real browser: Playwright driving Debian's Chromium against
the real server (the `live_server` fixture). Each test saves a screenshot of the page it
checked into artifacts/screenshots/ (gitignored).

Skipped only where Chromium is not installed at /usr/bin/chromium (`.ci/run` installs it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import CPT_URL, REPO

SCREENSHOTS = REPO / "artifacts" / "screenshots"
CONTRAST_VS = "https://terminology.cpt-imaging.org/fhir/ValueSet/imaging-with-contrast"
TIMEOUT_MS = 10_000


@pytest.fixture()
def site(live_server: str) -> str:
    """The real server's base url (pages live beside /fhir)."""
    return live_server.removesuffix("/fhir")


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    """A fresh desktop-sized page."""
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


def shot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as artifacts/screenshots/NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def concept_url(site: str, code: str) -> str:
    return f"{site}/concept?system={quote(CPT_URL, safe='')}&code={quote(code, safe='')}"


def validate(page: Page, expression: str) -> None:
    """Type an expression into the concept page's form and submit it."""
    page.get_by_label("Expression").fill(expression)
    page.get_by_role("button", name="Validate").click()
    page.wait_for_load_state()


def test_typing_in_the_search_box_lists_matches_as_you_type(page: Page, site: str) -> None:
    page.goto(site + "/")
    page.get_by_label("Words or code").press_sequentially("cerv", delay=60)
    results = page.locator("#results")
    for code in ("72125", "72126", "72127"):
        expect(results.get_by_role("link", name=re.compile(code))).to_be_visible()
    expect(page).to_have_url(re.compile(r"\?q=cerv$"))  # the address reproduces the results
    expect(page.locator("#search-status")).to_have_text(re.compile(r"^\d+ results$"))
    expect(results.locator(".fhir-link").first).to_contain_text("$expand")
    expect(results).to_contain_text("American Medical Association")
    shot(page, "search")


def test_search_works_without_javascript(browser: Browser, site: str) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(site + "/")
    page.get_by_label("Words or code").fill("cervical spine")
    page.get_by_label("Words or code").press("Enter")
    expect(page.locator("#results")).to_contain_text("72127")
    context.close()


def test_opening_a_result_shows_the_concept_with_its_facets(page: Page, site: str) -> None:
    page.goto(site + "/?q=cerv")
    page.get_by_role("link", name=re.compile("72126")).click()
    expect(page.locator("h1")).to_contain_text("Computed tomography, cervical spine; with contrast material")
    facets = page.locator("#facets")
    expect(facets).to_contain_text("modality CT")
    expect(facets).to_contain_text("body-region cervical-spine")
    expect(facets).to_contain_text("contrast with")
    expect(page.locator("#memberships")).to_contain_text("Imaging procedures that use contrast")
    expect(page.locator(".copyright").first).to_contain_text("American Medical Association")
    shot(page, "concept")


def test_concept_page_is_readable_at_phone_width(browser: Browser, site: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(concept_url(site, "72126"))
    expect(page.locator("h1")).to_contain_text("cervical spine")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "concept-phone")
    context.close()


def test_paging_through_the_contrast_order_set(page: Page, site: str) -> None:
    page.goto(f"{site}/valueset?url={quote(CONTRAST_VS, safe='')}")
    expect(page.locator("h1")).to_have_text("Imaging procedures that use contrast")
    expect(page.locator("#expansion-count")).to_have_text("Codes 1–20 of 22")
    expect(page.locator("#expansion tbody tr")).to_have_count(20)
    shot(page, "valueset")
    page.get_by_role("link", name=re.compile("Next")).click()
    expect(page.locator("#expansion-count")).to_have_text("Codes 21–22 of 22")
    expect(page.locator("#expansion tbody tr")).to_have_count(2)
    page.get_by_role("link", name=re.compile("Previous")).click()
    expect(page.locator("#expansion-count")).to_have_text("Codes 1–20 of 22")


def test_validating_a_modifier_expression_says_valid(page: Page, site: str) -> None:
    page.goto(concept_url(site, "72126"))
    validate(page, "72126:26")
    result = page.locator("#validation-result")
    expect(result).to_have_class(re.compile(r"\bvalid\b"))
    expect(result).to_contain_text("Valid: 72126:26")
    shot(page, "validate-valid")


def test_validating_two_repeat_modifiers_says_invalid_with_the_rule(page: Page, site: str) -> None:
    # CPT: at most one of the repeat-procedure modifiers 76, 77, 78, 79 on a code
    # (tx.fhir.org: "There can only be one modifier in the set 76, 77, 78, 79").
    page.goto(concept_url(site, "72126"))
    validate(page, "72126:76:77")
    result = page.locator("#validation-result")
    shot(page, "validate-invalid")
    expect(result).to_have_class(re.compile(r"\binvalid\b"))
    expect(result).to_contain_text("Invalid: 72126:76:77")
    expect(result).to_contain_text("76, 77, 78, 79")


def test_code_system_page_shows_counts_and_filters(page: Page, site: str) -> None:
    page.goto(f"{site}/codesystem?url={quote(CPT_URL, safe='')}")
    expect(page.locator("#concept-count")).to_have_text(re.compile(r"^\d+$"))
    expect(page.locator("#cs-filters")).to_contain_text("body-region")
    expect(page.get_by_role("heading", name="Copyright")).to_be_visible()
    shot(page, "codesystem")


def test_unknown_code_shows_a_clear_not_found_page(page: Page, site: str) -> None:
    response = page.goto(concept_url(site, "99999"))
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("Unknown code '99999'")
    shot(page, "not-found")
