"""Schemathesis fuzzing of every endpoint in /fhir/openapi.json, in process (WSGI, no network).

Valid and schema-violating requests are generated with a fixed seed and a bounded number of
examples per operation. Every answer must be free of server errors, and every error must be an
OperationOutcome in application/fhir+json with a message.
"""

from __future__ import annotations

from typing import Any

import orjson
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from terminology.content import load_registry
from terminology.http.app import create_app
from terminology.settings import BUNDLED_CONTENT, Settings

from ..conftest import DATA
from .conftest import FHIR_JSON

EXAMPLES_PER_OPERATION = 10
CONFIG = SchemathesisConfig.from_dict({
    "seed": 8190,
    "generation": {"mode": "all", "deterministic": True},
})
APP = create_app(Settings(content_dirs=[BUNDLED_CONTENT, DATA]), load_registry([BUNDLED_CONTENT, DATA]))
schema = schemathesis.openapi.from_wsgi("/fhir/openapi.json", APP, config=CONFIG)
cases_run: list[int] = []


def header(response: Any, name: str) -> str:
    """A response header, whatever the case of its name and the shape of the header map."""
    for key, value in response.headers.items():
        if key.lower() == name.lower():
            return str(value[0] if isinstance(value, list) else value)
    return ""


def check_answer(status: int, ctype: str, body: bytes) -> None:
    """No 5xx; errors are OperationOutcomes with a message; answers are FHIR JSON."""
    assert status < 500, body[:500]
    if status == 204:
        return
    assert ctype.startswith((FHIR_JSON, "application/json")), (status, ctype)
    resource = orjson.loads(body)
    if status >= 400:
        assert ctype.startswith(FHIR_JSON), ctype
        assert resource["resourceType"] == "OperationOutcome", resource
        issue = resource["issue"][0]
        assert issue["severity"] in ("error", "fatal")
        assert len(issue["details"]["text"]) > 10, issue


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_fuzzed_request_gets_a_fhir_answer(case: Any) -> None:
    response = case.call()
    cases_run.append(1)
    check_answer(response.status_code, header(response, "Content-Type"), response.content)


def test_fuzzing_covered_every_operation_of_the_description() -> None:
    paths = set(schema.raw_schema["paths"])
    assert "/fhir/ValueSet/$expand" in paths and "/fhir/CodeSystem/{id}/$lookup" in paths
    assert len(cases_run) >= len(paths) * 5, len(cases_run)
    print(f"fuzzed {len(cases_run)} requests over {len(paths)} paths")
