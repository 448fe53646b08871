"""Shared fixtures: registries built from test content, the Flask test client, a live server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from terminology.content import load_registry
from terminology.http.app import create_app
from terminology.registry import Registry
from terminology.settings import BUNDLED_CONTENT, Settings

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
SHARED = REPO.parent / "shared"
CPT_URL = "http://www.ama-assn.org/go/cpt"
BODY_SITE = "http://example.test/fhir/CodeSystem/body-site"


def load_json(name: str) -> dict[str, Any]:
    """A JSON file from tests/data."""
    return orjson.loads((DATA / name).read_bytes())


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The bundled content plus the test code systems in tests/data."""
    return load_registry([BUNDLED_CONTENT, DATA])


@pytest.fixture(scope="session")
def app(registry: Registry) -> Any:
    """The Flask app over the test registry."""
    settings = Settings(content_dirs=[BUNDLED_CONTENT, DATA])
    return create_app(settings, registry)


@pytest.fixture()
def client(app: Any) -> Any:
    """A Flask test client."""
    return app.test_client()


@pytest.fixture(scope="session")
def full_cpt_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-size synthetic CPT release (11,000 codes, 71 modifiers) imported to a database."""
    from terminology.cpt.ama.importer import import_to_db
    from terminology.cpt.synthetic import write_synthetic_release

    base = tmp_path_factory.mktemp("full-cpt")
    write_synthetic_release(base / "release")
    import_to_db(base / "release", "2026", base / "cpt.db")
    return base / "cpt.db"


@pytest.fixture(scope="session")
def full_registry(full_cpt_db: Path) -> Registry:
    """The bundled content with the full-size CPT database, loaded as `serve --cpt` loads it."""
    from terminology.content import load_content

    return load_content(Settings(cpt_databases=[full_cpt_db]))


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Poll `url` until it answers 200; fail with the process log if it dies or times out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


@contextmanager
def running_server(workdir: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = (),
                   timeout: float = 30) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`terminology serve` (production WSGI server) on 127.0.0.1 over tests/data, with extra
    environment and CLI arguments; yields (base url of /fhir, the server process). Its log is
    workdir/server.log."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "server.log"
    full_env = {**os.environ, "TX_CACHE_DIR": str(workdir / "cache"), **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "terminology.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--content", str(DATA), *args],
            stdout=out, stderr=subprocess.STDOUT, env=full_env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/readyz", proc, log, timeout)
        yield f"{base}/fhir", proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    # Everything the server wrote over the whole run, shutdown included, is JSON lines.
    assert_json_lines(log)


def assert_json_lines(log: Path) -> None:
    """Fail naming the first line of `log` that is not one JSON object."""
    for number, line in enumerate(log.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            pytest.fail(f"{log} line {number} is not JSON: {line[:300]}")
        assert isinstance(record, dict) and "message" in record, line


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real server (`terminology serve`, production WSGI server) on 127.0.0.1; its base url."""
    with running_server(tmp_path_factory.mktemp("server")) as (base, _proc):
        yield base


def assert_fhir_valid(body: dict[str, Any]) -> None:
    """Fail unless `body` validates as its FHIR R4 resource type (fhir.resources R4B models)."""
    from fhir.resources.R4B import get_fhir_model_class

    get_fhir_model_class(body["resourceType"]).model_validate(body)


def assert_outcome(resp: Any, status: int, text_fragment: str = "", expression: str | None = None) -> dict[str, Any]:
    """Check an error response: status, FHIR JSON content type, a valid OperationOutcome."""
    assert resp.status_code == status, resp.get_data(as_text=True) if hasattr(resp, "get_data") else resp.text
    ctype = resp.headers["Content-Type"]
    assert ctype.startswith("application/fhir+json"), ctype
    body = resp.get_json() if hasattr(resp, "get_json") else resp.json()
    assert body["resourceType"] == "OperationOutcome"
    assert_fhir_valid(body)
    issue = body["issue"][0]
    assert issue["severity"] in ("error", "fatal")
    assert text_fragment.lower() in issue["details"]["text"].lower()
    if expression is not None:
        assert issue.get("expression") == [expression]
    return body


def param_value(params: dict[str, Any], name: str) -> Any:
    """The value[x] of the first parameter called `name` (None when absent)."""
    for p in params.get("parameter", []):
        if p["name"] == name:
            for k, v in p.items():
                if k.startswith("value"):
                    return v
            return p.get("resource", p.get("part"))
    return None


def properties(params: dict[str, Any]) -> dict[str, list[Any]]:
    """$lookup property parts as {code: [values]}."""
    out: dict[str, list[Any]] = {}
    for p in params.get("parameter", []):
        if p["name"] != "property":
            continue
        parts = {x["name"]: x for x in p["part"]}
        value = next(v for k, v in parts["value"].items() if k.startswith("value"))
        out.setdefault(parts["code"]["valueCode"], []).append(value)
    return out
