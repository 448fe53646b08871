"""The order-set editor in a real browser: Playwright on Debian's Chromium against the real
server (`terminology serve`, production WSGI server) with writes enabled (a static write token,
the SQLite store in a temporary data directory). Every save goes through the real write API.

Skipped only where Chromium is not installed at /usr/bin/chromium (`.ci/run` installs it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.conftest import CPT_URL
from tests.e2e.authoring_support import TOKEN, make_jwt, rsa_key, running_server, writes_env
from tests.e2e.test_browser import TIMEOUT_MS, shot

KEY = rsa_key()  # the test issuer's JWT signing key
URL_BASE = "https://orders.example.org/fhir/ValueSet"  # TX_EDITOR_URL_BASE of the test server
SPINE_CT = [{"property": "modality", "op": "=", "value": "CT"},
            {"property": "body-region", "op": "in", "value": "cervical-spine,lumbar-spine,thoracic-spine"}]
BUNDLED_SPINE_CT = "https://terminology.cpt-imaging.org/fhir/ValueSet/spine-ct"
FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real server (2 workers) with writes enabled: the static TOKEN and JWTs signed by
    KEY, over a fresh SQLite store; its base url (pages beside /fhir)."""
    env = writes_env(tmp_path_factory.mktemp("editor-data"), KEY, TX_EDITOR_URL_BASE=URL_BASE)
    with running_server(tmp_path_factory.mktemp("editor-server"), env) as server:
        yield server.base.removesuffix("/fhir")


def new_page(browser: Browser, width: int = 1280, height: int = 900) -> Page:
    """A page in a fresh context (its own sessionStorage: a new browser tab)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    p = new_page(browser)
    yield p
    p.context.close()


def expand_total(site: str, compose: dict[str, Any]) -> int:
    """What the FHIR API's $expand says the total of `compose` is."""
    body: dict[str, Any] = {"resourceType": "Parameters", "parameter": [
        {"name": "valueSet", "resource": {"resourceType": "ValueSet", "status": "draft", "compose": compose}}]}
    resp = requests.post(f"{site}/fhir/ValueSet/$expand", json=body, headers=FHIR_JSON, timeout=10)
    assert resp.status_code == 200, resp.text
    return int(resp.json()["expansion"]["total"])


def stored(site: str, rid: str) -> requests.Response:
    return requests.get(f"{site}/fhir/ValueSet/{rid}", headers=FHIR_JSON, timeout=10)


def set_token(page: Page, token: str = TOKEN) -> None:
    page.get_by_label("Write token").fill(token)
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#token-set")).to_be_visible()


def save(page: Page) -> None:
    page.get_by_role("button", name="Save order set").click()


def saved_id(page: Page) -> str:
    """The id the saved order set got (the editor's address becomes /editor/{id})."""
    expect(page).to_have_url(re.compile(r"/editor/[^/]+$"))
    return page.url.rsplit("/", 1)[1]


def spine_ct_rule(page: Page) -> None:
    """Tick CT and the three spine regions and add the rule."""
    facets = page.locator("#facets")
    facets.get_by_label("CT", exact=True).check()
    for region in ("cervical spine", "thoracic spine", "lumbar spine"):
        facets.get_by_label(region, exact=True).check()
    page.get_by_role("button", name="Add rule").click()


def create_rule_based(page: Page, site: str, title: str) -> str:
    """A saved rule-based order set (CT, any spine region, any contrast); its id."""
    page.goto(site + "/editor")
    page.get_by_label("Title", exact=True).fill(title)
    spine_ct_rule(page)
    expect(page.locator("#preview-count")).to_contain_text("9 codes")
    set_token(page)
    save(page)
    expect(page.locator("#save-status")).to_contain_text("Saved as version 1")
    return saved_id(page)


# -- building and saving ------------------------------------------------------------------


def test_order_set_from_search_results_is_previewed_saved_and_reloaded(page: Page, site: str) -> None:
    page.goto(site + "/editor")
    page.get_by_label("Title", exact=True).fill("CT cervical spine, from search")
    expect(page.get_by_label("Name (for computers)")).to_have_value("CtCervicalSpineFromSearch")
    expect(page.get_by_label("Canonical URL")).to_have_value(f"{URL_BASE}/ct-cervical-spine-from-search")
    page.get_by_label("Search codes").press_sequentially("computed cerv", delay=30)
    results = page.locator("#search-results")
    expect(results.locator("li")).to_have_count(3)
    expect(page.locator('[data-copyright-for="search"]')).to_contain_text("American Medical Association")
    page.get_by_role("button", name=re.compile(r"^Add 72125 ")).click()
    expect(page.locator("#preview-count")).to_contain_text("1 code")
    page.get_by_role("button", name="Add all 3 shown").click()
    expect(page.locator("#preview-count")).to_contain_text("3 codes")
    expect(page.locator("#preview tbody tr")).to_have_count(3)
    expect(page.locator('[data-copyright-for="preview"]')).to_contain_text("American Medical Association")
    expect(page.locator("#token-set")).to_be_hidden()
    set_token(page)
    expect(page.get_by_label("Write token")).to_be_hidden()  # asked once per tab
    save(page)
    expect(page.locator("#save-status")).to_contain_text("Saved as version 1")
    rid = saved_id(page)
    body = stored(site, rid).json()
    assert [c["code"] for c in body["compose"]["include"][0]["concept"]] == ["72125", "72126", "72127"]
    assert body["name"] == "CtCervicalSpineFromSearch"

    page.reload()
    expect(page.locator("#token-set")).to_be_visible()  # kept for this tab...
    assert page.context.cookies() == [] and TOKEN not in page.url  # ...in sessionStorage only
    expect(page.get_by_label("Title", exact=True)).to_have_value("CT cervical spine, from search")
    expect(page.locator("#compose-list")).to_contain_text("72127")
    expect(page.locator("#preview-count")).to_contain_text("3 codes")
    expect(page.locator("#history li")).to_have_count(1)


def test_order_set_from_a_facet_rule_stays_a_rule_with_the_right_total(page: Page, site: str) -> None:
    page.goto(site + "/editor")
    page.get_by_label("Title", exact=True).fill("CT spine, any contrast")
    page.get_by_label("Version", exact=True).fill("2026.1")
    page.get_by_label("Status", exact=True).select_option("active")
    page.get_by_label("Clinical use").fill("Pick list when a clinician orders a CT of the spine.")
    spine_ct_rule(page)
    total = expand_total(site, {"include": [{"system": CPT_URL, "filter": SPINE_CT}]})
    assert total == 9
    expect(page.locator("#preview-count")).to_contain_text(f"{total} codes")
    expect(page.locator("#compose-list")).to_contain_text("Modality is CT")
    # Excluding one code of the rule adds a compose.exclude; the rule stays a rule.
    page.get_by_role("button", name="Exclude 72127").click()
    expect(page.locator("#preview-count")).to_contain_text(f"{total - 1} codes")
    expect(page.locator("#compose-list li.exclude")).to_contain_text("72127")
    set_token(page)
    save(page)
    expect(page.locator("#save-status")).to_contain_text("Saved as version 1")
    rid = saved_id(page)
    body = stored(site, rid).json()
    assert body["compose"]["include"] == [{"system": CPT_URL, "filter": SPINE_CT}]
    assert body["compose"]["exclude"] == [{"system": CPT_URL, "concept": [
        {"code": "72127", "display": "Computed tomography, cervical spine; without contrast material, "
                                     "followed by contrast material(s) and further sections"}]}]
    assert (body["status"], body["version"]) == ("active", "2026.1")
    page.reload()
    expect(page.locator("#preview-count")).to_contain_text(f"{total - 1} codes")
    shot(page, "editor")  # docs/editor.png is a copy of this screenshot


def test_editing_and_saving_again_makes_version_2_with_history(page: Page, site: str) -> None:
    rid = create_rule_based(page, site, "CT spine, edited twice")
    url = stored(site, rid).json()["url"]
    page.goto(f"{site}/valueset?url={url}")
    page.get_by_role("link", name="Edit in the order-set editor").click()
    expect(page).to_have_url(re.compile(f"/editor/{rid}$"))
    page.get_by_label("Clinical use").fill("Second version: the description changed.")
    save(page)  # the token is still set for this tab
    expect(page.locator("#save-status")).to_contain_text("Saved as version 2")
    assert stored(site, rid).headers["ETag"] == 'W/"2"'
    history = page.locator("#history li")
    expect(history).to_have_count(2)
    page.get_by_role("link", name="Version 1 expansion").click()
    expect(page.locator("h1")).to_contain_text("version 1")
    expect(page.locator("#preview-count")).to_contain_text("9 codes")
    expect(page.get_by_label("Clinical use")).to_have_value("")


def test_a_stale_save_shows_the_conflict_message_and_offers_to_reload(page: Page, site: str) -> None:
    rid = create_rule_based(page, site, "CT spine, two authors")
    page.reload()
    # Another author saves version 2 meanwhile.
    other = stored(site, rid).json()
    other["title"] = "CT spine, the other author's title"
    resp = requests.put(f"{site}/fhir/ValueSet/{rid}", json=other, timeout=10,
                        headers={**FHIR_JSON, "Authorization": f"Bearer {TOKEN}", "If-Match": 'W/"1"'})
    assert resp.status_code == 200, resp.text
    page.get_by_label("Clinical use").fill("My edit, made on version 1.")
    save(page)
    status = page.locator("#save-status")
    expect(status).to_contain_text("Someone else saved this order set")
    expect(page.get_by_role("button", name="Reload the latest version")).to_be_focused()
    assert stored(site, rid).json()["title"] == "CT spine, the other author's title"  # not overwritten
    page.get_by_role("button", name="Reload the latest version").click()
    expect(page.get_by_label("Title", exact=True)).to_have_value("CT spine, the other author's title")


def test_saving_without_a_token_shows_the_401_message(page: Page, site: str) -> None:
    page.goto(site + "/editor")
    page.get_by_label("Title", exact=True).fill("No token")
    page.get_by_label("Add by code").fill("72125")
    page.get_by_role("button", name="Add codes").click()
    save(page)
    expect(page.locator("#save-status")).to_contain_text("Saving needs a write token (401)")
    expect(page.get_by_label("Write token")).to_be_focused()
    expect(page).to_have_url(re.compile(r"/editor$"))  # nothing was created


def test_save_uses_a_typed_token_without_pressing_use_token(page: Page, site: str) -> None:
    page.goto(site + "/editor")
    page.get_by_label("Title", exact=True).fill("Typed token")
    page.get_by_label("Add by code").fill("72125")
    page.get_by_role("button", name="Add codes").click()
    page.get_by_label("Write token").fill(TOKEN)  # typed, "Use token" not pressed
    save(page)
    expect(page.locator("#save-status")).to_contain_text("Saved as version 1")
    assert stored(site, saved_id(page)).json()["title"] == "Typed token"
    expect(page.locator("#token-set")).to_be_visible()  # and kept for the next save
    assert page.evaluate("sessionStorage.getItem('tx-write-token')") == TOKEN


def test_a_wrong_token_is_refused_and_forgotten(page: Page, site: str) -> None:
    page.goto(site + "/editor")
    page.get_by_label("Title", exact=True).fill("Wrong token")
    page.get_by_label("Add by code").fill("72125")
    page.get_by_role("button", name="Add codes").click()
    page.get_by_label("Write token").fill("not-the-token")
    page.get_by_role("button", name="Use token").click()
    save(page)
    expect(page.locator("#save-status")).to_contain_text("did not accept your write token (401)")
    assert page.evaluate("sessionStorage.getItem('tx-write-token')") is None


def test_a_token_without_write_scope_shows_the_403_message(page: Page, site: str) -> None:
    page.goto(site + "/editor")
    page.get_by_label("Title", exact=True).fill("Read-only author")
    page.get_by_label("Add by code").fill("72125")
    page.get_by_role("button", name="Add codes").click()
    set_token(page, make_jwt(KEY, "user/ValueSet.rs"))  # may read, may not write
    save(page)
    expect(page.locator("#save-status")).to_contain_text("does not allow writing value sets (403)")
    expect(page.locator("#token-set")).to_be_visible()  # a valid token is kept


def test_an_author_with_a_smart_jwt_saves(page: Page, site: str) -> None:
    page.goto(site + "/editor")
    page.get_by_label("Title", exact=True).fill("Saved with a JWT")
    page.get_by_label("Add by code").fill("72125")
    page.get_by_role("button", name="Add codes").click()
    set_token(page, make_jwt(KEY, "user/ValueSet.cud"))
    save(page)
    expect(page.locator("#save-status")).to_contain_text("Saved as version 1")
    assert stored(site, saved_id(page)).json()["title"] == "Saved with a JWT"


def test_an_invalid_draft_shows_the_servers_issues_beside_the_fields(page: Page, site: str) -> None:
    page.goto(site + "/editor")
    page.get_by_label("Title", exact=True).fill("Invalid draft")
    page.get_by_label("Canonical URL").fill(BUNDLED_SPINE_CT)  # bundled content is read-only
    page.get_by_label("Add by code").fill("72125")
    page.get_by_role("button", name="Add codes").click()
    set_token(page)
    save(page)
    expect(page.locator("#save-status")).to_contain_text("The server refused the order set (422)")
    expect(page.locator("#vs-url-error")).to_contain_text("bundled or hosted content")
    expect(page.get_by_label("Canonical URL")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#vs-title-error")).to_be_hidden()

    # A rule the server cannot expand: the issue is shown beside the definition.
    page.get_by_label("Canonical URL").fill(f"{URL_BASE}/invalid-draft")
    page.get_by_label("Code ranges").fill("7212-99")
    page.get_by_role("button", name="Add rule").click()
    expect(page.locator("#preview-issues")).to_contain_text("invalid range")
    save(page)
    expect(page.locator("#save-status")).to_contain_text("422")
    expect(page.locator("#compose-error")).to_contain_text("invalid range")
    expect(page).to_have_url(re.compile(r"/editor$"))


def test_preview_reports_unknown_codes_and_displays_that_differ(page: Page, site: str) -> None:
    page.goto(site + "/editor")
    page.get_by_label("Add by code").fill("72125, 99999")
    page.get_by_role("button", name="Add codes").click()
    issues = page.locator("#preview-issues")
    expect(issues).to_contain_text("99999: Unknown Code '99999'")
    expect(page.locator('[data-expression="ValueSet.compose.include[0].concept[1]"] .field-error')).to_contain_text("Unknown")


def test_the_preview_pages_through_a_big_rule(page: Page, site: str) -> None:
    page.goto(site + "/editor")
    page.get_by_label("Code ranges").fill("70000-79999")
    page.get_by_role("button", name="Add rule").click()
    total = expand_total(site, {"include": [{"system": CPT_URL, "filter": [
        {"property": "code", "op": "in", "value": "70000-79999"}]}]})
    assert total > 40
    count = page.locator("#preview-count")
    expect(count).to_have_attribute("aria-live", "polite")
    expect(count).to_have_text(f"{total} codes · showing 1–20")
    expect(page.locator("#preview tbody tr")).to_have_count(20)
    first_page = page.locator("#preview tbody tr").first.inner_text()
    page.get_by_role("button", name="Next →").click()
    expect(count).to_have_text(f"{total} codes · showing 21–40")
    expect(page.locator("#preview tbody tr").first).not_to_have_text(first_page)
    page.get_by_role("button", name="Next →").click()
    expect(count).to_have_text(f"{total} codes · showing 41–{total}")
    expect(page.get_by_role("button", name="Next →")).to_be_hidden()
    page.get_by_role("button", name="← Previous").click()
    expect(count).to_have_text(f"{total} codes · showing 21–40")


def test_an_authored_order_set_with_a_wrong_display_shows_the_issue_beside_the_code(page: Page, site: str) -> None:
    vs: dict[str, Any] = {"resourceType": "ValueSet", "url": f"{URL_BASE}/wrong-display", "status": "draft",
          "title": "Wrong display", "compose": {"include": [{"system": CPT_URL, "concept": [
              {"code": "72125", "display": "CT neck bones"}, {"code": "72126"}]}]}}
    resp = requests.post(f"{site}/fhir/ValueSet", json=vs, timeout=10,
                         headers={**FHIR_JSON, "Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 201, resp.text  # a differing display is a warning on write
    page.goto(f"{site}/editor/{resp.json()['id']}")
    expect(page.locator("#preview-count")).to_contain_text("2 codes")
    expect(page.locator("#preview-issues")).to_contain_text("72125: Wrong Display Name 'CT neck bones'")
    beside = page.locator('[data-expression="ValueSet.compose.include[0].concept[0]"] .field-error')
    expect(beside).to_contain_text("Computed tomography, cervical spine; without contrast material")
    expect(page.locator('[data-expression="ValueSet.compose.include[0].concept[1]"] .field-error')).to_be_hidden()


# -- without a mouse, on a phone ------------------------------------------------------------


def tab_to(page: Page, selector: str, limit: int = 80) -> None:
    """Press Tab until the element matching `selector` has the focus."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def test_the_whole_flow_works_by_keyboard_only(page: Page, site: str) -> None:
    page.goto(site + "/editor")
    tab_to(page, "#vs-title")
    page.keyboard.type("Keyboard only CT spine")
    tab_to(page, "#code-search")
    page.keyboard.type("computed cerv")
    expect(page.locator("#search-results li")).to_have_count(3)
    tab_to(page, "#search-results button.add-code")
    page.keyboard.press("Enter")  # adds 72125, the focus moves to the next Add button
    page.keyboard.press("Enter")  # adds 72126
    expect(page.locator("#preview-count")).to_contain_text("2 codes")
    tab_to(page, "#facets input[value='CT']")
    page.keyboard.press("Space")
    tab_to(page, "#facets input[value='lumbar-spine']")
    page.keyboard.press("Space")
    tab_to(page, "#add-rule")
    page.keyboard.press("Enter")
    expect(page.locator("#preview-count")).to_contain_text("5 codes")
    expect(page.locator("#editor-status")).to_contain_text("Rule added")
    tab_to(page, "#token")
    page.keyboard.type(TOKEN)
    page.keyboard.press("Enter")  # the token is kept and the focus moves to Save
    page.keyboard.press("Enter")
    expect(page.locator("#save-status")).to_contain_text("Saved as version 1")
    saved_id(page)


# Every element of the page's content whose box reaches past the header's (which spans the
# viewport): [tag, id, class, left, right]
WIDER_THAN_HEADER = """() => {
  const header = document.querySelector('header.site').getBoundingClientRect();
  return Array.from(document.querySelectorAll('main *')).map(e => [e, e.getBoundingClientRect()])
    .filter(([e, r]) => r.width > 0 && (r.right > header.right + 0.5 || r.left < header.left - 0.5))
    .map(([e, r]) => [e.tagName, e.id, String(e.className), Math.round(r.left), Math.round(r.right)]);
}"""


@pytest.mark.parametrize("width", [320, 390])
def test_the_editor_fits_a_phone_width_screen(browser: Browser, site: str, width: int) -> None:
    page = new_page(browser, width, 844)
    page.goto(site + "/editor")
    page.get_by_label("Title", exact=True).fill("Phone CT spine")
    page.get_by_label("Search codes").press_sequentially("lumbar", delay=30)
    page.get_by_role("button", name=re.compile(r"^Add 72131 ")).click()
    spine_ct_rule(page)
    expect(page.locator("#preview-count")).to_contain_text("9 codes")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.evaluate(WIDER_THAN_HEADER) == []  # the canonical URL base in the help wraps
    box = page.locator("#preview-panel").bounding_box()
    assert box is not None and box["width"] <= width
    shot(page, f"editor-phone-{width}")
    page.context.close()


def test_a_bundled_value_set_is_copied_into_the_editor(page: Page, site: str) -> None:
    page.goto(f"{site}/valueset?url={BUNDLED_SPINE_CT}")
    page.get_by_role("link", name="Copy as a new order set").click()
    expect(page).to_have_url(re.compile(r"/editor\?from=spine-ct$"))
    expect(page.locator("#copy-notice")).to_contain_text("read-only")
    expect(page.get_by_label("Title", exact=True)).to_have_value("Copy of Spine CT orders")
    expect(page.get_by_label("Canonical URL")).to_have_value(f"{URL_BASE}/copy-of-spine-ct-orders")
    expect(page.locator("#compose-list")).to_contain_text("Modality is CT")
    expect(page.locator("#preview-count")).to_contain_text("9 codes")
