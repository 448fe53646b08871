"""Each granian worker answers a few operation GETs before it accepts requests (the first
touch of that code after the fork), quietly: no access-log lines, no failure."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import pytest

from terminology.http.server.workers import warm_up, warm_up_paths
from terminology.registry import Registry
from tests.conftest import CPT_URL


def test_warm_up_asks_the_biggest_code_system_and_a_value_set_over_it(registry: Registry,
                                                                     client: Any) -> None:
    paths = warm_up_paths(registry)
    biggest = max(registry.providers(), key=lambda p: p.total())
    assert len(paths) == 4
    assert all(quote(biggest.url, safe="") in p for p in paths if "$expand" not in p)
    for path in paths:
        assert client.get(path).status_code == 200, path


def test_warm_up_of_the_full_release_uses_cpt(full_registry: Registry) -> None:
    paths = warm_up_paths(full_registry)
    assert len(paths) == 4
    assert all("ama-assn.org" in p for p in paths if "$expand" not in p)
    assert full_registry.code_system(CPT_URL) is not None


def test_warm_up_writes_no_access_log_line(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="terminology.access"):
        warm_up(app)
        assert not [r for r in caplog.records if r.name == "terminology.access"]
        app.test_client().get("/healthz")
    assert [r for r in caplog.records if r.name == "terminology.access"]
    assert not logging.getLogger("terminology.access").disabled
