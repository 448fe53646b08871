"""The HL7 terminology test suite's cases (../shared/tx-tests) as R4 JSON, for XML tests.

The cases are R5-shaped and carry the runner's template markers ($optional$, $id$...); the
runner's own r5_to_r4 makes them R4 and the markers (keys starting with '$', comments and
language-tagged keys the runner reads) are dropped. Tests skip when the suite is absent.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from .conftest import SHARED

CANDIDATES = (SHARED / "tx-tests", Path("/work/shared/tx-tests"))
# The operations the runner POSTs, and where.
OPERATION_PATHS = {"expand": "ValueSet/$expand", "validate-code": "ValueSet/$validate-code",
                   "cs-validate-code": "CodeSystem/$validate-code", "lookup": "CodeSystem/$lookup",
                   "translate": "ConceptMap/$translate"}


def suite_dir() -> Path:
    """The tx-tests folder; skips the test when it is not there."""
    for d in CANDIDATES:
        if (d / "run.py").is_file() and (d / "cases").is_dir():
            return d
    pytest.skip("the HL7 tx-tests suite (../shared/tx-tests) is not available")


@functools.cache
def runner() -> ModuleType:
    """The suite's run.py, imported for its R5 -> R4 conversion."""
    spec = importlib.util.spec_from_file_location("tx_runner", suite_dir() / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items()
                if not k.startswith("$") and k != "fhir_comments" and ":" not in k}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def as_r4(resource: dict[str, Any]) -> dict[str, Any]:
    """A case resource as plain R4 JSON (numbers as orjson reads them)."""
    converted = runner().r5_to_r4(copy.deepcopy(resource))[0]
    return _strip(orjson.loads(orjson.dumps(converted, default=float)))


def load(name: str) -> dict[str, Any]:
    """A case file (relative to cases/) as R4 JSON."""
    return as_r4(orjson.loads((suite_dir() / "cases" / name).read_bytes()))


def case_resources() -> list[tuple[str, dict[str, Any]]]:
    """Every FHIR resource among the suite's JSON files, as R4 JSON."""
    out = []
    for path in sorted((suite_dir() / "cases").rglob("*.json")):
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict) and isinstance(data.get("resourceType"), str):
            out.append((str(path.relative_to(suite_dir())), as_r4(data)))
    return out


def suite_requests() -> list[tuple[str, str, dict[str, Any]]]:
    """(test name, operation path, Parameters) for every POST the runner sends (general mode)."""
    cases = orjson.loads((suite_dir() / "cases" / "test-cases.json").read_bytes())
    profile = load("parameters-default.json")
    out = []
    for suite in cases["suites"]:
        if suite.get("mode", "general") != "general":
            continue
        setup = [load(f) for f in suite.get("setup", []) or []]
        for test in suite.get("tests", []):
            path = OPERATION_PATHS.get(test.get("operation", ""))
            if path is None or not test.get("request") or test.get("mode", "general") != "general":
                continue
            req = load(test["request"])
            if req.get("resourceType") != "Parameters":
                continue
            params = req.setdefault("parameter", [])
            params += [{"name": "tx-resource", "resource": r} for r in setup]
            params += copy.deepcopy(profile.get("parameter", []))
            out.append((f"{suite['name']}/{test['name']}", path, req))
    return out
