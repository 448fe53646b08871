"""What the browser tests share: Debian's Chromium, driven by Playwright (no browser download)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium, headless; the module is skipped when it is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def cpt_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic CPT releases 2025 and 2026 of 1,500 codes, imported to cpt-2025.db and
    cpt-2026.db, with the generator's changes.json (terminology.cpt.synthetic_history)."""
    from terminology.cpt.synthetic_history import write_release_history

    base = tmp_path_factory.mktemp("cpt-history")
    write_release_history(base, ["2025", "2026"], n_codes=1500, databases=True)
    return base
