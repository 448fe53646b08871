"""/metrics and /admin/reload through the Flask test client (one process)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from terminology.http.app import create_app
from terminology.logs import JsonFormatter
from terminology.settings import BUNDLED_CONTENT, Settings

from ..conftest import CPT_URL

VS_URL = "http://example.test/fhir/ValueSet/swap"
TOKEN = "admin-token-for-tests"


def write_vs(folder: Path, version: str) -> None:
    (folder / "vs.json").write_text(json.dumps({
        "resourceType": "ValueSet", "id": "swap", "url": VS_URL, "version": version,
        "status": "active",
        "compose": {"include": [{"system": "http://hl7.org/fhir/administrative-gender"}]}}))


@pytest.fixture()
def content(tmp_path: Path) -> Path:
    folder = tmp_path / "content"
    folder.mkdir()
    write_vs(folder, "1")
    return folder


def app_over(content: Path, **kw: Any) -> Any:
    from terminology.content import load_content

    settings = Settings(content_dirs=[BUNDLED_CONTENT, content], cache_dir=content.parent / "cache", **kw)
    return create_app(settings, load_content(settings))


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rpartition(" ")[2])
    return 0.0


def test_metrics_count_requests_by_operation_and_status(client: Any) -> None:
    name = 'tx_requests_total{operation="CodeSystem/$lookup",status="404"}'
    before = sample(client.get("/metrics").get_data(as_text=True), name)
    for _ in range(2):
        client.get("/fhir/CodeSystem/$lookup", query_string={"system": CPT_URL, "code": "0000x"})
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    assert sample(resp.get_data(as_text=True), name) == before + 2


def test_unknown_operations_share_one_label(client: Any) -> None:
    client.get("/fhir/CodeSystem/$made-up-1")
    client.get("/fhir/Nonsense/$made-up-2")
    text = client.get("/metrics").get_data(as_text=True)
    assert "made-up" not in text and 'operation="other"' in text


def test_metrics_on_a_separate_port_leave_the_api_port(content: Path) -> None:
    client = app_over(content, metrics_port=9999).test_client()
    assert client.get("/metrics").status_code == 404


def test_admin_reload_is_off_without_a_token(client: Any) -> None:
    assert client.post("/admin/reload").status_code == 404


def test_admin_reload_swaps_content_and_drops_the_response_cache(content: Path) -> None:
    client = app_over(content, admin_token=TOKEN).test_client()
    expand = {"url": VS_URL}
    first = client.get("/fhir/ValueSet/$expand", query_string=expand).get_json()
    assert first["version"] == "1"
    write_vs(content, "2")
    assert client.post("/admin/reload", headers={"Authorization": "Bearer nope"}).status_code == 401
    resp = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 202
    # The same GET, once cached, now answers from the new content.
    assert client.get("/fhir/ValueSet/$expand", query_string=expand).get_json()["version"] == "2"


def test_a_broken_reload_keeps_the_old_content(content: Path) -> None:
    client = app_over(content, admin_token=TOKEN).test_client()
    (content / "broken.json").write_text("{not json")
    resp = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 409
    assert resp.get_json()["resourceType"] == "OperationOutcome"
    answer = client.get("/fhir/ValueSet/$expand", query_string={"url": VS_URL})
    assert answer.status_code == 200 and answer.get_json()["version"] == "1"


def test_log_lines_of_a_request_carry_its_request_id(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="terminology.access"):
        client.get("/healthz", headers={"X-Request-Id": "req-42"})
    (record,) = [r for r in caplog.records if r.name == "terminology.access"]
    line = json.loads(JsonFormatter().format(record))
    assert (line["request_id"], line["status"], line["path"]) == ("req-42", 200, "/healthz")
