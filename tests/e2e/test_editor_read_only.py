"""The order-set editor on a read-only server (no write tokens, no JWT issuer), in Chromium:
it still builds and previews a draft, but offers no token box and no Save, and says why.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.test_browser import TIMEOUT_MS


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    p = context.new_page()
    yield p
    context.close()


def test_a_read_only_server_offers_no_token_box_or_save_and_says_so(page: Page, live_server: str) -> None:
    page.goto(live_server.removesuffix("/fhir") + "/editor?from=spine-ct")
    expect(page.locator("#preview-count")).to_contain_text("9 codes")  # the preview still works
    expect(page.locator("#read-only-notice")).to_contain_text("This server is read-only")
    expect(page.get_by_label("Write token")).to_have_count(0)
    expect(page.get_by_role("button", name="Save order set")).to_have_count(0)
    expect(page.get_by_role("button", name="Use token")).to_have_count(0)
