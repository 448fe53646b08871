"""Helpers for the reliability suite: sending raw requests to the real server and checking
that every answer is a timely, well-formed FHIR answer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import requests

from terminology.settings import Settings

from ..conftest import CPT_URL, assert_fhir_valid

TIME_LIMIT = Settings().request_time_limit  # the live server runs with the default settings
FHIR_JSON = "application/fhir+json"
LOOKUP_72126 = f"/CodeSystem/$lookup?system={CPT_URL}&code=72126"
DISPLAY_72126 = "Computed tomography, cervical spine; with contrast material"


@dataclass
class Answer:
    """One HTTP answer and how long it took."""

    status: int
    headers: Any
    body: bytes
    seconds: float

    def json(self) -> dict[str, Any]:
        return orjson.loads(self.body)  # type: ignore[no-any-return,unused-ignore]


def send(base: str, method: str, path: str, **kw: Any) -> Answer:
    """One request to the live server; `path` may hold raw (already percent-encoded) bytes."""
    started = time.monotonic()
    resp = requests.request(method, base + path, timeout=TIME_LIMIT + 20, **kw)
    return Answer(resp.status_code, resp.headers, resp.content, time.monotonic() - started)


def parameters(*params: dict[str, Any]) -> bytes:
    """A Parameters resource body."""
    return orjson.dumps({"resourceType": "Parameters", "parameter": list(params)})


def check_outcome(answer: Answer, status: int, fragment: str = "",
                  expression: str | None = None, code: str | None = None) -> dict[str, Any]:
    """An error answer: status, FHIR JSON, a valid OperationOutcome with a useful text, in time."""
    assert answer.status == status, answer.body[:500]
    assert answer.headers["Content-Type"].startswith(FHIR_JSON), answer.headers["Content-Type"]
    assert answer.seconds < TIME_LIMIT + 1, f"answered after {answer.seconds:.1f} s"
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert_fhir_valid(body)
    issue = body["issue"][0]
    assert issue["severity"] in ("error", "fatal")
    text = issue["details"]["text"]
    assert len(text) >= 15, text  # a sentence, not a bare code
    assert fragment.lower() in text.lower(), text
    if expression is not None:
        assert issue.get("expression") == [expression], issue
    if code is not None:
        assert issue["code"] == code, issue
    return body


def lookup_72126_is_intact(base: str) -> None:
    """The server still answers $lookup of 72126 with its own CPT display."""
    asked = parameters({"name": "system", "valueUri": CPT_URL}, {"name": "code", "valueCode": "72126"})
    # both a GET and a POST: the GET may come from the response cache, the POST never does
    for resp in (requests.get(base + LOOKUP_72126, timeout=10),
                 requests.post(base + "/CodeSystem/$lookup", data=asked, timeout=10,
                               headers={"Content-Type": FHIR_JSON})):
        assert resp.status_code == 200, resp.text
        display = next(p["valueString"] for p in resp.json()["parameter"] if p["name"] == "display")
        assert display == DISPLAY_72126
