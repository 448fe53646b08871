"""cache-id on the default install: two workers, no store, no setting; every worker finds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from ..conftest import param_value, running_server

CS_URL = "http://example.test/workers-cs"
VS_URL = "http://example.test/workers-vs"
CODE_SYSTEM = {"resourceType": "CodeSystem", "url": CS_URL, "status": "active", "content": "complete",
               "concept": [{"code": "a", "display": "Alpha"}]}
VALUE_SET = {"resourceType": "ValueSet", "url": VS_URL, "status": "active",
             "compose": {"include": [{"system": CS_URL}]}}


def validate(base: str, *resources: dict[str, Any]) -> requests.Response:
    params: list[dict[str, Any]] = [
        {"name": "url", "valueUri": VS_URL}, {"name": "system", "valueUri": CS_URL},
        {"name": "code", "valueCode": "a"}, {"name": "cache-id", "valueString": "validator-1"}]
    params += [{"name": "tx-resource", "resource": r} for r in resources]
    return requests.post(f"{base}/ValueSet/$validate-code", json={"resourceType": "Parameters", "parameter": params},
                         headers={"Connection": "close"}, timeout=30)


def test_content_sent_once_is_found_on_twelve_of_twelve_new_connections(tmp_path: Path) -> None:
    with running_server(tmp_path, {"TX_LOG_LEVEL": "warning"}, ("--workers", "2")) as (base, _):
        caps = requests.get(f"{base}/metadata", params={"mode": "terminology"}, timeout=30).json()
        assert "cache-id" in [p["name"] for p in caps["expansion"]["parameter"]]
        first = validate(base, CODE_SYSTEM, VALUE_SET)
        assert first.status_code == 200 and param_value(first.json(), "result") is True
        answers = [validate(base) for _ in range(12)]
        assert [a.status_code for a in answers] == [200] * 12, [a.text[:200] for a in answers]
        assert [param_value(a.json(), "display") for a in answers] == ["Alpha"] * 12
        by_get = requests.get(f"{base}/ValueSet/$validate-code", timeout=30, params={
            "cache-id": "validator-1", "url": VS_URL, "system": CS_URL, "code": "a"})
        assert param_value(by_get.json(), "result") is True
