"""The release pages in Chromium: a page of the changes between two CPT releases, and a value
set page showing what the newest release changes in an order set, with the codes to fix
marked (real server with two synthetic releases, Playwright)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect

from terminology.cpt.synthetic_history import read_changes
from tests.conftest import CPT_URL, running_server
from tests.e2e.test_browser import shot

ORDER_SET = "https://terminology.cpt-imaging.org/fhir/ValueSet/test-radiology-and-one"


@pytest.fixture(scope="module")
def changes(cpt_history: Path) -> dict[str, Any]:
    listed: dict[str, Any] = read_changes(cpt_history)["changes"][0]
    return listed


@pytest.fixture(scope="module")
def gone(changes: dict[str, Any]) -> dict[str, str]:
    """A code 2026 deletes, outside radiology: listed by name in the order set."""
    found: dict[str, str] = next(c for c in changes["deleted"] if not c["code"].startswith("7"))
    return found


@pytest.fixture(scope="module")
def site(cpt_history: Path, gone: dict[str, str],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real server with both releases and an order set: every radiology code by rule,
    plus `gone` by name."""
    content = tmp_path_factory.mktemp("order-sets")
    (content / "order-set.json").write_text(json.dumps({
        "resourceType": "ValueSet", "id": "test-radiology-and-one", "url": ORDER_SET,
        "name": "TestRadiologyAndOne", "title": "Radiology and one more", "status": "active",
        "compose": {"include": [
            {"system": CPT_URL, "filter": [{"property": "code", "op": "in", "value": "70010-79999"}]},
            {"system": CPT_URL, "concept": [{"code": gone["code"]}]}]}}))
    args = ("--cpt", str(cpt_history / "cpt-2025.db"), "--cpt", str(cpt_history / "cpt-2026.db"),
            "--content", str(content))
    with running_server(tmp_path_factory.mktemp("server"), None, args, timeout=120) as (base, _):
        yield base.removesuffix("/fhir")


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_the_change_page_lists_added_deleted_and_revised_codes(
        page: Page, site: str, changes: dict[str, Any]) -> None:
    page.goto(f"{site}/codesystem?url={quote(CPT_URL, safe='')}")
    page.get_by_role("link", name="2025 → 2026").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Changes from release 2025 to 2026")
    expect(page.locator("#total-added")).to_have_text(str(len(changes["added"])))
    expect(page.locator("#total-deleted")).to_have_text(str(len(changes["deleted"])))
    expect(page.locator("#total-revised")).to_have_text(str(len(changes["revised"])))
    for kind in ("added", "deleted", "revised"):
        codes = page.locator(f"#changes-{kind} tbody tr td:first-child").all_inner_texts()
        assert codes == [c["code"] for c in changes[kind]]
    revised = changes["revised"][0]
    row = page.locator("#changes-revised tbody tr").first
    expect(row).to_contain_text(revised["display"])
    expect(row).to_contain_text(revised["previous"])
    shot(page, "release-changes")


def test_searching_the_change_page_keeps_the_matching_changes(
        page: Page, site: str, changes: dict[str, Any]) -> None:
    wanted = changes["deleted"][0]["code"]
    page.goto(f"{site}/changes?system={quote(CPT_URL, safe='')}&from=2025&to=2026")
    page.get_by_label("Search the changes").fill(wanted)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#change-count")).to_contain_text("Changes 1–1 of 1")
    expect(page.locator("#changes-deleted tbody tr")).to_have_count(1)
    expect(page.locator("#changes-deleted")).to_contain_text(wanted)


def test_the_value_set_page_shows_what_the_new_release_changes_with_codes_to_fix(
        page: Page, site: str, changes: dict[str, Any], gone: dict[str, str]) -> None:
    page.goto(f"{site}/valueset?url={quote(ORDER_SET, safe='')}")
    impact = page.locator("#release-impact")
    expect(impact.get_by_role("heading")).to_have_text("What release 2026 changes in this order set")
    expect(page.locator("#impact-fix-count")).to_contain_text("1 code to fix")
    fix = page.locator("#impact tr.to-fix")
    expect(fix).to_have_count(1)
    expect(fix).to_contain_text(gone["code"])
    expect(fix).to_contain_text("fix: listed code deleted")
    expect(page.locator("ol.rules .fix-mark")).to_have_text("deleted in release 2026: fix")
    added = [c["code"] for c in changes["added"] if "70010" <= c["code"] <= "79999"]
    expect(page.locator("#impact tr.added")).to_have_count(len(added))
    for code in added:
        expect(page.locator("#impact tr.added", has_text=code)).to_have_count(1)
    shot(page, "release-impact")


def test_the_editor_shows_what_the_new_release_changes_in_the_draft(
        page: Page, site: str, changes: dict[str, Any], gone: dict[str, str]) -> None:
    page.goto(f"{site}/editor?from=test-radiology-and-one")
    panel = page.locator("#release-panel")
    expect(panel.get_by_role("heading")).to_have_text("What release 2026 changes in this order set")
    expect(page.locator("#release-count")).to_contain_text("1 code to fix")
    fix = page.locator("#release-changes tr.to-fix")
    expect(fix).to_have_count(1)
    expect(fix).to_contain_text(gone["code"])
    added = [c["code"] for c in changes["added"] if "70010" <= c["code"] <= "79999"]
    expect(page.locator("#release-changes tr.added")).to_have_count(len(added))
    shot(page, "release-impact-editor")
