"""fhir-kit-client (a widely used JavaScript FHIR client) against the real server: read, search
by GET and by POST (`_search` with a form body), paging through `next` links, operations
(POST without a body, GET with query input, POST with Parameters) and an error's
OperationOutcome. tests/e2e/fhirkit/calls.mjs makes the calls with Node.

`.ci/run` installs the client from npm into FHIRKIT_MODULES (default
~/.cache/cpt-terminology-tests/node; not committed). The test is skipped only when Node is not
installed; with Node but without the client it fails and says how to install it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

CALLS = REPO / "tests" / "e2e" / "fhirkit" / "calls.mjs"
PINNED = json.loads((CALLS.parent / "package.json").read_text())["dependencies"]["fhir-kit-client"]


def modules_dir() -> Path:
    """Where npm installed fhir-kit-client (FHIRKIT_MODULES, as .ci/run uses it)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cpt-terminology-tests" / "node"
    return Path(os.environ.get("FHIRKIT_MODULES", default))


def test_fhir_kit_client_reads_searches_pages_and_calls_operations(live_server: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs); fhir-kit-client runs on it")
    installed = modules_dir() / "node_modules" / "fhir-kit-client" / "package.json"
    assert installed.exists(), (
        f"fhir-kit-client is not installed under {modules_dir()}: run .ci/run, or "
        f"npm install --prefix {modules_dir()} fhir-kit-client@{PINNED}")
    done = subprocess.run([node, str(CALLS), live_server, str(modules_dir())],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["version"] == PINNED
    assert out["fhirVersion"] == "4.0.1"
    assert out["read"] == "https://terminology.cpt-imaging.org/fhir/ValueSet/spine-ct"
    assert out["searchGet"] == out["searchPost"] == 1
    # paging one value set at a time reaches every one, each once
    assert len(out["pagedIds"]) == out["pagingTotal"] == len(set(out["pagedIds"]))
    assert "spine-ct" in out["pagedIds"]
    assert out["expandTotal"] == 9  # POST ValueSet/spine-ct/$expand without a body
    assert out["lookupDisplay"] == "Computed tomography, cervical spine; without contrast material"
    assert out["validateResult"] is True
    assert out["missing"] == {"status": 404, "resourceType": "OperationOutcome"}
