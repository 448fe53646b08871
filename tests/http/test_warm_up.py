"""Each granian worker answers a few operation GETs and POSTs before it accepts requests (the
first touch of that code after the fork), quietly: no access-log lines, no failure. The
models that validate inline resources are built before the workers fork."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from terminology.http import metrics
from terminology.http.server.workers import warm_up, warm_up_paths, warm_up_posts
from terminology.registry import Registry
from tests.conftest import CPT_URL

ROOT = Path(__file__).resolve().parents[2]


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
        assert not metrics.PENDING.requests  # nor counts its requests
        assert not [r for r in caplog.records if r.name == "terminology.access"]
        app.test_client().get("/healthz")
    assert [r for r in caplog.records if r.name == "terminology.access"]
    assert not logging.getLogger("terminology.access").disabled


def test_warm_up_posts_an_inline_value_set_over_the_biggest_code_system(registry: Registry,
                                                                       client: Any) -> None:
    posts = warm_up_posts(registry)
    biggest = max(registry.providers(), key=lambda p: p.total())
    assert [path for path, _ in posts] == ["/fhir/ValueSet/$expand", "/fhir/ValueSet/$validate-code"]
    for path, body in posts:
        assert biggest.url.encode() in body
        resp = client.post(path, data=body, content_type="application/fhir+json")
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    expanded = client.post(posts[0][0], data=posts[0][1], content_type="application/fhir+json")
    assert expanded.get_json()["expansion"]["total"] == biggest.total()


def test_prepare_request_models_loads_the_models_of_inline_resources() -> None:
    """In a fresh interpreter (this one may have them already): none before, all after."""
    script = ("import sys; from terminology.content import prepare_request_models as p; "
              "names = ['fhir.resources.R4B.' + t for t in ('valueset', 'codesystem', 'conceptmap')]; "
              "print([n in sys.modules for n in names]); p(); print([n in sys.modules for n in names])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.split("\n")
    assert out[:2] == ["[False, False, False]", "[True, True, True]"]
